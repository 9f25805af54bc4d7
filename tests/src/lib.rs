//! End-to-end tooling that crosses binaries. Today: the ingest benchmark
//! ([`bench`], binary `ingest-bench`, run by `scripts/bench-ingest.sh`). The
//! modality -> client -> gateway -> clinician tests arrive with the facility client;
//! the gateway's own integration tests live in `gateway/tests`.

pub mod bench;
