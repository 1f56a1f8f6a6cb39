//! The training loop: DIAMOND's denoiser objective on windows of recorded episodes, validation
//! on held-out episodes (loss and autoregressive-rollout PSNR), checkpoints that resume exactly,
//! and export to the native format the app loads.
//!
//! Objective (DIAMOND's `Denoiser.forward` with one step per window): draw
//! `sigma = exp(N(loc, scale))` clipped, corrupt the next frame with per-channel offset noise and
//! Gaussian noise of that level, and regress the network output `F` onto the preconditioned
//! target `(x - c_skip * noisy) / c_out` with a mean squared error.
//!
//! Output directory layout:
//! - `model.safetensors`, `config.json`: the latest exported model (native format).
//! - `checkpoint/`: `weights.safetensors`, `optimizer.safetensors`, `state.json` (step, RNG
//!   position, configs), replaced atomically (written to `checkpoint.tmp/`, then renamed).
//! - `metrics.jsonl`: one JSON object per logged step and per validation.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::denoiser::Denoiser;
use crate::error::{ModelError, Result};
use crate::inner_model::flatten_frames;
use crate::metrics::{PSNR_CAP_DB, psnr_unit};
use crate::sampler::SeededNoise;
use crate::train::config::TrainConfig;
use crate::train::data::{Batch, TrainData, WindowSampler, WindowStart};
use crate::train::init::{NOISE_EMB_KEY, init_params};
use crate::train::optim::{AdamW, Param, clip_factor, learning_rate};
use crate::world_model::WorldModel;

/// State-dict key of the first convolution's weight [c0, in_channels, 3, 3].
const CONV_IN_WEIGHT: &str = "inner_model.conv_in.weight";

/// Directory of the resumable checkpoint inside the output directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// The training log inside the output directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// Horizons at which validation reports rollout PSNR (those within the configured horizon).
pub const REPORT_HORIZONS: [usize; 3] = [1, 4, 16];

/// Which episodes train and which validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training episodes.
    pub train: Vec<usize>,
    /// Held-out episodes.
    pub validation: Vec<usize>,
}

impl Split {
    /// The last `n_val` of `n` episodes validate, the rest train.
    pub fn last(n: usize, n_val: usize) -> Result<Self> {
        if n <= n_val {
            return Err(ModelError::input(
                "training data",
                format!("more than {n_val} episodes (validation holds out {n_val})"),
                format!("{n} episodes"),
            ));
        }
        Ok(Self {
            train: (0..n - n_val).collect(),
            validation: (n - n_val..n).collect(),
        })
    }
}

/// What one optimiser step did.
#[derive(Debug, Clone, Serialize)]
pub struct StepStats {
    /// Steps done after this one.
    pub step: u64,
    /// Mean squared error of the batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
}

/// Validation results.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// Steps done.
    pub step: u64,
    /// Denoising loss on fixed held-out windows with fixed noise.
    pub val_loss: f64,
    /// `(horizon, mean PSNR in dB)` of autoregressive rollouts from real context frames.
    pub psnr: Vec<(usize, f64)>,
    /// The same for the copy-last-frame baseline.
    pub baseline_psnr: Vec<(usize, f64)>,
    /// Number of rollouts averaged.
    pub rollouts: usize,
}

/// Progress reported by [`Trainer::fit`].
#[derive(Debug)]
pub enum TrainEvent<'a> {
    /// A logged step.
    Step(&'a StepStats),
    /// A validation finished.
    Validation(&'a Validation),
    /// A checkpoint was written (and the model exported).
    Checkpoint {
        /// Steps done.
        step: u64,
    },
}

/// Serialised generator position.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RngState {
    seed: String,
    stream: u64,
    /// A u128 as a decimal string (JSON numbers cannot hold it).
    word_pos: String,
}

impl RngState {
    fn of(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    fn restore(&self, origin: &str) -> Result<ChaCha8Rng> {
        let bad = |field: &str| ModelError::config(origin, format!("rng.{field}"), "malformed");
        let bytes: Vec<u8> = (0..self.seed.len() / 2)
            .map(|i| u8::from_str_radix(self.seed.get(2 * i..2 * i + 2).unwrap_or(""), 16))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad("seed"))?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| bad("seed"))?;
        let pos: u128 = self.word_pos.parse().map_err(|_| bad("word_pos"))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// `checkpoint/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    step: u64,
    adam_updates: u64,
    rng: RngState,
    train_config: TrainConfig,
    model_config: ModelConfig,
    /// What a streamed run trains on ([`WindowStream::identity`]); absent for a dataset run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream: Option<serde_json::Value>,
}

/// Where a run's training windows come from.
#[derive(Debug, Clone)]
enum Source {
    /// Drawn uniformly, with the run's generator, from the training episodes of the data.
    Episodes(WindowSampler),
    /// Step `s` trains on a [`WindowStream`]'s windows for step `s`; the stream's identity, kept
    /// in the checkpoint so that a resumed run trains on the same stream.
    Stream(serde_json::Value),
}

/// Training windows made on demand (the app's live simulator), consumed in order.
///
/// The windows of step `s` are a function of `s` and of what [`WindowStream::identity`]
/// describes, never of what was asked before: that is what makes a resumed run see exactly
/// the windows the uninterrupted run would have seen, and no window is drawn twice.
pub trait WindowStream {
    /// What the stream is (source, policies, seed, lengths), as JSON: stored in the checkpoint;
    /// resuming on a stream with another identity is an error naming the difference.
    fn identity(&self) -> serde_json::Value;

    /// The windows of optimiser step `step` (0-based): `n` episodes of exactly `len` frames
    /// each, in a [`TrainData`] of the run's frame size, channels and action space.
    fn windows(&mut self, step: u64, n: usize, len: usize) -> Result<TrainData>;
}

/// A training run in memory.
#[derive(Debug)]
pub struct Trainer {
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    vars: HashMap<String, Var>,
    denoiser: Denoiser,
    opt: AdamW,
    step: u64,
    rng: ChaCha8Rng,
    device: Device,
    split: Split,
    source: Source,
}

impl Trainer {
    /// A fresh run on `data`: the model is initialised from `cfg.training.seed`.
    pub fn new(cfg: &TrainConfig, data: &TrainData, device: &Device) -> Result<Self> {
        Self::build(cfg, data, None, device)
    }

