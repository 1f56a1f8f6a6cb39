//! `dreamyard train`: trains a world model with the model crate's trainer, on a LeRobot dataset
//! or on windows the simulator makes while training runs (`--scene`, see [`crate::live_data`]).
//!
//! This file only joins the two leaves: it reads the dataset (scenes crate) or starts the live
//! stream, turns it into the trainer's episodes, and shows progress; the objective, checkpoints
//! and export live in `dreamyard_model::train`.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use dreamyard_model::config::FrameSize;
use dreamyard_model::train::{TrainConfig, TrainData, TrainEvent, Trainer, WindowStream};
use dreamyard_scenes::dataset::Dataset;
use indicatif::{ProgressBar, ProgressStyle};

use crate::bridge;
use crate::device::{device_name, parse_device};
use crate::live_data::{self, LiveSpec, LiveWindows};
use crate::model_source::ModelSource;

/// Arguments of `dreamyard train`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("data").required(true).args(["dataset", "scene"])))]
pub struct TrainArgs {
    /// LeRobot dataset (v3.0 or v2.1) with image frames and actions.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Train on fresh windows from this scene's simulator (a built-in name or a scene file)
    /// instead of a dataset: no window is seen twice, the policy mixture drives the episodes,
    /// and the validation episodes come from their own seeds.
    #[arg(long, conflicts_with = "dataset")]
    pub scene: Option<String>,
    /// With `--scene`: the policies that drive the episodes: `user-like` (the shipped mixture,
    /// `scenes/data/user-like.toml`) or a mixture file of that shape.
    #[arg(long, default_value = "user-like", requires = "scene")]
    pub policy_mix: String,
    /// With `--scene`: steps (frames) per simulated episode.
    #[arg(long, default_value_t = 200, requires = "scene", value_parser = clap::value_parser!(u64).range(1..))]
    pub episode_steps: u64,
    /// With `--scene`: render square frames of this size (default: the `--init` model's frame
    /// size, else the scene file's).
    #[arg(long, requires = "scene", value_parser = clap::value_parser!(u32).range(8..=1024))]
    pub size: Option<u32>,
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

/// What a run trains on.
enum Source {
    Dataset(TrainData),
    Live {
        validation: TrainData,
        stream: Box<LiveWindows>,
    },
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
    let init = match &args.init {
        Some(init) => Some(
            ModelSource::resolve(init, None)
                .and_then(|m| m.load())
                .with_context(|| format!("--init {}: cannot read the model", init.display()))?,
        ),
        None => None,
    };
    let mut source = match (&args.dataset, &args.scene) {
        (Some(dataset), _) => {
            let data = load_train_data(dataset, true)?;
            let frames: usize = data.episodes.iter().map(|e| e.len).sum();
            eprintln!(
                "dataset {}: {} episodes, {frames} frames of {}x{}; device {}",
                dataset.display(),
                data.episodes.len(),
                data.frame.width,
                data.frame.height,
                device_name(&device)
            );
            Source::Dataset(data)
        }
        (None, Some(scene)) => {
            let (mix, mix_name) = live_data::policy_mix(&args.policy_mix)?;
            let size = args.size.or_else(|| {
                let f = init.as_ref()?.config.frame?;
                (f.width == f.height).then_some(f.width as u32)
            });
            let spec = LiveSpec {
                scene: scene.clone(),
                size,
                mix,
                mix_name,
                seed: cfg.training.seed,
                episode_steps: args.episode_steps as usize,
            };
            let context = cfg.model.num_steps_conditioning + cfg.training.rollout_context;
            let stream = Box::new(LiveWindows::new(
                &spec,
                cfg.training.batch_size,
                context + 1,
            )?);
            let validation = live_data::validation_data(&spec, cfg.training.validation_episodes)?;
            eprintln!(
                "live {scene} at {}x{} ({} policies, seed {}): {} windows of {} frames per step \
                 from {}-step episodes; {} validation episodes; device {}",
                validation.frame.width,
                validation.frame.height,
                spec.mix_name,
                spec.seed,
                cfg.training.batch_size,
                context + 1,
                spec.episode_steps,
                validation.episodes.len(),
                device_name(&device)
            );
            Source::Live { validation, stream }
        }
        (None, None) => bail!("pass --dataset DIR or --scene NAME: what to train on"),
    };
    let mut trainer = match (&source, args.resume) {
        (Source::Dataset(data), true) => Trainer::resume(&args.out, &cfg, data, &device)?,
        (Source::Dataset(data), false) => Trainer::new(&cfg, data, &device)?,
        (Source::Live { validation, stream }, true) => {
            Trainer::resume_streamed(&args.out, &cfg, validation, stream.identity(), &device)?
        }
        (Source::Live { validation, stream }, false) => {
            Trainer::new_streamed(&cfg, validation, stream.identity(), &device)?
        }
    };
    if let (Some(start), Some(path)) = (&init, &args.init) {
        trainer = trainer.start_from(start, &path.display().to_string())?;
    }
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
    let first_step = trainer.step();
    let mut last_val = None;
    let stop = AtomicBool::new(false);
    let mut on_event = |event: TrainEvent<'_>| match event {
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
    };
    match &mut source {
        Source::Dataset(data) => {
            trainer.fit_until(data, &args.out, end, &stop, &mut on_event)?;
        }
        Source::Live { validation, stream } => {
            trainer.fit_stream_until(
                validation,
                stream.as_mut(),
                &args.out,
                end,
                &stop,
                &mut on_event,
            )?;
        }
    }
    bar.finish_and_clear();
    let wall_s = started.elapsed().as_secs_f64();
    let steps = trainer.step() - first_step;
    let summary = serde_json::json!({
        "out": args.out.display().to_string(),
        "steps": trainer.step(),
        "wall_s": wall_s,
        "steps_per_s": if wall_s > 0.0 { steps as f64 / wall_s } else { 0.0 },
        "device": device_name(&device),
        "data": match &source {
            Source::Dataset(_) => "dataset",
            Source::Live { .. } => "live",
        },
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
