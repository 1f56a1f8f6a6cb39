//! Loading and saving model weights and configs: the native format (`model.safetensors` +
//! `config.json`) and DIAMOND checkpoints (`agent.pt` + DIAMOND's composed yaml config).
//!
//! Loading is strict, like PyTorch's `load_state_dict`: every tensor the config implies must be
//! present with its exact shape, and no other tensor may be. Errors name the tensor and give the
//! expected and found shapes; unreadable or truncated files give an error, never a panic.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use serde::Deserialize;

use crate::config::{DenoiserConfig, FrameSize, InnerModelConfig, ModelConfig, SamplerConfig};
use crate::error::{ModelError, Result};
use crate::world_model::WorldModel;

/// File name of the native weights inside a model directory.
pub const NATIVE_WEIGHTS: &str = "model.safetensors";
/// File name of the native config inside a model directory.
pub const NATIVE_CONFIG: &str = "config.json";

/// A config plus its denoiser tensors (DIAMOND key names without `denoiser.`), before the model
/// is built.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The configuration.
    pub config: ModelConfig,
    /// Tensors by state-dict key, e.g. `inner_model.conv_in.weight`.
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Reads the native format from `dir/config.json` and `dir/model.safetensors`.
    pub fn from_native_dir(dir: &Path) -> Result<Self> {
        Self::from_native_files(&dir.join(NATIVE_CONFIG), &dir.join(NATIVE_WEIGHTS))
    }

    /// Reads a native config (JSON) and a safetensors file of denoiser tensors.
    pub fn from_native_files(config_json: &Path, weights: &Path) -> Result<Self> {
        let text = read_text(config_json)?;
        let config: ModelConfig = serde_json::from_str(&text).map_err(|e| {
            ModelError::config(
                config_json.display().to_string(),
                json_field(&e),
                e.to_string(),
            )
        })?;
        config.validate()?;
        let tensors = candle_core::safetensors::load(weights, &Device::Cpu)
            .map_err(|e| weights_error(weights, &e))?;
        Ok(Self { config, tensors })
    }

    /// Reads a DIAMOND agent checkpoint (`torch.save` of a flat state dict) and DIAMOND's
    /// composed yaml config.
    ///
    /// Keeps the keys starting with `denoiser` and strips the text up to the first `.`, as
    /// DIAMOND's `Agent.load` does; the reward/end model and actor-critic are ignored.
    /// `num_actions` comes from the yaml (`agent.denoiser.inner_model.num_actions`,
    /// `agent.num_actions` or top-level `num_actions`), else from the action embedding's shape.
    pub fn from_diamond(agent_pt: &Path, config_yaml: &Path) -> Result<Self> {
        let tensors = read_diamond_denoiser(agent_pt)?;
        let text = read_text(config_yaml)?;
        let config = diamond_config_from_yaml(&text, &config_yaml.display().to_string(), &tensors)?;
        Ok(Self { config, tensors })
    }

    /// Builds the model on `device` (f32), checking every tensor.
    pub fn build(&self, device: &Device) -> Result<WorldModel> {
        self.build_with(device, DType::F32)
    }

    /// Builds the model on `device` with its weights in `dtype` (f32, f16, bf16 or f64): the
    /// network then computes in that dtype, with group norms, softmax and the noise embedding
    /// in f32 for 16-bit floats; the sampler and preconditioning stay in f32.
    ///
    /// bf16 needs a GPU: candle's CPU matrix multiply has no bf16 kernel, so bf16 on the CPU is
    /// an error here rather than in the middle of the first rollout.
    pub fn build_with(&self, device: &Device, dtype: DType) -> Result<WorldModel> {
        if !dtype.is_float() {
            return Err(ModelError::input(
                "dtype",
                "f32, f16, bf16 or f64",
                format!("{dtype:?}"),
            ));
        }
        if dtype == DType::BF16 && device.is_cpu() {
            return Err(ModelError::input(
                "dtype",
                "f32 or f16 on the CPU (bf16 runs on a CUDA or Metal GPU: candle's CPU matrix \
                 multiply has no bf16 kernel)",
                "bf16",
            ));
        }
        let backend = StrictTensors::new(&self.tensors);
        let state = Arc::clone(&backend.state);
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        let model = match WorldModel::new(&self.config, vb) {
            Ok(m) => m,
            Err(e) => {
                let recorded = state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .error
                    .take();
                return Err(recorded.unwrap_or(e));
            }
        };
        let used = &state.lock().unwrap_or_else(PoisonError::into_inner).used;
        let mut unused: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect();
        if !unused.is_empty() {
            unused.sort();
            return Err(ModelError::UnexpectedTensors { names: unused });
        }
        Ok(model)
    }

    /// Writes the native format into `dir` (created if needed): `model.safetensors` and
    /// `config.json`. Checks the tensors against the config first, so it never writes a
    /// checkpoint that would not load.
    pub fn save_native(&self, dir: &Path) -> Result<()> {
        self.build(&Device::Cpu)?;
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let weights = dir.join(NATIVE_WEIGHTS);
        // Contiguous f32 copies: pickle tensors may carry other dtypes or strides.
        let tensors = self
            .tensors
            .iter()
            .map(|(k, t)| Ok((k.clone(), t.to_dtype(DType::F32)?.contiguous()?)))
            .collect::<Result<HashMap<_, _>>>()?;
        candle_core::safetensors::save(&tensors, &weights)
            .map_err(|e| weights_error(&weights, &e))?;
        let config = dir.join(NATIVE_CONFIG);
        let json = serde_json::to_string_pretty(&self.config)
            .map_err(|e| ModelError::config("native config", "(serialize)", e.to_string()))?;
        std::fs::write(&config, json + "\n").map_err(|source| ModelError::Io {
            path: config,
            source,
        })
    }
}

