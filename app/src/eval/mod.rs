//! `dreamyard eval`'s protocol, usable without the CLI: which windows of which episodes are
//! scored, how a model is rolled out over them (autoregressive or teacher-forced, K samples),
//! and the per-window metrics that [`report`] aggregates.
//!
//! Windows: from each selected episode, windows of `context + horizon` frames start at
//! `0, stride, 2*stride, ...` (default stride = horizon, so the scored frames of consecutive
//! windows do not overlap) while the whole window fits; window ids number them in episode order.
//! Step `h` (1..=H) is scored on frame `start + context + h - 1`, predicted with the recorded
//! action of the frame before it (DIAMOND's convention, as in training).
//!
//! Determinism: windows are batched in fixed chunks of `batch_size` windows, and every row of a
//! batch (window, sample, regime) draws its sampler noise from its own generator seeded by
//! `(seed, window id, sample, regime)`. A shard (`i/n`) takes a contiguous run of whole
//! batches, so each window is computed exactly as in a single run, and merging shards gives the
//! single run's numbers bit for bit.

pub mod data;
pub mod interval;
pub mod physics;
pub mod plot;
pub mod report;
pub mod run;

use std::collections::BTreeSet;

use anyhow::{Context as _, bail};
use dreamyard_model::candle_core::{DType, Device, Tensor};
use dreamyard_model::train::{TrainData, WindowStart};
use dreamyard_model::{NoiseSource, WorldModel};
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::metrics::{Palette, score_frame};
pub use crate::perturb::Perturbation;
use data::EvalDataset;

pub use crate::metrics::PSNR_CAP_DB;

/// How the model is fed during the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Regime {
    /// Only the context frames are real; the model feeds on its own outputs.
    Autoregressive,
    /// Every step starts from the real previous `context` frames and predicts one frame.
    TeacherForced,
}

impl Regime {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Autoregressive => "autoregressive",
            Self::TeacherForced => "teacher-forced",
        }
    }
}

/// `--shard i/n`: the `i`-th of `n` parts (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which part, `0..count`.
    pub index: usize,
    /// Number of parts.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected i/n with 0 <= i < n, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// The resolved protocol: everything that determines the numbers. Shards of one evaluation
/// must agree on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// The regime scored as "model".
    pub regime: Regime,
    /// Context frames (the model's `num_steps_conditioning`).
    pub context: usize,
    /// Horizon H: steps scored per window.
    pub horizon: usize,
    /// Frames between window starts within an episode.
    pub stride: usize,
    /// Sampled rollouts per window (K).
    pub samples: usize,
    /// Seed of the sampler noise.
    pub seed: u64,
    /// Episodes evaluated.
    pub episodes: Vec<u64>,
    /// Windows per model batch (fixes the batch boundaries shards split on).
    pub batch_size: usize,
    /// Evaluated frame size `[width, height]` (the model's).
    pub frame: [usize; 2],
    /// Per-frame PSNR cap (dB).
    pub psnr_cap_db: f64,
    /// Colour tolerance of the object masks (RGB distance).
    pub iou_tolerance: u8,
    /// The perturbed actions of the counterfactual rollouts (action response), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterfactual: Option<Perturbation>,
}

/// One window: `context + horizon` frames of an episode from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Position in the evaluation's window list.
    pub id: usize,
    /// Episode index in the dataset.
    pub episode: u64,
    /// First context frame.
    pub start: usize,
}

/// The windows of `episodes` (index, length) under the protocol, in order.
pub fn select_windows(
    episodes: &[(u64, usize)],
    context: usize,
    horizon: usize,
    stride: usize,
) -> Vec<Window> {
    let span = context + horizon;
    let mut out = Vec::new();
    for &(episode, len) in episodes {
        let mut start = 0;
        while start + span <= len {
            out.push(Window {
                id: out.len(),
                episode,
                start,
            });
            start += stride.max(1);
        }
    }
    out
}

