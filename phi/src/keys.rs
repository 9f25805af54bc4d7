//! The facility master key, its key id, the subkeys derived from it (HKDF-SHA256), and
//! the passphrase-wrapped export format (argon2id -> AES-256-GCM).
//!
//! Owns the key material and every derivation from it. Must not do I/O: the caller
//! reads and writes key files. Key material is zeroized on drop and never appears in
//! `Debug` output or error messages; only the [`KeyId`] does. The byte formats are
//! specified in `schemas/sealed-identity.md`; a change here is a change of that spec.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::PhiError;
use crate::seal::{NONCE_LEN, TAG_LEN, decrypt_in_place, encrypt_in_place};

/// Length of the facility master key and of every subkey, in bytes (256 bits).
pub const KEY_LEN: usize = 32;
/// Length of a key id in raw bytes; its text form has twice as many hex digits.
pub const KEY_ID_LEN: usize = 8;

/// HKDF-SHA256 salt for every derivation from the master key.
const HKDF_SALT: &[u8] = b"pacs phi v1";
const INFO_KEY_ID: &[u8] = b"pacs key id";
const INFO_SEALING: &[u8] = b"pacs sealing";
const INFO_PSEUDONYMS: &[u8] = b"pacs pseudonyms";
const INFO_UIDS: &[u8] = b"pacs uids";
const INFO_BLIND_INDEX: &[u8] = b"pacs blind index";
const INFO_NONCE: &[u8] = b"pacs sealing nonce";

/// Magic bytes opening a wrapped (passphrase-protected) key.
pub const WRAPPED_KEY_MAGIC: [u8; 4] = *b"PHIK";
/// Format version of a wrapped key, the byte after the magic.
pub const WRAPPED_KEY_VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const PARAMS_AT: usize = WRAPPED_KEY_MAGIC.len() + 1;
const KEY_ID_AT: usize = PARAMS_AT + 12;
const SALT_AT: usize = KEY_ID_AT + KEY_ID_LEN;
const NONCE_AT: usize = SALT_AT + SALT_LEN;
const CIPHERTEXT_AT: usize = NONCE_AT + NONCE_LEN;
/// Exact length of a wrapped key in bytes.
pub const WRAPPED_KEY_LEN: usize = CIPHERTEXT_AT + KEY_LEN + TAG_LEN;

/// Identifies a facility key without revealing it: 8 bytes derived from the key with
/// HKDF, written as 16 lowercase hex digits. Stored in every envelope.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyId {
    bytes: [u8; KEY_ID_LEN],
    text: String,
}

impl KeyId {
    /// The 16 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Parses 16 hex digits (either case; stored lowercase).
    pub fn parse(s: &str) -> Result<KeyId, PhiError> {
        if s.len() != 2 * KEY_ID_LEN {
            return Err(PhiError::KeyId("expected 16 hex digits"));
        }
        let mut bytes = [0u8; KEY_ID_LEN];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| PhiError::KeyId("expected 16 hex digits"))?;
        Ok(KeyId::from_bytes(bytes))
    }

    /// The key id with these raw bytes (as stored in an envelope).
    pub fn from_bytes(bytes: [u8; KEY_ID_LEN]) -> KeyId {
        KeyId {
            bytes,
            text: hex::encode(bytes),
        }
    }

    /// The raw bytes (as stored in an envelope).
    pub fn to_bytes(&self) -> [u8; KEY_ID_LEN] {
        self.bytes
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyId").field(&self.text).finish()
    }
}

/// The facility master key (256 bits). Zeroized on drop; `Debug` shows the key id only.
pub struct FacilityKey {
    bytes: [u8; KEY_LEN],
    id: KeyId,
}

impl Drop for FacilityKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for FacilityKey {}

impl FacilityKey {
    /// A new key from the operating system's random source.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness.
    pub fn generate() -> FacilityKey {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        let key = FacilityKey::from_bytes(bytes);
        bytes.zeroize();
        key
    }

