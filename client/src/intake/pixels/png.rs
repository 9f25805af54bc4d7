//! A minimal PNG encoder (8-bit gray or RGB, no filtering, zlib via flate2) for the
//! images handed to tesseract and written by `pixel-rule test --png`.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;

use super::frames::Image;

/// The PNG encoding of `image`.
pub fn encode(image: &Image) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&image.width.to_be_bytes());
    header.extend_from_slice(&image.height.to_be_bytes());
    let colour_type = if image.channels == 3 { 2 } else { 0 };
    header.extend_from_slice(&[8, colour_type, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);

    let stride = image.width as usize * usize::from(image.channels);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
    for row in image.pixels.chunks(stride.max(1)) {
        // Filter type 0 (none) for every row; writing to a Vec cannot fail.
        let _ = z.write_all(&[0]);
        let _ = z.write_all(row);
    }
    let compressed = z.finish().unwrap_or_default();
    chunk(&mut out, b"IDAT", &compressed);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_png_has_its_signature_header_and_a_valid_crc() {
        let image = Image {
            width: 3,
            height: 2,
            channels: 3,
            pixels: (0..18).collect(),
        };
        let png = encode(&image);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 3);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 2);
        assert_eq!(png[25], 2, "colour type RGB");
        // CRC of IHDR as computed by any PNG reader.
        let mut crc = flate2::Crc::new();
        crc.update(&png[12..29]);
        assert_eq!(
            u32::from_be_bytes(png[29..33].try_into().unwrap()),
            crc.sum()
        );
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]));
    }
}
