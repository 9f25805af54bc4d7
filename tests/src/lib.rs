//! End-to-end tooling that crosses binaries: the ingest benchmark ([`bench`], binary
//! `ingest-bench`, run by `scripts/bench-ingest.sh`), the C-FIND benchmark
//! ([`findbench`], binary `find-bench`, run by `scripts/bench-find.sh`) and the
//! DICOMweb benchmark ([`webbench`], binary `dicomweb-bench`, run by
//! `scripts/bench-dicomweb.sh`). The gateway's own integration tests live in
//! `gateway/tests`.

pub mod bench;
pub mod findbench;
pub mod webbench;
