//! Exports of a branch: an animated GIF of Truth | Model | Error per step, and a PNG strip with
//! one row each for Truth, Model and Error over evenly spaced steps.

use std::path::Path;

use dreamyard_scenes::Frame;

use super::frames::{border, error_heat_gain, hstack, solid, upscale, vstack};
use super::{Branch, FrameKind, StepRecord};
use crate::image_io::{write_gif, write_png};

/// Border colour of real (context) frames: DreamerV3 marks them green...
pub const CONTEXT_RGB: [u8; 3] = [46, 160, 67];
/// ...and imagined frames red.
pub const IMAGINED_RGB: [u8; 3] = [218, 54, 51];
const GAP_RGB: [u8; 3] = [24, 24, 27];
const MISSING_RGB: [u8; 3] = [60, 60, 66];

/// How exports look: the error row at the Error panel's gain, tiles scaled up (nearest) to a
/// readable size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExportStyle {
    pub gain: f32,
    /// Tiles are scaled up by a whole factor until their shorter side is at least this.
    pub min_side: u32,
}

impl Default for ExportStyle {
    fn default() -> Self {
        Self {
            gain: 1.0,
            min_side: 256,
        }
    }
}

impl ExportStyle {
    /// The whole factor that brings a `width x height` tile to `min_side`.
    pub fn scale(&self, width: u32, height: u32) -> u32 {
        self.min_side.div_ceil(width.min(height).max(1)).max(1)
    }
}

/// Truth, model (with its context/imagined border) and error frames of one step, each
/// `width x height`, scaled up by `style`; missing frames are grey.
pub fn step_tiles(rec: &StepRecord, width: u32, height: u32, style: &ExportStyle) -> [Frame; 3] {
    let missing = || solid(width, height, MISSING_RGB);
    let truth = rec.truth.as_deref().cloned().unwrap_or_else(missing);
    let model = rec.model.as_deref().cloned().unwrap_or_else(missing);
    let error = match (rec.truth.as_deref(), rec.model.as_deref()) {
        (Some(t), Some(m)) if rec.kind == FrameKind::Imagined => error_heat_gain(t, m, style.gain),
        (Some(_), Some(_)) => solid(width, height, crate::metrics::heat_color(0)),
        _ => missing(),
    };
    let k = style.scale(width, height);
    let (truth, mut model, error) = (upscale(&truth, k), upscale(&model, k), upscale(&error, k));
    let thickness = (width.min(height) * k / 32).max(1);
    match rec.kind {
        FrameKind::Context => border(&mut model, thickness, CONTEXT_RGB),
        FrameKind::Imagined => border(&mut model, thickness, IMAGINED_RGB),
        FrameKind::TruthOnly | FrameKind::Recorded => {}
    }
    [truth, model, error]
}

fn frame_size(branch: &Branch) -> Option<(u32, u32)> {
    branch
        .steps
        .iter()
        .find_map(|s| s.truth.as_deref().or(s.model.as_deref()))
        .map(|f| (f.width, f.height))
}

/// Writes every step of `branch` as a GIF frame `Truth | Model | Error` at `fps`.
pub fn export_gif(
    branch: &Branch,
    path: &Path,
    fps: f64,
    style: &ExportStyle,
) -> anyhow::Result<usize> {
    let Some((w, h)) = frame_size(branch) else {
        anyhow::bail!("nothing to export: the branch has no frames");
    };
    let gap = (w * style.scale(w, h) / 32).max(2);
    let frames: Vec<Frame> = branch
        .steps
        .iter()
        .map(|rec| {
            let [t, m, e] = step_tiles(rec, w, h, style);
            hstack(&[&t, &m, &e], gap, GAP_RGB)
        })
        .collect();
    write_gif(path, &frames, fps)?;
    Ok(frames.len())
}

/// Writes a PNG with rows Truth, Model, Error over up to `columns` evenly spaced steps.
pub fn export_png_strip(
    branch: &Branch,
    path: &Path,
    columns: usize,
    style: &ExportStyle,
) -> anyhow::Result<usize> {
    let Some((w, h)) = frame_size(branch) else {
        anyhow::bail!("nothing to export: the branch has no frames");
    };
    let picks = spaced(branch.steps.len(), columns.max(1));
    let gap = (w * style.scale(w, h) / 32).max(2);
    let cols: Vec<Frame> = picks
        .iter()
        .map(|&i| {
            let [t, m, e] = step_tiles(&branch.steps[i], w, h, style);
            vstack(&[&t, &m, &e], gap, GAP_RGB)
        })
        .collect();
    let refs: Vec<&Frame> = cols.iter().collect();
    write_png(path, &hstack(&refs, gap, GAP_RGB))?;
    Ok(picks.len())
}

/// Up to `k` indices spread evenly over `0..n`, first and last included.
fn spaced(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    if k == 1 {
        return vec![n - 1];
    }
    (0..k).map(|j| j * (n - 1) / (k - 1)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn spaced_indices() {
        assert_eq!(super::spaced(3, 5), vec![0, 1, 2]);
        assert_eq!(super::spaced(10, 4), vec![0, 3, 6, 9]);
        assert_eq!(super::spaced(10, 1), vec![9]);
    }
}
