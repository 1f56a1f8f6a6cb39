//! The bridge between the two leaves: scene and dataset types (`dreamyard_scenes`) to model
//! types (`dreamyard_model`) and back. Every conversion lives here once: action spaces
//! (including the box spanning a dataset's recorded actions when it has no spec), RGB8 frames
//! to tensors and back, the one resizer, and a dataset episode to a model episode. `train`,
//! `eval`, the session and the recorder all use these, so the same frames give the same
//! numbers everywhere.
//!
//! The resizer is an area filter ([`resize_area`]): an output pixel is the mean of the source
//! area it covers, as OpenCV's `INTER_AREA` does when shrinking. Frames reach a model by being
//! shrunk (a 96x96 dataset to a 64x64 model), where an area filter neither aliases nor blurs
//! more than the size change needs; it keeps a uniform colour exactly at any factor. Both the
//! app (truth frames fitted to the model's size before the metrics) and `eval` use it, so the
//! metrics the app shows for a step equal what `eval` computes for the same frames.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use dreamyard_model::candle_core::{DType, Device, Tensor};
use dreamyard_model::config::ActionSpace as ModelActionSpace;
use dreamyard_model::train::EpisodeData;
use dreamyard_scenes::dataset::Dataset;
use dreamyard_scenes::{Action, ActionSpace as SceneActionSpace, Frame};

/// A model's action space in scene terms. Names are generic (`a0`, `a1` / `0`, `1`, ...)
/// because model configs do not carry them.
pub fn action_space_to_scene(space: &ModelActionSpace) -> SceneActionSpace {
    match space {
        ModelActionSpace::Discrete { num_actions } => SceneActionSpace::Discrete {
            names: (0..*num_actions).map(|i| i.to_string()).collect(),
        },
        ModelActionSpace::Continuous { dim, low, high } => SceneActionSpace::Continuous {
            low: low.clone(),
            high: high.clone(),
            names: (0..*dim).map(|i| format!("a{i}")).collect(),
        },
        // A multi-hot vector is a box of 0/1 values; the layout names them when it exists.
        ModelActionSpace::MultiHot {
            num_actions,
            keyboard_mouse,
        } => SceneActionSpace::Continuous {
            low: vec![0.0; *num_actions],
            high: vec![1.0; *num_actions],
            names: match keyboard_mouse {
                Some(km) => multi_hot_names(km),
                None => (0..*num_actions).map(|i| format!("a{i}")).collect(),
            },
        },
    }
}

/// Names of a keyboard-and-mouse vector's values: the keys and buttons, then `mouse x <bin>`
/// and `mouse y <bin>`.
pub fn multi_hot_names(km: &dreamyard_model::KeyboardMouse) -> Vec<String> {
    km.keys
        .iter()
        .chain(&km.buttons)
        .cloned()
        .chain(km.mouse_x.iter().map(|b| format!("mouse x {b}")))
        .chain(km.mouse_y.iter().map(|b| format!("mouse y {b}")))
        .collect()
}

/// A scene's action space as a model takes it.
pub fn action_space_to_model(space: &SceneActionSpace) -> ModelActionSpace {
    match space {
        SceneActionSpace::Continuous { low, high, .. } => ModelActionSpace::Continuous {
            dim: low.len(),
            low: low.clone(),
            high: high.clone(),
        },
        SceneActionSpace::Discrete { names } => ModelActionSpace::Discrete {
            num_actions: names.len(),
        },
    }
}

/// The per-dimension box `[low, high]` spanning `actions` (rows of `dim` values).
pub fn action_box<'a>(
    dim: usize,
    actions: impl IntoIterator<Item = &'a [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let mut low = vec![f32::INFINITY; dim];
    let mut high = vec![f32::NEG_INFINITY; dim];
    for a in actions {
        for i in 0..dim.min(a.len()) {
            low[i] = low[i].min(a[i]);
            high[i] = high[i].max(a[i]);
        }
    }
    (low, high)
}

/// The action space a dataset implies, in scene terms: the recording scene's
/// (`meta/dreamyard.json`) when there is one, else a continuous box of width `action_dim`
/// spanning `actions` (flat rows of `action_dim` values), named `action.0`, `action.1`, ...
pub fn dataset_action_space<'a>(
    ds: &Dataset,
    action_dim: usize,
    actions: impl IntoIterator<Item = &'a [f32]>,
) -> anyhow::Result<SceneActionSpace> {
    if let Some(meta) = ds.dreamyard() {
        return Ok(meta.spec.action_space.clone());
    }
    if action_dim == 0 {
        bail!(
            "{}: the dataset has no `action` feature",
            ds.root().display()
        );
    }
    let (low, high) = action_box(
        action_dim,
        actions.into_iter().flat_map(|a| a.chunks_exact(action_dim)),
    );
    Ok(SceneActionSpace::Continuous {
        low,
        high,
        names: (0..action_dim).map(|i| format!("action.{i}")).collect(),
    })
}

