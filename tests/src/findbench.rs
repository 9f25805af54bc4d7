//! The C-FIND benchmark of issue 4: a deterministic generator of pseudonymous index
//! content ([`data`]), a bulk loader into a gateway index on SQLite or PostgreSQL
//! ([`load`]), the measured queries and their expected matches ([`queries`]), an
//! in-process gateway and a timing requestor ([`peer`]), and Orthanc as the
//! comparison peer ([`orthanc`]). Binary `find-bench`, run by `scripts/bench-find.sh`;
//! `tests/find_bench.rs` checks the same pieces for correctness without timing.

pub mod data;
pub mod load;
pub mod orthanc;
pub mod peer;
pub mod queries;
