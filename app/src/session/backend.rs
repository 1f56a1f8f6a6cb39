//! The world model as the session sees it: frames and actions in, frames out, with an opaque,
//! cheaply cloned rollout state (cloning forks). [`CandleBackend`] wraps the model crate's
//! `WorldModel`; tests use small fakes.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use dreamyard_model::candle_core::{DType, Device, Tensor};
use dreamyard_model::{SeededNoise, WorldModel};
use dreamyard_scenes::{Action, ActionSpace, Frame};

/// What the session needs to know about a loaded model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Where it came from (a directory), for labels and recording metadata.
    pub source: String,
    pub context_len: usize,
    /// Action space in scene terms; names are generic (`a0`, `a1` / `0`, `1`, ...) because
    /// model configs do not carry them.
    pub action_space: ActionSpace,
    pub frame_width: u32,
    pub frame_height: u32,
    pub fps: Option<f64>,
    /// Where inference runs, e.g. "CPU".
    pub device: String,
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
    /// Loads `model.safetensors` + `config.json` from `dir` onto the CPU.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let device = Device::Cpu;
        let model = WorldModel::load_native(dir, &device)
            .with_context(|| format!("cannot load the world model in {}", dir.display()))?;
        Ok(Self::new(model, dir))
    }

    pub fn new(model: WorldModel, source: &Path) -> Self {
        let spec = model.spec();
        let action_space = match &spec.action {
            dreamyard_model::ActionSpace::Discrete { num_actions } => ActionSpace::Discrete {
                names: (0..*num_actions).map(|i| i.to_string()).collect(),
            },
            dreamyard_model::ActionSpace::Continuous { dim, low, high } => {
                ActionSpace::Continuous {
                    low: low.clone(),
                    high: high.clone(),
                    names: (0..*dim).map(|i| format!("a{i}")).collect(),
                }
            }
        };
        let (frame_width, frame_height) = spec.frame.map_or((DEFAULT_FRAME, DEFAULT_FRAME), |f| {
            (f.width as u32, f.height as u32)
        });
        let device = match model.device() {
            Device::Cpu => "CPU".to_owned(),
            other => format!("{other:?}"),
        };
        let info = ModelInfo {
            source: source.display().to_string(),
            context_len: spec.context_len,
            action_space,
            frame_width,
            frame_height,
            fps: spec.fps,
            device,
        };
        Self { model, info }
    }

    fn device(&self) -> &Device {
        self.model.device()
    }

    /// `actions` as the model wants them: [n] u32 ids or [n, dim] f32.
    fn actions_tensor(&self, actions: &[Action]) -> anyhow::Result<Tensor> {
        let n = actions.len();
        Ok(match &self.info.action_space {
            ActionSpace::Discrete { .. } => {
                let ids = actions
                    .iter()
                    .map(|a| match a {
                        Action::Discrete(i) => Ok(*i),
                        Action::Continuous(_) => {
                            anyhow::bail!("the model takes discrete actions, got a continuous one")
                        }
                    })
                    .collect::<anyhow::Result<Vec<u32>>>()?;
                Tensor::from_vec(ids, n, self.device())?
            }
            ActionSpace::Continuous { names, .. } => {
                let dim = names.len();
                let mut flat = Vec::with_capacity(n * dim);
                for a in actions {
                    match a {
                        Action::Continuous(v) if v.len() == dim => flat.extend_from_slice(v),
                        other => anyhow::bail!(
                            "the model takes {dim} continuous values per action, got {other:?}"
                        ),
                    }
                }
                Tensor::from_vec(flat, (n, dim), self.device())?
            }
        })
    }
}

/// RGB8 HWC frames to [n, 3, h, w] in [-1, 1].
pub fn frames_to_tensor(frames: &[Arc<Frame>], device: &Device) -> anyhow::Result<Tensor> {
    let Some(first) = frames.first() else {
        anyhow::bail!("no frames");
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

/// A [3, h, w] tensor in [-1, 1] to an RGB8 frame (exact for the model's 256-level output).
pub fn tensor_to_frame(t: &Tensor) -> anyhow::Result<Frame> {
    let dims = t.dims();
    anyhow::ensure!(
        dims.len() == 3 && dims[0] == 3,
        "model frame: expected [3, h, w], found {dims:?}"
    );
    let (h, w) = (dims[1], dims[2]);
    let plane = w * h;
    let values: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let mut data = vec![0u8; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            let v = (values[c * plane + p] + 1.0) / 2.0 * 255.0;
            data[3 * p + c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(Frame {
        width: w as u32,
        height: h as u32,
        data,
    })
}

impl Backend for CandleBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn reset(&self, frames: &[Arc<Frame>], actions: &[Action]) -> anyhow::Result<ModelState> {
        let frames = frames_to_tensor(frames, self.device())?.unsqueeze(0)?; // [1, T, C, h, w]
        let actions = self.actions_tensor(actions)?.unsqueeze(0)?; // [1, T] or [1, T, dim]
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
        let action = self.actions_tensor(std::slice::from_ref(action))?; // [1] or [1, dim]
        let next = self
            .model
            .step(&mut rollout, &action, &mut SeededNoise::new(seed))?; // [1, C, h, w]
        let frame = tensor_to_frame(&next.squeeze(0)?)?;
        Ok((frame, ModelState::new(rollout)))
    }
}
