//! `dreamyard eval` and `dreamyard eval merge`: the command-line side of [`crate::eval`]
//! (arguments, progress bar, files); the protocol and the report live there.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::device::parse_device;
use crate::eval::data::{EvalDataset, ModelFiles, dataset_fingerprint, sha256_file};
use crate::eval::report::{
    self, DatasetInfo, EXAMPLES_DIR, ModelInfo, REPORT_JSON, Report, aggregate, write_report_dir,
};
use crate::eval::{
    Evaluator, PSNR_CAP_DB, Protocol, Regime, Shard, example_ids, plot, select_windows,
    shard_batches,
};
use crate::metrics::DEFAULT_TOLERANCE;
use crate::predict_cmd::load_any_checkpoint;

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
    /// cpu, cuda, metal or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
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
    let (Some(model_path), Some(dataset), Some(out)) = (&args.model, &args.dataset, &args.out)
    else {
        bail!("eval needs --model, --dataset and --out");
    };
    if args.horizon == 0 || args.samples == 0 || args.batch_size == 0 {
        bail!("--horizon, --samples and --batch-size must be at least 1");
    }
    let device = parse_device(&args.device)?;
    let files = ModelFiles::resolve(model_path, args.config.as_deref());
    let model = load_any_checkpoint(model_path, args.config.as_deref())?.build(&device)?;
    let spec = model.spec().clone();
    if let Some(c) = args.context
        && c != spec.context_len
    {
        bail!(
            "--context {c}: model {} (field `num_steps_conditioning`) is conditioned on {} \
             frames; the context must match",
            files.config_name(),
            spec.context_len
        );
    }
    let mut data = EvalDataset::open(dataset, &spec, &files, args.episodes.as_deref())?;
    let (context, horizon) = (spec.context_len, args.horizon);
    let stride = args.stride.unwrap_or(horizon);
    if stride == 0 {
        bail!("--stride must be at least 1");
    }
    let windows = select_windows(&data.episodes, context, horizon, stride);
    if windows.is_empty() {
        let longest = data.episodes.iter().map(|e| e.1).max().unwrap_or(0);
        bail!(
            "{}: no window fits: context {context} + horizon {horizon} = {} frames, the longest \
             selected episode has {longest}; choose a shorter --horizon",
            dataset.display(),
            context + horizon
        );
    }
    let protocol = Protocol {
        regime: args.regime,
        context,
        horizon,
        stride,
        samples: args.samples,
        seed: args.seed,
        episodes: data.episodes.iter().map(|e| e.0).collect(),
        batch_size: args.batch_size,
        frame: [data.frame.0, data.frame.1],
        psnr_cap_db: PSNR_CAP_DB,
        iou_tolerance: DEFAULT_TOLERANCE,
    };
    let model_info = ModelInfo {
        path: model_path.display().to_string(),
        weights_sha256: sha256_file(&files.weights)?,
        config_sha256: files.config.as_deref().map(sha256_file).transpose()?,
        context,
        action: spec.action.clone(),
        frame: spec.frame.map(|f| [f.width, f.height]),
    };
    let dataset_info = DatasetInfo {
        path: dataset.display().to_string(),
        fingerprint: dataset_fingerprint(dataset)?,
        frame: [data.source_frame.0, data.source_frame.1],
        resized_to: (data.frame != data.source_frame).then_some([data.frame.0, data.frame.1]),
        fps: data.dataset().fps(),
    };
    let objects = data
        .palette
        .as_ref()
        .map(|p| p.names.clone())
        .unwrap_or_default();

    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let ex_dir = out.join(EXAMPLES_DIR);
    if ex_dir.exists() {
        // Strips of an earlier run in the same directory would be linked as this run's.
        std::fs::remove_dir_all(&ex_dir)
            .with_context(|| format!("{}: cannot clear", ex_dir.display()))?;
    }
    let examples = example_ids(windows.len(), args.examples);
    let batches = shard_batches(windows.len(), args.batch_size, args.shard);
    let scored: usize = batches.iter().map(|b| b.len()).sum();
    eprintln!(
        "eval: {} windows ({} in this run) of {} episodes, {} regime, horizon {horizon}, {} \
         sample(s)",
        windows.len(),
        scored,
        data.episodes.len(),
        args.regime.name(),
        args.samples
    );
    let bar = ProgressBar::new(scored as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} windows  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let evaluator = Evaluator::new(&model, &protocol);
    let mut records = Vec::with_capacity(scored);
    for range in batches {
        let batch = &windows[range];
        let (recs, kept) = evaluator.run_batch(&mut data, batch, &examples)?;
        for ex in kept {
            std::fs::create_dir_all(&ex_dir)
                .with_context(|| format!("{}: cannot create", ex_dir.display()))?;
            let w = ex.window;
            let path = ex_dir.join(format!(
                "window_{:05}_ep{}_t{}.png",
                w.id, w.episode, w.start
            ));
            plot::example_strip(&path, &ex.truth, &ex.model, data.frame.0, data.frame.1)?;
        }
        if let Some(last) = recs.last() {
            bar.set_message(format!(
                "PSNR h{horizon} {:.2} dB",
                last.model.last().map_or(f64::NAN, |m| m.psnr)
            ));
        }
        bar.inc(batch.len() as u64);
        records.extend(recs);
    }
    bar.finish_and_clear();
    let (per_step, summary) = aggregate(&records, &objects, horizon, protocol.seed)?;
    let report = Report {
        dreamyard_version: env!("CARGO_PKG_VERSION").to_owned(),
        command: argv.to_vec(),
        model: model_info,
        dataset: dataset_info,
        protocol,
        windows: windows.len(),
        windows_scored: records.len(),
        shard: args.shard,
        merged_from: Vec::new(),
        objects,
        notes: data.notes.clone(),
        per_step,
        summary,
    };
    write_report_dir(out, &report, &records)?;
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
        })
    );
    Ok(())
}
