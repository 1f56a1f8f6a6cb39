//! Writing frames as PNG and animated GIF.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::Context as _;
use dreamyard_scenes::Frame;

/// Writes an RGB8 frame as PNG.
pub fn write_png(path: &Path, frame: &Frame) -> anyhow::Result<()> {
    image::save_buffer(
        path,
        &frame.data,
        frame.width,
        frame.height,
        image::ExtendedColorType::Rgb8,
    )
    .with_context(|| format!("{}: cannot write PNG", path.display()))
}

/// Writes frames as a looping animated GIF at `fps`.
pub fn write_gif(path: &Path, frames: &[Frame], fps: f64) -> anyhow::Result<()> {
    let Some(first) = frames.first() else {
        anyhow::bail!("{}: no frames to write", path.display());
    };
    let (w, h) = (
        u16::try_from(first.width).context("GIF frames are at most 65535 pixels wide")?,
        u16::try_from(first.height).context("GIF frames are at most 65535 pixels high")?,
    );
    let file = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut encoder = gif::Encoder::new(BufWriter::new(file), w, h, &[])
        .with_context(|| format!("{}: cannot start GIF", path.display()))?;
    encoder.set_repeat(gif::Repeat::Infinite)?;
    let delay_cs = (100.0 / fps).round().clamp(1.0, 65535.0) as u16;
    for frame in frames {
        let mut gif_frame = gif::Frame::from_rgb_speed(w, h, &frame.data, 10);
        gif_frame.delay = delay_cs;
        encoder
            .write_frame(&gif_frame)
            .with_context(|| format!("{}: cannot write GIF frame", path.display()))?;
    }
    Ok(())
}