/// Recorded action rows (as a dataset stores them) to scene actions: a discrete action is
/// stored as its index.
pub fn actions_from_rows(rows: &[f32], dim: usize, space: &SceneActionSpace) -> Vec<Action> {
    rows.chunks_exact(dim.max(1))
        .map(|a| match space {
            SceneActionSpace::Discrete { .. } => Action::Discrete(a[0].max(0.0) as u32),
            SceneActionSpace::Continuous { .. } => Action::Continuous(a.to_vec()),
        })
        .collect()
}

/// One dataset episode as the model takes it: frames concatenated (RGB8, HWC), actions as
/// recorded.
pub fn episode_data(ep: &dreamyard_scenes::dataset::EpisodeData) -> EpisodeData {
    let mut frames_hwc = Vec::with_capacity(ep.frames.iter().map(|f| f.data.len()).sum());
    for f in &ep.frames {
        frames_hwc.extend_from_slice(&f.data);
    }
    EpisodeData {
        frames_hwc,
        actions: ep.actions.clone(),
        len: ep.frames.len(),
    }
}

/// Scene actions as the model wants them: `[n]` u32 ids or `[n, dim]` f32.
pub fn actions_to_tensor(
    actions: &[Action],
    space: &SceneActionSpace,
    device: &Device,
) -> anyhow::Result<Tensor> {
    let n = actions.len();
    Ok(match space {
        SceneActionSpace::Discrete { .. } => {
            let ids = actions
                .iter()
                .map(|a| match a {
                    Action::Discrete(i) => Ok(*i),
                    Action::Continuous(_) => {
                        bail!("the model takes discrete actions, got a continuous one")
                    }
                })
                .collect::<anyhow::Result<Vec<u32>>>()?;
            Tensor::from_vec(ids, n, device)?
        }
        SceneActionSpace::Continuous { names, .. } => {
            let dim = names.len();
            let mut flat = Vec::with_capacity(n * dim);
            for a in actions {
                match a {
                    Action::Continuous(v) if v.len() == dim => flat.extend_from_slice(v),
                    other => {
                        bail!("the model takes {dim} continuous values per action, got {other:?}")
                    }
                }
            }
            Tensor::from_vec(flat, (n, dim), device)?
        }
    })
}

/// RGB8 HWC frames to `[n, 3, h, w]` in [-1, 1].
pub fn frames_to_tensor(frames: &[Arc<Frame>], device: &Device) -> anyhow::Result<Tensor> {
    let Some(first) = frames.first() else {
        bail!("no frames");
    };
    let (w, h) = (first.width as usize, first.height as usize);
    let plane = w * h;
    let mut out = vec![0f32; frames.len() * 3 * plane];
    for (k, f) in frames.iter().enumerate() {
        anyhow::ensure!(
            f.data.len() == 3 * plane,
            "context frame {k} is {}x{}, expected {w}x{h}",
            f.width,
            f.height
        );
        let dst = &mut out[k * 3 * plane..(k + 1) * 3 * plane];
        for (p, px) in f.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                dst[c * plane + p] = f32::from(px[c]) / 255.0 * 2.0 - 1.0;
            }
        }
    }
    Ok(Tensor::from_vec(out, (frames.len(), 3, h, w), device)?)
}

/// A `[3, h, w]` tensor in [-1, 1] to an RGB8 frame (exact for the model's 256-level output).
pub fn tensor_to_frame(t: &Tensor) -> anyhow::Result<Frame> {
    let dims = t.dims();
    anyhow::ensure!(
        dims.len() == 3 && dims[0] == 3,
        "model frame: expected [3, h, w], found {dims:?}"
    );
    let (h, w) = (dims[1], dims[2]);
    let values: Vec<f32> = t
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()
        .context("model frame to host")?;
    Ok(Frame {
        width: w as u32,
        height: h as u32,
        data: chw_to_rgb8(&values, h, w),
    })
}

