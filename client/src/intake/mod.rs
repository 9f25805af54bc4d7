//! The intake side: what modalities send, on its way to the gateway. Top down:
//!
//! - [`spool`]: received instances written durably, checked, routed and recorded in
//!   the outbox before the modality hears success (fed by the edge port's C-STORE and
//!   by `pacs-client send`);
//! - [`rules`] (sharing rules: forward or keep local) and [`reload`] (the modalities
//!   and rules followed from the config file while serving);
//! - [`forward`]: the forwarder, which claims outbox rows, screens the pixels
//!   ([`pixels`]: burned-in text held, blanked or found by OCR), de-identifies, seals
//!   and C-STOREs over TLS to the gateway, and records the outcome;
//! - [`retention`]: removal of delivered local copies past the retention period.
//!
//! Builds on the shared layer (config, the outbox, the gateway connection, key file,
//! dicomfile, failpoints); never on the clinician side.

pub mod forward;
pub mod pixels;
pub mod reload;
pub mod retention;
pub mod rules;
pub mod spool;
