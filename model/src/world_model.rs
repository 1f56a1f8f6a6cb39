//! The interactive world model: a denoiser plus sampler stepped over a sliding window of context
//! frames and actions, with the window semantics of DIAMOND's `WorldModelEnv`.
//!
//! The rollout state is a plain value ([`RolloutState`]): cloning it forks a rollout.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::{ActionSpace, FrameSize, ModelConfig};
use crate::denoiser::Denoiser;
use crate::error::{ModelError, Result};
use crate::sampler::{DiffusionSampler, NoiseSource};

/// What a caller needs to know to drive a model.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldModelSpec {
    /// Frame size the model was trained at, if known (any size runs).
    pub frame: Option<FrameSize>,
    /// Channels per frame.
    pub img_channels: usize,
    /// Number of context frames and actions.
    pub context_len: usize,
    /// Action space.
    pub action: ActionSpace,
    /// Frames per second of the training data, if known.
    pub fps: Option<f64>,
    /// A two-stage model's upsampling: the factor from the first stage's frames to the output
    /// frames, and how many previous full-resolution frames the upsampler sees.
    pub upsampling: Option<Upsampling>,
}

/// The second stage of a two-stage model, as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upsampling {
    /// Output frames are `factor` times the first stage's in each dimension.
    pub factor: usize,
    /// Previous full-resolution frames the upsampler is conditioned on.
    pub context_len: usize,
}

/// The frames one step made: the first stage's and, in a two-stage model, the upsampled one.
#[derive(Debug, Clone)]
pub struct StepFrames {
    /// The first stage's next frame [b, C, h, w].
    pub low: Tensor,
    /// The upsampler's next frame [b, C, h * f, w * f] (two-stage models).
    pub full: Option<Tensor>,
    /// Wall time of each stage (first stage, upsampler) in ms, the device synchronised after
    /// each; the upsampler's is 0 for a single-stage model.
    pub stage_ms: [f64; 2],
}

impl StepFrames {
    /// The model's output: the full-resolution frame of a two-stage model, else the frame.
    pub fn output(&self) -> &Tensor {
        self.full.as_ref().unwrap_or(&self.low)
    }
}

/// State of a batch of rollouts: the context window.
///
/// `frames` [b, T, C, h, w] in [-1, 1], oldest first. `actions` [b, T] (u32, discrete) or
/// [b, T, dim] (f32, continuous); as in DIAMOND, `actions[:, t]` is the action taken at
/// `frames[:, t]`, and the newest entry is overwritten by the action given to the next step.
#[derive(Debug, Clone)]
pub struct RolloutState {
    frames: Tensor,
    actions: Tensor,
    /// A two-stage model's previous full-resolution frames [b, T_up, C, H, W].
    full: Option<Tensor>,
}

impl RolloutState {
    /// Context frames [b, T, C, h, w] (the first stage's, in a two-stage model).
    pub fn frames(&self) -> &Tensor {
        &self.frames
    }

    /// A two-stage model's previous full-resolution frames [b, T_up, C, H, W].
    pub fn full_frames(&self) -> Option<&Tensor> {
        self.full.as_ref()
    }

    /// Context actions [b, T] or [b, T, dim].
    pub fn actions(&self) -> &Tensor {
        &self.actions
    }

    /// Number of rollouts in the batch.
    pub fn batch_size(&self) -> usize {
        self.frames.dims().first().copied().unwrap_or(0)
    }

    /// The action window the sampler sees when `step_actions` ([b] or [b, dim]) is taken: the
    /// context actions with the newest replaced by `step_actions`.
    pub fn action_window(&self, step_actions: &Tensor) -> Result<Tensor> {
        let t = self.actions.dim(1)?;
        let new = step_actions.to_dtype(self.actions.dtype())?.unsqueeze(1)?; // [b, 1, ..]
        if t == 1 {
            return Ok(new);
        }
        Ok(Tensor::cat(&[&self.actions.narrow(1, 0, t - 1)?, &new], 1)?)
    }
}

/// The upsampling stage of a two-stage model: its denoiser and sampler.
#[derive(Debug, Clone)]
pub struct UpsamplerStage {
    denoiser: Denoiser,
    sampler: DiffusionSampler,
    factor: usize,
    context_len: usize,
}