impl WorldModel {
    /// Loads the native format from a directory (see [`Checkpoint::from_native_dir`]).
    pub fn load_native(dir: &Path, device: &Device) -> Result<Self> {
        Checkpoint::from_native_dir(dir)?.build(device)
    }

    /// Loads a DIAMOND checkpoint (see [`Checkpoint::from_diamond`]).
    pub fn load_diamond(agent_pt: &Path, config_yaml: &Path, device: &Device) -> Result<Self> {
        Checkpoint::from_diamond(agent_pt, config_yaml)?.build(device)
    }
}

/// Converts a DIAMOND checkpoint to the native format (for `dreamyard convert`).
pub fn convert_diamond_to_native(
    agent_pt: &Path,
    config_yaml: &Path,
    out_dir: &Path,
) -> Result<()> {
    Checkpoint::from_diamond(agent_pt, config_yaml)?.save_native(out_dir)
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn weights_error(path: &Path, e: &candle_core::Error) -> ModelError {
    ModelError::Weights {
        path: PathBuf::from(path),
        reason: e.to_string(),
    }
}

/// Best-effort field name for a serde_json error (its message names the field for missing or
/// unknown ones; otherwise the position is in the reason).
fn json_field(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    msg.split('`')
        .nth(1)
        .map(str::to_string)
        .unwrap_or_else(|| "(document)".to_string())
}

/// Reads the `denoiser*` tensors of a DIAMOND `agent.pt` (PyTorch zip format).
fn read_diamond_denoiser(path: &Path) -> Result<HashMap<String, Tensor>> {
    let pth =
        candle_core::pickle::PthTensors::new(path, None).map_err(|e| weights_error(path, &e))?;
    let mut out = HashMap::new();
    for name in pth.tensor_infos().keys() {
        if !name.starts_with("denoiser") {
            continue;
        }
        let Some((_, stripped)) = name.split_once('.') else {
            continue;
        };
        let tensor = pth
            .get(name)
            .map_err(|e| weights_error(path, &e))?
            .ok_or_else(|| ModelError::Weights {
                path: path.to_path_buf(),
                reason: format!("tensor `{name}` listed but not readable"),
            })?;
        out.insert(stripped.to_string(), tensor);
    }
    if out.is_empty() {
        return Err(ModelError::Weights {
            path: path.to_path_buf(),
            reason: "no `denoiser.*` tensors (is this a DIAMOND agent checkpoint?)".into(),
        });
    }
    Ok(out)
}

/// The parts of DIAMOND's composed config we read; everything else is ignored.
#[derive(Deserialize)]
struct DiamondYaml {
    agent: DiamondAgent,
    #[serde(default)]
    world_model_env: Option<DiamondWorldModelEnv>,
    #[serde(default)]
    num_actions: Option<usize>,
    #[serde(default)]
    env: Option<serde_norway::Value>,
}

#[derive(Deserialize)]
struct DiamondAgent {
    denoiser: DiamondDenoiser,
    #[serde(default)]
    num_actions: Option<usize>,
}

#[derive(Deserialize)]
struct DiamondDenoiser {
    sigma_data: serde_norway::Value,
    sigma_offset_noise: serde_norway::Value,
    inner_model: serde_norway::Value,
}

#[derive(Deserialize)]
struct DiamondWorldModelEnv {
    diffusion_sampler: serde_norway::Value,
}

fn yaml_f64(v: &serde_norway::Value, origin: &str, field: &str) -> Result<f64> {
    match v {
        serde_norway::Value::Number(n) => n.as_f64(),
        serde_norway::Value::String(s) => crate::config::parse_float_str(s),
        _ => None,
    }
    .ok_or_else(|| ModelError::config(origin, field, format!("expected a number, found {v:?}")))
}

/// Builds a [`ModelConfig`] from DIAMOND's yaml; `tensors` supplies `num_actions` when the yaml
/// does not.
fn diamond_config_from_yaml(
    text: &str,
    origin: &str,
    tensors: &HashMap<String, Tensor>,
) -> Result<ModelConfig> {
    use serde_norway::Value;
    let y: DiamondYaml = serde_norway::from_str(text)
        .map_err(|e| ModelError::config(origin, "(yaml)", e.to_string()))?;

    let mut inner = y.agent.denoiser.inner_model;
    let Value::Mapping(map) = &mut inner else {
        return Err(ModelError::config(
            origin,
            "agent.denoiser.inner_model",
            "expected a mapping",
        ));
    };
    map.remove("_target_");
    let key = Value::String("num_actions".into());
    if !map.contains_key(&key) {
        let from_weights = tensors
            .get("inner_model.act_emb.0.weight")
            .and_then(|t| t.dims().first().copied());
        let n = y
            .agent
            .num_actions
            .or(y.num_actions)
            .or(from_weights)
            .ok_or_else(|| {
                ModelError::config(
                    origin,
                    "num_actions",
                    "not in the yaml and not inferable from the weights",
                )
            })?;
        map.insert(key, Value::Number(n.into()));
    }
    let inner_model: InnerModelConfig = serde_norway::from_value(inner)
        .map_err(|e| ModelError::config(origin, "agent.denoiser.inner_model", e.to_string()))?;

    let sampler = match y.world_model_env {
        Some(w) => {
            let mut s = w.diffusion_sampler;
            if let Value::Mapping(m) = &mut s {
                m.remove("_target_");
            }
            serde_norway::from_value::<SamplerConfig>(s).map_err(|e| {
                ModelError::config(origin, "world_model_env.diffusion_sampler", e.to_string())
            })?
        }
        None => {
            return Err(ModelError::config(
                origin,
                "world_model_env.diffusion_sampler",
                "missing",
            ));
        }
    };

    // DIAMOND's env config gives the (square) training frame size as `env.train.size`.
    let frame = y
        .env
        .as_ref()
        .and_then(|e| e.get("train"))
        .and_then(|t| t.get("size"))
        .and_then(|s| match s {
            Value::Number(n) => n.as_u64().map(|n| (n as usize, n as usize)),
            Value::Sequence(v) if v.len() == 2 => {
                Some((v[0].as_u64()? as usize, v[1].as_u64()? as usize))
            }
            _ => None,
        })
        .map(|(height, width)| FrameSize { height, width });

    let config = ModelConfig {
        denoiser: DenoiserConfig {
            sigma_data: yaml_f64(
                &y.agent.denoiser.sigma_data,
                origin,
                "agent.denoiser.sigma_data",
            )?,
            sigma_offset_noise: yaml_f64(
                &y.agent.denoiser.sigma_offset_noise,
                origin,
                "agent.denoiser.sigma_offset_noise",
            )?,
            inner_model,
        },
        diffusion_sampler: sampler,
        frame,
        fps: None,
    };
    config.validate()?;
    Ok(config)
}

/// Shared state of [`StrictTensors`], read back after the model is built.
#[derive(Debug, Default)]
struct StrictState {
    used: HashSet<String>,
    /// First precise error (candle's error type cannot carry ours, so it is kept here).
    error: Option<ModelError>,
}

/// A VarBuilder backend over a tensor map that checks names, shapes and dtypes and records
/// which tensors the model used.
struct StrictTensors<'a> {
    tensors: &'a HashMap<String, Tensor>,
    state: Arc<Mutex<StrictState>>,
}

