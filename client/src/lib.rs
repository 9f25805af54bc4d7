//! The facility client (`pacs-client`).
//!
//! Owns the edge SCP modalities store to ([`edge`], whose modalities and sharing rules
//! follow the config file while serving: [`reload`]), the durable spool and outbox
//! ([`outbox`]), the sharing rules ([`rules`]), pixel privacy (burned-in text: hold, clean, OCR; [`pixels`]), the local store retention ([`retention`]), the de-identifying forwarder to the
//! central gateway ([`forward`]), the facility key file ([`keyfile`]), the clinician's
//! query/retrieve and the viewer proxy on the edge port ([`clinician`]; [`credentials`]), local administration of modalities and
//! rules in the config file ([`admin::local`](admin::local)), the facility admin CLI for the gateway's admin
//! API ([`admin`]) and the command line ([`cli`]), which ends with a code from the
//! table in [`exit`] and logs as [`telemetry`] sets up. It builds on `dimse` for the network and on `phi` for identity;
//! it is the only place where original patient identifiers and the facility key meet.

pub mod admin;
pub mod app;
pub mod at_rest;
pub mod cli;
pub mod clinician;
pub mod config;
pub mod credentials;
pub mod datadir;
pub mod dicomfile;
pub mod edge;
pub mod exit;
pub mod failpoint;
pub mod forward;
pub mod gateway;
pub mod keyfile;
pub mod outbox;
pub mod pixels;
pub mod reload;
pub mod retention;
pub mod rules;
pub mod startup;
pub mod telemetry;
pub mod uid;
