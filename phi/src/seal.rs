//! Sealing: the envelope that carries a data set's original identifying values,
//! encrypted with AES-256-GCM under the facility's sealing subkey.
//!
//! Owns the envelope byte layout (`schemas/sealed-identity.md`) and its associated
//! data, which binds the envelope to one facility, one key and one pseudonymous SOP
//! Instance UID, so an envelope moved to another instance does not open. What goes
//! inside (an encoded Modified Attributes Sequence) is the de-identification
//! engine's business; this module sees bytes only and does no I/O.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use crate::PhiError;
use crate::keys::{KEY_ID_LEN, KEY_LEN, KeyId, KeyRing};

/// Envelope format version, the byte after [`ENVELOPE_MAGIC`].
pub const ENVELOPE_VERSION: u8 = 1;
/// Magic bytes opening every envelope; with the version byte, `PHI\x01`.
pub const ENVELOPE_MAGIC: [u8; 3] = *b"PHI";
/// AES-GCM nonce length in bytes (96 bits, synthetic: see [`seal`]).
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Bytes before the ciphertext: magic, version, key id, nonce.
pub const ENVELOPE_HEADER_LEN: usize = BOUND_HEADER_LEN + NONCE_LEN;
/// Envelope length minus plaintext length (header and tag): 40, even, so the
/// envelope of a data set (always of even length) is a valid OB value as it is.
pub const ENVELOPE_OVERHEAD: usize = ENVELOPE_HEADER_LEN + TAG_LEN;
const _: () = assert!(ENVELOPE_OVERHEAD.is_multiple_of(2));
/// Magic, version and key id: the part of the header repeated in the associated data.
const BOUND_HEADER_LEN: usize = ENVELOPE_MAGIC.len() + 1 + KEY_ID_LEN;

/// What an envelope is bound to. A different value at unseal time fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealContext<'a> {
    /// The facility id, compared byte for byte.
    pub facility: &'a str,
    /// The PSEUDONYMOUS SOP Instance UID (the one the de-identified instance carries).
    /// Trailing NUL and space padding is ignored.
    pub sop_instance_uid: &'a str,
    /// Which of the instance's envelopes this is: an envelope sealed for one purpose
    /// does not open as the other.
    pub purpose: Purpose,
}

/// The two envelopes of a de-identified instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Purpose {
    /// The full record: every original value de-identification changed, however
    /// large (associated data as in format version 1, unchanged).
    #[default]
    Instance,
    /// The identity summary the gateway indexes and returns in C-FIND: a few
    /// identifying attributes, bounded in size. Its associated data ends with
    /// `u64be(len) || "pacs identity summary"`.
    Summary,
}

impl Purpose {
    /// The label appended to the associated data, if any.
    fn label(self) -> Option<&'static [u8]> {
        match self {
            Purpose::Instance => None,
            Purpose::Summary => Some(b"pacs identity summary"),
        }
    }
}

/// Encrypts `plaintext` into an envelope.
///
/// Deterministic: the nonce is synthetic, the first 96 bits of
/// HMAC-SHA256(nonce subkey, u64be(len(aad)) || aad || plaintext), so sealing the
/// same values for the same instance twice gives the same bytes, and a re-sent
/// instance is an identical duplicate at the gateway. Two different (context,
/// plaintext) pairs share a nonce only if the PRF collides on 96 bits, the same
/// bound as random nonces; equal envelopes reveal only that the same instance was
/// sealed with the same values, which the gateway sees anyway (same SOP Instance
/// UID, same bytes). The argument is in `schemas/sealed-identity.md`.
///
/// # Panics
/// If `plaintext` exceeds AES-GCM's limit of 64 GiB.
pub fn seal(ring: &KeyRing, context: &SealContext<'_>, plaintext: &[u8]) -> Vec<u8> {
    let mut bound = Vec::with_capacity(BOUND_HEADER_LEN);
    bound.extend_from_slice(&ENVELOPE_MAGIC);
    bound.push(ENVELOPE_VERSION);
    bound.extend_from_slice(&ring.key_id().to_bytes());
    let aad = associated_data(&bound, context);
    let nonce = synthetic_nonce(ring, &aad, plaintext);
    seal_with_nonce(ring, context, plaintext, &nonce)
}

