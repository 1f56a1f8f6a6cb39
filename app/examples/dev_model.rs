//! A small development world model for push-t, for trying the app before the shipped model
//! lands: records episodes in memory with the scene's scripted policies (32x32 frames by
//! default), trains a tiny configuration for a few hundred steps and exports
//! `model.safetensors` + `config.json`.
//!
//! ```sh
//! cargo run --example dev_model -- target/dev-model/push-t [steps] [frame size]
//! cargo run -- --model target/dev-model/push-t
//! ```
//!
//! Not a good model (minutes on a laptop CPU); weights never go into the repository.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use dreamyard_model::candle_core::Device;
use dreamyard_model::config::{ActionSpace, FrameSize};
use dreamyard_model::train::{EpisodeData, TrainConfig, TrainData, TrainEvent, Trainer};
use dreamyard_scenes::policy::PolicyKind;
use dreamyard_scenes::{SceneSource, load_scene, run_policy};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/dev-model/push-t".into()),
    );
    let steps: u64 = args
        .next()
        .map(|s| s.parse::<u64>())
        .transpose()
        .context("steps must be a number")?
        .unwrap_or(300);
    let size: u32 = args
        .next()
        .map(|s| s.parse::<u32>())
        .transpose()
        .context("frame size must be a number")?
        .unwrap_or(32);

    let mut scene = load_scene(&SceneSource::parse("push-t"), Some((size, size)))?;
    let (low, high) = match &scene.spec().action_space {
        dreamyard_scenes::ActionSpace::Continuous { low, high, .. } => (low.clone(), high.clone()),
        dreamyard_scenes::ActionSpace::Discrete { .. } => anyhow::bail!("push-t is continuous"),
    };
    let fps = scene.spec().fps;
    let mut episodes = Vec::new();
    for seed in 0..8u64 {
        let kind = if seed % 3 == 2 {
            PolicyKind::RandomWalk
        } else {
            PolicyKind::Heuristic
        };
        let mut policy = scene.scripted_policy(kind);
        let mut frames = Vec::new();
        let mut actions: Vec<f32> = Vec::new();
        let mut last = None;
        run_policy(
            scene.as_mut(),
            policy.as_mut(),
            seed,
            80,
            false,
            |a, obs| {
                if let Some(a) = a {
                    actions.extend(a.to_vec());
                    last = Some(a.to_vec());
                }
                frames.extend_from_slice(&obs.frame.data);
            },
        )?;
        // The action at the last frame: hold the previous one.
        actions.extend(last.unwrap_or_else(|| vec![256.0, 256.0]));
        let len = frames.len() / (size * size * 3) as usize;
        episodes.push(EpisodeData {
            frames_hwc: frames,
            actions,
            len,
        });
    }
    let data = TrainData {
        frame: FrameSize {
            height: size as usize,
            width: size as usize,
        },
        channels: 3,
        action: ActionSpace::Continuous { dim: 2, low, high },
        fps: Some(fps),
        episodes,
    };
    let cfg = TrainConfig::from_toml_str(
        &format!(
            r#"
[model]
cond_channels = 32
depths = [1, 1]
channels = [16, 32]
attn_depths = [false, false]

[sampler]
num_steps_denoising = 3

[training]
steps = {steps}
batch_size = 4
learning_rate = 1e-3
warmup_steps = 20
validation_episodes = 1
log_every = 5
validate_every = 100000
checkpoint_every = 50
"#
        ),
        "dev_model.toml",
    )?;
    let mut trainer = Trainer::new(&cfg, &data, &Device::Cpu)?;
    let started = std::time::Instant::now();
    trainer.fit(&data, &out, &AtomicBool::new(false), &mut |e| {
        if let TrainEvent::Step(s) = e {
            eprintln!(
                "step {:>4}  loss {:.4}  {:.0} s",
                s.step,
                s.loss,
                started.elapsed().as_secs_f64()
            );
        }
    })?;
    println!("{}", out.display());
    Ok(())
}