    /// The key with these bytes (as read from the key file). The caller should zeroize
    /// its own copy.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> FacilityKey {
        let mut id = [0u8; KEY_ID_LEN];
        expand(&bytes, INFO_KEY_ID, &mut id);
        FacilityKey {
            bytes,
            id: KeyId::from_bytes(id),
        }
    }

    /// The raw key, for writing the key file. Never log or display it.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The key id (stable: derived from the key alone).
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The subkeys for sealing (key and synthetic nonces), pseudonyms, UIDs and the blind index.
    pub fn ring(&self) -> KeyRing {
        let mut subkeys = Subkeys {
            sealing: [0; KEY_LEN],
            pseudonyms: [0; KEY_LEN],
            uids: [0; KEY_LEN],
            blind_index: [0; KEY_LEN],
            nonce: [0; KEY_LEN],
        };
        expand(&self.bytes, INFO_SEALING, &mut subkeys.sealing);
        expand(&self.bytes, INFO_NONCE, &mut subkeys.nonce);
        expand(&self.bytes, INFO_PSEUDONYMS, &mut subkeys.pseudonyms);
        expand(&self.bytes, INFO_UIDS, &mut subkeys.uids);
        expand(&self.bytes, INFO_BLIND_INDEX, &mut subkeys.blind_index);
        KeyRing {
            id: self.id.clone(),
            subkeys,
        }
    }

    /// Exports the key wrapped under a passphrase with the default (production)
    /// argon2id parameters. The result is [`WRAPPED_KEY_LEN`] bytes.
    pub fn wrap(&self, passphrase: &str) -> Result<Vec<u8>, PhiError> {
        self.wrap_with(passphrase, &WrapParams::default())
    }

    /// Like [`FacilityKey::wrap`] with explicit argon2id parameters (stored in the
    /// output, so [`FacilityKey::unwrap`] needs no argument). Tests use cheap ones.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness.
    pub fn wrap_with(&self, passphrase: &str, params: &WrapParams) -> Result<Vec<u8>, PhiError> {
        if passphrase.is_empty() {
            return Err(PhiError::EmptyPassphrase);
        }
        let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
        out.extend_from_slice(&WRAPPED_KEY_MAGIC);
        out.push(WRAPPED_KEY_VERSION);
        out.extend_from_slice(&params.m_cost_kib.to_be_bytes());
        out.extend_from_slice(&params.t_cost.to_be_bytes());
        out.extend_from_slice(&params.p_cost.to_be_bytes());
        out.extend_from_slice(&self.id.to_bytes());
        let mut salt = [0u8; SALT_LEN];
        OsRng.fill_bytes(&mut salt);
        out.extend_from_slice(&salt);
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);

        let kek = wrapping_key(passphrase, &salt, params)?;
        out.extend_from_slice(&self.bytes);
        let (aad, body) = out.split_at_mut(CIPHERTEXT_AT);
        let tag = encrypt_in_place(&kek, &nonce, aad, body);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Imports a key exported by [`FacilityKey::wrap`]. A wrong passphrase (or a
    /// damaged file, which cannot be told apart) gives [`PhiError::Passphrase`];
    /// bytes that are not a wrapped key give [`PhiError::WrappedKey`].
    pub fn unwrap(wrapped: &[u8], passphrase: &str) -> Result<FacilityKey, PhiError> {
        let (params, stored_id) = parse_wrapped(wrapped)?;
        let salt = &wrapped[SALT_AT..NONCE_AT];
        let nonce: &[u8; NONCE_LEN] = fixed(&wrapped[NONCE_AT..CIPHERTEXT_AT])?;
        let tag: &[u8; TAG_LEN] = fixed(&wrapped[CIPHERTEXT_AT + KEY_LEN..])?;
        let kek = wrapping_key(passphrase, salt, &params)?;
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&wrapped[CIPHERTEXT_AT..CIPHERTEXT_AT + KEY_LEN]);
        decrypt_in_place(&kek, nonce, &wrapped[..CIPHERTEXT_AT], &mut *bytes, tag)
            .map_err(|_| PhiError::Passphrase)?;
        let key = FacilityKey::from_bytes(*bytes);
        if key.id != stored_id {
            return Err(PhiError::WrappedKey("the key id does not match the key"));
        }
        Ok(key)
    }
}