/// `HMAC-SHA256(nonce subkey, u64be(len(aad)) || aad || plaintext)[..12]`.
fn synthetic_nonce(ring: &KeyRing, aad: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(ring.nonce_key())
        .expect("HMAC takes keys of any length");
    mac.update(&(aad.len() as u64).to_be_bytes());
    mac.update(aad);
    mac.update(plaintext);
    let digest = mac.finalize().into_bytes();
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&digest[..NONCE_LEN]);
    nonce
}

fn seal_with_nonce(
    ring: &KeyRing,
    context: &SealContext<'_>,
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plaintext.len());
    out.extend_from_slice(&ENVELOPE_MAGIC);
    out.push(ENVELOPE_VERSION);
    out.extend_from_slice(&ring.key_id().to_bytes());
    out.extend_from_slice(nonce);
    let aad = associated_data(&out[..BOUND_HEADER_LEN], context);
    out.extend_from_slice(plaintext);
    let tag = encrypt_in_place(
        ring.sealing_key(),
        nonce,
        &aad,
        &mut out[ENVELOPE_HEADER_LEN..],
    );
    out.extend_from_slice(&tag);
    out
}

/// Decrypts an envelope made by [`seal`] with the same key ring and context.
///
/// Errors: [`PhiError::Format`] for bytes that are not an envelope of a known
/// version, [`PhiError::WrongKey`] when it names another key, [`PhiError::Unseal`]
/// when it was altered or belongs to another facility or instance.
pub fn unseal(
    ring: &KeyRing,
    context: &SealContext<'_>,
    envelope: &[u8],
) -> Result<Vec<u8>, PhiError> {
    let found = envelope_key_id(envelope)?;
    if found != *ring.key_id() {
        return Err(PhiError::WrongKey {
            found: found.to_string(),
            expected: ring.key_id().to_string(),
        });
    }
    let aad = associated_data(&envelope[..BOUND_HEADER_LEN], context);
    let nonce: &[u8; NONCE_LEN] = envelope[BOUND_HEADER_LEN..ENVELOPE_HEADER_LEN]
        .try_into()
        .map_err(|_| PhiError::Format("too short"))?;
    let (body, tag) = envelope[ENVELOPE_HEADER_LEN..].split_at(envelope.len() - ENVELOPE_OVERHEAD);
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| PhiError::Format("too short"))?;
    let mut plaintext = body.to_vec();
    decrypt_in_place(ring.sealing_key(), nonce, &aad, &mut plaintext, tag).map_err(|_| {
        plaintext.zeroize();
        PhiError::Unseal
    })?;
    Ok(plaintext)
}

/// The key id an envelope was sealed with, after checking its magic, version and
/// minimum length.
pub fn envelope_key_id(envelope: &[u8]) -> Result<KeyId, PhiError> {
    if envelope.len() < ENVELOPE_OVERHEAD {
        return Err(PhiError::Format("too short"));
    }
    if envelope[..ENVELOPE_MAGIC.len()] != ENVELOPE_MAGIC {
        return Err(PhiError::Format("no PHI magic at the start"));
    }
    if envelope[ENVELOPE_MAGIC.len()] != ENVELOPE_VERSION {
        return Err(PhiError::Format(
            "unknown envelope version; upgrade pacs-client",
        ));
    }
    let id: [u8; KEY_ID_LEN] = envelope[ENVELOPE_MAGIC.len() + 1..BOUND_HEADER_LEN]
        .try_into()
        .map_err(|_| PhiError::Format("too short"))?;
    Ok(KeyId::from_bytes(id))
}

/// `magic || version || key id || u64be(len) || facility || u64be(len) || SOP UID`,
/// then `u64be(len) || label` for a [`Purpose`] other than the full record.
fn associated_data(bound_header: &[u8], context: &SealContext<'_>) -> Vec<u8> {
    let uid = context.sop_instance_uid.trim_end_matches(['\0', ' ']);
    let label = context.purpose.label();
    let mut aad = Vec::with_capacity(
        bound_header.len() + 24 + context.facility.len() + uid.len() + label.map_or(0, <[u8]>::len),
    );
    aad.extend_from_slice(bound_header);
    for part in [context.facility.as_bytes(), uid.as_bytes()]
        .into_iter()
        .chain(label)
    {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

/// AES-256-GCM encryption in place; returns the tag.
///
/// # Panics
/// If `buffer` or `aad` exceeds AES-GCM's limit of 64 GiB.
pub(crate) fn encrypt_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buffer: &mut [u8],
) -> [u8; TAG_LEN] {
    Aes256Gcm::new(key.into())
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buffer)
        .expect("AES-GCM input below 64 GiB")
        .into()
}

