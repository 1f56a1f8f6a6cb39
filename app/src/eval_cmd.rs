//! `dreamyard eval` and `dreamyard eval merge`: the command-line side of [`crate::eval`]
//! (arguments, progress bar, files); the protocol and the report live there.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::device::parse_device;
use crate::eval::report::{self, REPORT_JSON, Report};
use crate::eval::run::{self, EvalRequest, Progress};
use crate::eval::{Perturbation, Regime, Shard};
use dreamyard_model::candle_core::DType;

/// Arguments of `dreamyard eval`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    #[command(flatten)]
    pub run: EvalRunArgs,
}

/// Subcommands of `dreamyard eval`.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Combine the reports of `--shard i/n` runs into the report one run would write.
    Merge(MergeArgs),
}

/// Arguments of `dreamyard eval merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Output report directory.
    #[arg(long)]
    pub out: PathBuf,
    /// The shard report directories (every shard 0..n of one evaluation, any order).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
}

/// Arguments of an evaluation run.
#[derive(Debug, Args)]
pub struct EvalRunArgs {
    /// The model: a native directory, a `model.safetensors` (+ config.json), or a DIAMOND
    /// `agent.pt` with `--config`.
    #[arg(long, required = true)]
    pub model: Option<PathBuf>,
    /// Config for `--model` (as for `predict`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// LeRobot dataset (v3.0 or v2.1).
    #[arg(long, required = true)]
    pub dataset: Option<PathBuf>,
    /// Episodes to evaluate, e.g. `0-9,12` (default: all).
    #[arg(long)]
    pub episodes: Option<String>,
    /// Context frames; must equal the model's (default: the model's).
    #[arg(long)]
    pub context: Option<usize>,
    /// Steps predicted and scored per window.
    #[arg(long, default_value_t = 32)]
    pub horizon: usize,
    /// Frames between window starts in an episode (default: the horizon, so scored frames of
    /// consecutive windows do not overlap).
    #[arg(long)]
    pub stride: Option<usize>,
    /// autoregressive (the model feeds on its own frames) or teacher-forced (real context at
    /// every step).
    #[arg(long, value_enum, default_value = "autoregressive")]
    pub regime: Regime,
    /// Sampled rollouts per window (reports the mean and the best of K).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Seed of the sampler noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Windows per model batch. Part of the protocol: shards split on batch boundaries.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Evaluate only part i of n (0-based), e.g. `0/4`; combine with `dreamyard eval merge`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Number of example strips (Truth / Model / Error), spread over the windows.
    #[arg(long, default_value_t = 4)]
    pub examples: usize,
    /// Action response: also roll out every window with perturbed actions, in the model and
    /// in the simulator the dataset was recorded from (from its stored state): `mirror` (each
    /// action mirrored about the middle of its range) or `offset:F` (moved by F of its range,
    /// reflected at the bounds). Autoregressive only; about one more rollout per window.
    #[arg(long)]
    pub counterfactual: Option<Perturbation>,
    /// auto (a GPU when the build has one and one is present, else the CPU), cpu, cuda,
    /// cuda:N, metal or metal:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// What the network computes in: f32, f16 or bf16 (bf16 on a GPU only; the sampler stays f32).
    #[arg(long, default_value = "f32", value_parser = crate::device::parse_dtype)]
    pub dtype: DType,
    /// Output report directory.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
}

/// Runs `dreamyard eval` (or `eval merge`); `argv` is the command line, for the report.
pub fn run(args: &EvalArgs, argv: &[String]) -> anyhow::Result<()> {
    match &args.command {
        Some(EvalCommand::Merge(m)) => {
            let report = report::merge(&m.shards, &m.out, argv.to_vec())?;
            print_summary(&m.out, &report)
        }
        None => evaluate(&args.run, argv),
    }
}

fn evaluate(args: &EvalRunArgs, argv: &[String]) -> anyhow::Result<()> {
    let (Some(model), Some(dataset), Some(out)) = (&args.model, &args.dataset, &args.out) else {
        bail!("eval needs --model, --dataset and --out");
    };
    let device = parse_device(&args.device)?;
    let request = EvalRequest {
        model,
        config: args.config.as_deref(),
        dataset,
        episodes: args.episodes.as_deref(),
        context: args.context,
        horizon: args.horizon,
        stride: args.stride,
        regime: args.regime,
        samples: args.samples,
        seed: args.seed,
        batch_size: args.batch_size,
        shard: args.shard,
        examples: args.examples,
        counterfactual: args.counterfactual,
        device: &device,
        dtype: args.dtype,
        out,
        command: argv.to_vec(),
    };
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} windows  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = run::evaluate(&request, &mut |p| match p {
        Progress::Start {
            windows,
            scored,
            episodes,
        } => {
            eprintln!(
                "eval: {windows} windows ({scored} in this run) of {episodes} episodes, {} \
                 regime, horizon {}, {} sample(s)",
                args.regime.name(),
                args.horizon,
                args.samples
            );
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length(scored as u64);
        }
        Progress::Batch { windows, psnr_last } => {
            if let Some(p) = psnr_last {
                bar.set_message(format!("PSNR h{} {p:.2} dB", args.horizon));
            }
            bar.inc(windows as u64);
        }
        Progress::Scored { total_s, costs } => {
            bar.finish_and_clear();
            let share = |s: f64| 100.0 * s / total_s.max(1e-9);
            eprintln!(
                "eval: scored in {total_s:.1} s: physics metrics {:.1} s ({:.1} %), \
                 counterfactual model rollouts {:.1} s ({:.1} %), simulator {:.1} s ({:.1} %)",
                costs.physics_s,
                share(costs.physics_s),
                costs.counterfactual_model_s,
                share(costs.counterfactual_model_s),
                costs.counterfactual_world_s,
                share(costs.counterfactual_world_s),
            );
        }
    })?;
    bar.finish_and_clear();
    print_summary(out, &report)
}

fn print_summary(out: &std::path::Path, report: &Report) -> anyhow::Result<()> {
    let last = report.per_step.last();
    println!(
        "{}",
        serde_json::json!({
            "report": out.join(REPORT_JSON).display().to_string(),
            "windows": report.windows,
            "windows_scored": report.windows_scored,
            "shard": report.shard,
            "regime": report.protocol.regime,
            "horizon": report.protocol.horizon,
            "psnr_mean": report.summary.model.psnr,
            "ssim_mean": report.summary.model.ssim,
            "psnr_last": last.map(|e| e.psnr),
            "baseline_psnr_last": last.map(|e| e.baseline.psnr),
            // The headline physics: losses and teleports by the horizon, pose error, response.
            "physics": report
                .summary
                .physics
                .iter()
                .filter(|(k, _)| {
                    !k.starts_with("copy_last.")
                        && [".lost_by", ".teleport_by", ".centroid_px", "_ratio"]
                            .iter()
                            .any(|s| k.ends_with(s))
                })
                .collect::<std::collections::BTreeMap<_, _>>(),
        })
    );
    Ok(())
}
