//! The facility client (`pacs-client`). It builds on `dimse` for the network and on
//! `phi` for identity; it is the only place where original patient identifiers and
//! the facility key meet.
//!
//! The modules are grouped by flow and read top down, like the gateway's; imports
//! only go down, never sideways between the two sides:
//!
//! 1. **Top: command line and wiring.** [`cli`] (every command; ends with a code from
//!    [`exit`]), [`startup`] (the start banner), [`app`] (wiring of `serve`, the
//!    import path of `send`) and [`edge`], the one DICOM port both sides share: it
//!    admits modalities and viewers and hands C-STORE to the intake side, C-FIND,
//!    C-GET and C-MOVE to the clinician side.
//! 2. **The sides**, which never import one another:
//!    - [`intake`]: what modalities send, on its way to the gateway: the spool,
//!      sharing rules, the config followed while serving, pixel privacy, the
//!      de-identifying forwarder, local retention;
//!    - [`clinician`]: what clinicians ask of the gateway, with real names: the
//!      `query` and `retrieve` commands, the DIMSE viewer proxy and the DICOMweb
//!      proxy (`clinician::web`, served by `serve` on `[web] listen`), over one
//!      shared translation / re-identification module (`clinician::translate`), one
//!      search (`clinician::search`) and one locate-and-fetch module
//!      (`clinician::fetch`);
//!    - [`admin`]: the gateway's admin API (`pacs-client admin`) and local edits of
//!      modalities and rules in the config file (`admin::local`).
//! 3. **Shared layer** (the modules at the top level below): [`config`] (with the
//!    `[pixels]` section in `config::pixels`), [`keyfile`], [`credentials`] (a
//!    clinician's or viewer's gateway login), [`gateway`] (TLS towards the gateway,
//!    the certificate's facility, Q/R associations), [`outbox`] (the client's
//!    database: the intake writes it, the clinician side reads which studies are kept
//!    only here, as the gateway's `ingest/` and `qr/` share its `db/`), [`dicomfile`]
//!    (spooled instances read with their text decoded), [`uid`], [`datadir`],
//!    [`at_rest`], [`telemetry`], [`exit`], [`failpoint`]. These import nothing from
//!    the layers above.
//!
//! The unit tests of `layering.rs` read the source tree and fail when a module names
//! a layer above it or the other side.

pub mod admin;
pub mod app;
pub mod cli;
pub mod clinician;
pub mod edge;
pub mod intake;
pub mod startup;

// The shared layer.
pub mod at_rest;
pub mod config;
pub mod credentials;
pub mod datadir;
pub mod dicomfile;
pub mod exit;
pub mod failpoint;
pub mod gateway;
pub mod keyfile;
pub mod outbox;
pub mod telemetry;
pub mod uid;

#[cfg(test)]
mod layering;
