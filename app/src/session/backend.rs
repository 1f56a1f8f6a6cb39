//! The world model as the session sees it: frames and actions in, frames out, with an opaque,
//! cheaply cloned rollout state (cloning forks). [`CandleBackend`] wraps the model crate's
//! `WorldModel`; tests use small fakes.

use std::any::Any;
use std::sync::Arc;

use anyhow::Context as _;
use dreamyard_model::candle_core::{DType, Device};
use dreamyard_model::{SeededNoise, WorldModel};
use dreamyard_scenes::{Action, Frame};

use crate::bridge;
use crate::device::{DeviceMemory, device_memory};
use crate::model_source::ModelSource;

/// What the session needs to know about a loaded model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Where it came from (what the user named), for labels and recording metadata.
    pub source: String,
    /// SHA-256 of its weights file (the model's identity in recordings and reports).
    pub weights_sha256: String,
    pub context_len: usize,
    /// Action space in scene terms; names are generic (`a0`, `a1` / `0`, `1`, ...) because
    /// model configs do not carry them.
    pub action_space: dreamyard_scenes::ActionSpace,
    pub frame_width: u32,
    pub frame_height: u32,
    pub fps: Option<f64>,
    /// Where inference runs: `cpu`, `cuda:N` or `metal:N`.
    pub device: String,
    /// What the network computes in: `f32`, `f16` or `bf16`.
    pub dtype: String,
    /// Memory in use on that device, as of the last step (or the load).
    pub memory: Option<DeviceMemory>,
    /// A two-stage model's first stage (its frames are `frame_width` x `frame_height` divided
    /// by the factor); `None` for a single-stage model.
    pub stages: Option<Stages>,
    /// What each value of a multi-hot keyboard-and-mouse action means (DIAMOND's CS:GO model):
    /// the controls then map the real keyboard and mouse through it.
    pub keyboard_mouse: Option<dreamyard_model::KeyboardMouse>,
}

/// The first stage of a two-stage model, as the session shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stages {
    /// Size of the first stage's frames.
    pub low_width: u32,
    pub low_height: u32,
    /// Output frames are this many times larger.
    pub factor: u32,
}

/// One model step's result.
#[derive(Debug)]
pub struct StepOutput {
    /// The model's frame (a two-stage model's full-resolution one).
    pub frame: Frame,
    /// A two-stage model's first-stage frame.
    pub low: Option<Frame>,
    /// A two-stage model's time per stage (first stage, upsampler), ms.
    pub stage_ms: Option<[f64; 2]>,
    /// The rollout state after the step.
    pub state: ModelState,
}

/// A rollout's context window. Cloning shares the tensors, so a fork costs nothing.
#[derive(Clone)]
pub struct ModelState(Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for ModelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelState(..)")
    }
}

impl ModelState {
    pub fn new<T: Any + Send + Sync>(state: T) -> Self {
        Self(Arc::new(state))
    }

    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

/// A world model that the worker thread drives.
pub trait Backend: Send {
    fn info(&self) -> &ModelInfo;

    /// A rollout state from `context_len` frames and the action taken at each (the newest is
    /// overwritten by the next step's action). A two-stage model takes the frames at its output
    /// size and, when given, its first stage's own frames as `low` (else it downscales).
    fn reset(
        &self,
        frames: &[Arc<Frame>],
        low: Option<&[Arc<Frame>]>,
        actions: &[Action],
    ) -> anyhow::Result<ModelState>;

    /// The next frame after taking `action` in `state`, and the state after it. `seed` makes the
    /// sampling noise reproducible.
    fn step(&self, state: &ModelState, action: &Action, seed: u64) -> anyhow::Result<StepOutput>;

    /// Memory in use on the model's device now, where the device says.
    fn memory(&self) -> Option<DeviceMemory> {
        None
    }
}

impl std::fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("info", self.info())
            .finish()
    }
}

/// The model crate's world model on a candle device.
#[derive(Debug)]
pub struct CandleBackend {
    model: WorldModel,
    info: ModelInfo,
}

