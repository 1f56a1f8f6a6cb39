//! `dreamyard train`: trains a world model on a LeRobot dataset with the model crate's trainer.
//!
//! This file only joins the two leaves: it reads the dataset (scenes crate), turns it into the
//! trainer's in-memory episodes, and shows progress; the objective, checkpoints and export live in
//! `dreamyard_model::train`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use dreamyard_model::config::FrameSize;
use dreamyard_model::train::{TrainConfig, TrainData, TrainEvent, Trainer};
use dreamyard_scenes::dataset::Dataset;
use indicatif::{ProgressBar, ProgressStyle};

use crate::bridge;
use crate::device::{device_name, parse_device};
use crate::model_source::ModelSource;

/// Arguments of `dreamyard train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// LeRobot dataset (v3.0 or v2.1) with image frames and actions.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Training configuration (TOML: `[model]`, `[sampler]`, `[training]`).
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory: `model.safetensors` + `config.json`, `checkpoint/`, `metrics.jsonl`.
    #[arg(long)]
    pub out: PathBuf,
    /// Compute device: auto (a GPU when the build has one and one is present, else the CPU),
    /// cpu, cuda, cuda:N, metal or metal:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Continue the run saved in `--out`.
    #[arg(long)]
    pub resume: bool,
    /// Fine-tune: start a new run from a trained model's weights (any model `--model` takes
    /// elsewhere, e.g. `assets/models/push-t`) instead of a random initialisation. The config's `[model]` and the dataset must give the same network.
    #[arg(long, value_name = "MODEL_DIR", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Stop after this optimiser step (with a validation, a checkpoint and an export there)
    /// instead of at `training.steps`. The schedule stays the configured run's, so `--resume`
    /// later continues it exactly.
    #[arg(long, value_name = "STEP", value_parser = clap::value_parser!(u64).range(1..))]
    pub stop_after: Option<u64>,
}