impl<'a> StrictTensors<'a> {
    fn new(tensors: &'a HashMap<String, Tensor>) -> Self {
        Self {
            tensors,
            state: Arc::default(),
        }
    }

    fn fail(&self, err: ModelError) -> candle_core::Error {
        let msg = err.to_string();
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.error.is_none() {
            st.error = Some(err);
        }
        candle_core::Error::Msg(msg)
    }
}

impl StrictTensors<'_> {
    /// Records `name` as used (so unused tensors can be reported) and hands out `t`.
    fn take(
        &self,
        name: &str,
        t: &Tensor,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .used
            .insert(name.to_string());
        t.to_dtype(dtype)?.to_device(dev)
    }
}

impl SimpleBackend for StrictTensors<'_> {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let Some(t) = self.tensors.get(name) else {
            return Err(self.fail(ModelError::MissingTensor {
                name: name.to_string(),
                expected: s.dims().to_vec(),
            }));
        };
        if t.dims() != s.dims() {
            return Err(self.fail(ModelError::ShapeMismatch {
                name: name.to_string(),
                expected: s.dims().to_vec(),
                found: t.dims().to_vec(),
            }));
        }
        if !t.dtype().is_float() {
            return Err(self.fail(ModelError::UnsupportedDType {
                name: name.to_string(),
                found: t.dtype(),
            }));
        }
        self.take(name, t, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match self.tensors.get(name) {
            Some(t) => self.take(name, t, dtype, dev),
            None => Err(self.fail(ModelError::MissingTensor {
                name: name.to_string(),
                expected: vec![],
            })),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}
