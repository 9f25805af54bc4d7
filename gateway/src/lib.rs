//! The central gateway (`pacs-gateway`): the image database server.
//!
//! It accepts DICOM associations from enrolled facilities (mutual TLS, or an AE
//! allow-list on the loopback plain port), stores every instance exactly as received in
//! the blob store, and indexes it by facility, patient pseudonym, modality and date.
//! It never holds a key that can reveal a patient: everything it stores is pseudonymous
//! or sealed by the facility.
//!
//! Layers, top to bottom: [`cli`] and [`app`] (wiring and lifecycle) -> [`scp`] (the
//! DIMSE service and admission policies) -> [`ingest`] (validation and the durable
//! write path) -> [`render`] (rendered images and thumbnails, made in the background
//! after ingest) -> [`db`] (index) and [`blobs`] (object store). [`pki`] issues and
//! checks certificates; [`auth`] checks users' passwords; [`audit`] keeps the audit
//! trail (and exports it to syslog); [`http`] serves the admin API, `/healthz` and
//! `/metrics` ([`metrics`]) over HTTPS; [`config`] reads the TOML
//! file; [`domain`] holds the validated newtypes every layer shares; [`exit`] is the
//! exit-code table, [`telemetry`] the logging and build identity, [`startup`] the
//! start banner and the warnings about settings that can never work.

pub mod app;
pub mod at_rest;
pub mod audit;
pub mod auth;
pub mod blobs;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod db;
pub mod domain;
pub mod exit;
pub mod http;
pub mod ingest;
pub mod lifecycle;
pub mod metrics;
pub mod pki;
pub mod qr;
pub mod render;
pub mod scp;
pub mod startup;
pub mod telemetry;
pub mod web;