/// Reads every episode of `dataset` into the trainer's format.
pub fn load_train_data(root: &Path, progress: bool) -> anyhow::Result<TrainData> {
    let ds = Dataset::open(root)?;
    let episodes = ds.episodes().to_vec();
    if episodes.is_empty() {
        bail!("{}: the dataset has no episodes", root.display());
    }
    let bar = if progress {
        ProgressBar::new(episodes.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("loading {bar:30} {pos}/{len} episodes ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut out = Vec::with_capacity(episodes.len());
    let mut frame: Option<(u32, u32)> = None;
    let mut action_dim = None;
    for info in &episodes {
        let ep = ds
            .episode(info.index)
            .with_context(|| format!("{}: episode {}", root.display(), info.index))?;
        let Some(first) = ep.frames.first() else {
            bar.inc(1);
            continue;
        };
        let size = (first.width, first.height);
        match frame {
            None => frame = Some(size),
            Some(s) if s != size => bail!(
                "{}: episode {} has {}x{} frames, earlier episodes {}x{}; training needs one frame size",
                root.display(),
                info.index,
                size.0,
                size.1,
                s.0,
                s.1
            ),
            Some(_) => {}
        }
        if *action_dim.get_or_insert(ep.action_dim) != ep.action_dim {
            bail!(
                "{}: episode {} has actions of width {}, expected {}",
                root.display(),
                info.index,
                ep.action_dim,
                action_dim.unwrap_or_default()
            );
        }
        out.push(bridge::episode_data(&ep));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (w, h) = frame.with_context(|| format!("{}: no episode has frames", root.display()))?;
    let action = bridge::action_space_to_model(&bridge::dataset_action_space(
        &ds,
        action_dim.unwrap_or(0),
        out.iter().map(|e| e.actions.as_slice()),
    )?);
    Ok(TrainData {
        frame: FrameSize {
            height: h as usize,
            width: w as usize,
        },
        channels: 3,
        action,
        fps: Some(ds.fps()),
        episodes: out,
    })
}

/// Runs `dreamyard train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let cfg = TrainConfig::from_toml_file(&args.config)?;
    let device = parse_device(&args.device)?;
    let has_run = dreamyard_model::train::has_checkpoint(&args.out);
    if has_run && !args.resume {
        bail!(
            "{} already holds a training run; pass --resume to continue it, or choose another --out",
            args.out.display()
        );
    }
    if args.resume && !has_run {
        bail!(
            "{}: no checkpoint to resume from (start without --resume)",
            args.out.display()
        );
    }
    let total = cfg.training.steps;
    let end = args.stop_after.map_or(total, |n| n.min(total));
    // A finished run says so before the dataset (minutes for a large one) is read.
    if args.resume
        && let Some(step) = dreamyard_model::train::checkpoint_step(&args.out)?
        && step >= end
    {
        bail!(
            "{}: the run is already at step {step} of {total}; nothing to train before step {end}",
            args.out.display(),
        );
    }
    let data = load_train_data(&args.dataset, true)?;
    let frames: usize = data.episodes.iter().map(|e| e.len).sum();
    eprintln!(
        "dataset {}: {} episodes, {frames} frames of {}x{}; device {}",
        args.dataset.display(),
        data.episodes.len(),
        data.frame.width,
        data.frame.height,
        device_name(&device)
    );
    let mut trainer = if args.resume {
        Trainer::resume(&args.out, &cfg, &data, &device)?
    } else if let Some(init) = &args.init {
        let start = ModelSource::resolve(init, None)
            .and_then(|m| m.load())
            .with_context(|| format!("--init {}: cannot read the model", init.display()))?;
        Trainer::from_weights(&cfg, &data, &device, &start, &init.display().to_string())?
    } else {
        Trainer::new(&cfg, &data, &device)?
    };
    let bar = ProgressBar::new(end);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(trainer.step());
    bar.reset_eta();
    let started = Instant::now();
    let mut last_val = None;
    let stop = AtomicBool::new(false);
    trainer.fit_until(&data, &args.out, end, &stop, &mut |event| match event {
        TrainEvent::Step(s) => {
            bar.set_position(s.step);
            bar.set_message(format!("loss {:.4}  lr {:.2e}", s.loss, s.lr));
        }
        TrainEvent::Validation(v) => {
            let psnr: Vec<String> = v
                .psnr
                .iter()
                .zip(&v.baseline_psnr)
                .map(|((h, p), (_, b))| format!("h{h} {p:.2} dB (copy {b:.2})"))
                .collect();
            bar.println(format!(
                "step {}: val loss {:.4}, PSNR {}",
                v.step,
                v.val_loss,
                psnr.join(", ")
            ));
            last_val = Some(v.clone());
        }
        TrainEvent::Checkpoint { .. } => {}
    })?;
    bar.finish_and_clear();
    let summary = serde_json::json!({
        "out": args.out.display().to_string(),
        "steps": trainer.step(),
        "wall_s": started.elapsed().as_secs_f64(),
        "device": device_name(&device),
        "validation": last_val,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use dreamyard_model::checkpoint::Checkpoint;
    use dreamyard_model::config::FrameSize;
    use dreamyard_model::train::TrainConfig;

    /// Every stage's config in the shipped model's directory parses and describes exactly the
    /// network that `config.json` ships (stages before the one that adds an action map: the
    /// same network without it), so `--init` chains them and the card's commands rerun.
    #[test]
    fn the_shipped_training_configs_describe_the_shipped_model() {
        let dir = crate::launch::resolve(std::path::Path::new(crate::launch::DEFAULT_MODEL_DIR));
        let shipped = Checkpoint::from_native_dir(&dir).unwrap().config;
        let inner = &shipped.denoiser.inner_model;
        let frame: FrameSize = shipped.frame.unwrap();
        let mut stages: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        stages.sort();
        assert!(stages.len() >= 2, "{stages:?}");
        let mut exact = 0;
        for path in stages {
            let cfg = TrainConfig::from_toml_file(&path).unwrap();
            let mut built = cfg.model_config(&inner.action, inner.img_channels, frame, shipped.fps);
            // Stages before the one that adds an action map build the same network without it
            // (`--init` widens it with zero weights).
            if built.denoiser.inner_model.action_map.is_none() {
                built.denoiser.inner_model.action_map = inner.action_map;
            } else {
                exact += 1;
            }
            assert_eq!(built, shipped, "{}", path.display());
        }
        if inner.action_map.is_some() {
            assert!(
                exact > 0,
                "no stage config adds the shipped model's action map"
            );
        }
    }
}
