//! `dreamyard bench model`: how fast a world model generates frames.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;
use dreamyard_model::candle_core::{DType, Device, Tensor};
use dreamyard_model::{ActionSpace, Checkpoint, KernelPath, SeededNoise, WorldModel};
use serde_json::{Value, json};

use crate::device::{device_name, parse_device};
use crate::model_source::ModelSource;
use crate::parse::parse_kernels;

#[derive(Debug, Args)]
pub struct BenchModelArgs {
    /// A model: a native directory, a `model.safetensors`, a DIAMOND `agent.pt` (with
    /// `--config`) or a folder holding one with its yaml.
    #[arg(long, required_unless_present = "random")]
    pub model: Option<PathBuf>,
    /// Config for `--model`: DIAMOND's yaml for an `agent.pt`, or a native `config.json`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Time the architecture of `--config` with freshly initialised weights instead of a
    /// model's (e.g. `assets/configs/diamond-csgo.yaml`, DIAMOND's published CS:GO model).
    #[arg(long, requires = "config", conflicts_with = "model")]
    pub random: bool,
    /// auto (a GPU when the build has one and one is present, else the CPU), cpu, cuda,
    /// cuda:N, metal or metal:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// What the network computes in: f32, f16 or bf16 (bf16 on a GPU only; the sampler stays f32).
    #[arg(long, default_value = "f32", value_parser = crate::device::parse_dtype)]
    pub dtype: DType,
    /// Frame size HxW (or one number for a square) of the first stage; default: the model's,
    /// else 64x64. A two-stage model's output is its upsampling factor times larger.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<(usize, usize)>,
    /// Generated frames (sampler steps) timed per batch size, after one warm-up step.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Batch sizes to time; the first is reported at the top level.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub batch: Vec<usize>,
    /// CPU kernels: fast (ours) or candle (plain candle ops, the reference).
    #[arg(long, default_value = "fast", value_parser = parse_kernels)]
    pub kernels: KernelPath,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let parse = |t: &str| {
        t.trim()
            .parse::<usize>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("bad frame size `{s}`; expected HxW or N, positive integers"))
    };
    match s.split_once(['x', 'X']) {
        Some((h, w)) => Ok((parse(h)?, parse(w)?)),
        None => parse(s).map(|n| (n, n)),
    }
}

pub fn bench(args: &BenchModelArgs) -> anyhow::Result<()> {
    if args.steps == 0 || args.batch.is_empty() || args.batch.contains(&0) {
        bail!("--steps and every --batch size must be positive");
    }
    let device = parse_device(&args.device)?;
    let (model, label, format, sha, values) = match (&args.model, &args.config) {
        (Some(path), config) => {
            let source = ModelSource::resolve(path, config.as_deref())?;
            let ck = source
                .load()
                .with_context(|| format!("loading {}", path.display()))?;
            let model = ck
                .build_with(&device, args.dtype)
                .with_context(|| format!("loading {}", path.display()))?;
            let sha = source.weights_sha256()?;
            (
                model,
                path.clone(),
                source.format.to_string(),
                Some(sha),
                ck.num_values(),
            )
        }
        (None, Some(config)) => {
            let cfg = Checkpoint::config_from_file(config)?;
            let ck = Checkpoint::random(&cfg, 0)?;
            let model = ck.build_with(&device, args.dtype)?;
            (
                model,
                config.clone(),
                "random".to_string(),
                None,
                ck.num_values(),
            )
        }
        (None, None) => bail!("give --model, or --random with --config"),
    };
    let (h, w) = args
        .size
        .or(model.spec().frame.map(|f| (f.height, f.width)))
        .unwrap_or((64, 64));
    let inner = &model.config().denoiser.inner_model;
    let calls_per_frame = model.sampler().sigmas().len() - 1;
    let mut runs = Vec::new();
    for &b in &args.batch {
        let run = dreamyard_model::with_kernel_path(args.kernels, || {
            time_batch(&model, &device, b, (h, w), args.steps)
        })?;
        runs.push(run);
    }
    let first = runs.first().cloned().unwrap_or(Value::Null);
    let by_batch: serde_json::Map<String, Value> = args
        .batch
        .iter()
        .zip(&runs)
        .map(|(b, r)| (format!("batch_{b}"), r.clone()))
        .collect();
    let mut out = json!({
        "bench": "model",
        "model": label,
        "model_format": format,
        "model_sha256": sha,
        "parameters": values,
        "upsampling_factor": model.spec().upsampling.map(|u| u.factor),
        "device": device_name(&device),
        "dtype": crate::device::dtype_name(args.dtype),
        "kernels": args.kernels.name(),
        "threads": dreamyard_model::kernels::num_threads(),
        "frame": [h, w],
        "channels": inner.channels,
        "depths": inner.depths,
        "cond_channels": inner.cond_channels,
        "context_frames": inner.num_steps_conditioning,
        "action_map": inner.action_map,
        "denoiser_calls_per_frame": calls_per_frame,
        "steps": args.steps,
        "batch": args.batch.first(),
        "ms_per_denoiser_call": first["ms_per_denoiser_call"],
        "ms_per_frame": first["ms_per_frame"],
        "frames_per_s": first["frames_per_s"],
        "stages": first["stages"],
    });
    if let Some(obj) = out.as_object_mut() {
        obj.extend(by_batch);
    }
    println!("{out}");
    Ok(())
}