/// Frame size used when a model config does not say (DIAMOND's Atari size).
const DEFAULT_FRAME: u32 = 64;

impl CandleBackend {
    /// Loads the model `source` names onto `device` (weights in `dtype`) and hashes its
    /// weights.
    pub fn load(source: &ModelSource, device: &Device, dtype: DType) -> anyhow::Result<Self> {
        let model = source
            .build_with(device, dtype)
            .with_context(|| format!("cannot load the world model {}", source.label()))?;
        let hash = source.weights_sha256()?;
        Ok(Self::new(model, &source.label(), hash))
    }

    /// Wraps a built model; `source` labels it and `weights_sha256` identifies its weights.
    pub fn new(model: WorldModel, source: &str, weights_sha256: String) -> Self {
        let spec = model.spec();
        let action_space = bridge::action_space_to_scene(&spec.action);
        let (low_width, low_height) = spec.frame.map_or((DEFAULT_FRAME, DEFAULT_FRAME), |f| {
            (f.width as u32, f.height as u32)
        });
        let factor = spec.upsampling.map_or(1, |u| u.factor as u32);
        let (frame_width, frame_height) = (low_width * factor, low_height * factor);
        let stages = spec.upsampling.map(|_| Stages {
            low_width,
            low_height,
            factor,
        });
        let keyboard_mouse = match &spec.action {
            dreamyard_model::ActionSpace::MultiHot { keyboard_mouse, .. } => keyboard_mouse.clone(),
            _ => None,
        };
        let info = ModelInfo {
            source: source.to_owned(),
            weights_sha256,
            context_len: spec.context_len,
            action_space,
            frame_width,
            frame_height,
            fps: spec.fps,
            device: crate::device::device_name(model.device()),
            dtype: crate::device::dtype_name(model.dtype()).to_owned(),
            memory: device_memory(model.device()),
            stages,
            keyboard_mouse,
        };
        Self { model, info }
    }

    fn device(&self) -> &Device {
        self.model.device()
    }
}

impl Backend for CandleBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn memory(&self) -> Option<DeviceMemory> {
        device_memory(self.device())
    }

    fn reset(
        &self,
        frames: &[Arc<Frame>],
        low: Option<&[Arc<Frame>]>,
        actions: &[Action],
    ) -> anyhow::Result<ModelState> {
        let tensor = |f: &[Arc<Frame>]| -> anyhow::Result<_> {
            Ok(bridge::frames_to_tensor(f, self.device())?.unsqueeze(0)?) // [1, T, C, h, w]
        };
        let actions = bridge::actions_to_tensor(actions, &self.info.action_space, self.device())?
            .unsqueeze(0)?; // [1, T] or [1, T, dim]
        let state = match low {
            Some(low) if self.info.stages.is_some() => {
                self.model
                    .reset_two_stage(&tensor(low)?, &tensor(frames)?, &actions)?
            }
            _ => self.model.reset(&tensor(frames)?, &actions)?,
        };
        Ok(ModelState::new(state))
    }

    fn step(&self, state: &ModelState, action: &Action, seed: u64) -> anyhow::Result<StepOutput> {
        let mut rollout = state
            .get::<dreamyard_model::RolloutState>()
            .context("the rollout state belongs to another model")?
            .clone();
        let action = bridge::actions_to_tensor(
            std::slice::from_ref(action),
            &self.info.action_space,
            self.device(),
        )?; // [1] or [1, dim]
        let out = self
            .model
            .step_stages(&mut rollout, &action, &mut SeededNoise::new(seed))?; // [1, C, h, w]
        let frame = bridge::tensor_to_frame(&out.output().squeeze(0)?)?;
        let low = match &out.full {
            Some(_) => Some(bridge::tensor_to_frame(&out.low.squeeze(0)?)?),
            None => None,
        };
        Ok(StepOutput {
            frame,
            low,
            stage_ms: out.full.as_ref().map(|_| out.stage_ms),
            state: ModelState::new(rollout),
        })
    }
}