impl fmt::Debug for FacilityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FacilityKey({})", self.id)
    }
}

/// The key id recorded in a wrapped key, readable without the passphrase.
pub fn wrapped_key_id(wrapped: &[u8]) -> Result<KeyId, PhiError> {
    parse_wrapped(wrapped).map(|(_, id)| id)
}

/// argon2id cost parameters of a wrapped key (recorded in the wrapped key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrapParams {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl WrapParams {
    /// Largest memory cost accepted, in KiB (1 GiB): bounds what a crafted file can
    /// make `unwrap` allocate.
    pub const MAX_M_COST_KIB: u32 = 1 << 20;
    /// Largest number of passes accepted.
    pub const MAX_T_COST: u32 = 64;
    /// Largest parallelism accepted.
    pub const MAX_P_COST: u32 = 16;

    /// Checked parameters: argon2's minimums (m >= 8 * p, t >= 1, p >= 1) and the
    /// maxima above. Production code uses [`WrapParams::default`].
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<WrapParams, PhiError> {
        let in_range = m_cost_kib <= Self::MAX_M_COST_KIB
            && t_cost <= Self::MAX_T_COST
            && p_cost <= Self::MAX_P_COST
            && Params::new(m_cost_kib, t_cost, p_cost, Some(KEY_LEN)).is_ok();
        if in_range {
            Ok(WrapParams {
                m_cost_kib,
                t_cost,
                p_cost,
            })
        } else {
            Err(PhiError::WrapParams)
        }
    }

    /// Memory cost in KiB.
    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    /// Number of passes.
    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    /// Degree of parallelism (lanes).
    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }
}

