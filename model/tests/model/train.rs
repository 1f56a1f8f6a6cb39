//! Training: a tiny model overfits a tiny dataset, checkpoints round-trip, and a resumed run
//! continues exactly like an uninterrupted one.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use dreamyard_model::candle_core::Device;
use dreamyard_model::config::{ActionSpace, FrameSize};
use dreamyard_model::train::{
    EpisodeData, TrainConfig, TrainData, TrainEvent, Trainer, WindowStream, checkpoint_step,
};
use dreamyard_model::{Checkpoint, SeededNoise, WorldModel};

const SIZE: usize = 8;

/// A 2x2 red square on grey that moves by the (continuous) action, one pixel per unit.
fn episode(len: usize, start: (i32, i32), dirs: &[(f32, f32)]) -> EpisodeData {
    let mut frames = Vec::with_capacity(len * SIZE * SIZE * 3);
    let mut actions = Vec::with_capacity(len * 2);
    let (mut x, mut y) = start;
    for t in 0..len {
        for row in 0..SIZE as i32 {
            for col in 0..SIZE as i32 {
                let on = (col == x || col == x + 1) && (row == y || row == y + 1);
                frames.extend_from_slice(if on { &[220, 30, 30] } else { &[90, 90, 90] });
            }
        }
        let (dx, dy) = dirs[t % dirs.len()];
        actions.extend_from_slice(&[dx, dy]);
        x = (x + dx as i32).clamp(0, SIZE as i32 - 2);
        y = (y + dy as i32).clamp(0, SIZE as i32 - 2);
    }
    EpisodeData {
        frames_hwc: frames,
        actions,
        len,
    }
}

fn data() -> TrainData {
    TrainData {
        frame: FrameSize {
            height: SIZE,
            width: SIZE,
        },
        channels: 3,
        action: ActionSpace::Continuous {
            dim: 2,
            low: vec![-1.0, -1.0],
            high: vec![1.0, 1.0],
        },
        fps: Some(10.0),
        episodes: vec![
            episode(10, (0, 0), &[(1.0, 0.0), (0.0, 1.0)]),
            episode(10, (5, 5), &[(-1.0, 0.0), (0.0, -1.0)]),
            episode(10, (0, 5), &[(1.0, -1.0)]),
        ],
    }
}

fn config(steps: u64, extra: &str) -> TrainConfig {
    let text = format!(
        r#"
[model]
cond_channels = 16
depths = [1, 1]
channels = [16, 16]
attn_depths = [false, false]

[sampler]
num_steps_denoising = 2

[training]
steps = {steps}
batch_size = 8
learning_rate = 3e-3
warmup_steps = 10
validation_episodes = 1
log_every = 1
validate_every = 1000
checkpoint_every = 1000
rollout_horizon = 4
validation_rollouts = 2
{extra}
"#
    );
    TrainConfig::from_toml_str(&text, "test.toml").unwrap()
}

fn train_losses(cfg: &TrainConfig, out: &Path, resume: bool) -> Vec<(u64, f64)> {
    let d = data();
    let mut trainer = if resume {
        Trainer::resume(out, cfg, &d, &Device::Cpu).unwrap()
    } else {
        Trainer::new(cfg, &d, &Device::Cpu).unwrap()
    };
    fit_losses(&mut trainer, &d, out, cfg.training.steps)
}

/// Trains until step `until`, returning `(step, loss)` of each logged step.
fn fit_losses(trainer: &mut Trainer, d: &TrainData, out: &Path, until: u64) -> Vec<(u64, f64)> {
    let mut losses = Vec::new();
    trainer
        .fit_until(d, out, until, &AtomicBool::new(false), &mut |e| {
            if let TrainEvent::Step(s) = e {
                losses.push((s.step, s.loss));
            }
        })
        .unwrap();
    losses
}