/// The batches (ranges of window positions) of `n_windows` windows, and the ones `shard` owns:
/// a contiguous run of whole batches.
pub fn shard_batches(
    n_windows: usize,
    batch_size: usize,
    shard: Option<Shard>,
) -> Vec<std::ops::Range<usize>> {
    let bs = batch_size.max(1);
    let batches: Vec<_> = (0..n_windows.div_ceil(bs))
        .map(|b| b * bs..((b + 1) * bs).min(n_windows))
        .collect();
    match shard {
        None => batches,
        Some(Shard { index, count }) => {
            let nb = batches.len();
            batches[index * nb / count..(index + 1) * nb / count].to_vec()
        }
    }
}

/// Ids of the windows shown as example strips: `count` spread evenly over all windows.
pub fn example_ids(n_windows: usize, count: usize) -> Vec<usize> {
    let set: BTreeSet<usize> = (0..count.min(n_windows))
        .map(|k| k * n_windows / count.min(n_windows))
        .collect();
    set.into_iter().collect()
}

/// Metrics of one predicted frame against the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameMetrics {
    /// PSNR (dB), capped at [`PSNR_CAP_DB`].
    pub psnr: f64,
    /// Mean SSIM over the three channels.
    pub ssim: f64,
    /// Mask IoU per palette object; `None` where the object is in neither frame.
    pub iou: Vec<Option<f64>>,
}

impl FrameMetrics {
    /// Scores `pred` against `truth` (RGB8, `w x h`).
    pub fn of(pred: &[u8], truth: &[u8], w: usize, h: usize, palette: Option<&Palette>) -> Self {
        let s = score_frame(truth, pred, w, h, palette);
        Self {
            psnr: s.psnr,
            ssim: s.ssim,
            iou: s.iou.into_iter().map(|(_, v)| v).collect(),
        }
    }

    /// The mean over samples (IoU over the samples where it is defined).
    fn mean(samples: &[Self]) -> Self {
        let n = samples.len() as f64;
        let objects = samples.first().map_or(0, |s| s.iou.len());
        Self {
            psnr: samples.iter().map(|s| s.psnr).sum::<f64>() / n,
            ssim: samples.iter().map(|s| s.ssim).sum::<f64>() / n,
            iou: (0..objects)
                .map(|k| {
                    let vals: Vec<f64> = samples.iter().filter_map(|s| s.iou[k]).collect();
                    (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
                })
                .collect(),
        }
    }

    /// The sample with the highest PSNR (the first on ties), all its metrics.
    fn best(samples: &[Self]) -> Self {
        let mut best = &samples[0];
        for s in &samples[1..] {
            if s.psnr > best.psnr {
                best = s;
            }
        }
        best.clone()
    }
}

/// Everything measured on one window: one entry per horizon step in each series.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRecord {
    /// The window.
    pub window: Window,
    /// The model in the protocol's regime, mean over samples.
    pub model: Vec<FrameMetrics>,
    /// Best of K samples per step (only with K > 1).
    pub best_of_k: Option<Vec<FrameMetrics>>,
    /// Copy-last-frame baseline.
    pub baseline: Vec<FrameMetrics>,
    /// The model teacher-forced (only in autoregressive runs), mean over samples.
    pub teacher_forced: Option<Vec<FrameMetrics>>,
    /// Object physics and action response (see [`physics`]): one value per horizon step for
    /// each key, `None` where undefined; empty without scene colours.
    pub physics: physics::PhysicsSeries,
}

/// Frames of one example window for a strip: truth and the model's first sample, per step.
#[derive(Debug, Clone)]
pub struct ExampleFrames {
    /// The window.
    pub window: Window,
    /// Real frames at steps 1..=H (RGB8).
    pub truth: Vec<Vec<u8>>,
    /// Predicted frames at steps 1..=H (sample 0, the protocol's regime).
    pub model: Vec<Vec<u8>>,
}

/// Sampler noise for a batch whose rows each own a generator, so that a row's noise does not
/// depend on which other rows share its batch.
struct RowNoise {
    rows: Vec<ChaCha8Rng>,
}

