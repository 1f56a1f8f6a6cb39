//! One evaluation run, start to end, without the CLI: resolve and load the model, open the
//! dataset against it, select and shard the windows, roll out and score every batch, write
//! the example strips and the report directory. `eval_cmd` only parses arguments, shows
//! progress and prints the summary.

use std::path::Path;

use anyhow::{Context as _, bail};
use dreamyard_model::candle_core::{DType, Device};

use super::data::{EvalDataset, dataset_fingerprint};
use super::report::{DatasetInfo, EXAMPLES_DIR, ModelInfo, Report, aggregate, write_report_dir};
use super::{
    Costs, Evaluator, PSNR_CAP_DB, Perturbation, Protocol, Regime, Shard, example_ids, plot,
    select_windows, shard_batches,
};
use crate::metrics::DEFAULT_TOLERANCE;
use crate::model_source::ModelSource;

/// What one evaluation takes (`dreamyard eval`'s arguments, parsed).
#[derive(Debug)]
pub struct EvalRequest<'a> {
    /// The model and its config, as `--model` / `--config` (see `model_source`).
    pub model: &'a Path,
    pub config: Option<&'a Path>,
    /// The LeRobot dataset and the selected episodes (`0-9,12`; all when `None`).
    pub dataset: &'a Path,
    pub episodes: Option<&'a str>,
    /// Context frames; must equal the model's when given.
    pub context: Option<usize>,
    pub horizon: usize,
    /// Frames between window starts (default: the horizon).
    pub stride: Option<usize>,
    pub regime: Regime,
    pub samples: usize,
    pub seed: u64,
    pub batch_size: usize,
    pub shard: Option<Shard>,
    /// Example strips to write.
    pub examples: usize,
    /// Counterfactual rollouts (action response) with these perturbed actions.
    pub counterfactual: Option<Perturbation>,
    pub device: &'a Device,
    /// What the network computes in.
    pub dtype: DType,
    /// The report directory.
    pub out: &'a Path,
    /// The command line, recorded in the report.
    pub command: Vec<String>,
}

/// What a run reports while it works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// Windows selected: all, in this run (shard), and from how many episodes.
    Start {
        windows: usize,
        scored: usize,
        episodes: usize,
    },
    /// A batch of `windows` was scored; the model's PSNR at the last step of its last window.
    Batch {
        windows: usize,
        psnr_last: Option<f64>,
    },
    /// Every batch was scored in `total_s` seconds, of which these went to the physics metrics
    /// and the counterfactual.
    Scored { total_s: f64, costs: Costs },
}

/// Runs the evaluation `args` describes and writes its report directory; returns the report.
pub fn evaluate(
    args: &EvalRequest<'_>,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<Report> {
    let (model_path, dataset, out) = (args.model, args.dataset, args.out);
    if args.horizon == 0 || args.samples == 0 || args.batch_size == 0 {
        bail!("--horizon, --samples and --batch-size must be at least 1");
    }
    let source = ModelSource::resolve(model_path, args.config)?;
    let model = source.build_with(args.device, args.dtype)?;
    let spec = model.spec().clone();
    if let Some(up) = spec.upsampling {
        bail!(
            "{}: a two-stage model (a x{} diffusion upsampler, as DIAMOND's CS:GO model): eval \
             scores single-stage models against a dataset's frames and does not evaluate \
             two-stage ones yet; run it with `predict` or in the app",
            source.config.display(),
            up.factor
        );
    }
    if let Some(c) = args.context
        && c != spec.context_len
    {
        bail!(
            "--context {c}: model {} (field `num_steps_conditioning`) is conditioned on {} \
             frames; the context must match",
            source.config.display(),
            spec.context_len
        );
    }
    let mut data = EvalDataset::open(dataset, &spec, &source, args.episodes)?;
    if args.counterfactual.is_some() {
        if args.regime != Regime::Autoregressive {
            bail!(
                "--counterfactual needs --regime autoregressive: the two futures must each \
                 follow their own actions from one context"
            );
        }
        if data.palette.is_none() {
            bail!(
                "--counterfactual: {} has no scene colours (meta/dreamyard.json), so object \
                 positions cannot be read from its frames",
                dataset.display()
            );
        }
        data.enable_counterfactual()?;
    }
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
        counterfactual: args.counterfactual,
    };
    let model_info = ModelInfo {
        path: model_path.display().to_string(),
        weights_sha256: source.weights_sha256()?,
        config_sha256: Some(source.config_sha256()?),
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
    progress(Progress::Start {
        windows: windows.len(),
        scored,
        episodes: data.episodes.len(),
    });
    let evaluator = Evaluator::new(&model, &protocol);
    let started = std::time::Instant::now();
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
        progress(Progress::Batch {
            windows: batch.len(),
            psnr_last: recs.last().and_then(|r| r.model.last()).map(|m| m.psnr),
        });
        records.extend(recs);
    }
    progress(Progress::Scored {
        total_s: started.elapsed().as_secs_f64(),
        costs: evaluator.costs(),
    });
    let (per_step, summary) = aggregate(&records, &objects, horizon, protocol.seed)?;
    let report = Report {
        dreamyard_version: env!("CARGO_PKG_VERSION").to_owned(),
        command: args.command.clone(),
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
    Ok(report)
}