/// CHW values in [-1, 1] (one frame) to RGB8 HWC bytes, rounding to the nearest level.
pub fn chw_to_rgb8(values: &[f32], h: usize, w: usize) -> Vec<u8> {
    let plane = w * h;
    let mut data = vec![0u8; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            let v = (values[c * plane + p] + 1.0) / 2.0 * 255.0;
            data[3 * p + c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    data
}

/// `frame` at `width x height` through [`resize_area`]; the frame itself when it already has
/// that size.
pub fn fit(frame: Frame, width: u32, height: u32) -> Frame {
    if frame.width == width && frame.height == height {
        return frame;
    }
    if frame.width == 0 || frame.height == 0 {
        return Frame {
            width,
            height,
            data: vec![0; width as usize * height as usize * 3],
        };
    }
    let data = resize_area(
        &frame.data,
        frame.width as usize,
        frame.height as usize,
        width as usize,
        height as usize,
    );
    Frame {
        width,
        height,
        data,
    }
}

/// Resizes an RGB8 frame with an area filter (each output pixel is the mean of the source area
/// it covers, partial pixels weighted by their overlap), as OpenCV's `INTER_AREA` does when
/// shrinking; enlarging blends the one or two source pixels an output pixel overlaps.
pub fn resize_area(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    if (sw, sh) == (dw, dh) {
        return src.to_vec();
    }
    let wx = area_weights(sw, dw);
    let wy = area_weights(sh, dh);
    // Rows first: [sh, dw, 3].
    let mut tmp = vec![0f64; sh * dw * 3];
    for y in 0..sh {
        for (ox, taps) in wx.iter().enumerate() {
            for &(x, w) in taps {
                for c in 0..3 {
                    tmp[(y * dw + ox) * 3 + c] += w * f64::from(src[(y * sw + x) * 3 + c]);
                }
            }
        }
    }
    let mut out = vec![0u8; dh * dw * 3];
    for (oy, taps) in wy.iter().enumerate() {
        for ox in 0..dw {
            for c in 0..3 {
                let v: f64 = taps
                    .iter()
                    .map(|&(y, w)| w * tmp[(y * dw + ox) * 3 + c])
                    .sum();
                out[(oy * dw + ox) * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// For each of `dst` output pixels, the source pixels it covers and their weights (summing to 1).
fn area_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let (a, b) = (o as f64 * scale, (o + 1) as f64 * scale);
            let mut taps = Vec::new();
            let mut i = a.floor() as usize;
            while (i as f64) < b && i < src {
                let overlap = b.min(i as f64 + 1.0) - a.max(i as f64);
                if overlap > 1e-12 {
                    taps.push((i, overlap / scale));
                }
                i += 1;
            }
            taps
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(width: u32, height: u32, rgb: [u8; 3]) -> Frame {
        Frame {
            width,
            height,
            data: rgb.repeat(width as usize * height as usize),
        }
    }

    #[test]
    fn area_resize_averages_blocks_and_keeps_constants() {
        // 4x2 -> 2x1: each output pixel is the mean of a 2x2 block.
        let src: Vec<u8> = [0u8, 10, 20, 30, 40, 50, 60, 70]
            .iter()
            .flat_map(|&v| [v, v, v])
            .collect();
        let out = resize_area(&src, 4, 2, 2, 1);
        assert_eq!(out, vec![25, 25, 25, 45, 45, 45]);
        // Non-integer factors keep a constant image constant.
        let flat = vec![77u8; 5 * 5 * 3];
        assert!(resize_area(&flat, 5, 5, 3, 3).iter().all(|&v| v == 77));
        assert!(resize_area(&flat, 5, 5, 7, 7).iter().all(|&v| v == 77));
    }

    #[test]
    fn fit_keeps_same_size_and_resizes_uniform_frames_exactly() {
        let f = solid(8, 6, [10, 20, 30]);
        assert_eq!(fit(f.clone(), 8, 6), f);
        let g = fit(f, 3, 5);
        assert_eq!((g.width, g.height), (3, 5));
        assert!(g.data.chunks(3).all(|p| p == [10, 20, 30]));
    }

    #[test]
    fn action_spaces_round_trip_and_boxes_span_the_rows() {
        let scene = SceneActionSpace::Continuous {
            low: vec![0.0, -1.0],
            high: vec![512.0, 1.0],
            names: vec!["a0".into(), "a1".into()],
        };
        assert_eq!(action_space_to_scene(&action_space_to_model(&scene)), scene);
        let discrete = ModelActionSpace::Discrete { num_actions: 3 };
        assert_eq!(
            action_space_to_model(&action_space_to_scene(&discrete)),
            discrete
        );
        let rows = [1.0f32, 5.0, -2.0, 7.0];
        let (low, high) = action_box(2, rows.chunks_exact(2));
        assert_eq!((low, high), (vec![-2.0, 5.0], vec![1.0, 7.0]));
        let acts = actions_from_rows(&rows, 2, &scene);
        assert_eq!(acts[1], Action::Continuous(vec![-2.0, 7.0]));
    }

    #[test]
    fn frames_to_tensor_and_back_is_exact() {
        let f = Arc::new(Frame {
            width: 2,
            height: 1,
            data: vec![0, 128, 255, 1, 2, 3],
        });
        let t = frames_to_tensor(std::slice::from_ref(&f), &Device::Cpu).unwrap();
        assert_eq!(t.dims(), [1, 3, 1, 2]);
        let back = tensor_to_frame(&t.squeeze(0).unwrap()).unwrap();
        assert_eq!(&back, f.as_ref());
    }
}