/// AES-256-GCM decryption in place. The tag is checked before anything is
/// decrypted: on failure `buffer` still holds the ciphertext.
pub(crate) fn decrypt_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buffer: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), aes_gcm::Error> {
    Aes256Gcm::new(key.into()).decrypt_in_place_detached(
        Nonce::from_slice(nonce),
        aad,
        buffer,
        Tag::from_slice(tag),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::FacilityKey;
    use proptest::prelude::*;

    const SOP: &str = "2.25.123456789012345678901234567890";

    fn context() -> SealContext<'static> {
        SealContext {
            facility: "st-mary",
            sop_instance_uid: SOP,
            purpose: Purpose::Instance,
        }
    }

    fn ring() -> KeyRing {
        FacilityKey::from_bytes([42; KEY_LEN]).ring()
    }

    #[test]
    fn layout() {
        let ring = ring();
        let envelope = seal(&ring, &context(), b"hello");
        assert_eq!(envelope.len(), ENVELOPE_OVERHEAD + 5);
        assert_eq!(&envelope[..4], b"PHI\x01");
        assert_eq!(envelope[3], ENVELOPE_VERSION);
        assert_eq!(&envelope[4..12], &ring.key_id().to_bytes());
        assert_eq!(envelope_key_id(&envelope).unwrap(), *ring.key_id());
        assert!(!envelope.windows(5).any(|w| w == b"hello"));
    }

    #[test]
    fn known_answer() {
        // Computed independently from schemas/sealed-identity.md.
        let key = FacilityKey::from_bytes(core::array::from_fn(|i| i as u8));
        let envelope = seal_with_nonce(&key.ring(), &context(), b"hello", &[9; NONCE_LEN]);
        assert_eq!(
            hex::encode(&envelope),
            "50484901672d4301bbcab50e090909090909090909090909\
             4acd1a38a2b913147e54799de82e28571cd9016403"
        );
    }

    #[test]
    fn known_answer_with_synthetic_nonce() {
        // Computed independently from schemas/sealed-identity.md (Python hmac + AESGCM).
        let key = FacilityKey::from_bytes(core::array::from_fn(|i| i as u8));
        let envelope = seal(&key.ring(), &context(), b"hello");
        assert_eq!(
            hex::encode(&envelope),
            "50484901672d4301bbcab50e0738b236202ab607fceaba28\
             c11abc57314cf21f226ad6c40d17e87b4faa02fb45"
        );
    }

    #[test]
    fn known_answer_of_a_summary() {
        // Computed independently from schemas/sealed-identity.md (Python hmac + AESGCM).
        let key = FacilityKey::from_bytes(core::array::from_fn(|i| i as u8));
        let context = SealContext {
            purpose: Purpose::Summary,
            ..context()
        };
        let envelope = seal(&key.ring(), &context, b"hello");
        assert_eq!(
            hex::encode(&envelope),
            "50484901672d4301bbcab50eac70cc988241db55f6584485\
             e24d164cd74be2e1fc9031e916ab71244491ef3094"
        );
    }

    #[test]
    fn sealing_is_deterministic_per_content_and_context() {
        let ring = ring();
        let a = seal(&ring, &context(), b"same");
        assert_eq!(
            a,
            seal(&ring, &context(), b"same"),
            "a re-send seals to the same bytes"
        );
        let other_text = seal(&ring, &context(), b"samf");
        assert_ne!(a[12..24], other_text[12..24], "other content, other nonce");
        let other_instance = seal(
            &ring,
            &SealContext {
                sop_instance_uid: "2.25.1",
                ..context()
            },
            b"same",
        );
        assert_ne!(
            a[12..24],
            other_instance[12..24],
            "other instance, other nonce"
        );
        let other_key = seal(
            &FacilityKey::from_bytes([43; KEY_LEN]).ring(),
            &context(),
            b"same",
        );
        assert_ne!(a[12..24], other_key[12..24]);
    }

    #[test]
    fn another_context_fails() {
        let ring = ring();
        let envelope = seal(&ring, &context(), b"original values");
        let others = [
            SealContext {
                facility: "st-marx",
                ..context()
            },
            SealContext {
                facility: "",
                ..context()
            },
            SealContext {
                sop_instance_uid: "2.25.123456789012345678901234567891",
                ..context()
            },
            SealContext {
                sop_instance_uid: "",
                ..context()
            },
            // Length prefixes: moving a byte between the two fields changes the AAD.
            SealContext {
                facility: "st-mary2",
                sop_instance_uid: ".25.123456789012345678901234567890",
                purpose: Purpose::Instance,
            },
            // The summary of the same instance is another envelope.
            SealContext {
                purpose: Purpose::Summary,
                ..context()
            },
        ];
        for other in &others {
            assert!(
                matches!(unseal(&ring, other, &envelope), Err(PhiError::Unseal)),
                "{other:?}"
            );
        }
        let padded = SealContext {
            sop_instance_uid: &format!("{SOP}\0"),
            ..context()
        };
        assert_eq!(
            unseal(&ring, &padded, &envelope).unwrap(),
            b"original values"
        );
    }

    #[test]
    fn another_key_fails_with_wrong_key() {
        let envelope = seal(&ring(), &context(), b"x");
        let other = FacilityKey::generate().ring();
        match unseal(&other, &context(), &envelope) {
            Err(PhiError::WrongKey { found, expected }) => {
                assert_eq!(found, ring().key_id().as_str());
                assert_eq!(expected, other.key_id().as_str());
            }
            result => panic!("expected WrongKey, got {result:?}"),
        }
    }

    #[test]
    fn not_an_envelope() {
        let ring = ring();
        let mut envelope = seal(&ring, &context(), b"");
        assert_eq!(unseal(&ring, &context(), &envelope).unwrap(), b"");
        assert!(matches!(
            unseal(&ring, &context(), &envelope[..39]),
            Err(PhiError::Format(_))
        ));
        envelope[3] = 2;
        assert!(matches!(
            envelope_key_id(&envelope),
            Err(PhiError::Format(_))
        ));
        envelope[3] = 1;
        envelope[0] = b'X';
        assert!(matches!(
            unseal(&ring, &context(), &envelope),
            Err(PhiError::Format(_))
        ));
    }

    proptest! {
        #[test]
        fn round_trip(
            plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
            facility in "\\PC{0,20}",
            uid in "[0-9.]{1,64}",
        ) {
            let ring = ring();
            let context = SealContext { facility: &facility, sop_instance_uid: &uid, purpose: Purpose::Summary };
            let envelope = seal(&ring, &context, &plaintext);
            prop_assert_eq!(envelope.len(), plaintext.len() + ENVELOPE_OVERHEAD);
            prop_assert_eq!(unseal(&ring, &context, &envelope).unwrap(), plaintext);
        }

        #[test]
        fn any_flipped_byte_fails(
            plaintext in proptest::collection::vec(any::<u8>(), 0..300),
            position in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let ring = ring();
            let mut envelope = seal(&ring, &context(), &plaintext);
            let position = position.index(envelope.len());
            envelope[position] ^= flip;
            prop_assert!(unseal(&ring, &context(), &envelope).is_err());
        }

        #[test]
        fn truncated_or_extended_fails(
            plaintext in proptest::collection::vec(any::<u8>(), 0..300),
            cut in any::<prop::sample::Index>(),
            extra in proptest::collection::vec(any::<u8>(), 1..20),
        ) {
            let ring = ring();
            let envelope = seal(&ring, &context(), &plaintext);
            let cut = cut.index(envelope.len());
            prop_assert!(unseal(&ring, &context(), &envelope[..cut]).is_err());
            let mut longer = envelope.clone();
            longer.extend_from_slice(&extra);
            prop_assert!(unseal(&ring, &context(), &longer).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let ring = ring();
            prop_assert!(unseal(&ring, &context(), &bytes).is_err());
            let _ = envelope_key_id(&bytes);
            let mut with_header = b"PHI\x01".to_vec();
            with_header.extend_from_slice(&ring.key_id().to_bytes());
            with_header.extend_from_slice(&bytes);
            prop_assert!(unseal(&ring, &context(), &with_header).is_err());
        }
    }
}