/// Times `steps` sampler steps (each one generated frame per rollout) and as many single
/// denoiser calls at batch `b`; reports medians and minima.
fn time_batch(
    model: &WorldModel,
    device: &Device,
    b: usize,
    (h, w): (usize, usize),
    steps: usize,
) -> anyhow::Result<Value> {
    let spec = model.spec();
    let t = spec.context_len;
    let mut noise = SeededNoise::new(0);
    // Context frames in [-1, 1]; the content does not change the work done. A two-stage model
    // starts from full-resolution frames (its first stage's are their downscale).
    let f = spec.upsampling.map_or(1, |u| u.factor);
    let frames = (Tensor::rand(-1f32, 1f32, (b, t, spec.img_channels, h * f, w * f), device)?)
        .to_dtype(DType::F32)?;
    let (actions, step_action) = match &spec.action {
        ActionSpace::Discrete { .. } => (
            Tensor::zeros((b, t), DType::U32, device)?,
            Tensor::zeros(b, DType::U32, device)?,
        ),
        ActionSpace::Continuous { dim, .. }
        | ActionSpace::MultiHot {
            num_actions: dim, ..
        } => (
            Tensor::zeros((b, t, *dim), DType::F32, device)?,
            Tensor::zeros((b, *dim), DType::F32, device)?,
        ),
    };
    let mut state = model.reset(&frames, &actions)?;

    // Whole steps: sampler + denoiser calls + window update.
    model.step(&mut state, &step_action, &mut noise)?; // warm-up
    device.synchronize()?;
    let mut step_ms = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        model.step(&mut state, &step_action, &mut noise)?;
        device.synchronize()?;
        step_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }

    // Single denoiser calls on the same inputs.
    let den = model.denoiser();
    let obs = state.frames().reshape((b, t * spec.img_channels, h, w))?;
    let window = state.action_window(&step_action)?;
    let noisy = Tensor::randn(0f32, 1f32, (b, spec.img_channels, h, w), device)?;
    let sigma = Tensor::new(1.0f32, device)?;
    let mut call_ms = Vec::with_capacity(steps);
    let cpu_start = process_cpu_ms();
    for _ in 0..steps {
        let start = Instant::now();
        den.denoise(&noisy, &sigma, &obs, &window)?;
        device.synchronize()?;
        call_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    // CPU time of all threads per call: unlike wall time, barely moved by other processes
    // competing for the cores (Linux only; null elsewhere).
    let cpu_ms_per_call = cpu_start
        .zip(process_cpu_ms())
        .map(|(a, b)| (b - a) / steps as f64);

    // A two-stage model: each stage alone, on the state the steps left.
    let stages = match (model.upsampler(), state.full_frames()) {
        (Some(up), Some(full)) => {
            let (mut lr_ms, mut up_ms) = (Vec::new(), Vec::new());
            for _ in 0..steps {
                let start = Instant::now();
                let low = model.sampler().sample(
                    model.denoiser(),
                    state.frames(),
                    &window,
                    &mut noise,
                )?;
                device.synchronize()?;
                lr_ms.push(start.elapsed().as_secs_f64() * 1e3);
                let start = Instant::now();
                up.upsample(full, &low, &mut noise)?;
                device.synchronize()?;
                up_ms.push(start.elapsed().as_secs_f64() * 1e3);
            }
            let (lr_med, _) = median_min(&mut lr_ms);
            let (up_med, _) = median_min(&mut up_ms);
            json!({
                "next_frame": {
                    "frame": [h, w],
                    "denoiser_calls": model.sampler().sigmas().len() - 1,
                    "ms_per_frame": lr_med / b as f64,
                },
                "upsampler": {
                    "frame": [h * f, w * f],
                    "denoiser_calls": up.sampler().sigmas().len() - 1
                        + up.sampler().config().order.saturating_sub(1) as usize
                            * (up.sampler().sigmas().len().saturating_sub(2)),
                    "ms_per_frame": up_med / b as f64,
                },
            })
        }
        _ => Value::Null,
    };
    let (step_med, step_min) = median_min(&mut step_ms);
    let (call_med, call_min) = median_min(&mut call_ms);
    let frames_per_step = b as f64;
    Ok(json!({
        "batch": b,
        "ms_per_denoiser_call": call_med,
        "ms_per_denoiser_call_min": call_min,
        "cpu_ms_per_denoiser_call": cpu_ms_per_call,
        "ms_per_step": step_med,
        "ms_per_frame": step_med / frames_per_step,
        "ms_per_frame_min": step_min / frames_per_step,
        "frames_per_s": 1e3 * frames_per_step / step_med,
        "frames_per_s_max": 1e3 * frames_per_step / step_min,
        "stages": stages,
    }))
}

/// CPU time used so far by every thread of this process, in ms (from
/// `/proc/self/task/*/schedstat`, nanosecond resolution).
fn process_cpu_ms() -> Option<f64> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut ns = 0u64;
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e6)
}

/// `(median, min)` of `v` (sorted in place); `v` is not empty.
fn median_min(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2])
    };
    (median, v[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64"), Ok((64, 64)));
        assert_eq!(parse_size("48x96"), Ok((48, 96)));
        assert!(parse_size("0x4").is_err());
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median_min(&mut [3.0, 1.0, 2.0]), (2.0, 1.0));
        assert_eq!(median_min(&mut [4.0, 1.0, 2.0, 3.0]), (2.5, 1.0));
    }
}