    /// A fresh run that trains on a [`WindowStream`] with this identity ([`Trainer::fit_stream_until`])
    /// and validates on every episode of `validation`, which also gives the frame size and
    /// action space.
    pub fn new_streamed(
        cfg: &TrainConfig,
        validation: &TrainData,
        identity: serde_json::Value,
        device: &Device,
    ) -> Result<Self> {
        Self::build(cfg, validation, Some(identity), device)
    }

    fn build(
        cfg: &TrainConfig,
        data: &TrainData,
        stream: Option<serde_json::Value>,
        device: &Device,
    ) -> Result<Self> {
        data.validate()?;
        let model_cfg = cfg.model_config(&data.action, data.channels, data.frame, data.fps);
        model_cfg.validate()?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let denoiser = Denoiser::new(&model_cfg.denoiser, vb)?;
        let vars: HashMap<String, Var> = varmap
            .data()
            .lock()
            .map_err(|_| ModelError::Noise("variable map lock poisoned".into()))?
            .clone();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.training.seed);
        init_params(&vars, &model_cfg.denoiser.inner_model, &mut rng)?;
        let mut names: Vec<&String> = vars.keys().filter(|k| *k != NOISE_EMB_KEY).collect();
        names.sort();
        let params = names
            .into_iter()
            .map(|name| {
                let var = vars[name].clone();
                // Decoupled weight decay on conv/linear weights only (not biases, norms,
                // embeddings), as DIAMOND's `configure_opt`.
                let decay = var.rank() >= 2 && !name.contains("act_emb");
                Param {
                    name: name.clone(),
                    var,
                    decay,
                }
            })
            .collect();
        let opt = AdamW::new(params, &cfg.training)?;
        let context = model_cfg.denoiser.inner_model.num_steps_conditioning;
        // With self-generated context, a window also holds the real frames the rollout starts
        // from.
        let span = context + cfg.training.rollout_context;
        let (split, source) = match stream {
            Some(identity) => {
                let split = Split {
                    train: Vec::new(),
                    validation: (0..data.episodes.len()).collect(),
                };
                if WindowSampler::new(data, &split.validation, context).is_empty() {
                    return Err(ModelError::input(
                        "validation data",
                        format!("episodes longer than the context ({context} frames)"),
                        "no window",
                    ));
                }
                (split, Source::Stream(identity))
            }
            None => {
                let split = Split::last(data.episodes.len(), cfg.training.validation_episodes)?;
                let train_windows = WindowSampler::new(data, &split.train, span);
                if train_windows.is_empty() {
                    return Err(ModelError::input(
                        "training data",
                        format!(
                            "training episodes longer than the context and rollout ({span} frames)"
                        ),
                        "no window",
                    ));
                }
                (split, Source::Episodes(train_windows))
            }
        };
        Ok(Self {
            cfg: cfg.clone(),
            model_cfg,
            vars,
            denoiser,
            opt,
            step: 0,
            rng,
            device: device.clone(),
            split,
            source,
        })
    }

    /// Continues the run saved in `out_dir/checkpoint`. The config may change only in its
    /// logging schedule and total step count; the data must give the same model config.
    pub fn resume(
        out_dir: &Path,
        cfg: &TrainConfig,
        data: &TrainData,
        device: &Device,
    ) -> Result<Self> {
        Self::resume_with(out_dir, cfg, data, None, device)
    }

    /// [`Trainer::resume`] for a streamed run ([`Trainer::new_streamed`]): the stream must have
    /// the identity the checkpoint records.
    pub fn resume_streamed(
        out_dir: &Path,
        cfg: &TrainConfig,
        validation: &TrainData,
        identity: serde_json::Value,
        device: &Device,
    ) -> Result<Self> {
        Self::resume_with(out_dir, cfg, validation, Some(identity), device)
    }

    fn resume_with(
        out_dir: &Path,
        cfg: &TrainConfig,
        data: &TrainData,
        stream: Option<serde_json::Value>,
        device: &Device,
    ) -> Result<Self> {
        let dir = existing_checkpoint(out_dir).ok_or_else(|| ModelError::Io {
            path: out_dir.join(CHECKPOINT_DIR),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no checkpoint to resume from",
            ),
        })?;
        let (state, origin): (CheckpointState, _) = read_state(&dir)?;
        if let Some(field) = cfg.incompatible_field(&state.train_config) {
            return Err(ModelError::config(
                &origin,
                field,
                "differs between the given config and the checkpoint's; resume needs the same value",
            ));
        }
        match (&state.stream, &stream) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(ModelError::config(
                    &origin,
                    "stream",
                    "the run trained on a live stream (train --scene); resume it the same way",
                ));
            }
            (None, Some(_)) => {
                return Err(ModelError::config(
                    &origin,
                    "stream",
                    "the run trained on a dataset (train --dataset); resume it the same way",
                ));
            }
            (Some(have), Some(want)) => {
                if let Some((field, w, h)) = first_difference(want, have, "stream") {
                    return Err(ModelError::config(
                        &origin,
                        field,
                        format!(
                            "the run's stream has {h}, this one {w}; resume needs the same scene, \
                             policies, seed and lengths"
                        ),
                    ));
                }
            }
        }
        let mut trainer = Self::build(cfg, data, stream, device)?;
        if trainer.model_cfg != state.model_config {
            return Err(ModelError::config(
                &origin,
                "model_config",
                "the dataset implies another model (action space, frame size or channels) than the checkpoint's",
            ));
        }
        let weights_path = dir.join("weights.safetensors");
        let weights = load_safetensors(&weights_path)?;
        trainer.load_weights(&weights, &weights_path.display().to_string())?;
        let opt_path = dir.join("optimizer.safetensors");
        let moments = load_safetensors(&opt_path)?;
        trainer.opt.load_state_tensors(
            &moments,
            state.adam_updates,
            &opt_path.display().to_string(),
        )?;
        trainer.rng = state.rng.restore(&origin)?;
        trainer.step = state.step;
        Ok(trainer)
    }

    /// A fresh run (step 0, new optimiser state, `cfg`'s schedule) whose weights start from
    /// `init`: fine-tuning a trained model on new data or with another objective. `init` must
    /// have the denoiser this config and data imply (network size, action space, EDM
    /// constants), except that the config may add an [`ActionMap`](crate::ActionMap) to a model
    /// without one: its input channels then start with zero weights, so the fine-tune starts
    /// from exactly `init`'s predictions. `origin` names it in errors.
    pub fn from_weights(
        cfg: &TrainConfig,
        data: &TrainData,
        device: &Device,
        init: &Checkpoint,
        origin: &str,
    ) -> Result<Self> {
        Self::new(cfg, data, device)?.start_from(init, origin)
    }

    /// This fresh run (of [`Trainer::new`] or [`Trainer::new_streamed`]) with its weights
    /// taken from `init`, as [`Trainer::from_weights`] says.
    pub fn start_from(self, init: &Checkpoint, origin: &str) -> Result<Self> {
        let trainer = self;
        let want_cfg = &trainer.model_cfg.denoiser;
        let mut have_cfg = init.config.denoiser.clone();
        let adds_action_map =
            want_cfg.inner_model.action_map.is_some() && have_cfg.inner_model.action_map.is_none();
        if adds_action_map {
            have_cfg.inner_model.action_map = want_cfg.inner_model.action_map;
        }
        let want = serde_json::to_value(want_cfg);
        let have = serde_json::to_value(&have_cfg);
        if let (Ok(want), Ok(have)) = (want, have)
            && let Some((field, w, h)) = first_difference(&want, &have, "denoiser")
        {
            return Err(ModelError::config(
                origin,
                field,
                format!(
                    "the training config and dataset imply {w}, the model to start from has {h}; \
                     fine-tuning needs the same network, action space and EDM constants"
                ),
            ));
        }
        if adds_action_map {
            let mut weights = init.tensors.clone();
            let key = CONV_IN_WEIGHT;
            let w = weights.get(key).ok_or_else(|| ModelError::MissingTensor {
                name: format!("{origin}: {key}"),
                expected: vec![],
            })?;
            let (c0, c_in, kh, kw) = w.dims4()?;
            let extra = want_cfg.inner_model.in_channels().saturating_sub(c_in);
            let zeros = Tensor::zeros((c0, extra, kh, kw), w.dtype(), w.device())?;
            let widened = Tensor::cat(&[w, &zeros], 1)?; // [c0, c_in + T, kh, kw]
            weights.insert(key.to_string(), widened);
            trainer.load_weights(&weights, origin)?;
        } else {
            trainer.load_weights(&init.tensors, origin)?;
        }
        Ok(trainer)
    }

    /// Copies `weights` into the trainable variables; every variable must be there with its
    /// shape. `origin` names the file in errors.
    fn load_weights(&self, weights: &HashMap<String, Tensor>, origin: &str) -> Result<()> {
        for (name, var) in &self.vars {
            let t = weights.get(name).ok_or_else(|| ModelError::MissingTensor {
                name: format!("{origin}: {name}"),
                expected: var.dims().to_vec(),
            })?;
            if t.dims() != var.dims() {
                return Err(ModelError::ShapeMismatch {
                    name: format!("{origin}: {name}"),
                    expected: var.dims().to_vec(),
                    found: t.dims().to_vec(),
                });
            }
            var.set(&t.to_dtype(var.dtype())?.to_device(&self.device)?)?;
        }
        Ok(())
    }

    /// Optimiser steps done.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The model configuration being trained.
    pub fn model_config(&self) -> &ModelConfig {
        &self.model_cfg
    }

    /// The episode split.
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// Denoising loss of `batch` with noise levels and noise drawn from `rng`: a scalar tensor
    /// that carries gradients to the weights.
    fn loss(&self, denoiser: &Denoiser, batch: &Batch, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let (b, c, h, w) = batch.next_obs.dims4()?;
        let sd = &self.cfg.training.sigma_distribution;
        let sigma: Vec<f32> = (0..b)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                (z * sd.scale + sd.loc)
                    .exp()
                    .clamp(sd.sigma_min, sd.sigma_max) as f32
            })
            .collect();
        let randn = |rng: &mut ChaCha8Rng, shape: &[usize]| -> Result<Tensor> {
            let n = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
            Ok(Tensor::from_vec(v, shape, &self.device)?)
        };
        let offset = (randn(rng, &[b, c, 1, 1])? * self.model_cfg.denoiser.sigma_offset_noise)?;
        let noise = randn(rng, &[b, c, h, w])?;
        // From the host values: on a GPU nothing is read back for them.
        let cs = denoiser.conditioners_at(&sigma)?;
        let sigma_t = Tensor::from_vec(sigma, (b, 1, 1, 1), &self.device)?;
        let noisy = (batch.next_obs.broadcast_add(&offset)? + noise.broadcast_mul(&sigma_t)?)?;
        let col = |t: &Tensor| t.reshape((b, 1, 1, 1));
        let mut obs = flatten_frames(&batch.obs)?; // [b, T*C, h, w]
        let context_noise = self.cfg.training.context_noise;
        if context_noise > 0.0 {
            // Drawn only when enabled, so runs without it keep DIAMOND's random stream.
            let levels: Vec<f32> = (0..b)
                .map(|_| (rng.random::<f64>() * context_noise) as f32)
                .collect();
            let levels = Tensor::from_vec(levels, (b, 1, 1, 1), &self.device)?;
            let noise = randn(rng, obs.dims())?;
            obs = (obs + noise.broadcast_mul(&levels)?)?;
        }
        let obs = (obs / self.model_cfg.denoiser.sigma_data)?;
        let f = denoiser.inner_model().forward(
            &noisy.broadcast_mul(&col(&cs.c_in)?)?,
            &cs.c_noise,
            &obs,
            &batch.act,
        )?; // [b, c, h, w]
        let target = (batch.next_obs.clone() - noisy.broadcast_mul(&col(&cs.c_skip)?)?)?
            .broadcast_div(&col(&cs.c_out)?)?;
        let err = (f - target)?.sqr()?; // [b, c, h, w]
        let training = &self.cfg.training;
        if training.change_weight > 0.0 {
            let t = batch.obs.dim(1)?;
            let newest = batch.obs.narrow(1, t - 1, 1)?.squeeze(1)?; // [b, c, h, w]
            let w = change_weights(
                &newest,
                &batch.next_obs,
                training.change_weight,
                training.change_threshold,
            )?; // [b, 1, h, w]
            // The weighted mean: sum(w e^2) / sum(w) over pixels and channels.
            let weighted = err.broadcast_mul(&w)?.mean_all()?;
            return Ok(weighted.broadcast_div(&w.mean_all()?)?);
        }
        Ok(err.mean_all()?)
    }

    /// Turns a batch of `T + k` context frames (`k = rollout_context`) into one of `T`: for the
    /// first `rollout_fraction` of the windows, the model rolls out `k` frames from the first `T`
    /// real ones with the recorded actions (noise seeded by `seed`) and the context becomes the
    /// newest `T` frames of real + generated; the other windows keep their newest `T` real
    /// frames. Actions and the target are the recorded ones.
    fn self_generated_context(&self, batch: Batch, seed: u64) -> Result<Batch> {
        let t = self.model_cfg.denoiser.inner_model.num_steps_conditioning;
        let k = self.cfg.training.rollout_context;
        let b = batch.obs.dim(0)?;
        let n = ((b as f64) * self.cfg.training.rollout_fraction).round() as usize;
        let act = batch.act.narrow(1, k, t)?; // [b, T] or [b, T, dim]
        let real = batch.obs.narrow(1, k, t)?; // [b, T, C, h, w]
        if n == 0 {
            return Ok(Batch {
                obs: real,
                act,
                next_obs: batch.next_obs,
            });
        }
        let model = self.world_model()?;
        let first = batch.obs.narrow(0, 0, n)?; // [n, T + k, C, h, w]
        let first_act = batch.act.narrow(0, 0, n)?;
        let mut state = model.reset(&first.narrow(1, 0, t)?, &first_act.narrow(1, 0, t)?)?;
        let mut noise = SeededNoise::new(seed);
        let mut frames = vec![first.narrow(1, 0, t)?];
        for j in 0..k {
            // Step j takes the action recorded at the newest frame so far (frame T - 1 + j).
            let a = first_act.narrow(1, t - 1 + j, 1)?.squeeze(1)?;
            frames.push(model.step(&mut state, &a, &mut noise)?.unsqueeze(1)?); // [n, 1, C, h, w]
        }
        let rolled = Tensor::cat(&frames, 1)?.narrow(1, k, t)?; // [n, T, C, h, w]
        let obs = if n == b {
            rolled
        } else {
            Tensor::cat(&[rolled, real.narrow(0, n, b - n)?], 0)?
        };
        Ok(Batch {
            obs,
            act,
            next_obs: batch.next_obs,
        })
    }

    /// One optimiser step on a batch drawn from the training episodes.
    pub fn train_step(&mut self, data: &TrainData) -> Result<StepStats> {
        let Source::Episodes(windows) = &self.source else {
            return Err(ModelError::input(
                "training",
                "a run that trains on a dataset",
                "a streamed run (train it with fit_stream_until)",
            ));
        };
        let span = self.span();
        let starts = windows.sample(self.cfg.training.batch_size, &mut self.rng);
        let batch = data.batch(&starts, span, &self.device)?;
        self.step_on(batch)
    }

    /// One optimiser step on the stream's windows for this step.
    pub fn train_step_streamed(&mut self, stream: &mut dyn WindowStream) -> Result<StepStats> {
        if !matches!(self.source, Source::Stream(_)) {
            return Err(ModelError::input(
                "training",
                "a streamed run",
                "a run that trains on a dataset",
            ));
        }
        let span = self.span();
        let n = self.cfg.training.batch_size;
        let windows = stream.windows(self.step, n, span + 1)?;
        let inner = &self.model_cfg.denoiser.inner_model;
        let frame = self.model_cfg.frame;
        if windows.episodes.len() != n
            || windows.episodes.iter().any(|e| e.len != span + 1)
            || windows.channels != inner.img_channels
            || frame.is_some_and(|f| f != windows.frame)
            || inner.action.dim() != windows.action_width()
        {
            return Err(ModelError::input(
                "training stream",
                format!(
                    "{n} windows of {} frames of the run's frame size, channels and actions",
                    span + 1
                ),
                format!(
                    "{} windows ({:?} frames) of {}x{}x{}, actions of width {}",
                    windows.episodes.len(),
                    windows.episodes.iter().map(|e| e.len).collect::<Vec<_>>(),
                    windows.frame.width,
                    windows.frame.height,
                    windows.channels,
                    windows.action_width()
                ),
            ));
        }
        windows.validate()?;
        let starts: Vec<WindowStart> = (0..n)
            .map(|episode| WindowStart { episode, t: 0 })
            .collect();
        let batch = windows.batch(&starts, span, &self.device)?;
        self.step_on(batch)
    }

    /// Context frames per training window: the model's context plus the real frames a
    /// self-generated context starts from.
    fn span(&self) -> usize {
        self.model_cfg.denoiser.inner_model.num_steps_conditioning
            + self.cfg.training.rollout_context
    }

    /// The optimiser step on one batch of `span` context frames.
    fn step_on(&mut self, mut batch: Batch) -> Result<StepStats> {
        let rollout = self.cfg.training.rollout_context;
        if rollout > 0 {
            let seed: u64 = self.rng.random();
            batch = self.self_generated_context(batch, seed)?;
        }
        let mut rng = self.rng.clone();
        let loss = self.loss(&self.denoiser, &batch, &mut rng)?;
        self.rng = rng;
        let loss_value = f64::from(loss.to_scalar::<f32>()?);
        if !loss_value.is_finite() {
            return Err(ModelError::input(
                "training",
                "a finite loss",
                format!(
                    "{loss_value} at step {} (diverged; lower the learning rate)",
                    self.step + 1
                ),
            ));
        }
        let grads = loss.backward()?;
        let grad_norm = self.opt.grad_norm(&grads)?;
        let lr = learning_rate(&self.cfg.training, self.step);
        let scale = clip_factor(grad_norm, self.cfg.training.max_grad_norm);
        self.opt.step(&grads, lr, scale)?;
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss: loss_value,
            lr,
            grad_norm,
        })
    }

    /// The current weights as an inference model (no gradient tracking).
    pub fn world_model(&self) -> Result<WorldModel> {
        self.checkpoint_now()?.build(&self.device)
    }

    /// The current weights and config as a [`Checkpoint`] (copies on the CPU).
    pub fn checkpoint_now(&self) -> Result<Checkpoint> {
        let tensors = self
            .vars
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    v.as_tensor().detach().to_device(&Device::Cpu)?.copy()?,
                ))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Checkpoint {
            config: self.model_cfg.clone(),
            tensors,
        })
    }

    /// Validation loss on fixed held-out windows and autoregressive rollout PSNR.
    pub fn validate(&self, data: &TrainData) -> Result<Validation> {
        let model = self.world_model()?;
        let context = self.model_cfg.denoiser.inner_model.num_steps_conditioning;
        let t = &self.cfg.training;

        // Loss: the same windows and noise at every validation, so values compare over time.
        let windows = WindowSampler::new(data, &self.split.validation, context).spread(64);
        let mut rng = ChaCha8Rng::seed_from_u64(t.seed ^ 0x7661_6c69_6461_7465);
        let (mut sum, mut count) = (0f64, 0usize);
        for chunk in windows.chunks(t.batch_size) {
            let batch = data.batch(chunk, context, &self.device)?;
            let l = self.loss(model.denoiser(), &batch, &mut rng)?;
            sum += f64::from(l.to_scalar::<f32>()?) * chunk.len() as f64;
            count += chunk.len();
        }
        let val_loss = if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        };

        // Rollouts: as long as the held-out episodes allow, up to the configured horizon.
        let longest = self
            .split
            .validation
            .iter()
            .map(|&e| data.episodes[e].len)
            .max()
            .unwrap_or(0);
        let horizon = t.rollout_horizon.min(longest.saturating_sub(context));
        let (mut psnr, mut baseline_psnr, mut rollouts) = (Vec::new(), Vec::new(), 0);
        if horizon > 0 {
            let starts = WindowSampler::new(data, &self.split.validation, context + horizon - 1)
                .spread(t.validation_rollouts);
            rollouts = starts.len();
            let mut frames = Vec::with_capacity(starts.len());
            let mut ctx_actions = Vec::with_capacity(starts.len());
            for s in &starts {
                frames.push(data.frames(s.episode, s.t, context + horizon, &self.device)?);
                ctx_actions.push(data.actions(
                    s.episode,
                    s.t,
                    context + horizon - 1,
                    &self.device,
                )?);
            }
            let frames = Tensor::stack(&frames, 0)?; // [n, T+H, C, h, w]
            let actions = Tensor::stack(&ctx_actions, 0)?; // [n, T+H-1] or [n, T+H-1, dim]
            let mut state = model.reset(
                &frames.narrow(1, 0, context)?,
                &actions.narrow(1, 0, context)?,
            )?;
            let mut noise = SeededNoise::new(t.seed ^ 0x0072_6f6c_6c6f_7574);
            let last_ctx = frames.narrow(1, context - 1, 1)?.squeeze(1)?;
            for h in 1..=horizon {
                let act = actions.narrow(1, context + h - 2, 1)?.squeeze(1)?;
                let pred = model.step(&mut state, &act, &mut noise)?; // [n, C, h, w]
                if REPORT_HORIZONS.contains(&h) || h == horizon {
                    let truth = frames.narrow(1, context + h - 1, 1)?.squeeze(1)?;
                    psnr.push((h, mean_psnr(&pred, &truth)?));
                    baseline_psnr.push((h, mean_psnr(&last_ctx, &truth)?));
                }
            }
        }
        Ok(Validation {
            step: self.step,
            val_loss,
            psnr,
            baseline_psnr,
            rollouts,
        })
    }

    /// Writes the resumable checkpoint into `out_dir/checkpoint` (atomically replacing the
    /// previous one) and exports the model as `out_dir/model.safetensors` + `config.json`.
    pub fn save(&self, out_dir: &Path) -> Result<()> {
        let ckpt = self.checkpoint_now()?;
        let tmp = out_dir.join(format!("{CHECKPOINT_DIR}.tmp"));
        if tmp.exists() {
            remove_dir(&tmp)?;
        }
        create_dir(&tmp)?;
        save_safetensors(&ckpt.tensors, &tmp.join("weights.safetensors"))?;
        let moments = self
            .opt
            .state_tensors()
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        save_safetensors(&moments, &tmp.join("optimizer.safetensors"))?;
        let state = CheckpointState {
            step: self.step,
            adam_updates: self.opt.updates,
            rng: RngState::of(&self.rng),
            train_config: self.cfg.clone(),
            model_config: self.model_cfg.clone(),
            stream: match &self.source {
                Source::Stream(identity) => Some(identity.clone()),
                Source::Episodes(_) => None,
            },
        };
        let json = serde_json::to_string_pretty(&state)
            .map_err(|e| ModelError::config("checkpoint state", "(serialize)", e.to_string()))?;
        write_file(&tmp.join("state.json"), json.as_bytes())?;
        // Swap: the old checkpoint stays readable until the new one is in place.
        let live = out_dir.join(CHECKPOINT_DIR);
        let old = out_dir.join(format!("{CHECKPOINT_DIR}.old"));
        if old.exists() {
            remove_dir(&old)?;
        }
        if live.exists() {
            rename(&live, &old)?;
        }
        rename(&tmp, &live)?;
        if old.exists() {
            remove_dir(&old)?;
        }
        export_native(&ckpt, out_dir)
    }

    /// Trains until the configured step count or until `stop` is set, logging to
    /// `out_dir/metrics.jsonl`, validating and checkpointing on schedule (and at the end).
    pub fn fit(
        &mut self,
        data: &TrainData,
        out_dir: &Path,
        stop: &AtomicBool,
        on_event: &mut dyn FnMut(TrainEvent<'_>),
    ) -> Result<()> {
        let steps = self.cfg.training.steps;
        self.fit_until(data, out_dir, steps, stop, on_event)
    }

    /// [`Trainer::fit`] that ends at step `until` (at most the configured step count), with a
    /// validation and a checkpoint there. The learning-rate schedule stays the configured run's,
    /// so resuming later continues exactly as if the run had not stopped.
    pub fn fit_until(
        &mut self,
        data: &TrainData,
        out_dir: &Path,
        until: u64,
        stop: &AtomicBool,
        on_event: &mut dyn FnMut(TrainEvent<'_>),
    ) -> Result<()> {
        self.fit_loop(data, None, out_dir, until, stop, on_event)
    }

    /// [`Trainer::fit_until`] for a streamed run: training windows come from `stream`,
    /// validation from every episode of `validation`.
    pub fn fit_stream_until(
        &mut self,
        validation: &TrainData,
        stream: &mut dyn WindowStream,
        out_dir: &Path,
        until: u64,
        stop: &AtomicBool,
        on_event: &mut dyn FnMut(TrainEvent<'_>),
    ) -> Result<()> {
        self.fit_loop(validation, Some(stream), out_dir, until, stop, on_event)
    }

    fn fit_loop(
        &mut self,
        data: &TrainData,
        mut stream: Option<&mut dyn WindowStream>,
        out_dir: &Path,
        until: u64,
        stop: &AtomicBool,
        on_event: &mut dyn FnMut(TrainEvent<'_>),
    ) -> Result<()> {
        create_dir(out_dir)?;
        let log_path = out_dir.join(METRICS_FILE);
        truncate_log_after(&log_path, self.step)?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| ModelError::Io {
                path: log_path.clone(),
                source,
            })?;
        let mut write_log = |value: serde_json::Value| -> Result<()> {
            writeln!(log, "{value}").map_err(|source| ModelError::Io {
                path: log_path.clone(),
                source,
            })
        };
        let t = self.cfg.training.clone();
        let started = Instant::now();
        let mut saved_at = self.step;
        let end = until.min(t.steps);
        while self.step < end && !stop.load(Ordering::Relaxed) {
            let stats = match stream.as_deref_mut() {
                Some(stream) => self.train_step_streamed(stream)?,
                None => self.train_step(data)?,
            };
            let s = stats.step;
            let last = s == end;
            if s % t.log_every == 0 || last {
                write_log(serde_json::json!({
                    "kind": "train", "step": s, "loss": stats.loss, "lr": stats.lr,
                    "grad_norm": stats.grad_norm,
                    "elapsed_s": started.elapsed().as_secs_f64(),
                }))?;
                on_event(TrainEvent::Step(&stats));
            }
            if s % t.validate_every == 0 || last {
                let v = self.validate(data)?;
                let mut entry = serde_json::json!({
                    "kind": "validation", "step": s, "val_loss": v.val_loss, "rollouts": v.rollouts,
                });
                for (h, p) in &v.psnr {
                    entry[format!("psnr_h{h}")] = serde_json::json!(p);
                }
                for (h, p) in &v.baseline_psnr {
                    entry[format!("baseline_psnr_h{h}")] = serde_json::json!(p);
                }
                write_log(entry)?;
                on_event(TrainEvent::Validation(&v));
            }
            if s % t.checkpoint_every == 0 || last {
                self.save(out_dir)?;
                saved_at = s;
                on_event(TrainEvent::Checkpoint { step: s });
            }
        }
        if saved_at != self.step {
            self.save(out_dir)?;
            on_event(TrainEvent::Checkpoint { step: self.step });
        }
        Ok(())
    }
}

/// The first place where JSON values `want` and `have` differ: `(dotted path, want, have)`.
fn first_difference(
    want: &serde_json::Value,
    have: &serde_json::Value,
    path: &str,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            let mut keys: Vec<&String> = w.keys().chain(h.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let null = Value::Null;
                let (a, b) = (w.get(k).unwrap_or(&null), h.get(k).unwrap_or(&null));
                first_difference(a, b, &format!("{path}.{k}"))
            })
        }
        _ if want == have => None,
        _ => Some((path.to_string(), want.to_string(), have.to_string())),
    }
}

