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
}

impl RolloutState {
    /// Context frames [b, T, C, h, w].
    pub fn frames(&self) -> &Tensor {
        &self.frames
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

/// A loaded world model.
#[derive(Debug, Clone)]
pub struct WorldModel {
    config: ModelConfig,
    denoiser: Denoiser,
    sampler: DiffusionSampler,
    spec: WorldModelSpec,
}

impl WorldModel {
    /// Builds the model from `config`, reading weights (DIAMOND denoiser keys, without the
    /// `denoiser.` prefix) from `vb`.
    pub fn new(config: &ModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        config.validate()?;
        let inner = &config.denoiser.inner_model;
        Ok(Self {
            denoiser: Denoiser::new(&config.denoiser, vb)?,
            sampler: DiffusionSampler::new(&config.diffusion_sampler)?,
            spec: WorldModelSpec {
                frame: config.frame,
                img_channels: inner.img_channels,
                context_len: inner.num_steps_conditioning,
                action: inner.action.clone(),
                fps: config.fps,
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

    /// Starts rollouts from `frames` [b, T, C, h, w] (f32 in [-1, 1]) and `actions` [b, T]
    /// (integer ids) or [b, T, dim] (floats).
    ///
    /// The newest action is replaced by the first step's action (DIAMOND's semantics), so it
    /// never influences the rollout.
    pub fn reset(&self, frames: &Tensor, actions: &Tensor) -> Result<RolloutState> {
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
        })
    }

    /// Takes `actions` ([b] ids or [b, dim]) in every rollout of `state`, samples the next frame
    /// [b, C, h, w] with noise from `noise`, and slides the window.
    ///
    /// Deterministic given the noise: the same state, actions and noise give the same frame.
    pub fn step(
        &self,
        state: &mut RolloutState,
        actions: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let b = state.batch_size();
        let actions = self.check_actions("step actions", actions, &[b])?;
        // Order of WorldModelEnv.step: overwrite the newest action, sample, then roll the window.
        let window = state.action_window(&actions)?;
        let next = self
            .sampler
            .sample(&self.denoiser, &state.frames, &window, noise)?; // [b, C, h, w]
        let t = state.frames.dim(1)?;
        state.frames = if t == 1 {
            next.unsqueeze(1)?
        } else {
            Tensor::cat(
                &[&state.frames.narrow(1, 1, t - 1)?, &next.unsqueeze(1)?],
                1,
            )?
        };
        // `roll(-1)`: the oldest action moves to the newest slot, to be overwritten next step.
        state.actions = if t == 1 {
            window
        } else {
            Tensor::cat(&[&window.narrow(1, 1, t - 1)?, &window.narrow(1, 0, 1)?], 1)?
        };
        Ok(next)
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
            ActionSpace::Continuous { dim, .. } => {
                let mut want = lead.to_vec();
                want.push(*dim);
                if dims != want.as_slice() {
                    return Err(ModelError::input(
                        what,
                        format!("shape {want:?}"),
                        format!("{dims:?}"),
                    ));
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