impl RowNoise {
    fn new(seed: u64, keys: impl IntoIterator<Item = (usize, usize)>, regime: Regime) -> Self {
        let tag = match regime {
            Regime::Autoregressive => 0x6172,
            Regime::TeacherForced => 0x7466,
        };
        Self {
            rows: keys
                .into_iter()
                .map(|(window, sample)| {
                    let mut h = splitmix(seed ^ splitmix(tag));
                    h = splitmix(h ^ window as u64);
                    h = splitmix(h ^ sample as u64);
                    ChaCha8Rng::seed_from_u64(h)
                })
                .collect(),
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl NoiseSource for RowNoise {
    fn randn(&mut self, shape: &[usize], device: &Device) -> dreamyard_model::Result<Tensor> {
        let per_row: usize = shape.iter().skip(1).product();
        if shape.first() != Some(&self.rows.len()) {
            return Err(dreamyard_model::ModelError::Noise(format!(
                "noise for {} rows asked for shape {shape:?}",
                self.rows.len()
            )));
        }
        let mut data = Vec::with_capacity(per_row * self.rows.len());
        for rng in &mut self.rows {
            data.extend((0..per_row).map(|_| -> f32 { StandardNormal.sample(rng) }));
        }
        Ok(Tensor::from_vec(data, shape, device)?)
    }
}

/// Runs a model over windows of a dataset under a protocol.
#[derive(Debug)]
pub struct Evaluator<'a> {
    model: &'a WorldModel,
    protocol: &'a Protocol,
    /// Wall time spent on the physics metrics and on the counterfactual (its model rollouts
    /// and the simulator), for the cost line `eval` prints.
    costs: std::cell::Cell<Costs>,
}

/// Where an evaluation's time went beyond the rollouts and frame metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Costs {
    /// Object physics of every window (masks, poses, checks), seconds.
    pub physics_s: f64,
    /// The perturbed model rollouts, seconds.
    pub counterfactual_model_s: f64,
    /// The simulator's two futures per window, seconds.
    pub counterfactual_world_s: f64,
}

impl<'a> Evaluator<'a> {
    /// An evaluator of `model` under `protocol`.
    pub fn new(model: &'a WorldModel, protocol: &'a Protocol) -> Self {
        Self {
            model,
            protocol,
            costs: std::cell::Cell::new(Costs::default()),
        }
    }

    /// Time spent so far on physics and the counterfactual.
    pub fn costs(&self) -> Costs {
        self.costs.get()
    }

    fn add_cost(&self, f: impl FnOnce(&mut Costs)) {
        let mut c = self.costs.get();
        f(&mut c);
        self.costs.set(c);
    }

    /// Scores one batch of windows; `examples` lists the window ids whose frames to keep.
    pub fn run_batch(
        &self,
        data: &mut EvalDataset,
        windows: &[Window],
        examples: &[usize],
    ) -> anyhow::Result<(Vec<WindowRecord>, Vec<ExampleFrames>)> {
        let episodes: Vec<u64> = windows
            .iter()
            .map(|w| w.episode)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        data.load(&episodes)?;
        // The batch's episodes in the trainer's format, so the model is fed as in training.
        let batch_data = TrainData {
            frame: dreamyard_model::FrameSize {
                width: data.frame.0,
                height: data.frame.1,
            },
            channels: 3,
            action: data.action.clone(),
            fps: None,
            episodes: data.take(&episodes)?,
        };
        let result = self.score_batch(&batch_data, &episodes, data, windows, examples);
        data.put_back(&episodes, batch_data.episodes);
        result
    }