/// Per-pixel loss weights of `training.change_weight`: `1 + weight` where `next` differs from
/// `newest` by more than `threshold` in any channel, 1 elsewhere. Frames [b, c, h, w]; the
/// weights [b, 1, h, w] carry no gradient.
fn change_weights(newest: &Tensor, next: &Tensor, weight: f64, threshold: f64) -> Result<Tensor> {
    let diff = (next - newest)?.detach().abs()?.max_keepdim(1)?; // [b, 1, h, w]
    let changed = diff.gt(threshold)?.to_dtype(next.dtype())?;
    Ok(((changed * weight)? + 1.0)?)
}

/// Whether `out_dir` holds a checkpoint (possibly only the previous one, if a save was cut off).
pub fn has_checkpoint(out_dir: &Path) -> bool {
    existing_checkpoint(out_dir).is_some()
}

/// The step of the checkpoint in `out_dir` (the one [`Trainer::resume`] would continue from),
/// read without loading any weights; `None` without a checkpoint.
pub fn checkpoint_step(out_dir: &Path) -> Result<Option<u64>> {
    #[derive(Deserialize)]
    struct Step {
        step: u64,
    }
    existing_checkpoint(out_dir)
        .map(|dir| read_state::<Step>(&dir).map(|(s, _)| s.step))
        .transpose()
}

