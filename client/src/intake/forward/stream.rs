//! Streaming de-identification (issue 12: memory per association stays bounded for
//! any instance size). The data set before Pixel Data (7FE0,0010), and whatever
//! follows it, is read, de-identified and sealed in memory exactly as
//! [`prepare`](super::prepare) does; the Pixel Data element itself (a defined-length
//! value, or encapsulated fragments up to and including the sequence delimiter) is
//! copied from the spool file to the association in bounded pieces.
//!
//! The result is byte for byte what the whole-instance path sends: de-identification
//! never changes Pixel Data and the sealed envelope does not depend on it (it holds
//! changed and removed elements only; the pseudonymous UIDs, blind index, name tokens
//! and identity summary come from the header), and a data set's encoding is the
//! concatenation of its elements'. So [`prepare_streamed`] is used only when that
//! holds: the instance is sent in its spooled transfer syntax, that syntax is little
//! endian and not deflated, the pixel screening forwards it unchanged (held and
//! cleaned instances need their pixels in memory), and every length in the Pixel
//! Data is even (an encoder would pad an odd one). Otherwise it answers `None` and
//! the forwarder loads the instance as before.
//!
//! Where Pixel Data lies comes from [`dimse::scan`], one streaming pass over the
//! file; nothing is allocated from a length read off it. The copy keeps the file
//! handle that was scanned and counts its bytes: a file that shrinks or grows before
//! or during the send fails the try (the data set is never completed on the wire),
//! and the next try reads it again.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use dicom_core::header::Header;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dimse::scan::{self, Encoding};
use phi::keys::KeyRing;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::{Outgoing, encode};

/// Largest Part-10 meta header read (the same bound as `dimse::scu::read_file_meta`).
const META_CAP: u64 = 64 * 1024;

/// What is sent for one instance: the whole encoded data set, or the encoded header
/// and remainder around the Pixel Data element copied from the spool file.
pub enum Body {
    /// The whole data set, encoded.
    Memory(Vec<u8>),
    /// Header and remainder encoded, Pixel Data streamed from the spool.
    Streamed(Streamed),
}

/// The parts of a streamed data set.
pub struct Streamed {
    /// The encoded de-identified elements before Pixel Data.
    head: Vec<u8>,
    /// The spool file that was scanned (kept open: a replaced file does not matter).
    file: File,
    /// Its length when scanned.
    file_len: u64,
    /// Where the Pixel Data element lies in the file.
    offset: u64,
    /// Its length in bytes, header included.
    len: u64,
    /// The encoded de-identified elements after Pixel Data.
    tail: Vec<u8>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Memory(data) => write!(f, "Memory({} bytes)", data.len()),
            Body::Streamed(s) => write!(
                f,
                "Streamed(head {} + pixel data {} at {} + tail {} bytes)",
                s.head.len(),
                s.len,
                s.offset,
                s.tail.len()
            ),
        }
    }
}

impl Body {
    /// Bytes of the data set.
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(data) => data.len() as u64,
            Body::Streamed(s) => s.head.len() as u64 + s.len + s.tail.len() as u64,
        }
    }

    /// Whether the data set is empty (never, for an instance).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pixel data is streamed from the spool.
    pub fn is_streamed(&self) -> bool {
        matches!(self, Body::Streamed(_))
    }

    /// The data set to send. Errors (readable, worth another try) when the spool
    /// file is no longer the length it had when it was scanned.
    pub fn reader(&self) -> Result<Box<dyn AsyncRead + Unpin + Send + '_>, String> {
        let s = match self {
            Body::Memory(data) => return Ok(Box::new(std::io::Cursor::new(&data[..]))),
            Body::Streamed(s) => s,
        };
        let changed = |e: std::io::Error| format!("cannot read the spooled instance again: {e}");
        let mut file = s.file.try_clone().map_err(changed)?;
        let now = file.metadata().map_err(changed)?.len();
        if now != s.file_len {
            return Err(format!(
                "the spooled instance changed after it was read ({now} bytes, was {}); \
                 it is read again on the next try",
                s.file_len
            ));
        }
        file.seek(SeekFrom::Start(s.offset)).map_err(changed)?;
        let pixels = Exact {
            inner: tokio::fs::File::from_std(file).take(s.len),
            left: s.len,
        };
        let head = std::io::Cursor::new(&s.head[..]);
        let tail = std::io::Cursor::new(&s.tail[..]);
        Ok(Box::new(AsyncReadExt::chain(
            AsyncReadExt::chain(head, pixels),
            tail,
        )))
    }
}

/// A reader that must give exactly `left` more bytes: an early end is an error, so a
/// truncated spool file never becomes a shorter data set on the wire.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for Exact<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let (before, room) = (buf.filled().len(), buf.remaining());
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let read = (buf.filled().len() - before) as u64;
        if read == 0 && room > 0 && self.left > 0 {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the spooled instance ended {} bytes early: it changed after it was read",
                    self.left
                ),
            )));
        }
        self.left = self.left.saturating_sub(read);
        Poll::Ready(Ok(()))
    }
}

