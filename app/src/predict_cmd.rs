//! `dreamyard predict` (headless rollouts from tensors in a safetensors file, DIAMOND's
//! `WorldModelEnv` semantics) and `dreamyard convert` (any supported checkpoint to the native
//! format).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use dreamyard_model::candle_core::{DType, Device, IndexOp, Tensor};
use dreamyard_model::{ActionSpace, GivenNoise, KernelPath, NoiseSource, SeededNoise};

use crate::device::parse_device;
use crate::model_source::ModelSource;

/// Arguments of `dreamyard predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A native model directory, a `model.safetensors` (its `config.json` beside it or given
    /// with `--config`), a DIAMOND `agent.pt` (with `--config` naming its yaml), or a folder
    /// holding an `agent.pt` and its yaml.
    #[arg(long)]
    pub model: PathBuf,
    /// Config for `--model`: `config.json` (native) or DIAMOND's yaml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Input tensors: `obs` (b,T,C,H,W) f32 in [-1,1] or `obs_u8` u8; `act` (b,T) ints or
    /// (b,T,dim) f32; `rollout.actions` (b,N) ints or (b,N,dim) f32; optional `rollout.noise`
    /// (b,N,C,H,W) f32, the sampler's initial noise at each step.
    #[arg(long)]
    pub inputs: PathBuf,
    /// Output file: `frames` (b,N,C,H,W) f32 in [-1,1].
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the sampler noise when the inputs have no `rollout.noise`.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto (a GPU when the build has one and one is present, else the CPU), cpu, cuda,
    /// cuda:N, metal or metal:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// What the network computes in: f32, f16 or bf16 (bf16 on a GPU only; the sampler stays f32).
    #[arg(long, default_value = "f32", value_parser = crate::device::parse_dtype)]
    pub dtype: DType,
    /// CPU kernels: fast (ours, the default, ~13x faster) or candle (plain candle ops, the path
    /// a GPU runs). Both are as exact: within 7e-7 of an f64 evaluation per denoiser call, and
    /// within one quantisation level of it over a free-running rollout.
    #[arg(long, default_value = "fast", value_parser = crate::parse::parse_kernels)]
    pub kernels: KernelPath,
}

/// Arguments of `dreamyard convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The model to convert (as for `predict --model`).
    #[arg(long)]
    pub model: PathBuf,
    /// Its config (as for `predict --config`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory for `model.safetensors` + `config.json`.
    #[arg(long)]
    pub out: PathBuf,
}

/// Looks up `key` in `tensors` read from `file`.
fn get<'a>(
    tensors: &'a HashMap<String, Tensor>,
    file: &Path,
    key: &str,
) -> anyhow::Result<&'a Tensor> {
    tensors
        .get(key)
        .with_context(|| format!("{}: missing tensor `{key}`", file.display()))
}

fn check_rank(t: &Tensor, file: &Path, key: &str, rank: usize, layout: &str) -> anyhow::Result<()> {
    if t.rank() != rank {
        bail!(
            "{}: tensor `{key}` has shape {:?}, expected {layout}",
            file.display(),
            t.dims()
        );
    }
    Ok(())
}

/// Actions as the model takes them: integer ids for discrete, f32 for continuous.
fn actions_for(
    t: &Tensor,
    action: &ActionSpace,
    file: &Path,
    key: &str,
    lead: usize,
) -> anyhow::Result<Tensor> {
    match action {
        ActionSpace::Discrete { .. } => {
            check_rank(t, file, key, lead, "(b, T) integer action ids")?;
            if t.dtype().is_float() {
                bail!(
                    "{}: tensor `{key}` is {:?}; discrete actions are integers (i64)",
                    file.display(),
                    t.dtype()
                );
            }
            Ok(t.to_dtype(DType::I64)?)
        }
        ActionSpace::Continuous { dim, .. } => {
            check_rank(
                t,
                file,
                key,
                lead + 1,
                &format!("(b, T, {dim}) f32 actions"),
            )?;
            Ok(t.to_dtype(DType::F32)?)
        }
    }
}

/// Runs `dreamyard predict`.
pub fn predict(args: &PredictArgs) -> anyhow::Result<()> {
    dreamyard_model::with_kernel_path(args.kernels, || predict_with(args))
}