impl UpsamplerStage {
    /// The upsampler's denoiser.
    pub fn denoiser(&self) -> &Denoiser {
        &self.denoiser
    }

    /// Its sampler.
    pub fn sampler(&self) -> &DiffusionSampler {
        &self.sampler
    }

    /// The scale factor.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Previous full-resolution frames the upsampler is conditioned on.
    pub fn context_len(&self) -> usize {
        self.context_len
    }

    /// Samples the full-resolution frame [b, C, H, W] for the new first-stage frame `low`
    /// [b, C, h, w] given the previous full-resolution frames `full` [b, T_up, C, H, W], as
    /// DIAMOND's `WorldModelEnv`: the upsampler is conditioned on
    /// `[full.., bicubic(low)]` and no action. Returns `(bicubic(low), frame)`.
    pub fn upsample(
        &self,
        full: &Tensor,
        low: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<(Tensor, Tensor)> {
        let b = low.dim(0)?;
        let bicubic = crate::resample::bicubic_upsample(low, self.factor)?; // [b, C, H, W]
        let ctx = Tensor::cat(&[full, &bicubic.unsqueeze(1)?], 1)?; // [b, T_up + 1, C, H, W]
        let no_action = Tensor::zeros((b, 0), DType::F32, low.device())?;
        let frame = self
            .sampler
            .sample(&self.denoiser, &ctx, &no_action, noise)?;
        Ok((bicubic, frame))
    }
}

/// A loaded world model.
#[derive(Debug, Clone)]
pub struct WorldModel {
    config: ModelConfig,
    denoiser: Denoiser,
    sampler: DiffusionSampler,
    upsampler: Option<UpsamplerStage>,
    spec: WorldModelSpec,
}

/// Key prefix of the upsampler's tensors in a two-stage model's weights.
pub const UPSAMPLER_PREFIX: &str = "upsampler";

impl WorldModel {
    /// Builds the model from `config`, reading weights (DIAMOND denoiser keys, without the
    /// `denoiser.` prefix; a two-stage model's upsampler keys under `upsampler.`) from `vb`.
    pub fn new(config: &ModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        config.validate()?;
        let inner = &config.denoiser.inner_model;
        let upsampler = match &config.upsampler {
            Some(up) => Some(UpsamplerStage {
                denoiser: Denoiser::new(&up.denoiser, vb.pp(UPSAMPLER_PREFIX))?,
                sampler: DiffusionSampler::new(&up.diffusion_sampler)?,
                factor: up.factor(),
                context_len: up.denoiser.inner_model.num_steps_conditioning,
            }),
            None => None,
        };
        Ok(Self {
            denoiser: Denoiser::new(&config.denoiser, vb)?,
            sampler: DiffusionSampler::new(&config.diffusion_sampler)?,
            upsampler,
            spec: WorldModelSpec {
                frame: config.frame,
                img_channels: inner.img_channels,
                context_len: inner.num_steps_conditioning,
                action: inner.action.clone(),
                fps: config.fps,
                upsampling: config.upsampler.as_ref().map(|u| Upsampling {
                    factor: u.factor(),
                    context_len: u.denoiser.inner_model.num_steps_conditioning,
                }),
            },
            config: config.clone(),
        })
    }

    /// The spec.
    pub fn spec(&self) -> &WorldModelSpec {
        &self.spec
    }

    /// The full configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The denoiser.
    pub fn denoiser(&self) -> &Denoiser {
        &self.denoiser
    }

    /// The sampler.
    pub fn sampler(&self) -> &DiffusionSampler {
        &self.sampler
    }

    /// A two-stage model's upsampling stage.
    pub fn upsampler(&self) -> Option<&UpsamplerStage> {
        self.upsampler.as_ref()
    }

