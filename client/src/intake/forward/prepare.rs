//! Preparing one spooled instance as a whole (the path every instance took before
//! [`stream`](super::stream)): read it with its text decoded, let the pixel screening
//! hold or clean it, de-identify and seal it, encode it.

use std::path::Path;

use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use phi::keys::KeyRing;

use super::Body;

/// A de-identified, sealed instance ready to send.
#[derive(Debug)]
pub struct Outgoing {
    /// SOP Class UID.
    pub sop_class: String,
    /// Pseudonymous SOP Instance UID.
    pub sop_instance: String,
    /// Transfer syntax (unchanged from the spool).
    pub transfer_syntax: String,
    /// The encoded data set, whole or with its pixel data streamed from the spool.
    pub body: Body,
    /// Burned In Annotation = YES in the original.
    pub burned_in_annotation: bool,
}

/// What [`prepare`] made of a spooled instance.
#[derive(Debug)]
pub enum Prepared {
    /// Ready to send.
    Send(Outgoing),
    /// Kept back by the pixel screening, with the reason.
    Held(String),
}

/// Reads a spooled instance, lets `screen` (the pixel screening) hold or clean it,
/// de-identifies and seals it, and encodes the data set in its original transfer
/// syntax (Explicit VR Little Endian when its pixels were cleaned).
pub fn prepare(
    path: &Path,
    ring: &KeyRing,
    facility: &str,
    options: &phi::profile::Options,
    screen: impl FnOnce(dicom_object::DefaultDicomObject) -> crate::intake::pixels::Screened,
) -> Result<Prepared, String> {
    let file =
        crate::dicomfile::open(path).map_err(|e| format!("cannot read spooled instance: {e}"))?;
    let sop_class = file
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        .to_string();
    let (original, transfer_syntax, cleaned): (InMemDicomObject, String, bool) = match screen(file)
    {
        crate::intake::pixels::Screened::Forward {
            object,
            transfer_syntax,
            cleaned,
        } => (object, transfer_syntax, cleaned),
        crate::intake::pixels::Screened::Held(reason) => return Ok(Prepared::Held(reason)),
    };
    let options = phi::profile::Options {
        clean_pixel_data: cleaned || crate::intake::pixels::declares_clean_pixels(&original),
        ..options.clone()
    };
    let deid = phi::deid::deidentify(&original, ring, facility, &options)
        .map_err(|e| format!("cannot de-identify: {e}"))?;
    let data = encode(&deid.object, &transfer_syntax)?;
    Ok(Prepared::Send(Outgoing {
        sop_class,
        sop_instance: deid.sop_instance_uid,
        transfer_syntax,
        body: Body::Memory(data),
        burned_in_annotation: deid.burned_in_annotation,
    }))
}

/// Encodes a data set (no meta) in `transfer_syntax`.
pub fn encode(object: &InMemDicomObject, transfer_syntax: &str) -> Result<Vec<u8>, String> {
    use dicom_encoding::TransferSyntaxIndex;
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(transfer_syntax)
        .ok_or_else(|| format!("unknown transfer syntax {transfer_syntax}"))?;
    let mut out = Vec::new();
    object
        .write_dataset_with_ts(&mut out, ts)
        .map_err(|e| format!("cannot encode the de-identified instance: {e}"))?;
    Ok(out)
}

/// Wraps a data set with a Part-10 header (for files written to disk).
pub fn with_meta(
    object: InMemDicomObject,
    sop_class: &str,
    sop_instance: &str,
    ts: &str,
) -> Result<dicom_object::DefaultDicomObject, String> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax(ts);
    object.with_meta(meta).map_err(|e| e.to_string())
}
