//! The facility client (`pacs-client`).
//!
//! It will own the edge SCP that modalities store to, the durable spool and outbox,
//! the de-identifying forwarder to the central gateway, clinician query/retrieve and
//! the viewer proxy. It builds on `dimse` for the network and on `phi` for identity.
//! The implementation arrives with the facility-client work.