    /// Starts rollouts from `frames` [b, T, C, h, w] (f32 in [-1, 1]) and `actions` [b, T]
    /// (integer ids) or [b, T, dim] (floats).
    ///
    /// The newest action is replaced by the first step's action (DIAMOND's semantics), so it
    /// never influences the rollout.
    ///
    /// A two-stage model also needs full-resolution frames: [`Self::reset_two_stage`]; given
    /// only `frames` here, they are taken as full-resolution and the first stage's context is
    /// their box-filtered downscale.
    pub fn reset(&self, frames: &Tensor, actions: &Tensor) -> Result<RolloutState> {
        if let Some(up) = self.spec.upsampling {
            let (b, t, c, h, w) = frames.dims5().map_err(|_| {
                ModelError::input(
                    "frames",
                    "[b, T, C, H, W] full-resolution frames",
                    format!("{:?}", frames.dims()),
                )
            })?;
            if !h.is_multiple_of(up.factor) || !w.is_multiple_of(up.factor) {
                return Err(ModelError::input(
                    "frames",
                    format!(
                        "a size that is a multiple of the upsampling factor {}",
                        up.factor
                    ),
                    format!("{h}x{w}"),
                ));
            }
            let flat = frames.to_dtype(DType::F32)?.reshape((b * t, c, h, w))?;
            let low = crate::resample::box_downscale(&flat, up.factor)?;
            let low = low.reshape((b, t, c, h / up.factor, w / up.factor))?;
            return self.reset_two_stage(&low, frames, actions);
        }
        self.reset_low(frames, actions)
    }

    /// Starts rollouts of a two-stage model from first-stage frames `low` [b, T, C, h, w],
    /// full-resolution frames `full` [b, T', C, h * f, w * f] (T' at least the upsampler's
    /// context; the newest are kept) and `actions` as in [`Self::reset`].
    pub fn reset_two_stage(
        &self,
        low: &Tensor,
        full: &Tensor,
        actions: &Tensor,
    ) -> Result<RolloutState> {
        let Some(up) = self.spec.upsampling else {
            return Err(ModelError::input(
                "full-resolution frames",
                "a two-stage model",
                "a single-stage model (use reset)",
            ));
        };
        let mut state = self.reset_low(low, actions)?;
        let (b, _, c, h, w) = low.dims5()?;
        let dims = full.dims();
        let want = [b, up.context_len, c, h * up.factor, w * up.factor];
        let ok =
            dims.len() == 5 && dims[0] == want[0] && dims[1] >= want[1] && dims[2..] == want[2..];
        if !ok {
            return Err(ModelError::input(
                "full-resolution frames",
                format!(
                    "[{b}, >= {}, {c}, {}, {}] ({}x the first stage's)",
                    want[1], want[3], want[4], up.factor
                ),
                format!("{dims:?}"),
            ));
        }
        let t = dims[1];
        let keep = full.narrow(1, t - up.context_len, up.context_len)?;
        state.full = Some(keep.to_dtype(DType::F32)?.to_device(self.device())?);
        Ok(state)
    }

    fn reset_low(&self, frames: &Tensor, actions: &Tensor) -> Result<RolloutState> {
        let dims = frames.dims();
        let t_ctx = self.spec.context_len;
        let ok = dims.len() == 5 && dims[1] == t_ctx && dims[2] == self.spec.img_channels;
        if !ok {
            return Err(ModelError::input(
                "frames",
                format!("[b, {t_ctx}, {}, h, w]", self.spec.img_channels),
                format!("{dims:?}"),
            ));
        }
        let b = dims[0];
        let actions = self.check_actions("actions", actions, &[b, t_ctx])?;
        // The window lives on the model's device from here on (one upload).
        Ok(RolloutState {
            frames: frames.to_dtype(DType::F32)?.to_device(self.device())?,
            actions,
            full: None,
        })
    }

    /// Takes `actions` ([b] ids or [b, dim]) in every rollout of `state`, samples the next frame
    /// [b, C, h, w] with noise from `noise`, and slides the window.
    ///
    /// Deterministic given the noise: the same state, actions and noise give the same frame.
    /// A two-stage model returns the full-resolution frame ([`Self::step_stages`] gives both).
    pub fn step(
        &self,
        state: &mut RolloutState,
        actions: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let frames = self.step_stages(state, actions, noise)?;
        Ok(frames.full.unwrap_or(frames.low))
    }