/// A checkpoint's `state.json` (or the part of it that `T` names), and its path for errors.
fn read_state<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<(T, String)> {
    let state_path = dir.join("state.json");
    let origin = state_path.display().to_string();
    let text = read_to_string(&state_path)?;
    let state = dreamyard_fieldpath::from_json_str(&text)
        .map_err(|e| ModelError::config(&origin, e.path.to_string(), e.message()))?;
    Ok((state, origin))
}

fn existing_checkpoint(out_dir: &Path) -> Option<PathBuf> {
    [CHECKPOINT_DIR.to_string(), format!("{CHECKPOINT_DIR}.old")]
        .into_iter()
        .map(|d| out_dir.join(d))
        .find(|d| d.join("state.json").is_file())
}

/// Mean PSNR over the batch (dB, frames in [-1, 1]), each frame's capped at [`PSNR_CAP_DB`] (a still scene copied
/// exactly would otherwise make the mean infinite, logged as `null`).
fn mean_psnr(pred: &Tensor, truth: &Tensor) -> Result<f64> {
    let n = pred.dim(0)?;
    let mut sum = 0.0;
    for i in 0..n {
        sum += psnr_unit(&pred.get(i)?, &truth.get(i)?)?.min(PSNR_CAP_DB);
    }
    Ok(sum / n.max(1) as f64)
}