    /// [`Evaluator::run_batch`] on the batch's episodes in the trainer's format.
    fn score_batch(
        &self,
        batch_data: &TrainData,
        episodes: &[u64],
        data: &EvalDataset,
        windows: &[Window],
        examples: &[usize],
    ) -> anyhow::Result<(Vec<WindowRecord>, Vec<ExampleFrames>)> {
        let p = self.protocol;
        let (t_ctx, horizon, k) = (p.context, p.horizon, p.samples);
        batch_data.validate()?;
        let local = |w: &Window| WindowStart {
            episode: episodes.iter().position(|&e| e == w.episode).unwrap_or(0),
            t: w.start,
        };
        let (fw, fh) = data.frame;
        let fb = fw * fh * 3;
        let frame_u8 = |w: &Window, t: usize| -> &[u8] {
            let ep = &batch_data.episodes[local(w).episode];
            &ep.frames_hwc[t * fb..(t + 1) * fb]
        };
        let palette = data.palette.clone();

        let primary = self.rollouts(batch_data, windows, p.regime, None, &local)?;
        let teacher = (p.regime == Regime::Autoregressive)
            .then(|| self.rollouts(batch_data, windows, Regime::TeacherForced, None, &local))
            .transpose()?;
        // The counterfactual: the same rows, the same noise, the perturbed actions.
        let perturbed = match p.counterfactual {
            Some(pert) if data.has_scene() => {
                let t = std::time::Instant::now();
                let frames = self.rollouts(batch_data, windows, p.regime, Some(pert), &local)?;
                let dt = t.elapsed().as_secs_f64();
                self.add_cost(|c| c.counterfactual_model_s += dt);
                Some(frames)
            }
            _ => None,
        };

        let mut records = Vec::with_capacity(windows.len());
        let mut kept = Vec::new();
        for (i, w) in windows.iter().enumerate() {
            let truth: Vec<&[u8]> = (1..=horizon)
                .map(|h| frame_u8(w, w.start + t_ctx + h - 1))
                .collect();
            let score = |pred: &[Vec<Vec<u8>>]| -> (Vec<FrameMetrics>, Vec<FrameMetrics>) {
                let mut mean = Vec::with_capacity(horizon);
                let mut best = Vec::with_capacity(horizon);
                for h in 0..horizon {
                    let per_sample: Vec<FrameMetrics> = (0..k)
                        .map(|s| {
                            FrameMetrics::of(
                                &pred[i * k + s][h],
                                truth[h],
                                fw,
                                fh,
                                palette.as_ref(),
                            )
                        })
                        .collect();
                    mean.push(FrameMetrics::mean(&per_sample));
                    best.push(FrameMetrics::best(&per_sample));
                }
                (mean, best)
            };
            let (model, best) = score(&primary);
            let teacher_forced = teacher.as_ref().map(|t| score(t).0);
            // The newest real frame the model had: the last context frame when rolling out,
            // the previous frame when teacher-forced.
            let last_real = |h: usize| match p.regime {
                Regime::Autoregressive => w.start + t_ctx - 1,
                Regime::TeacherForced => w.start + t_ctx + h - 2,
            };
            let baseline_frames: Vec<&[u8]> =
                (1..=horizon).map(|h| frame_u8(w, last_real(h))).collect();
            let baseline = (1..=horizon)
                .map(|h| {
                    FrameMetrics::of(
                        baseline_frames[h - 1],
                        truth[h - 1],
                        fw,
                        fh,
                        palette.as_ref(),
                    )
                })
                .collect();
            let physics = match (&palette, &data.rules) {
                (Some(pal), Some(rules)) => {
                    let t = std::time::Instant::now();
                    let world = match &perturbed {
                        Some(_) => Some(self.world_futures(data, w, batch_data, &local)?),
                        None => None,
                    };
                    let t_world = t.elapsed().as_secs_f64();
                    let samples: Vec<&[Vec<u8>]> =
                        (0..k).map(|s| primary[i * k + s].as_slice()).collect();
                    let frames = physics::WindowFrames {
                        width: fw,
                        height: fh,
                        last_context: frame_u8(w, w.start + t_ctx - 1),
                        truth: &truth,
                        samples: &samples,
                        baseline: &baseline_frames,
                        counterfactual: perturbed.as_ref().zip(world.as_ref()).map(
                            |(model, (actual, other))| physics::CounterfactualFrames {
                                model: &model[i * k..(i + 1) * k],
                                world: actual,
                                world_perturbed: other,
                            },
                        ),
                    };
                    let series = physics::window_physics(&frames, pal, rules);
                    let t_physics = t.elapsed().as_secs_f64() - t_world;
                    self.add_cost(|c| {
                        c.counterfactual_world_s += t_world;
                        c.physics_s += t_physics;
                    });
                    series
                }
                _ => physics::PhysicsSeries::new(),
            };
            records.push(WindowRecord {
                window: *w,
                model,
                best_of_k: (k > 1).then_some(best),
                baseline,
                teacher_forced,
                physics,
            });
            if examples.contains(&w.id) {
                kept.push(ExampleFrames {
                    window: *w,
                    truth: truth.iter().map(|f| f.to_vec()).collect(),
                    model: primary[i * k].clone(),
                });
            }
        }
        Ok((records, kept))
    }