fn predict_with(args: &PredictArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device)?;
    let source = ModelSource::resolve(&args.model, args.config.as_deref())?;
    let model = source.build_with(&device, args.dtype)?;
    let spec = model.spec().clone();
    let file = args.inputs.as_path();
    let inputs = dreamyard_model::candle_core::safetensors::load(file, &Device::Cpu)
        .with_context(|| format!("{}: cannot read safetensors", file.display()))?;

    let obs = if let Some(obs) = inputs.get("obs") {
        check_rank(obs, file, "obs", 5, "(b, T, C, H, W) f32 in [-1, 1]")?;
        obs.to_dtype(DType::F32)?
    } else if let Some(obs) = inputs.get("obs_u8") {
        check_rank(obs, file, "obs_u8", 5, "(b, T, C, H, W) u8")?;
        if obs.dtype() != DType::U8 {
            bail!(
                "{}: tensor `obs_u8` is {:?}, expected u8",
                file.display(),
                obs.dtype()
            );
        }
        (((obs.to_dtype(DType::F32)? / 255.0)? * 2.0)? - 1.0)?
    } else {
        bail!(
            "{}: needs tensor `obs` (f32) or `obs_u8` (u8)",
            file.display()
        );
    };
    let b = obs.dim(0)?;
    let act = actions_for(get(&inputs, file, "act")?, &spec.action, file, "act", 2)?;
    let roll = actions_for(
        get(&inputs, file, "rollout.actions")?,
        &spec.action,
        file,
        "rollout.actions",
        2,
    )?;
    if act.dim(0)? != b || roll.dim(0)? != b {
        bail!(
            "{}: batch sizes differ: obs {b}, act {}, rollout.actions {}",
            file.display(),
            act.dim(0)?,
            roll.dim(0)?
        );
    }
    let steps = roll.dim(1)?;
    let (_, _, c, h, w) = obs.dims5()?;
    let noise = match inputs.get("rollout.noise") {
        Some(n) => {
            if n.dims() != [b, steps, c, h, w] {
                bail!(
                    "{}: tensor `rollout.noise` has shape {:?}, expected {:?}",
                    file.display(),
                    n.dims(),
                    [b, steps, c, h, w]
                );
            }
            Some(n.to_dtype(DType::F32)?)
        }
        None => None,
    };

    let mut state = model
        .reset(&obs.to_device(&device)?, &act.to_device(&device)?)
        .with_context(|| format!("{}: `obs` / `act` do not fit the model", file.display()))?;
    let mut seeded = SeededNoise::new(args.seed);
    let mut frames = Vec::with_capacity(steps);
    for t in 0..steps {
        let a = roll.i((.., t))?.contiguous()?.to_device(&device)?;
        let frame = match &noise {
            Some(n) => {
                let mut given =
                    GivenNoise::new([n.i((.., t))?.contiguous()?.to_device(&device)?]);
                let f = model.step(&mut state, &a, &mut given as &mut dyn NoiseSource)?;
                if given.remaining() != 0 {
                    bail!("rollout.noise: step {t} left noise unused");
                }
                f
            }
            None => model.step(&mut state, &a, &mut seeded)?,
        };
        frames.push(frame.to_device(&Device::Cpu)?);
    }
    let frames = Tensor::stack(&frames, 1)?; // [b, N, C, H, W]
    let out: HashMap<String, Tensor> = [("frames".to_string(), frames)].into_iter().collect();
    dreamyard_model::candle_core::safetensors::save(&out, &args.out)
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    println!(
        "{}",
        serde_json::json!({
            "out": args.out.display().to_string(),
            "batch": b,
            "steps": steps,
            "model_sha256": source.weights_sha256()?,
        })
    );
    Ok(())
}

/// Runs `dreamyard convert`.
pub fn convert(args: &ConvertArgs) -> anyhow::Result<()> {
    let ckpt = ModelSource::resolve(&args.model, args.config.as_deref())?.load()?;
    ckpt.save_native(&args.out)?;
    println!(
        "{}",
        serde_json::json!({
            "out": args.out.display().to_string(),
            "tensors": ckpt.tensors.len(),
            "action": ckpt.config.denoiser.inner_model.action,
        })
    );
    Ok(())
}