#[test]
fn tiny_model_overfits_tiny_dataset() {
    // A fixed noise level (scale 0) makes the loss comparable from step to step.
    let cfg = config(
        300,
        "[training.sigma_distribution]\nloc = 0.0\nscale = 0.0\nsigma_min = 0.002\nsigma_max = 20.0\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let losses = train_losses(&cfg, dir.path(), false);
    let mean = |s: &[(u64, f64)]| s.iter().map(|(_, l)| l).sum::<f64>() / s.len() as f64;
    let first = mean(&losses[..10]);
    let last = mean(&losses[losses.len() - 10..]);
    assert!(
        last * 10.0 <= first,
        "loss fell from {first} to {last} only"
    );

    // The export loads as a world model and generates frames of the data's size.
    let model = WorldModel::load_native(dir.path(), &Device::Cpu).unwrap();
    let d = data();
    let frames = d
        .frames(0, 0, 4, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let acts = d
        .actions(0, 0, 4, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut state = model.reset(&frames, &acts).unwrap();
    let next = model
        .step(
            &mut state,
            &d.actions(0, 3, 1, &Device::Cpu).unwrap(),
            &mut SeededNoise::new(0),
        )
        .unwrap();
    assert_eq!(next.dims(), &[1, 3, SIZE, SIZE]);
    // metrics.jsonl has one train line per step and the final validation.
    let log = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("\"train\"")).count(), 300);
    assert!(log.lines().any(|l| l.contains("psnr_h4")));
}

/// A run stopped after 5 steps and resumed gives the losses and weights of an uninterrupted one.
fn assert_resume_continues_exactly(extra: &str) {
    let straight = tempfile::tempdir().unwrap();
    let full = train_losses(&config(12, extra), straight.path(), false);

    let split = tempfile::tempdir().unwrap();
    let head = train_losses(&config(5, extra), split.path(), false);
    // Resuming may extend the step count; the rest of the config must match.
    let tail = train_losses(&config(12, extra), split.path(), true);
    let resumed: Vec<(u64, f64)> = head.into_iter().chain(tail).collect();
    assert_eq!(resumed, full);

    // The checkpoint round-trips: same weights as the uninterrupted run's.
    let a = WorldModel::load_native(straight.path(), &Device::Cpu).unwrap();
    let b = WorldModel::load_native(split.path(), &Device::Cpu).unwrap();
    let d = data();
    let frames = d
        .frames(1, 0, 4, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let acts = d
        .actions(1, 0, 4, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let step = |m: &WorldModel| {
        let mut s = m.reset(&frames, &acts).unwrap();
        m.step(
            &mut s,
            &acts.get(0).unwrap().get(3).unwrap().unsqueeze(0).unwrap(),
            &mut SeededNoise::new(3),
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
    };
    assert_eq!(step(&a), step(&b));
}

#[test]
fn resume_continues_exactly() {
    assert_resume_continues_exactly("");
}

#[test]
fn resume_continues_exactly_with_context_noise_and_self_generated_context() {
    assert_resume_continues_exactly("context_noise = 0.1\nrollout_context = 2");
}

#[test]
fn a_run_stopped_early_resumes_on_its_own_schedule() {
    // A cosine schedule: stopping early must not shorten it (unlike a run with fewer steps).
    let cfg = config(12, "lr_schedule = \"cosine\"");
    let straight = tempfile::tempdir().unwrap();
    let full = train_losses(&cfg, straight.path(), false);

    let split = tempfile::tempdir().unwrap();
    let d = data();
    assert_eq!(checkpoint_step(split.path()).unwrap(), None);
    let mut trainer = Trainer::new(&cfg, &d, &Device::Cpu).unwrap();
    let head = fit_losses(&mut trainer, &d, split.path(), 5);
    assert_eq!(trainer.step(), 5);
    assert_eq!(checkpoint_step(split.path()).unwrap(), Some(5));
    let tail = train_losses(&cfg, split.path(), true);
    let resumed: Vec<(u64, f64)> = head.into_iter().chain(tail).collect();
    assert_eq!(resumed, full);
    assert_eq!(
        std::fs::read(split.path().join("model.safetensors")).unwrap(),
        std::fs::read(straight.path().join("model.safetensors")).unwrap()
    );
}

#[test]
fn resume_rejects_a_changed_config() {
    let dir = tempfile::tempdir().unwrap();
    train_losses(&config(3, ""), dir.path(), false);
    let changed = config(6, "").clone();
    let mut changed = changed;
    changed.training.learning_rate = 1e-4;
    let err = Trainer::resume(dir.path(), &changed, &data(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("training.learning_rate"), "{err}");
    assert!(err.contains("state.json"), "{err}");
}

/// The losses of the first `steps` steps of a fresh run with `extra` config lines.
fn first_losses(steps: u64, extra: &str) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    train_losses(&config(steps, extra), dir.path(), false)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

#[test]
fn context_noise_augments_only_when_enabled() {
    let clean = first_losses(3, "");
    // 0 is DIAMOND's objective: the same random stream and losses as without the key.
    assert_eq!(first_losses(3, "context_noise = 0.0"), clean);
    // Enabled, the context the model sees is noisy. The first loss is the same (DIAMOND's
    // initialisation zeroes the output layer, so F = 0 whatever the input); the first update,
    // and so every later loss, differs. A run stays reproducible.
    let noisy = first_losses(3, "context_noise = 0.5");
    assert_eq!(noisy[0], clean[0]);
    assert_ne!(noisy[1..], clean[1..]);
    assert_eq!(first_losses(3, "context_noise = 0.5"), noisy);
}

#[test]
fn fine_tuning_starts_from_the_given_weights() {
    let base = tempfile::tempdir().unwrap();
    train_losses(&config(100, ""), base.path(), false);
    let start = Checkpoint::from_native_dir(base.path()).unwrap();

    // Another objective and schedule, the same network: a new run at step 0 with the weights.
    let cfg = config(4, "context_noise = 0.2");
    let trainer = Trainer::from_weights(&cfg, &data(), &Device::Cpu, &start, "base-model").unwrap();
    assert_eq!(trainer.step(), 0);
    let now = trainer.checkpoint_now().unwrap();
    assert_eq!(now.tensors.len(), start.tensors.len());
    for (name, t) in &start.tensors {
        let a = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = now.tensors[name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b, "{name}");
    }
    // The fine-tuned model starts where the base model is, not from a random initialisation:
    // its first loss is the base model's level, far below a fresh run's.
    let tuned = tempfile::tempdir().unwrap();
    let mut trainer = trainer;
    let mut tuned_losses = Vec::new();
    trainer
        .fit(&data(), tuned.path(), &AtomicBool::new(false), &mut |e| {
            if let TrainEvent::Step(s) = e {
                tuned_losses.push(s.loss);
            }
        })
        .unwrap();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (tuned_mean, fresh_mean) = (
        mean(&tuned_losses),
        mean(&first_losses(4, "context_noise = 0.2")),
    );
    assert!(
        tuned_mean < fresh_mean / 2.0,
        "fine-tune losses average {tuned_mean}, a fresh run's {fresh_mean}"
    );
    assert!(WorldModel::load_native(tuned.path(), &Device::Cpu).is_ok());

    // Another network is refused with the field that differs.
    let wider = config(4, "");
    let mut wider = wider;
    wider.model.channels = vec![16, 32];
    let err = Trainer::from_weights(&wider, &data(), &Device::Cpu, &start, "base-model")
        .unwrap_err()
        .to_string();
    assert!(err.contains("base-model"), "{err}");
    assert!(err.contains("denoiser.inner_model.channels"), "{err}");
}

#[test]
fn too_few_episodes_is_an_error() {
    let mut d = data();
    d.episodes.truncate(1);
    let err = Trainer::new(&config(3, ""), &d, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 1 episodes"), "{err}");
}

/// A stream of moving-square windows: step `s`'s windows start where step `s` says, so the
/// windows are a function of the step alone. Counts what it was asked.
struct SquareStream {
    seed: u64,
    asked: Vec<u64>,
}

impl WindowStream for SquareStream {
    fn identity(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "squares", "seed": self.seed })
    }

    fn windows(&mut self, step: u64, n: usize, len: usize) -> dreamyard_model::Result<TrainData> {
        self.asked.push(step);
        let dirs = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)];
        let episodes = (0..n)
            .map(|i| {
                let k = (step * n as u64 + i as u64 + self.seed) as usize;
                episode(
                    len,
                    ((k % 6) as i32, (k / 6 % 6) as i32),
                    &dirs[k % 4..=k % 4],
                )
            })
            .collect();
        Ok(TrainData { episodes, ..data() })
    }
}

fn stream_losses(cfg: &TrainConfig, out: &Path, resume: bool, seed: u64) -> Vec<(u64, f64)> {
    let d = data();
    let mut stream = SquareStream {
        seed,
        asked: Vec::new(),
    };
    let mut trainer = if resume {
        Trainer::resume_streamed(out, cfg, &d, stream.identity(), &Device::Cpu).unwrap()
    } else {
        Trainer::new_streamed(cfg, &d, stream.identity(), &Device::Cpu).unwrap()
    };
    let first = trainer.step();
    let mut losses = Vec::new();
    trainer
        .fit_stream_until(
            &d,
            &mut stream,
            out,
            cfg.training.steps,
            &AtomicBool::new(false),
            &mut |e| {
                if let TrainEvent::Step(s) = e {
                    losses.push((s.step, s.loss));
                }
            },
        )
        .unwrap();
    // Every step asked for its own windows, once, in order.
    assert_eq!(
        stream.asked,
        (first..cfg.training.steps).collect::<Vec<_>>()
    );
    losses
}

#[test]
fn a_streamed_run_resumes_exactly_and_only_on_its_own_stream() {
    let extra = "context_noise = 0.1\nrollout_context = 2";
    let straight = tempfile::tempdir().unwrap();
    let full = stream_losses(&config(10, extra), straight.path(), false, 0);
    let split = tempfile::tempdir().unwrap();
    let head = stream_losses(&config(4, extra), split.path(), false, 0);
    let tail = stream_losses(&config(10, extra), split.path(), true, 0);
    let resumed: Vec<_> = head.into_iter().chain(tail).collect();
    assert_eq!(resumed, full);
    assert_eq!(
        std::fs::read(split.path().join("model.safetensors")).unwrap(),
        std::fs::read(straight.path().join("model.safetensors")).unwrap()
    );
    // Another stream trains another model.
    let other = tempfile::tempdir().unwrap();
    assert_ne!(
        stream_losses(&config(10, extra), other.path(), false, 1),
        full
    );

    let cfg = config(12, extra);
    let d = data();
    // The checkpoint names the stream; another one is refused, naming the field.
    let err = Trainer::resume_streamed(
        straight.path(),
        &cfg,
        &d,
        serde_json::json!({ "kind": "squares", "seed": 5 }),
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("stream.seed") && err.contains("state.json"),
        "{err}"
    );
    // A streamed run does not resume on a dataset, nor a dataset run on a stream.
    let err = Trainer::resume(straight.path(), &cfg, &d, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stream") && err.contains("train --scene"),
        "{err}"
    );
    let dataset_run = tempfile::tempdir().unwrap();
    train_losses(&config(2, ""), dataset_run.path(), false);
    let err = Trainer::resume_streamed(
        dataset_run.path(),
        &config(4, ""),
        &d,
        serde_json::json!({ "kind": "squares", "seed": 0 }),
        &Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("train --dataset"), "{err}");

    // A stream that hands back windows of the wrong length is an error, not a panic.
    struct Short;
    impl WindowStream for Short {
        fn identity(&self) -> serde_json::Value {
            serde_json::json!("short")
        }
        fn windows(&mut self, _: u64, n: usize, len: usize) -> dreamyard_model::Result<TrainData> {
            Ok(TrainData {
                episodes: (0..n)
                    .map(|_| episode(len - 1, (0, 0), &[(1.0, 0.0)]))
                    .collect(),
                ..data()
            })
        }
    }
    let mut t = Trainer::new_streamed(&cfg, &d, Short.identity(), &Device::Cpu).unwrap();
    let err = t.train_step_streamed(&mut Short).unwrap_err().to_string();
    assert!(
        err.contains("training stream") && err.contains("windows of 7 frames"),
        "{err}"
    );
    assert!(t.train_step(&d).is_err());
}