    /// The simulator's futures of window `w` from its stored state at the last context frame:
    /// with the recorded actions of the horizon, and with the perturbed ones.
    fn world_futures(
        &self,
        data: &EvalDataset,
        w: &Window,
        batch: &TrainData,
        local: &dyn Fn(&Window) -> WindowStart,
    ) -> anyhow::Result<(Frames, Frames)> {
        let p = self.protocol;
        let pert = p
            .counterfactual
            .context("no counterfactual perturbation in the protocol")?;
        let t0 = w.start + p.context - 1;
        let aw = batch.action_width();
        let ep = &batch.episodes[local(w).episode];
        let rows = ep
            .actions
            .get(t0 * aw..(t0 + p.horizon) * aw)
            .with_context(|| format!("episode {} has no actions at {t0}", w.episode))?;
        let other: Vec<f32> = rows
            .chunks_exact(aw.max(1))
            .flat_map(|r| pert.apply(r, &batch.action))
            .collect();
        Ok((
            data.simulate(w.episode, t0, rows)?,
            data.simulate(w.episode, t0, &other)?,
        ))
    }

    /// Predicted frames (RGB8) for every row (window-major, then sample) and step.
    fn rollouts(
        &self,
        data: &TrainData,
        windows: &[Window],
        regime: Regime,
        perturb: Option<Perturbation>,
        local: &dyn Fn(&Window) -> WindowStart,
    ) -> anyhow::Result<Vec<Vec<Vec<u8>>>> {
        let p = self.protocol;
        let (t_ctx, k) = (p.context, p.samples);
        let device = self.model.device();
        let rows: Vec<(&Window, usize)> = windows
            .iter()
            .flat_map(|w| (0..k).map(move |s| (w, s)))
            .collect();
        let mut noise = RowNoise::new(p.seed, rows.iter().map(|(w, s)| (w.id, *s)), regime);
        // Context of `t_ctx` real frames and actions from `t0` (relative to each window's start).
        let context = |t0: usize| -> anyhow::Result<(Tensor, Tensor)> {
            let mut frames = Vec::with_capacity(rows.len());
            let mut actions = Vec::with_capacity(rows.len());
            for (w, _) in &rows {
                let s = local(w);
                frames.push(data.frames(s.episode, s.t + t0, t_ctx, device)?);
                actions.push(data.actions(s.episode, s.t + t0, t_ctx, device)?);
            }
            Ok((Tensor::stack(&frames, 0)?, Tensor::stack(&actions, 0)?))
        };
        // The recorded action at frame `t` (relative) of every row, perturbed for a
        // counterfactual: [rows] or [rows, dim].
        let aw = data.action_width();
        let action_at = |t: usize| -> anyhow::Result<Tensor> {
            let Some(pert) = perturb else {
                let acts = rows
                    .iter()
                    .map(|(w, _)| {
                        let s = local(w);
                        data.actions(s.episode, s.t + t, 1, device)
                    })
                    .collect::<dreamyard_model::Result<Vec<_>>>()?;
                return Ok(Tensor::cat(&acts, 0)?);
            };
            let mut flat = Vec::with_capacity(rows.len() * aw);
            for (w, _) in &rows {
                let s = local(w);
                let at = (s.t + t) * aw;
                let row = data.episodes[s.episode]
                    .actions
                    .get(at..at + aw)
                    .with_context(|| format!("window {}: no action at frame {}", w.id, s.t + t))?;
                flat.extend(pert.apply(row, &data.action));
            }
            Ok(match &data.action {
                dreamyard_model::config::ActionSpace::Discrete { .. } => {
                    Tensor::from_vec(flat, rows.len(), device)?.to_dtype(DType::U32)?
                }
                dreamyard_model::config::ActionSpace::Continuous { .. }
                | dreamyard_model::config::ActionSpace::MultiHot { .. } => {
                    Tensor::from_vec(flat, (rows.len(), aw), device)?
                }
            })
        };
        let mut out = vec![Vec::with_capacity(p.horizon); rows.len()];
        let mut state: Option<dreamyard_model::RolloutState> = None;
        for h in 1..=p.horizon {
            // Autoregressive: one reset, then the model's own frames. Teacher-forced: a fresh
            // real context before every step.
            let mut st = match (regime, state.take()) {
                (Regime::Autoregressive, Some(s)) => s,
                _ => {
                    let t0 = if regime == Regime::TeacherForced {
                        h - 1
                    } else {
                        0
                    };
                    let (f, a) = context(t0)?;
                    self.model.reset(&f, &a)?
                }
            };
            let pred = self
                .model
                .step(&mut st, &action_at(t_ctx + h - 2)?, &mut noise)
                .with_context(|| format!("{} step {h}", regime.name()))?;
            state = Some(st);
            for (r, frame) in to_rgb8(&pred)?.into_iter().enumerate() {
                out[r].push(frame);
            }
        }
        Ok(out)
    }
}

/// RGB8 frames, one per step.
type Frames = Vec<Vec<u8>>;

/// Model frames [b, 3, h, w] in [-1, 1] -> RGB8 (HWC) per row.
fn to_rgb8(frames: &Tensor) -> anyhow::Result<Vec<Vec<u8>>> {
    let (b, c, h, w) = frames.dims4()?;
    if c != 3 {
        bail!("model produced {c}-channel frames, expected 3");
    }
    let v: Vec<f32> = frames
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let plane = h * w;
    Ok((0..b)
        .map(|i| {
            let base = i * 3 * plane;
            let mut px = Vec::with_capacity(3 * plane);
            for p in 0..plane {
                for ch in 0..3 {
                    let x = v[base + ch * plane + p];
                    px.push(((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8);
                }
            }
            px
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stride_and_fit() {
        let w = select_windows(&[(0, 10), (3, 5), (4, 13)], 2, 3, 3);
        let got: Vec<(u64, usize)> = w.iter().map(|w| (w.episode, w.start)).collect();
        assert_eq!(got, vec![(0, 0), (0, 3), (3, 0), (4, 0), (4, 3), (4, 6)]);
        assert!(w.iter().enumerate().all(|(i, w)| w.id == i));
    }

    #[test]
    fn shards_partition_whole_batches() {
        let all = shard_batches(23, 4, None);
        assert_eq!(all.len(), 6);
        assert_eq!(all[5], 20..23);
        for n in 1..=8 {
            let parts: Vec<_> = (0..n)
                .flat_map(|i| shard_batches(23, 4, Some(Shard { index: i, count: n })))
                .collect();
            assert_eq!(parts, all, "{n} shards");
        }
        assert!("2/2".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert_eq!("1/3".parse::<Shard>(), Ok(Shard { index: 1, count: 3 }));
    }

    #[test]
    fn best_of_k_takes_the_highest_psnr_sample_and_mean_skips_undefined_iou() {
        let m = |psnr, ssim, iou| FrameMetrics {
            psnr,
            ssim,
            iou: vec![iou],
        };
        let s = [
            m(20.0, 0.5, None),
            m(30.0, 0.4, Some(0.5)),
            m(25.0, 0.9, Some(1.0)),
        ];
        assert_eq!(FrameMetrics::best(&s), s[1]);
        let mean = FrameMetrics::mean(&s);
        assert!((mean.psnr - 25.0).abs() < 1e-12);
        assert_eq!(mean.iou, vec![Some(0.75)]);
        assert_eq!(example_ids(10, 4), vec![0, 2, 5, 7]);
        assert_eq!(example_ids(2, 4), vec![0, 1]);
    }

    #[test]
    fn row_noise_does_not_depend_on_batch_company() {
        let dev = Device::Cpu;
        let mut alone = RowNoise::new(7, [(5, 1)], Regime::Autoregressive);
        let mut shared = RowNoise::new(7, [(4, 0), (5, 1)], Regime::Autoregressive);
        for _ in 0..2 {
            let a: Vec<f32> = alone
                .randn(&[1, 3, 2, 2], &dev)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let b: Vec<f32> = shared
                .randn(&[2, 3, 2, 2], &dev)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(a, b[12..]);
        }
    }
}
