//! Exports of a branch: an animated GIF of Truth | Model | Error per step, and a PNG strip with
//! one row each for Truth, Model and Error over evenly spaced steps.

use std::path::Path;

use dreamyard_scenes::Frame;

use super::frames::{border, error_heat, hstack, solid, vstack};
use super::{Branch, FrameKind, StepRecord};
use crate::image_io::{write_gif, write_png};

/// Border colour of real (context) frames: DreamerV3 marks them green...
pub const CONTEXT_RGB: [u8; 3] = [46, 160, 67];
/// ...and imagined frames red.
pub const IMAGINED_RGB: [u8; 3] = [218, 54, 51];
const GAP_RGB: [u8; 3] = [24, 24, 27];
const MISSING_RGB: [u8; 3] = [60, 60, 66];

/// Truth, model (with its context/imagined border) and error frames of one step, each
/// `width x height`; missing frames are grey.
pub fn step_tiles(rec: &StepRecord, width: u32, height: u32) -> [Frame; 3] {
    let missing = || solid(width, height, MISSING_RGB);
    let truth = rec.truth.as_deref().cloned().unwrap_or_else(missing);
    let mut model = rec.model.as_deref().cloned().unwrap_or_else(missing);
    let error = match (rec.truth.as_deref(), rec.model.as_deref()) {
        (Some(t), Some(m)) if rec.kind == FrameKind::Imagined => error_heat(t, m),
        (Some(_), Some(_)) => solid(width, height, crate::metrics::heat_color(0)),
        _ => missing(),
    };
    let thickness = (width.min(height) / 32).max(1);
    match rec.kind {
        FrameKind::Context => border(&mut model, thickness, CONTEXT_RGB),
        FrameKind::Imagined => border(&mut model, thickness, IMAGINED_RGB),
        FrameKind::TruthOnly => {}
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
pub fn export_gif(branch: &Branch, path: &Path, fps: f64) -> anyhow::Result<usize> {
    let Some((w, h)) = frame_size(branch) else {
        anyhow::bail!("nothing to export: the branch has no frames");
    };
    let gap = (w / 32).max(2);
    let frames: Vec<Frame> = branch
        .steps
        .iter()
        .map(|rec| {
            let [t, m, e] = step_tiles(rec, w, h);
            hstack(&[&t, &m, &e], gap, GAP_RGB)
        })
        .collect();
    write_gif(path, &frames, fps)?;
    Ok(frames.len())
}

/// Writes a PNG with rows Truth, Model, Error over up to `columns` evenly spaced steps.
pub fn export_png_strip(branch: &Branch, path: &Path, columns: usize) -> anyhow::Result<usize> {
    let Some((w, h)) = frame_size(branch) else {
        anyhow::bail!("nothing to export: the branch has no frames");
    };
    let picks = spaced(branch.steps.len(), columns.max(1));
    let gap = (w / 32).max(2);
    let cols: Vec<Frame> = picks
        .iter()
        .map(|&i| {
            let [t, m, e] = step_tiles(&branch.steps[i], w, h);
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
