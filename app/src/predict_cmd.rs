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
    /// (b,T,dim) f32 (multi-hot: ints or floats of 0/1); `rollout.actions` (b,N) ints or
    /// (b,N,dim) f32; optional `rollout.noise` (b,N,C,H,W) f32, the sampler's initial noise at
    /// each step. A two-stage model also takes `full_obs` / `full_obs_u8` (b,T',C,fH,fW), the
    /// full-resolution context (else `obs` is taken as full resolution and downscaled), and
    /// optionally every draw of its samplers as DIAMOND's fixture stores them:
    /// `rollout.lr.x0` (b,N,C,H,W), `rollout.lr.cond_offset` (b,N,S,T*C,1,1),
    /// `rollout.lr.cond_noise` (b,N,S,T*C,H,W), `rollout.up.x0` (b,N,C,fH,fW) and
    /// `rollout.up.churn` (b,N,K,C,fH,fW).
    #[arg(long)]
    pub inputs: PathBuf,
    /// Output file: `frames` (b,N,C,H,W) f32 in [-1,1] (a two-stage model: at full resolution,
    /// and its first stage's as `frames_lowres`).
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
    #[arg(long, required_unless_present = "random")]
    pub model: Option<PathBuf>,
    /// Write the architecture of `--config` with freshly initialised weights (seeded) instead
    /// of converting weights: e.g. `assets/configs/diamond-csgo.yaml` gives a model of the
    /// published CS:GO model's size to try the app, predict and bench on without its weights.
    #[arg(long, requires = "config", conflicts_with = "model")]
    pub random: bool,
    /// Seed of `--random`'s weights.
    #[arg(long, default_value_t = 0, requires = "random")]
    pub seed: u64,
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
        ActionSpace::Continuous { dim, .. }
        | ActionSpace::MultiHot {
            num_actions: dim, ..
        } => {
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

    // u8 frames as DIAMOND's loaders and the app's bridge convert them: `x / 255 * 2 - 1` with
    // a true division, so every entry point feeds the model the same floats.
    let Some(obs) = frames_input(&inputs, file, "obs")? else {
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

    // A two-stage model starts from its full-resolution context too, when the file has one.
    let two_stage = spec.upsampling.is_some();
    let full = if two_stage {
        frames_input(&inputs, file, "full_obs")?
    } else {
        None
    };
    let (obs_d, act_d) = (obs.to_device(&device)?, act.to_device(&device)?);
    let mut state = match &full {
        Some(full) => model.reset_two_stage(&obs_d, &full.to_device(&device)?, &act_d),
        None => model.reset(&obs_d, &act_d),
    }
    .with_context(|| {
        let names = if two_stage {
            "`obs` / `full_obs` / `act`"
        } else {
            "`obs` / `act`"
        };
        format!("{}: {names} do not fit the model", file.display())
    })?;
    let mut seeded = SeededNoise::new(args.seed);
    let (mut lows, mut frames) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
    for t in 0..steps {
        let a = roll.i((.., t))?.contiguous()?.to_device(&device)?;
        // Supplied draws: a single-stage model's `rollout.noise`, a two-stage model's every
        // draw of both samplers (fixture names); else seeded noise.
        let draws = if two_stage {
            two_stage_draws(&model, &inputs, file, t)?
        } else {
            match &noise {
                Some(n) => Some(vec![n.i((.., t))?.contiguous()?]),
                None => None,
            }
        };
        let out = match draws {
            Some(draws) => {
                let draws = draws
                    .into_iter()
                    .map(|d| d.to_device(&device))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut given = GivenNoise::new(draws);
                let out = model
                    .step_stages(&mut state, &a, &mut given as &mut dyn NoiseSource)
                    .with_context(|| format!("{}: step {t}", file.display()))?;
                if given.remaining() != 0 {
                    bail!("{}: step {t} left supplied noise unused", file.display());
                }
                out
            }
            None => model.step_stages(&mut state, &a, &mut seeded)?,
        };
        frames.push(out.output().to_device(&Device::Cpu)?);
        if two_stage {
            lows.push(out.low.to_device(&Device::Cpu)?);
        }
    }
    let mut out: HashMap<String, Tensor> = [("frames".to_string(), Tensor::stack(&frames, 1)?)] // [b, N, C, H, W]
        .into_iter()
        .collect();
    if two_stage {
        out.insert("frames_lowres".to_string(), Tensor::stack(&lows, 1)?);
    }
    dreamyard_model::candle_core::safetensors::save(&out, &args.out)
        .with_context(|| format!("{}: cannot write", args.out.display()))?;
    let mut line = serde_json::json!({
        "out": args.out.display().to_string(),
        "batch": b,
        "steps": steps,
        "model_sha256": source.weights_sha256()?,
    });
    if two_stage {
        line["stages"] = serde_json::json!(2);
    }
    println!("{line}");
    Ok(())
}

/// A frame tensor given as f32 in [-1, 1] (`key`) or u8 (`key_u8`), if present.
fn frames_input(
    inputs: &HashMap<String, Tensor>,
    file: &Path,
    key: &str,
) -> anyhow::Result<Option<Tensor>> {
    if let Some(t) = inputs.get(key) {
        check_rank(t, file, key, 5, "(b, T, C, H, W) f32 in [-1, 1]")?;
        return Ok(Some(t.to_dtype(DType::F32)?));
    }
    let k8 = format!("{key}_u8");
    let Some(t) = inputs.get(&k8) else {
        return Ok(None);
    };
    check_rank(t, file, &k8, 5, "(b, T, C, H, W) u8")?;
    if t.dtype() != DType::U8 {
        bail!(
            "{}: tensor `{k8}` is {:?}, expected u8",
            file.display(),
            t.dtype()
        );
    }
    // DIAMOND's `x.div(255).mul(2).sub(1)`, a true division.
    let d = Tensor::new(255f32, &Device::Cpu)?;
    Ok(Some(
        ((t.to_dtype(DType::F32)?.broadcast_div(&d)? * 2.0)? - 1.0)?,
    ))
}

/// The draws of one two-stage step `t` in the order the samplers request them, from the
/// fixture-shaped tensors: the first stage's `x0`, per sampler step its churn, offset and
/// conditioning noise; then the upsampler's `x0` and churn. `None` when the file has none.
fn two_stage_draws(
    model: &dreamyard_model::WorldModel,
    inputs: &HashMap<String, Tensor>,
    file: &Path,
    t: usize,
) -> anyhow::Result<Option<Vec<Tensor>>> {
    if !inputs.contains_key("rollout.lr.x0") {
        return Ok(None);
    }
    let up = model
        .upsampler()
        .context("two-stage draws for a single-stage model")?;
    let mut draws = Vec::new();
    for (stage, sampler, cond) in [("lr", model.sampler(), true), ("up", up.sampler(), false)] {
        let take = |name: &str, idx: &[usize]| -> anyhow::Result<Tensor> {
            let key = format!("rollout.{stage}.{name}");
            let mut x = get(inputs, file, &key)?.i((.., t))?;
            for &i in idx {
                x = x.i((.., i)).with_context(|| {
                    format!("{}: tensor `{key}` has too few entries", file.display())
                })?;
            }
            Ok(x.contiguous()?)
        };
        draws.push(take("x0", &[])?);
        let churn = sampler.churn_steps();
        let s_cond = sampler.config().s_cond > 0.0;
        for i in 0..sampler.sigmas().len() - 1 {
            if let Some(k) = churn.iter().position(|&c| c == i) {
                draws.push(take("churn", &[k])?);
            }
            if cond && s_cond {
                draws.push(take("cond_offset", &[i])?);
                draws.push(take("cond_noise", &[i])?);
            }
        }
    }
    Ok(Some(draws))
}

/// Runs `dreamyard convert`.
pub fn convert(args: &ConvertArgs) -> anyhow::Result<()> {
    let ckpt = match (&args.model, &args.config) {
        (Some(model), config) => ModelSource::resolve(model, config.as_deref())?.load()?,
        (None, Some(config)) => dreamyard_model::Checkpoint::random(
            &dreamyard_model::Checkpoint::config_from_file(config)?,
            args.seed,
        )?,
        (None, None) => bail!("give --model, or --random with --config"),
    };
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