    /// [`Self::step`] returning each stage's frame. The first stage draws its noise before the
    /// upsampler, as DIAMOND's `WorldModelEnv.step`.
    pub fn step_stages(
        &self,
        state: &mut RolloutState,
        actions: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<StepFrames> {
        let b = state.batch_size();
        if self.upsampler.is_some() != state.full.is_some() {
            return Err(ModelError::input(
                "rollout state",
                if self.upsampler.is_some() {
                    "full-resolution frames (a two-stage model)"
                } else {
                    "no full-resolution frames (a single-stage model)"
                },
                "a state made by another model",
            ));
        }
        let actions = self.check_actions("step actions", actions, &[b])?;
        // Order of WorldModelEnv.step: overwrite the newest action, sample, then roll the window.
        let window = state.action_window(&actions)?;
        let t0 = std::time::Instant::now();
        let next = self
            .sampler
            .sample(&self.denoiser, &state.frames, &window, noise)?; // [b, C, h, w]
        let t = state.frames.dim(1)?;
        state.frames = slide(&state.frames, &next)?;
        // `roll(-1)`: the oldest action moves to the newest slot, to be overwritten next step.
        state.actions = if t == 1 {
            window
        } else {
            Tensor::cat(&[&window.narrow(1, 1, t - 1)?, &window.narrow(1, 0, 1)?], 1)?
        };
        let two_stage = self.upsampler.is_some();
        if two_stage {
            self.device().synchronize()?;
        }
        let low_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = std::time::Instant::now();
        let full = match (&self.upsampler, &mut state.full) {
            (Some(up), Some(full)) => {
                let (_, frame) = up.upsample(full, &next, noise)?;
                *full = slide(full, &frame)?;
                self.device().synchronize()?;
                Some(frame)
            }
            _ => None,
        };
        let up_ms = if two_stage {
            t1.elapsed().as_secs_f64() * 1e3
        } else {
            0.0
        };
        Ok(StepFrames {
            low: next,
            full,
            stage_ms: [low_ms, up_ms],
        })
    }

    /// Validates actions with leading dims `lead`, converts them to the internal dtype and
    /// moves them to the model's device. Discrete ids are checked on the host: pass them from
    /// the host (as every caller here does) and this reads nothing back from a GPU.
    fn check_actions(
        &self,
        what: &'static str,
        actions: &Tensor,
        lead: &[usize],
    ) -> Result<Tensor> {
        let dims = actions.dims();
        match &self.spec.action {
            ActionSpace::Discrete { num_actions } => {
                if dims != lead || actions.dtype().is_float() {
                    return Err(ModelError::input(
                        what,
                        format!("integer ids of shape {lead:?}"),
                        format!("{:?} {dims:?}", actions.dtype()),
                    ));
                }
                let ids: Vec<i64> = actions.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
                if let Some(bad) = ids.iter().find(|&&a| a < 0 || a as usize >= *num_actions) {
                    return Err(ModelError::input(
                        what,
                        format!("ids in [0, {num_actions})"),
                        bad.to_string(),
                    ));
                }
                Ok(actions.to_dtype(DType::U32)?.to_device(self.device())?)
            }
            ActionSpace::MultiHot {
                num_actions: dim, ..
            }
            | ActionSpace::Continuous { dim, .. } => {
                let multi_hot = matches!(self.spec.action, ActionSpace::MultiHot { .. });
                let mut want = lead.to_vec();
                want.push(*dim);
                if dims != want.as_slice() {
                    let kind = if multi_hot {
                        "multi-hot vectors of shape"
                    } else {
                        "shape"
                    };
                    return Err(ModelError::input(
                        what,
                        format!("{kind} {want:?}"),
                        format!("{dims:?}"),
                    ));
                }
                if multi_hot {
                    // DIAMOND asserts every value is 0 or 1 (the embedding sums rows).
                    let v: Vec<f32> = actions.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                    if let Some(bad) = v.iter().find(|&&a| a != 0.0 && a != 1.0) {
                        return Err(ModelError::input(what, "values 0 or 1", bad.to_string()));
                    }
                }
                Ok(actions.to_dtype(DType::F32)?.to_device(self.device())?)
            }
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.denoiser.device()
    }

    /// The dtype the network computes in (f32 unless built with another).
    pub fn dtype(&self) -> DType {
        self.denoiser.inner_model().dtype()
    }
}

/// The window `frames` [b, T, ..] with its oldest entry dropped and `next` [b, ..] appended.
fn slide(frames: &Tensor, next: &Tensor) -> Result<Tensor> {
    let t = frames.dim(1)?;
    let next = next.unsqueeze(1)?;
    Ok(if t == 1 {
        next
    } else {
        Tensor::cat(&[&frames.narrow(1, 1, t - 1)?, &next], 1)?
    })
}