/// Drops log entries past `step` (left by a run that went on after its last checkpoint), so a
/// resumed run's log reads as one run.
fn truncate_log_after(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        write_file(path, kept.as_bytes())?;
    }
    Ok(())
}

fn export_native(ckpt: &Checkpoint, out_dir: &Path) -> Result<()> {
    // Export into a temporary directory first, then move the files over the live ones, so the
    // app never sees a half-written model.
    let tmp = out_dir.join("export.tmp");
    if tmp.exists() {
        remove_dir(&tmp)?;
    }
    ckpt.save_native(&tmp)?;
    for name in [
        crate::checkpoint::NATIVE_CONFIG,
        crate::checkpoint::NATIVE_WEIGHTS,
    ] {
        rename(&tmp.join(name), &out_dir.join(name))?;
    }
    remove_dir(&tmp)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    rename(&tmp, path)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(io_err(to))
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(io_err(path))
}

fn remove_dir(path: &Path) -> Result<()> {
    std::fs::remove_dir_all(path).map_err(io_err(path))
}

fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    candle_core::safetensors::save(tensors, path).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn load_safetensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::{ActionSpace, FrameSize};
    use crate::train::data::{EpisodeData, WindowStart};

    fn data() -> TrainData {
        let episode = |seed: u8| EpisodeData {
            frames_hwc: (0..12 * 8 * 8 * 3)
                .map(|i: usize| (i as u8).wrapping_mul(seed))
                .collect(),
            actions: (0..12u8).map(|i| f32::from(i % 3)).collect(),
            len: 12,
        };
        TrainData {
            frame: FrameSize {
                height: 8,
                width: 8,
            },
            channels: 3,
            action: ActionSpace::Discrete { num_actions: 3 },
            fps: None,
            episodes: vec![episode(3), episode(7), episode(11)],
        }
    }

    fn config(extra: &str) -> TrainConfig {
        let text = format!(
            "[model]\ncond_channels = 16\ndepths = [1, 1]\nchannels = [8, 8]\n\
             attn_depths = [false, false]\n[sampler]\nnum_steps_denoising = 2\n\
             [training]\nsteps = 10\nbatch_size = 4\nlearning_rate = 1e-3\n\
             validation_episodes = 1\n{extra}"
        );
        TrainConfig::from_toml_str(&text, "test.toml").unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// The test data and a trainer with `extra` settings after 3 steps, so the model's frames
    /// are not all alike.
    fn trained(extra: &str) -> (TrainData, Trainer) {
        let d = data();
        let trainer = trained_on(&d, extra);
        (d, trainer)
    }

    /// A trainer on `d` with `extra` settings after 3 steps.
    fn trained_on(d: &TrainData, extra: &str) -> Trainer {
        let mut trainer = Trainer::new(&config(extra), d, &Device::Cpu).unwrap();
        for _ in 0..3 {
            trainer.train_step(d).unwrap();
        }
        trainer
    }

    /// [`data`] with (x, y) position actions on the 8 x 8 frame, for action maps.
    fn position_data() -> TrainData {
        let mut d = data();
        d.action = ActionSpace::Continuous {
            dim: 2,
            low: vec![0.0, 0.0],
            high: vec![8.0, 8.0],
        };
        for (e, episode) in d.episodes.iter_mut().enumerate() {
            episode.actions = (0..episode.len * 2)
                .map(|i| ((i * 3 + e) % 8) as f32 + 0.5)
                .collect();
        }
        d
    }

    #[test]
    fn a_copied_frame_counts_as_the_cap_not_as_an_infinite_mean() {
        let dev = Device::Cpu;
        let truth = Tensor::zeros((2, 3, 4, 4), DType::F32, &dev).unwrap();
        // One exact copy and one frame off by one 8-bit level (48.13 dB) everywhere.
        let off = Tensor::stack(
            &[
                truth.get(0).unwrap(),
                (truth.get(1).unwrap() + 2.0 / 255.0).unwrap(),
            ],
            0,
        )
        .unwrap();
        let mean = mean_psnr(&off, &truth).unwrap();
        let expected = (PSNR_CAP_DB + 20.0 * 255f64.log10()) / 2.0;
        assert!((mean - expected).abs() < 1e-3, "{mean} vs {expected}");
    }

    #[test]
    fn an_action_map_added_to_a_trained_model_starts_from_its_predictions() {
        let d = position_data();
        let plain = trained_on(&d, "");
        let init = plain.checkpoint_now().unwrap();
        let map_cfg = config("[model.action_map]\nsigma = 1.0");
        let mut mapped = Trainer::from_weights(&map_cfg, &d, &Device::Cpu, &init, "plain").unwrap();
        let widened = mapped.vars[CONV_IN_WEIGHT].as_tensor().clone();
        assert_eq!(widened.dims(), &[8, 15 + 4, 3, 3]);
        assert_eq!(
            values(&widened.narrow(1, 0, 15).unwrap()),
            values(&init.tensors[CONV_IN_WEIGHT])
        );
        assert!(
            values(&widened.narrow(1, 15, 4).unwrap())
                .iter()
                .all(|&v| v == 0.0)
        );

        // Same predictions as the model it came from, whatever the actions...
        let batch = d
            .batch(
                &[
                    WindowStart { episode: 0, t: 1 },
                    WindowStart { episode: 2, t: 5 },
                ],
                5,
                &Device::Cpu,
            )
            .unwrap();
        let predict = |trainer: &Trainer, act: &Tensor| -> Vec<f32> {
            let model = trainer.world_model().unwrap();
            let mut state = model
                .reset(
                    &batch.obs.narrow(1, 0, 4).unwrap(),
                    &act.narrow(1, 0, 4).unwrap(),
                )
                .unwrap();
            let a = act.narrow(1, 4, 1).unwrap().squeeze(1).unwrap();
            values(
                &model
                    .step(&mut state, &a, &mut SeededNoise::new(2))
                    .unwrap(),
            )
        };
        let moved = (8.0 - &batch.act).unwrap();
        assert_eq!(predict(&mapped, &batch.act), predict(&plain, &batch.act));
        assert_eq!(predict(&mapped, &moved), predict(&plain, &moved));
        // ...until training teaches the new channels something; then where the action is
        // matters.
        for _ in 0..3 {
            mapped.train_step(&d).unwrap();
        }
        let learned = mapped.vars[CONV_IN_WEIGHT]
            .as_tensor()
            .narrow(1, 15, 4)
            .unwrap();
        assert!(values(&learned).iter().any(|&v| v != 0.0));
        assert_ne!(predict(&mapped, &batch.act), predict(&plain, &batch.act));

        // The other way round (dropping a model's map) is a different network.
        let back = Trainer::from_weights(
            &config(""),
            &d,
            &Device::Cpu,
            &mapped.checkpoint_now().unwrap(),
            "mapped",
        );
        let err = back.err().unwrap().to_string();
        assert!(
            err.contains("mapped") && err.contains("action_map"),
            "{err}"
        );
    }

    #[test]
    fn change_weights_mark_pixels_that_differ_in_any_channel() {
        // Two 1 x 3 frames of 3 channels: pixel 0 unchanged, pixel 1 changed by 0.05 (under the
        // threshold) in channel 0, pixel 2 changed by 0.5 in channel 2 only.
        let newest = Tensor::zeros((1, 3, 1, 3), DType::F32, &Device::Cpu).unwrap();
        let next = Tensor::from_vec(
            vec![0.0f32, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.5],
            (1, 3, 1, 3),
            &Device::Cpu,
        )
        .unwrap();
        let w = change_weights(&newest, &next, 4.0, 0.1).unwrap();
        assert_eq!(w.dims(), &[1, 1, 1, 3]);
        assert_eq!(values(&w), vec![1.0, 1.0, 5.0]);
    }

    #[test]
    fn the_change_weighted_loss_is_a_weighted_mean_of_the_uniform_one() {
        let d = data();
        let uniform = Trainer::new(&config(""), &d, &Device::Cpu).unwrap();
        let weighted = Trainer::new(&config("change_weight = 9"), &d, &Device::Cpu).unwrap();
        let starts = [(0, 0), (1, 2), (2, 5)].map(|(episode, t)| WindowStart { episode, t });
        let batch = d.batch(&starts, 4, &Device::Cpu).unwrap();
        let loss = |trainer: &Trainer, batch: &Batch| {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let l = trainer.loss(&trainer.denoiser, batch, &mut rng).unwrap();
            f64::from(l.to_scalar::<f32>().unwrap())
        };
        // Both start from the same weights (same seed), so where nothing changes, the weighted
        // mean is the uniform mean.
        let still = Batch {
            next_obs: batch.obs.narrow(1, 3, 1).unwrap().squeeze(1).unwrap(),
            ..batch.clone()
        };
        let (u, w) = (loss(&uniform, &still), loss(&weighted, &still));
        assert!((u - w).abs() <= 1e-6 * u, "{u} vs {w}");
        // Nor where everything changes (every value moves by 0.6 towards the middle): every
        // weight is 10 and the mean divides by it.
        let upper = still
            .next_obs
            .ge(0.0)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let shift = upper.affine(-1.2, 0.6).unwrap();
        let all = Batch {
            next_obs: (&still.next_obs + shift).unwrap(),
            ..batch.clone()
        };
        let (u, w) = (loss(&uniform, &all), loss(&weighted, &all));
        assert!((u - w).abs() <= 1e-5 * u, "{u} vs {w}");
        // Where only some pixels change, the changed ones count more.
        let mut mixed = batch.clone();
        let half = Tensor::cat(
            &[
                batch.next_obs.narrow(3, 0, 4).unwrap(),
                still.next_obs.narrow(3, 4, 4).unwrap(),
            ],
            3,
        )
        .unwrap();
        mixed.next_obs = half;
        let (u, w) = (loss(&uniform, &mixed), loss(&weighted, &mixed));
        assert!((u - w).abs() > 1e-3 * u, "{u} vs {w}");
    }

    #[test]
    fn self_generated_context_is_the_models_own_rollout() {
        let (d, trainer) = trained("rollout_context = 2\nrollout_fraction = 0.5");
        let starts =
            [(0, 0), (1, 2), (0, 4), (1, 1)].map(|(episode, t)| WindowStart { episode, t });
        let batch = d.batch(&starts, 4 + 2, &Device::Cpu).unwrap();
        let out = trainer.self_generated_context(batch.clone(), 9).unwrap();
        assert_eq!(out.obs.dims(), &[4, 4, 3, 8, 8]);
        assert_eq!(
            values(&out.act),
            values(&batch.act.narrow(1, 2, 4).unwrap())
        );
        assert_eq!(values(&out.next_obs), values(&batch.next_obs));
        // The second half keeps its newest 4 real frames.
        let real = batch.obs.narrow(1, 2, 4).unwrap();
        assert_eq!(
            values(&out.obs.narrow(0, 2, 2).unwrap()),
            values(&real.narrow(0, 2, 2).unwrap())
        );
        // The first half: real frames 2 and 3, then the model's two steps from frames 0-3.
        let model = trainer.world_model().unwrap();
        let first = batch.obs.narrow(0, 0, 2).unwrap();
        let acts = batch.act.narrow(0, 0, 2).unwrap();
        let mut state = model
            .reset(
                &first.narrow(1, 0, 4).unwrap(),
                &acts.narrow(1, 0, 4).unwrap(),
            )
            .unwrap();
        let mut noise = SeededNoise::new(9);
        let mut expected = vec![first.narrow(1, 2, 2).unwrap()];
        for j in 0..2 {
            let a = acts.narrow(1, 3 + j, 1).unwrap().squeeze(1).unwrap();
            let f = model.step(&mut state, &a, &mut noise).unwrap();
            expected.push(f.unsqueeze(1).unwrap());
        }
        let expected = Tensor::cat(&expected, 1).unwrap();
        let got = out.obs.narrow(0, 0, 2).unwrap();
        assert_eq!(values(&got), values(&expected));
        // ... which are not the recorded frames.
        assert_ne!(values(&got), values(&real.narrow(0, 0, 2).unwrap()));
    }

    #[test]
    fn a_rollout_longer_than_the_context_makes_the_whole_context_generated() {
        // rollout_context 6 > T = 4: the context is steps 3-6 of a 6-step rollout.
        let (d, trainer) = trained("rollout_context = 6\nrollout_fraction = 1.0");
        let starts = [(0, 0), (1, 1)].map(|(episode, t)| WindowStart { episode, t });
        let batch = d.batch(&starts, 4 + 6, &Device::Cpu).unwrap();
        let out = trainer.self_generated_context(batch.clone(), 5).unwrap();
        assert_eq!(out.obs.dims(), &[2, 4, 3, 8, 8]);
        assert_eq!(
            values(&out.act),
            values(&batch.act.narrow(1, 6, 4).unwrap())
        );
        let model = trainer.world_model().unwrap();
        let mut state = model
            .reset(
                &batch.obs.narrow(1, 0, 4).unwrap(),
                &batch.act.narrow(1, 0, 4).unwrap(),
            )
            .unwrap();
        let mut noise = SeededNoise::new(5);
        let mut generated = Vec::new();
        for j in 0..6 {
            let a = batch.act.narrow(1, 3 + j, 1).unwrap().squeeze(1).unwrap();
            let f = model.step(&mut state, &a, &mut noise).unwrap();
            generated.push(f.unsqueeze(1).unwrap());
        }
        let expected = Tensor::cat(&generated[2..], 1).unwrap();
        assert_eq!(values(&out.obs), values(&expected));
    }
}
