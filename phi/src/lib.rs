//! Patient identity for the facility client: PS3.15 Annex E de-identification
//! ([`profile`], [`deid`]), sealing of the original values under the facility key
//! ([`seal`]), keyed pseudonyms, UID remapping and the name blind index
//! ([`pseudonym`]), and the facility key ring ([`keys`]).
//!
//! Pure functions over data sets and bytes: no I/O, no network, no storage, no
//! logging. The central gateway never depends on this crate's key handling: it must
//! never be able to reveal a patient. Key material is zeroized on drop and never
//! appears in `Debug` output (only the key id does).

pub mod deid;
pub mod keys;
pub mod name_search;
pub mod profile;
pub mod pseudonym;
pub mod seal;

/// Errors of identity handling. Messages never contain key material or patient data.
#[derive(Debug, thiserror::Error)]
pub enum PhiError {
    /// The envelope or wrapped key was made with another key (key id shown).
    #[error("sealed with key {found}, but the loaded facility key is {expected}")]
    WrongKey {
        /// Key id in the envelope.
        found: String,
        /// Key id of the loaded key.
        expected: String,
    },
    /// Authentication failed: tampered data, wrong associated data or wrong passphrase.
    #[error("cannot open sealed data: it was altered, or belongs to another instance or facility")]
    Unseal,
    /// Bytes that are not an envelope / wrapped key of a known version.
    #[error("not a sealed envelope: {0}")]
    Format(&'static str),
    /// Wrong passphrase for a wrapped key.
    #[error("wrong passphrase, or the key file is damaged")]
    Passphrase,
    /// Text that is not a key id.
    #[error("not a key id: {0}")]
    KeyId(&'static str),
    /// Bytes that are not a wrapped (exported) facility key of a known version.
    #[error("not an exported facility key: {0}; export it again with `pacs-client key export`")]
    WrappedKey(&'static str),
    /// An empty passphrase was given to protect an exported key.
    #[error("the passphrase is empty; choose a passphrase to protect the exported key")]
    EmptyPassphrase,
    /// argon2id cost parameters outside the accepted range.
    #[error(
        "argon2id parameters out of range (m >= 8 * p KiB and <= 1 GiB, 1 <= t <= 64, 1 <= p <= 16)"
    )]
    WrapParams,
    /// A data set that cannot be processed.
    #[error("cannot process the data set: {0}")]
    DataSet(String),
}
