//! `dreamyard scene ...` and `dreamyard bench scene`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use dreamyard_scenes::policy::PolicyKind;
use dreamyard_scenes::{BUILTIN_SCENES, RolloutDigest, SceneSource, load_scene, run_policy};
use serde_json::json;

use crate::parse::parse_policy;

#[derive(Debug, Subcommand)]
pub enum SceneCommand {
    /// List the built-in scenes.
    List,
    /// Print a scene's spec (action space, state names, fps, frame size, objects) as JSON.
    Info {
        /// A built-in scene name or a scene file (TOML).
        scene: String,
    },
    /// Run a scripted policy for one episode and write it as an animated GIF.
    Play(PlayArgs),
    /// Run a scripted policy and print a SHA-256 fingerprint of every frame and state (JSON).
    Rollout(RolloutArgs),
}

#[derive(Debug, Args)]
pub struct EpisodeArgs {
    /// A built-in scene name or a scene file (TOML).
    #[arg(long, default_value = "push-t")]
    pub scene: String,
    /// Scripted policy: heuristic or random-walk.
    #[arg(long, default_value = "heuristic", value_parser = parse_policy)]
    pub policy: PolicyKind,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Render frames at SIZE x SIZE pixels instead of the scene file's size.
    #[arg(long)]
    pub size: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    #[command(flatten)]
    pub episode: EpisodeArgs,
    /// Maximum number of steps (the episode also ends on success).
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Output GIF.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the last frame as a PNG here.
    #[arg(long)]
    pub last_png: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub episode: EpisodeArgs,
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
}

#[derive(Debug, Args)]
pub struct BenchSceneArgs {
    /// A built-in scene name or a scene file (TOML).
    pub scene: String,
    /// Number of steps to time (after 10 warm-up steps).
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Render frames at SIZE x SIZE pixels instead of the scene file's size.
    #[arg(long)]
    pub size: Option<u32>,
    #[arg(long, default_value = "random-walk", value_parser = parse_policy)]
    pub policy: PolicyKind,
}

fn open_scene(scene: &str, size: Option<u32>) -> anyhow::Result<Box<dyn dreamyard_scenes::Scene>> {
    Ok(load_scene(
        &SceneSource::parse(scene),
        size.map(|s| (s, s)),
    )?)
}

pub fn run(cmd: SceneCommand) -> anyhow::Result<()> {
    match cmd {
        SceneCommand::List => {
            for name in BUILTIN_SCENES {
                let scene = open_scene(name, None)?;
                let spec = scene.spec();
                println!(
                    "{name:<10} {} actions ({}), {} state values, {} fps, {}x{} frames",
                    spec.action_space.dim(),
                    match &spec.action_space {
                        dreamyard_scenes::ActionSpace::Continuous { .. } => "continuous",
                        dreamyard_scenes::ActionSpace::Discrete { .. } => "discrete",
                    },
                    spec.state_names.len(),
                    spec.fps,
                    spec.frame_width,
                    spec.frame_height
                );
            }
            Ok(())
        }
        SceneCommand::Info { scene } => {
            let scene = open_scene(&scene, None)?;
            println!("{}", serde_json::to_string_pretty(scene.spec())?);
            Ok(())
        }
        SceneCommand::Play(args) => play(&args),
        SceneCommand::Rollout(args) => rollout(&args),
    }
}

fn play(args: &PlayArgs) -> anyhow::Result<()> {
    let ep = &args.episode;
    let mut scene = open_scene(&ep.scene, ep.size)?;
    let mut policy = scene.scripted_policy(ep.policy);
    let mut frames = Vec::new();
    let last = run_policy(
        scene.as_mut(),
        policy.as_mut(),
        ep.seed,
        args.steps,
        true,
        |_, obs| {
            frames.push(obs.frame.clone());
        },
    )?;
    let fps = scene.spec().fps;
    crate::image_io::write_gif(&args.out, &frames, fps)?;
    if let Some(png) = &args.last_png {
        let last_frame = frames
            .last()
            .context("an episode has at least its first frame")?;
        crate::image_io::write_png(png, last_frame)?;
    }
    println!(
        "{}",
        json!({
            "scene": scene.spec().name,
            "policy": ep.policy.name(),
            "seed": ep.seed,
            "steps": frames.len() - 1,
            "final_reward": last.reward,
            "success": last.success,
            "final_state": last.state,
            "gif": args.out,
        })
    );
    Ok(())
}

fn rollout(args: &RolloutArgs) -> anyhow::Result<()> {
    let ep = &args.episode;
    let mut scene = open_scene(&ep.scene, ep.size)?;
    let mut policy = scene.scripted_policy(ep.policy);
    let mut digest = RolloutDigest::new();
    run_policy(
        scene.as_mut(),
        policy.as_mut(),
        ep.seed,
        args.steps,
        false,
        |_, obs| {
            digest.add(obs);
        },
    )?;
    println!(
        "{}",
        json!({
            "scene": scene.spec().name,
            "policy": ep.policy.name(),
            "seed": ep.seed,
            "steps": args.steps,
            "sha256": digest.finish(),
        })
    );
    Ok(())
}

pub fn bench(args: &BenchSceneArgs) -> anyhow::Result<()> {
    let mut scene = open_scene(&args.scene, args.size)?;
    let mut policy = scene.scripted_policy(args.policy);
    // Policies are cheap next to physics and rendering, but time only `step`.
    let episode_len = 300;
    let mut timed = std::time::Duration::ZERO;
    let mut done = 0usize;
    let mut seed = 0u64;
    let warmup = 10usize;
    while done < args.steps + warmup {
        policy.reset(seed);
        let mut obs = scene.reset(seed);
        for _ in 0..episode_len.min(args.steps + warmup - done) {
            let action = policy.act(&obs);
            let start = Instant::now();
            obs = scene.step(&action)?;
            if done >= warmup {
                timed += start.elapsed();
            }
            done += 1;
        }
        seed += 1;
    }
    let spec = scene.spec();
    let secs = timed.as_secs_f64();
    println!(
        "{}",
        json!({
            "bench": "scene",
            "scene": spec.name,
            "policy": args.policy.name(),
            "frame": [spec.frame_width, spec.frame_height],
            "steps": args.steps,
            "seconds": secs,
            "steps_per_s": args.steps as f64 / secs,
            "ms_per_step": 1000.0 * secs / args.steps as f64,
        })
    );
    Ok(())
}
