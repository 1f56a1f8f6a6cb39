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

use crate::config::{
    ActionSpace, DenoiserConfig, FrameSize, InnerModelConfig, ModelConfig, SamplerConfig,
    UpsamplerConfig,
};
use crate::error::{ModelError, Result};
use crate::world_model::{UPSAMPLER_PREFIX, WorldModel};

/// File name of the native weights inside a model directory.
pub const NATIVE_WEIGHTS: &str = "model.safetensors";
/// File name of the native config inside a model directory.
pub const NATIVE_CONFIG: &str = "config.json";

/// A config plus its tensors (DIAMOND's denoiser key names without `denoiser.`; a two-stage
/// model's upsampler keys as `upsampler.<key>`), before the model is built.
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
        let config: ModelConfig = dreamyard_fieldpath::from_json_str(&text).map_err(|e| {
            ModelError::config(
                config_json.display().to_string(),
                e.path.to_string(),
                e.message(),
            )
        })?;
        config.validate()?;
        let tensors = candle_core::safetensors::load(weights, &Device::Cpu)
            .map_err(|e| weights_error(weights, &e))?;
        Ok(Self { config, tensors })
    }

    /// Reads a DIAMOND agent checkpoint (`torch.save` of a flat state dict) and DIAMOND's
    /// composed yaml config (or the agent yaml alone: `config/agent/*.yaml`).
    ///
    /// Keeps the `denoiser.*` keys without the prefix and, for a two-stage model (DIAMOND's
    /// `csgo` branch: the yaml has an `upsampler`), the `upsampler.*` keys; the reward/end model
    /// and actor-critic are ignored. `num_actions` comes from the yaml
    /// (`agent.denoiser.inner_model.num_actions`, `agent.num_actions`, `env.num_actions` or
    /// top-level `num_actions`), else from the action embedding's shape. Weights from the
    /// `csgo` branch (they have `noise_cond_emb`) take multi-hot actions; 51 of them are the
    /// CS:GO keyboard and mouse. Without `world_model_env`, a two-stage model samples with
    /// DIAMOND's default `fast` settings.
    pub fn from_diamond(agent_pt: &Path, config_yaml: &Path) -> Result<Self> {
        let tensors = read_diamond_agent(agent_pt)?;
        let text = read_text(config_yaml)?;
        let config = diamond_config_from_yaml(&text, &config_yaml.display().to_string(), &tensors)?;
        Ok(Self { config, tensors })
    }

    /// A model of `config` with freshly initialised weights (DIAMOND's initialisation, seeded),
    /// for measuring speed or memory without downloading weights.
    pub fn random(config: &ModelConfig, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        config.validate()?;
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        WorldModel::new(config, vb)?;
        let vars = varmap
            .data()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        crate::train::init::init_params(&vars, &config.denoiser.inner_model, &mut rng)?;
        // Plain tensors (not variables): the fast kernels skip anything tracking gradients.
        let tensors = vars
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().detach()))
            .collect();
        Ok(Self {
            config: config.clone(),
            tensors,
        })
    }

    /// Reads a model config alone: a native `config.json` (`.json`) or DIAMOND's yaml (the
    /// composed config or the agent yaml; without weights, a yaml with an `upsampler` is taken
    /// as DIAMOND's `csgo` branch).
    pub fn config_from_file(path: &Path) -> Result<ModelConfig> {
        let text = read_text(path)?;
        let origin = path.display().to_string();
        if path.extension().is_some_and(|e| e == "json") {
            let config: ModelConfig = dreamyard_fieldpath::from_json_str(&text)
                .map_err(|e| ModelError::config(&origin, e.path.to_string(), e.message()))?;
            config.validate()?;
            return Ok(config);
        }
        diamond_config_from_yaml(&text, &origin, &HashMap::new())
    }

    /// Number of values in the weights.
    pub fn num_values(&self) -> usize {
        self.tensors.values().map(Tensor::elem_count).sum()
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

/// `field` (a yaml section) joined with the path of an error inside it.
fn yaml_field(field: &str, e: &dreamyard_fieldpath::Error<serde_norway::Error>) -> String {
    if e.path.is_root() {
        field.to_owned()
    } else {
        format!("{field}.{}", e.path)
    }
}

/// Reads the `denoiser.*` and `upsampler.*` tensors of a DIAMOND `agent.pt` (PyTorch zip
/// format): the first without their prefix, the second keeping it.
fn read_diamond_agent(path: &Path) -> Result<HashMap<String, Tensor>> {
    let pth = crate::pth::open(path)?;
    let mut out = HashMap::new();
    for name in pth.tensor_infos().keys() {
        let stripped = if let Some(rest) = name.strip_prefix("denoiser.") {
            rest.to_string()
        } else if name
            .strip_prefix(UPSAMPLER_PREFIX)
            .is_some_and(|r| r.starts_with('.'))
        {
            name.clone()
        } else {
            continue;
        };
        let tensor = crate::pth::checked_get(path, &pth, name)?;
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
    #[serde(default)]
    agent: Option<DiamondAgent>,
    /// The agent yaml alone (`config/agent/csgo.yaml`) has these at the top.
    #[serde(default)]
    denoiser: Option<DiamondDenoiser>,
    #[serde(default)]
    upsampler: Option<DiamondDenoiser>,
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
    upsampler: Option<DiamondDenoiser>,
    #[serde(default)]
    num_actions: Option<usize>,
}

#[derive(Deserialize)]
struct DiamondDenoiser {
    sigma_data: serde_norway::Value,
    sigma_offset_noise: serde_norway::Value,
    inner_model: serde_norway::Value,
    #[serde(default)]
    upsampling_factor: Option<usize>,
}

#[derive(Deserialize)]
struct DiamondWorldModelEnv {
    #[serde(default)]
    diffusion_sampler: Option<serde_norway::Value>,
    #[serde(default)]
    diffusion_sampler_next_obs: Option<serde_norway::Value>,
    #[serde(default)]
    diffusion_sampler_upsampling: Option<serde_norway::Value>,
}

fn yaml_f64(v: &serde_norway::Value, origin: &str, field: &str) -> Result<f64> {
    match v {
        serde_norway::Value::Number(n) => n.as_f64(),
        serde_norway::Value::String(s) => crate::config::parse_float_str(s),
        _ => None,
    }
    .ok_or_else(|| ModelError::config(origin, field, format!("expected a number, found {v:?}")))
}

/// DIAMOND's `config/world_model_env/fast.yaml` (its default): one Euler step for the next
/// frame with conditioning noise 0.005, one churned step for the upsampler.
fn diamond_fast_samplers() -> (SamplerConfig, SamplerConfig) {
    let next_obs = SamplerConfig {
        num_steps_denoising: 1,
        sigma_min: 2e-3,
        sigma_max: 5.0,
        rho: 7.0,
        order: 1,
        s_churn: 0.0,
        s_tmin: 0.0,
        s_tmax: f64::INFINITY,
        s_noise: 1.0,
        s_cond: 0.005,
    };
    let upsampling = SamplerConfig {
        num_steps_denoising: 1,
        sigma_min: 1.0,
        sigma_max: 5.0,
        rho: 7.0,
        order: 2,
        s_churn: 10.0,
        s_tmin: 1.0,
        s_tmax: 5.0,
        s_noise: 0.9,
        s_cond: 0.0,
    };
    (next_obs, upsampling)
}

fn yaml_sampler(v: serde_norway::Value, origin: &str, field: &str) -> Result<SamplerConfig> {
    let mut v = v;
    if let serde_norway::Value::Mapping(m) = &mut v {
        m.remove("_target_");
    }
    dreamyard_fieldpath::from_yaml_value::<SamplerConfig>(v)
        .map_err(|e| ModelError::config(origin, yaml_field(field, &e), e.message()))
}

/// One DIAMOND `DenoiserConfig` (`field` names it in errors): `num_actions` is filled in when
/// the yaml leaves it to `instantiate`; `noise_cond` (the `csgo` branch's extra embedding) is
/// read from whether the weights have it; `keyboard_mouse` describes 51 multi-hot actions.
fn yaml_denoiser(
    d: DiamondDenoiser,
    field: &str,
    origin: &str,
    num_actions: Option<usize>,
    noise_cond: bool,
    keyboard_mouse: Option<crate::action::KeyboardMouse>,
) -> Result<DenoiserConfig> {
    use serde_norway::Value;
    let mut inner = d.inner_model;
    let inner_field = format!("{field}.inner_model");
    let Value::Mapping(map) = &mut inner else {
        return Err(ModelError::config(
            origin,
            inner_field,
            "expected a mapping",
        ));
    };
    map.remove("_target_");
    let key = Value::String("num_actions".into());
    if !map.contains_key(&key) {
        let n = num_actions.ok_or_else(|| {
            ModelError::config(
                origin,
                "num_actions",
                "not in the yaml and not inferable from the weights",
            )
        })?;
        map.insert(key, Value::Number(n.into()));
    }
    let mut inner_model: InnerModelConfig = dreamyard_fieldpath::from_yaml_value(inner)
        .map_err(|e| ModelError::config(origin, yaml_field(&inner_field, &e), e.message()))?;
    inner_model.noise_cond = noise_cond;
    inner_model.is_upsampler = d.upsampling_factor.is_some();
    if noise_cond && let ActionSpace::Discrete { num_actions } = inner_model.action {
        // The `csgo` branch embeds multi-hot vectors (`act.float() @ weight`).
        inner_model.action = ActionSpace::MultiHot {
            num_actions,
            keyboard_mouse: keyboard_mouse.filter(|k| k.len() == num_actions),
        };
    }
    inner_model.validate()?;
    Ok(DenoiserConfig {
        sigma_data: yaml_f64(&d.sigma_data, origin, &format!("{field}.sigma_data"))?,
        sigma_offset_noise: yaml_f64(
            &d.sigma_offset_noise,
            origin,
            &format!("{field}.sigma_offset_noise"),
        )?,
        inner_model,
        upsampling_factor: d.upsampling_factor,
    })
}

/// Builds a [`ModelConfig`] from DIAMOND's yaml; `tensors` supplies `num_actions` when the yaml
/// does not, and tells the `csgo` branch's layout (a `noise_cond_emb`) from the `main` one.
fn diamond_config_from_yaml(
    text: &str,
    origin: &str,
    tensors: &HashMap<String, Tensor>,
) -> Result<ModelConfig> {
    use serde_norway::Value;
    let y: DiamondYaml = dreamyard_fieldpath::from_yaml_str(text)
        .map_err(|e| ModelError::config(origin, e.path.to_string(), e.message()))?;
    let (denoiser, upsampler, agent_actions, prefix) = match (y.agent, y.denoiser) {
        (Some(a), _) => (a.denoiser, a.upsampler, a.num_actions, "agent."),
        (None, Some(d)) => (d, y.upsampler, None, ""),
        (None, None) => {
            return Err(ModelError::config(
                origin,
                "agent.denoiser",
                "missing (expected DIAMOND's composed config or its agent yaml)",
            ));
        }
    };
    let env_actions = y
        .env
        .as_ref()
        .and_then(|e| e.get("num_actions"))
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    let from_weights = tensors
        .get("inner_model.act_emb.0.weight")
        .and_then(|t| t.dims().first().copied());
    let num_actions = agent_actions
        .or(env_actions)
        .or(y.num_actions)
        .or(from_weights);
    let keymap = y
        .env
        .as_ref()
        .and_then(|e| e.get("keymap"))
        .and_then(Value::as_str)
        .map(str::to_string);
    // DIAMOND's CS:GO layout, unless the env names another keymap.
    let keyboard_mouse = match keymap.as_deref() {
        None | Some("csgo") => Some(crate::action::KeyboardMouse::csgo()),
        Some(_) => None,
    };
    // Without weights (a config read alone), a two-stage yaml is the `csgo` branch's.
    let csgo_without_weights = tensors.is_empty() && upsampler.is_some();
    let has = |k: &str| csgo_without_weights || tensors.contains_key(k);
    let denoiser = yaml_denoiser(
        denoiser,
        &format!("{prefix}denoiser"),
        origin,
        num_actions,
        has("inner_model.noise_cond_emb.weight"),
        keyboard_mouse.clone(),
    )?;
    let upsampler = upsampler
        .map(|u| {
            yaml_denoiser(
                u,
                &format!("{prefix}upsampler"),
                origin,
                num_actions,
                has(&format!(
                    "{UPSAMPLER_PREFIX}.inner_model.noise_cond_emb.weight"
                )),
                keyboard_mouse,
            )
        })
        .transpose()?;

    // The samplers: `world_model_env`'s (the `main` branch names the next-frame one
    // `diffusion_sampler`, the `csgo` branch `diffusion_sampler_next_obs`); a two-stage model
    // without them samples with DIAMOND's default `fast` settings.
    let (mut next, mut up) = (None, None);
    if let Some(w) = y.world_model_env {
        next = match (w.diffusion_sampler, w.diffusion_sampler_next_obs) {
            (Some(s), _) => Some(yaml_sampler(
                s,
                origin,
                "world_model_env.diffusion_sampler",
            )?),
            (None, Some(s)) => Some(yaml_sampler(
                s,
                origin,
                "world_model_env.diffusion_sampler_next_obs",
            )?),
            (None, None) => None,
        };
        up = w
            .diffusion_sampler_upsampling
            .map(|s| yaml_sampler(s, origin, "world_model_env.diffusion_sampler_upsampling"))
            .transpose()?;
    }
    let (fast_next, fast_up) = diamond_fast_samplers();
    let sampler = match next {
        Some(s) => s,
        None if upsampler.is_some() => fast_next,
        None => {
            return Err(ModelError::config(
                origin,
                "world_model_env.diffusion_sampler",
                "missing",
            ));
        }
    };
    let up_sampler = up.unwrap_or(fast_up);

    // DIAMOND's env config gives the training frame size as `env.train.size` (the output's:
    // full resolution for a two-stage model).
    let factor = upsampler
        .as_ref()
        .and_then(|u| u.upsampling_factor)
        .unwrap_or(1)
        .max(1);
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
        .filter(|(h, w)| h.is_multiple_of(factor) && w.is_multiple_of(factor))
        .map(|(height, width)| FrameSize {
            height: height / factor,
            width: width / factor,
        });

    let config = ModelConfig {
        denoiser,
        diffusion_sampler: sampler,
        upsampler: upsampler.map(|denoiser| UpsamplerConfig {
            denoiser,
            diffusion_sampler: up_sampler,
        }),
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