/// [`prepare`](super::prepare) with the Pixel Data streamed from the spool, when
/// that gives the same bytes (see the module doc); `Ok(None)`: use the whole-instance
/// path. `forwards_unchanged(header, sop_class)`: the pixel screening's verdict on
/// the data set without its pixel data
/// ([`Screener::forwards_unchanged`](crate::intake::pixels::Screener::forwards_unchanged)).
pub fn prepare_streamed(
    path: &Path,
    ring: &KeyRing,
    facility: &str,
    options: &phi::profile::Options,
    forwards_unchanged: impl FnOnce(&InMemDicomObject, &str) -> bool,
) -> Result<Option<Outgoing>, String> {
    let Some(layout) = Layout::read(path)? else {
        return Ok(None);
    };
    // The data set without its pixel data, in Part-10 form for `dicomfile`, which
    // also decodes its text whatever the character set.
    let Ok(file) = crate::dicomfile::from_bytes(&layout.without_pixel_data()?) else {
        return Ok(None);
    };
    let sop_class = file
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        .to_string();
    let transfer_syntax = file
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let original = file.into_inner();
    if original.get(tags::PIXEL_DATA).is_some() || !forwards_unchanged(&original, &sop_class) {
        return Ok(None);
    }
    let options = phi::profile::Options {
        clean_pixel_data: crate::intake::pixels::declares_clean_pixels(&original),
        ..options.clone()
    };
    let deid = phi::deid::deidentify(&original, ring, facility, &options)
        .map_err(|e| format!("cannot de-identify: {e}"))?;
    drop(original);
    // A data set encodes as its elements one after the other: the elements before
    // Pixel Data encode alone as they do in the whole (checked, not assumed).
    let whole = encode(&deid.object, &transfer_syntax)?;
    let before = InMemDicomObject::from_element_iter(
        deid.object
            .iter()
            .filter(|e| e.tag() < tags::PIXEL_DATA)
            .cloned(),
    );
    let head = encode(&before, &transfer_syntax)?;
    if !whole.starts_with(&head) {
        return Ok(None);
    }
    let tail = whole[head.len()..].to_vec();
    Ok(Some(Outgoing {
        sop_class,
        sop_instance: deid.sop_instance_uid,
        transfer_syntax,
        body: Body::Streamed(Streamed {
            head,
            file: layout.file,
            file_len: layout.file_len,
            offset: layout.dataset_offset + layout.span.start,
            len: layout.span.end - layout.span.start,
            tail,
        }),
        burned_in_annotation: deid.burned_in_annotation,
    }))
}

/// Where a spooled instance's data set and Pixel Data lie.
struct Layout {
    file: File,
    file_len: u64,
    dataset_offset: u64,
    span: scan::PixelDataSpan,
}

impl Layout {
    /// Scans the file; `None` when it cannot be streamed exactly (no Pixel Data, a
    /// syntax that is big endian, deflated or unknown, odd lengths) or does not scan
    /// (then the whole-instance path gives its reason, as before).
    fn read(path: &Path) -> Result<Option<Layout>, String> {
        let fail = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
        let mut file = File::open(path).map_err(fail)?;
        let file_len = file.metadata().map_err(fail)?.len();
        let mut head = Vec::new();
        (&mut file)
            .take(META_CAP)
            .read_to_end(&mut head)
            .map_err(fail)?;
        let Ok(meta) = dimse::part10::parse_meta(&head) else {
            return Ok(None);
        };
        drop(head);
        let Some(encoding @ (Encoding::ExplicitLittle | Encoding::ImplicitLittle)) =
            Encoding::from_transfer_syntax(&meta.transfer_syntax)
        else {
            return Ok(None);
        };
        let dataset_offset = meta.dataset_offset as u64;
        file.seek(SeekFrom::Start(dataset_offset)).map_err(fail)?;
        let reader = BufReader::with_capacity(256 * 1024, (&file).take(file_len - dataset_offset));
        let Ok(scanned) = scan::scan(reader, encoding) else {
            return Ok(None);
        };
        match scanned.pixel_data {
            Some(span) if span.even && dataset_offset + span.end <= file_len => Ok(Some(Layout {
                file,
                file_len,
                dataset_offset,
                span,
            })),
            _ => Ok(None),
        }
    }

    /// The Part-10 file without its Pixel Data element.
    fn without_pixel_data(&self) -> Result<Vec<u8>, String> {
        let pixel_start = self.dataset_offset + self.span.start;
        let pixel_end = self.dataset_offset + self.span.end;
        let size = pixel_start + (self.file_len - pixel_end);
        let mut bytes = vec![0u8; usize::try_from(size).map_err(|e| e.to_string())?];
        let (before, after) = bytes.split_at_mut(pixel_start as usize);
        let fail = |e: std::io::Error| format!("cannot read the spooled instance: {e}");
        self.file.read_exact_at(before, 0).map_err(fail)?;
        self.file.read_exact_at(after, pixel_end).map_err(fail)?;
        Ok(bytes)
    }
}
