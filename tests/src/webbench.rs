//! The DICOMweb benchmark of issue 13: QIDO-RS study searches on the C-FIND
//! benchmark's bulk-loaded index ([`crate::findbench`]) and WADO-RS retrieval of the
//! ingest benchmark's CT instances ([`crate::bench::generate`]), against the real
//! `pacs-gateway serve` over HTTPS ([`server`]) and Orthanc's DICOMweb plugin over
//! plain HTTP ([`crate::findbench::orthanc`]), through one HTTP client ([`http`]).
//! Binary `dicomweb-bench`, run by `scripts/bench-dicomweb.sh`.

pub mod http;
pub mod qido;
pub mod report;
pub mod server;
pub mod wado;
