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
    /// overwritten by the next step's action).
    fn reset(&self, frames: &[Arc<Frame>], actions: &[Action]) -> anyhow::Result<ModelState>;

    /// The next frame after taking `action` in `state`, and the state after it. `seed` makes the
    /// sampling noise reproducible.
    fn step(
        &self,
        state: &ModelState,
        action: &Action,
        seed: u64,
    ) -> anyhow::Result<(Frame, ModelState)>;

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
        let (frame_width, frame_height) = spec.frame.map_or((DEFAULT_FRAME, DEFAULT_FRAME), |f| {
            (f.width as u32, f.height as u32)
        });
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

    fn reset(&self, frames: &[Arc<Frame>], actions: &[Action]) -> anyhow::Result<ModelState> {
        let frames = bridge::frames_to_tensor(frames, self.device())?.unsqueeze(0)?; // [1, T, C, h, w]
        let actions = bridge::actions_to_tensor(actions, &self.info.action_space, self.device())?
            .unsqueeze(0)?; // [1, T] or [1, T, dim]
        Ok(ModelState::new(self.model.reset(&frames, &actions)?))
    }

    fn step(
        &self,
        state: &ModelState,
        action: &Action,
        seed: u64,
    ) -> anyhow::Result<(Frame, ModelState)> {
        let mut rollout = state
            .get::<dreamyard_model::RolloutState>()
            .context("the rollout state belongs to another model")?
            .clone();
        let action = bridge::actions_to_tensor(
            std::slice::from_ref(action),
            &self.info.action_space,
            self.device(),
        )?; // [1] or [1, dim]
        let next = self
            .model
            .step(&mut rollout, &action, &mut SeededNoise::new(seed))?; // [1, C, h, w]
        let frame = bridge::tensor_to_frame(&next.squeeze(0)?)?;
        Ok((frame, ModelState::new(rollout)))
    }
}
