//! Encoding frames as PNG and decoding stored PNG or JPEG bytes back to RGB8.

use std::io::Cursor;

use image::codecs::jpeg::JpegDecoder;
use image::codecs::png::{CompressionType, FilterType, PngDecoder, PngEncoder};

use crate::Frame;

/// How a stored image is encoded, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Self::Jpeg)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }
}

/// Why stored bytes are not a frame: what was expected and what was found.
#[derive(Debug)]
pub struct DecodeError {
    pub expected: String,
    pub found: String,
}

/// Encodes an RGB8 frame as PNG. Fast deflate with the adaptive filter: at 96x96 this is
/// most of the cost of recording, and it keeps files within ~10% of the default level.
pub fn encode_png(frame: &Frame) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(frame.data.len() / 2);
    let encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive);
    image::ImageEncoder::write_image(
        encoder,
        &frame.data,
        frame.width,
        frame.height,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

/// Decodes PNG or JPEG bytes to an RGB8 frame (grey, alpha and 16-bit images converted).
pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
    let fail = |what: &str, e: image::ImageError| DecodeError {
        expected: format!("a readable {what} image"),
        found: format!("a broken {what} ({e})"),
    };
    match ImageFormat::sniff(bytes) {
        Some(ImageFormat::Png) => {
            let d = PngDecoder::new(Cursor::new(bytes)).map_err(|e| fail("PNG", e))?;
            check_size(&d, "PNG")?;
            to_rgb8(d).map_err(|e| fail("PNG", e))
        }
        Some(ImageFormat::Jpeg) => {
            let d = JpegDecoder::new(Cursor::new(bytes)).map_err(|e| fail("JPEG", e))?;
            check_size(&d, "JPEG")?;
            to_rgb8(d).map_err(|e| fail("JPEG", e))
        }
        None => Err(DecodeError {
            expected: "PNG or JPEG bytes".into(),
            found: describe_bytes(bytes),
        }),
    }
}

/// The most bytes a decoded frame may take (a 9000 x 9000 RGB image): a header claiming more is
/// refused before anything is allocated (found by fuzzing: a corrupt PNG header asked for
/// 12.9 GB).
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

/// Refuses a header whose image would take more than [`MAX_DECODED_BYTES`] (decoded, or as
/// the RGB8 copy of a 1- or 2-channel image), before anything is allocated.
fn check_size(d: &impl image::ImageDecoder, what: &str) -> Result<(), DecodeError> {
    let (width, height) = d.dimensions();
    let rgb8 = u64::from(width) * u64::from(height) * 3;
    let bytes = d.total_bytes().max(rgb8);
    if bytes > MAX_DECODED_BYTES {
        return Err(DecodeError {
            expected: format!(
                "a {what} image of at most {} MiB decoded",
                MAX_DECODED_BYTES >> 20
            ),
            found: format!("a {width}x{height} image header ({bytes} bytes decoded)"),
        });
    }
    Ok(())
}

fn to_rgb8(d: impl image::ImageDecoder) -> Result<Frame, image::ImageError> {
    let (width, height) = d.dimensions();
    if d.color_type() == image::ColorType::Rgb8 {
        let mut data = vec![0u8; d.total_bytes() as usize];
        d.read_image(&mut data)?;
        return Ok(Frame {
            width,
            height,
            data,
        });
    }
    let img = image::DynamicImage::from_decoder(d)?.into_rgb8();
    Ok(Frame {
        width,
        height,
        data: img.into_raw(),
    })
}

/// A few words on what unknown bytes look like, for error messages.
pub fn describe_bytes(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "no bytes".into();
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{} bytes starting {}", bytes.len(), head.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trips_exactly() {
        let frame = Frame {
            width: 5,
            height: 3,
            data: (0..45).map(|i| (i * 37 % 256) as u8).collect(),
        };
        let png = encode_png(&frame).unwrap();
        assert_eq!(ImageFormat::sniff(&png), Some(ImageFormat::Png));
        assert_eq!(decode(&png).unwrap(), frame);
    }

    #[test]
    fn jpeg_decodes_and_garbage_is_named() {
        let frame = Frame {
            width: 8,
            height: 8,
            data: vec![200; 8 * 8 * 3],
        };
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode(&frame.data, 8, 8, image::ExtendedColorType::Rgb8)
            .unwrap();
        let back = decode(&jpeg).unwrap();
        assert_eq!((back.width, back.height), (8, 8));
        assert!(back.data.iter().all(|&v| v.abs_diff(200) <= 2));

        let err = decode(b"GIF89a....").unwrap_err();
        assert_eq!(err.expected, "PNG or JPEG bytes");
        assert!(err.found.contains("47 49 46 38"), "{}", err.found);
        let err = decode(&encode_png(&frame).unwrap()[..40]).unwrap_err();
        assert!(err.found.contains("broken PNG"), "{}", err.found);
    }
}
