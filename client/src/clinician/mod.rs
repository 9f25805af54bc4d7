//! The clinician side: what people at the facility ask of the gateway, answered with
//! real names and original UIDs. Top down:
//!
//! - the flows, which never import one another: the `query` command ([`query`]), the
//!   `retrieve` command ([`retrieve`]), the DIMSE viewer proxy on the edge port
//!   ([`viewer`]), the DICOMweb proxy on the web listener ([`web`]), the
//!   thumbnail sync into a folder of this PC ([`sync`]), the expiry notices and
//!   answers ([`lifecycle`]) and the `export` command writing studies to
//!   returnable media ([`export`]);
//! - below them, what they share: `search` (a clinician's C-FIND in original values
//!   answered from the gateway and the local-only studies, for both proxies),
//!   [`fetch`] (locating and C-GETting at the gateway, in pseudonymous UIDs) and
//!   [`gateway_api`] (the gateway's HTTPS API as a clinician's login uses it) and
//!   [`translate`] (original values to pseudonyms and name tokens on the way out,
//!   unsealing and re-identification on the way back).
//!
//! Builds on the shared layer (config, credentials, the gateway connection, the
//! outbox's list of local-only studies, dicomfile); never on the intake side.

pub mod export;
pub mod fetch;
pub mod gateway_api;
pub mod lifecycle;
pub mod query;
pub mod retrieve;
pub(crate) mod search;
pub mod sync;
pub mod translate;
pub mod viewer;
pub mod web;