impl Default for WrapParams {
    /// m = 19456 KiB, t = 2, p = 1 (the OWASP minimum for argon2id).
    fn default() -> WrapParams {
        WrapParams {
            m_cost_kib: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// The five subkeys and the key id. Cloning copies the subkeys; every copy is zeroized
/// on drop. `Debug` shows the key id only.
#[derive(Clone)]
pub struct KeyRing {
    id: KeyId,
    subkeys: Subkeys,
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Subkeys {
    sealing: [u8; KEY_LEN],
    pseudonyms: [u8; KEY_LEN],
    uids: [u8; KEY_LEN],
    blind_index: [u8; KEY_LEN],
    nonce: [u8; KEY_LEN],
}

impl KeyRing {
    /// The id of the master key these subkeys come from.
    pub fn key_id(&self) -> &KeyId {
        &self.id
    }

    pub(crate) fn sealing_key(&self) -> &[u8; KEY_LEN] {
        &self.subkeys.sealing
    }

    /// The HMAC key that derives an envelope's synthetic nonce from its content.
    pub(crate) fn nonce_key(&self) -> &[u8; KEY_LEN] {
        &self.subkeys.nonce
    }

    pub(crate) fn pseudonym_key(&self) -> &[u8; KEY_LEN] {
        &self.subkeys.pseudonyms
    }

    pub(crate) fn uid_key(&self) -> &[u8; KEY_LEN] {
        &self.subkeys.uids
    }

    pub(crate) fn blind_index_key(&self) -> &[u8; KEY_LEN] {
        &self.subkeys.blind_index
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRing({})", self.id)
    }
}

/// HKDF-SHA256 with the fixed salt, master key as input key material, `info`.
fn expand(master: &[u8; KEY_LEN], info: &[u8], out: &mut [u8]) {
    Hkdf::<Sha256>::new(Some(HKDF_SALT), master)
        .expand(info, out)
        // Only outputs longer than 255 * 32 bytes fail; ours are 8 or 32 bytes.
        .expect("HKDF-SHA256 output of at most 32 bytes");
}

/// argon2id (version 0x13, 32-byte output) of the NFC-normalized passphrase.
fn wrapping_key(
    passphrase: &str,
    salt: &[u8],
    params: &WrapParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, PhiError> {
    let params = Params::new(
        params.m_cost_kib,
        params.t_cost,
        params.p_cost,
        Some(KEY_LEN),
    )
    .map_err(|_| PhiError::WrapParams)?;
    // NFC output is at most three times as long, so the buffer never reallocates
    // (which would leave an unzeroized copy behind).
    let mut normalized = Zeroizing::new(String::with_capacity(passphrase.len().saturating_mul(3)));
    normalized.extend(passphrase.nfc());
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(normalized.as_bytes(), salt, &mut *key)
        .map_err(|_| PhiError::WrapParams)?;
    Ok(key)
}

/// Checks length, magic, version and parameters of a wrapped key.
fn parse_wrapped(wrapped: &[u8]) -> Result<(WrapParams, KeyId), PhiError> {
    if wrapped.len() != WRAPPED_KEY_LEN {
        return Err(PhiError::WrappedKey("wrong length"));
    }
    if wrapped[..WRAPPED_KEY_MAGIC.len()] != WRAPPED_KEY_MAGIC {
        return Err(PhiError::WrappedKey("no PHIK magic at the start"));
    }
    if wrapped[WRAPPED_KEY_MAGIC.len()] != WRAPPED_KEY_VERSION {
        return Err(PhiError::WrappedKey("unknown format version"));
    }
    let word = |at: usize| -> Result<u32, PhiError> {
        Ok(u32::from_be_bytes(*fixed(&wrapped[at..at + 4])?))
    };
    let params = WrapParams::new(word(PARAMS_AT)?, word(PARAMS_AT + 4)?, word(PARAMS_AT + 8)?)
        .map_err(|_| PhiError::WrappedKey("argon2id parameters out of range"))?;
    let id = KeyId::from_bytes(*fixed(&wrapped[KEY_ID_AT..SALT_AT])?);
    Ok((params, id))
}

/// A slice of known length as an array reference.
fn fixed<const N: usize>(bytes: &[u8]) -> Result<&[u8; N], PhiError> {
    bytes
        .try_into()
        .map_err(|_| PhiError::WrappedKey("wrong length"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cheap() -> WrapParams {
        WrapParams::new(8, 1, 1).unwrap()
    }

    fn sample_key() -> FacilityKey {
        FacilityKey::from_bytes(*b"SECRETKEYSECRETKEYSECRETKEY12345")
    }

    #[test]
    fn subkeys_differ_from_each_other_and_from_the_master() {
        let key = FacilityKey::generate();
        let ring = key.ring();
        let all = [
            key.expose_bytes(),
            ring.sealing_key(),
            ring.pseudonym_key(),
            ring.uid_key(),
            ring.blind_index_key(),
            ring.nonce_key(),
        ];
        for (i, a) in all.iter().enumerate() {
            assert_ne!(**a, [0u8; KEY_LEN]);
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn key_id_is_stable_and_16_lowercase_hex() {
        let a = FacilityKey::from_bytes([7; KEY_LEN]);
        let b = FacilityKey::from_bytes([7; KEY_LEN]);
        assert_eq!(a.id(), b.id());
        assert_eq!(a.ring().key_id(), a.id());
        let text = a.id().as_str();
        assert_eq!(text.len(), 16);
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_eq!(a.id().to_string(), text);
        assert_ne!(FacilityKey::from_bytes([8; KEY_LEN]).id(), a.id());
        assert_ne!(FacilityKey::generate().id(), FacilityKey::generate().id());
    }

    #[test]
    fn derivations_match_the_spec() {
        // Known answers computed independently from schemas/sealed-identity.md.
        let key = FacilityKey::from_bytes(core::array::from_fn(|i| i as u8));
        assert_eq!(key.id().as_str(), "672d4301bbcab50e");
        let ring = key.ring();
        let known = [
            (
                ring.sealing_key(),
                "d2d904c26041dccc6f1c1483f3748fc989cb29ad031dc3d7469e3d177961b950",
            ),
            (
                ring.pseudonym_key(),
                "4f294dc49dc9f603aae283a1857194b0a7694e0124268be176a0fc8c4f2b09ef",
            ),
            (
                ring.uid_key(),
                "a367d8522d9fbc7043967935c56b6cbe2b44be5295c1a102ceca61be7626a426",
            ),
            (
                ring.blind_index_key(),
                "e8b94b31a7e60c9fc5f10cc611451853e6de9b54bae28d6a1eea4f416f98c863",
            ),
            (
                ring.nonce_key(),
                "c9e69eef32e37fea810ce5e2b2f46e461cbfcd8ce91ee9cc91e264af8e1ebf69",
            ),
        ];
        for (subkey, expected) in known {
            assert_eq!(hex::encode(subkey), expected);
        }
    }

    #[test]
    fn key_id_parse() {
        let id = FacilityKey::generate().id().clone();
        assert_eq!(KeyId::parse(id.as_str()).unwrap(), id);
        assert_eq!(KeyId::parse(&id.as_str().to_uppercase()).unwrap(), id);
        assert_eq!(KeyId::from_bytes(id.to_bytes()), id);
        for bad in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789abcdeg",
            "ééééééééé",
        ] {
            assert!(
                matches!(KeyId::parse(bad), Err(PhiError::KeyId(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = sample_key();
        let ring = key.ring();
        let printed = [
            format!("{key:?}"),
            format!("{ring:?}"),
            format!("{:#?}", ring.clone()),
        ];
        assert_eq!(printed[0], format!("FacilityKey({})", key.id()));
        let mut secrets: Vec<&[u8; KEY_LEN]> = vec![key.expose_bytes()];
        secrets.extend([
            ring.sealing_key(),
            ring.pseudonym_key(),
            ring.uid_key(),
            ring.blind_index_key(),
        ]);
        for text in &printed {
            assert!(text.contains(key.id().as_str()));
            assert!(!text.contains("SECRET"), "{text}");
            for secret in &secrets {
                let lower = hex::encode(&secret[..4]);
                assert!(!text.to_lowercase().contains(&lower), "{text}");
                assert!(
                    !text.contains(&format!("{}, {}", secret[0], secret[1])),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn wrap_unwrap_round_trip_with_default_params() {
        let key = FacilityKey::generate();
        let wrapped = key.wrap("correct horse battery staple").unwrap();
        assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);
        assert_eq!(&wrapped[..4], b"PHIK");
        assert_eq!(
            u32::from_be_bytes(wrapped[5..9].try_into().unwrap()),
            19_456
        );
        assert_eq!(wrapped_key_id(&wrapped).unwrap(), *key.id());
        let back = FacilityKey::unwrap(&wrapped, "correct horse battery staple").unwrap();
        assert_eq!(back.expose_bytes(), key.expose_bytes());
        assert!(matches!(
            FacilityKey::unwrap(&wrapped, "correct horse battery stapler"),
            Err(PhiError::Passphrase)
        ));
    }

    #[test]
    fn wrap_is_salted_and_does_not_contain_the_key() {
        let key = sample_key();
        let a = key.wrap_with("pw", &cheap()).unwrap();
        let b = key.wrap_with("pw", &cheap()).unwrap();
        assert_ne!(a, b);
        assert!(!a.windows(6).any(|w| w == b"SECRET"));
    }

    #[test]
    fn passphrase_is_nfc_normalized() {
        let key = FacilityKey::generate();
        let wrapped = key.wrap_with("Jürgen", &cheap()).unwrap(); // precomposed ü
        let back = FacilityKey::unwrap(&wrapped, "Ju\u{308}rgen").unwrap(); // u + combining
        assert_eq!(back.id(), key.id());
    }

    #[test]
    fn wrong_passphrase_and_empty_passphrase() {
        let key = FacilityKey::generate();
        let wrapped = key.wrap_with("secret", &cheap()).unwrap();
        assert!(matches!(
            FacilityKey::unwrap(&wrapped, "Secret"),
            Err(PhiError::Passphrase)
        ));
        assert!(matches!(
            FacilityKey::unwrap(&wrapped, ""),
            Err(PhiError::Passphrase)
        ));
        assert!(matches!(key.wrap(""), Err(PhiError::EmptyPassphrase)));
    }

    #[test]
    fn wrap_params_are_bounded() {
        assert!(WrapParams::new(8, 1, 1).is_ok());
        assert!(WrapParams::new(7, 1, 1).is_err());
        assert!(WrapParams::new(8, 0, 1).is_err());
        assert!(WrapParams::new(8, 1, 0).is_err());
        assert!(WrapParams::new(WrapParams::MAX_M_COST_KIB + 1, 1, 1).is_err());
        assert!(WrapParams::new(64, WrapParams::MAX_T_COST + 1, 1).is_err());
        assert!(WrapParams::new(1024, 1, WrapParams::MAX_P_COST + 1).is_err());
        assert_eq!(
            WrapParams::default(),
            WrapParams::new(19_456, 2, 1).unwrap()
        );
    }

    #[test]
    fn altered_parameters_are_refused() {
        let key = FacilityKey::generate();
        let wrapped = key.wrap_with("pw", &cheap()).unwrap();
        // m: too large; t: 0; p: too large, then cheap but different values.
        for (at, value) in [(5, 0x7fu8), (12, 0), (16, 0x7f), (8, 16), (12, 2)] {
            let mut bad = wrapped.clone();
            bad[at] = value;
            assert!(
                FacilityKey::unwrap(&bad, "pw").is_err(),
                "byte {at} = {value}"
            );
        }
        let mut other_id = wrapped.clone();
        other_id[KEY_ID_AT] ^= 1;
        assert!(matches!(
            FacilityKey::unwrap(&other_id, "pw"),
            Err(PhiError::Passphrase)
        ));
    }

    proptest! {
        #[test]
        fn wrap_round_trip(bytes in any::<[u8; KEY_LEN]>(), passphrase in "\\PC{1,40}") {
            let key = FacilityKey::from_bytes(bytes);
            let wrapped = key.wrap_with(&passphrase, &cheap()).unwrap();
            let back = FacilityKey::unwrap(&wrapped, &passphrase).unwrap();
            prop_assert_eq!(back.expose_bytes(), &bytes);
        }

        #[test]
        fn any_flipped_byte_outside_the_parameters_fails(
            position in 0..WRAPPED_KEY_LEN - 12, flip in 1u8..=255,
        ) {
            // The parameter bytes (5..17) are covered by `altered_parameters_are_refused`:
            // a random value there may ask for up to 1 GiB of memory.
            let position = if position < PARAMS_AT { position } else { position + 12 };
            let key = FacilityKey::generate();
            let mut wrapped = key.wrap_with("pw", &cheap()).unwrap();
            wrapped[position] ^= flip;
            prop_assert!(FacilityKey::unwrap(&wrapped, "pw").is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert!(FacilityKey::unwrap(&bytes, "pw").is_err());
            let _ = wrapped_key_id(&bytes);
        }

        #[test]
        fn truncated_wrapped_keys_fail(cut in 0..WRAPPED_KEY_LEN) {
            let wrapped = FacilityKey::generate().wrap_with("pw", &cheap()).unwrap();
            prop_assert!(matches!(
                FacilityKey::unwrap(&wrapped[..cut], "pw"),
                Err(PhiError::WrappedKey(_))
            ));
        }
    }
}
