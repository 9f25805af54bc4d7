//! End-to-end tests that cross binaries (modality -> facility client -> gateway ->
//! clinician), driven by real DICOM peers. The gateway's own integration tests live in
//! `gateway/tests`; this crate gathers the flows that need both binaries and arrives
//! with the facility client.
