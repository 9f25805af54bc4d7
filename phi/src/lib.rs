//! Patient identity handling for the facility client.
//!
//! This crate will own the PS3.15 Annex E de-identification profile, the sealing and
//! unsealing of original identifiers (AES-256-GCM under the facility key), keyed
//! pseudonyms, deterministic UID remapping and the name blind index. It is pure: no
//! I/O, no network, no storage. The central gateway never depends on its key
//! handling, because the gateway must never be able to reveal a patient.
//!
//! The implementation arrives with the facility-client work; today the crate only
//! reserves its place in the workspace.
