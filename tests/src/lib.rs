//! End-to-end tooling that crosses binaries: the ingest benchmark ([`bench`], binary
//! `ingest-bench`, run by `scripts/bench-ingest.sh`) and the C-FIND benchmark
//! ([`findbench`], binary `find-bench`, run by `scripts/bench-find.sh`). The
//! gateway's own integration tests live in `gateway/tests`.

pub mod bench;
pub mod findbench;
