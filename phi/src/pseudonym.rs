//! The facility master key and the subkeys derived from it (HKDF-SHA256).
//! (Skeleton: the implementation is being written.)

/// Placeholder.
pub struct Placeholder;
