//! `dreamyard record`, `dreamyard dataset ...` and `dreamyard bench record`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use dreamyard_scenes::dataset::{
    Dataset, DatasetSpec, DatasetWriter, EpisodePlan, EpisodeSource, ImageFormat,
    record_scene_episode,
};
use dreamyard_scenes::policy::PolicyKind;
use dreamyard_scenes::{SceneSource, SceneSpec, load_scene};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::parse::parse_policy;

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// A built-in scene name or a scene file (TOML).
    #[arg(long, default_value = "push-t")]
    pub scene: String,
    /// Policy: heuristic, random-walk, or the user-like ones (jump, hold, circle, user-like).
    #[arg(long, default_value = "heuristic", value_parser = parse_policy)]
    pub policy: PolicyKind,
    /// Number of episodes the dataset holds when done (with --resume, those already
    /// recorded count).
    #[arg(long)]
    pub episodes: u64,
    /// Episode e is run with seed SEED + e.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Dataset folder (LeRobot v3.0).
    #[arg(long)]
    pub out: PathBuf,
    /// Steps per episode at most (an episode also ends on success).
    #[arg(long, default_value_t = 300)]
    pub max_steps: usize,
    /// Task text stored with every episode (default: the scene's task).
    #[arg(long)]
    pub task: Option<String>,
    /// Append to the dataset in --out instead of starting a new one.
    #[arg(long)]
    pub resume: bool,
    /// Render frames at SIZE x SIZE pixels instead of the scene file's size.
    #[arg(long)]
    pub size: Option<u32>,
    /// Store the camera as MP4 video the way LeRobot's recorder does (AV1 through SVT-AV1,
    /// yuv420p, GOP 2, CRF 30; one file per episode) instead of PNG images. With --resume
    /// the dataset's own storage is kept.
    #[arg(long)]
    pub video: bool,
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Version, fps, features, episodes, frames and tasks of a LeRobot dataset.
    Info {
        dir: PathBuf,
        /// Print JSON (with every episode) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write one camera frame (PNG bytes as stored; JPEG converted when --out is .png).
    Frame {
        dir: PathBuf,
        #[arg(long)]
        episode: u64,
        /// Frame index within the episode.
        #[arg(long)]
        index: u64,
        #[arg(long)]
        out: PathBuf,
        /// Camera feature (default: observation.image, else the first camera).
        #[arg(long)]
        camera: Option<String>,
    },
    /// Read every episode, frame and image and check them against the metadata.
    Validate { dir: PathBuf },
}

#[derive(Debug, Args)]
pub struct BenchRecordArgs {
    #[arg(long, default_value = "push-t")]
    pub scene: String,
    #[arg(long, default_value = "heuristic", value_parser = parse_policy)]
    pub policy: PolicyKind,
    #[arg(long, default_value_t = 20)]
    pub episodes: u64,
    #[arg(long, default_value_t = 300)]
    pub max_steps: usize,
    /// Render frames at SIZE x SIZE pixels.
    #[arg(long, default_value_t = 96)]
    pub size: u32,
    /// Keep the dataset here instead of a temporary folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The task text of a scene's episodes: the one its spec names (lerobot/pusht's for push-t),
/// else one made from its name.
fn default_task(spec: &SceneSpec) -> String {
    spec.task
        .clone()
        .unwrap_or_else(|| format!("complete the {} task", spec.name))
}

pub fn record(args: &RecordArgs) -> anyhow::Result<()> {
    let mut scene = load_scene(&SceneSource::parse(&args.scene), args.size.map(|s| (s, s)))?;
    let mut spec = DatasetSpec::from_scene(scene.spec());
    spec.video = args.video;
    let resuming = args.resume && args.out.join("meta/info.json").exists();
    if resuming
        && !args.video
        && let Ok(Some(stored)) = dreamyard_scenes::dataset::read_dreamyard(&args.out)
    {
        spec.video = stored.spec.video;
    }
    let mut writer = if resuming {
        DatasetWriter::append(&args.out, &spec)
            .with_context(|| format!("cannot resume recording into {}", args.out.display()))?
    } else {
        DatasetWriter::create(&args.out, spec).with_context(|| {
            format!(
                "cannot start a dataset in {}{}",
                args.out.display(),
                if args.resume {
                    ""
                } else {
                    " (pass --resume to append to an existing one)"
                }
            )
        })?
    };
    let task = args
        .task
        .clone()
        .unwrap_or_else(|| default_task(scene.spec()));
    let mut policy = scene.scripted_policy(args.policy);
    let already = writer.num_episodes();
    let bar = ProgressBar::new(args.episodes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} episodes {pos}/{len} [{wide_bar}] {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(already.min(args.episodes));
    let start = Instant::now();
    let (mut recorded, mut frames, mut successes) = (0u64, 0u64, 0u64);
    while writer.num_episodes() < args.episodes {
        let e = writer.num_episodes();
        let plan = EpisodePlan {
            policy_name: args.policy.name(),
            seed: args.seed + e,
            max_steps: args.max_steps,
            task: &task,
        };
        let saved =
            record_scene_episode(&mut writer, scene.as_mut(), policy.as_mut(), &plan, |t| {
                if t % 10 == 0 {
                    bar.set_message(format!("episode {e}: {t} steps"));
                }
            })?;
        if scene.observe().success {
            successes += 1;
        }
        recorded += 1;
        frames += saved.length;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "out": args.out,
            "scene": scene.spec().name,
            "policy": args.policy.name(),
            "task": task,
            "episodes": writer.num_episodes(),
            "frames": writer.num_frames(),
            "recorded_episodes": recorded,
            "recorded_frames": frames,
            "recorded_successes": successes,
            "seconds": secs,
            "frames_per_s": if secs > 0.0 { frames as f64 / secs } else { 0.0 },
        })
    );
    Ok(())
}

pub fn run(cmd: DatasetCommand) -> anyhow::Result<()> {
    match cmd {
        DatasetCommand::Info { dir, json } => info(&dir, json),
        DatasetCommand::Frame {
            dir,
            episode,
            index,
            out,
            camera,
        } => frame(&dir, episode, index, &out, camera.as_deref()),
        DatasetCommand::Validate { dir } => {
            let ds = Dataset::open(&dir)?;
            let v = ds.validate()?;
            println!(
                "{}",
                json!({
                    "dir": dir,
                    "valid": v.is_valid(),
                    "episodes": v.episodes,
                    "frames": v.frames,
                    "images_decoded": v.images_decoded,
                    "video_frames_decoded": v.video_frames_decoded,
                    "video_codecs": v.video_codecs,
                    "problems": v.problems,
                    "uncommitted_episodes": ds.uncommitted_episodes(),
                })
            );
            if !v.is_valid() {
                anyhow::bail!(
                    "{}: {} problem(s) found (listed under \"problems\" above)",
                    dir.display(),
                    v.problems.len()
                );
            }
            Ok(())
        }
    }
}

fn info(dir: &Path, as_json: bool) -> anyhow::Result<()> {
    let ds = Dataset::open(dir)?;
    let info = ds.info();
    let features: Vec<_> = info
        .features
        .iter()
        .map(|(k, f)| {
            json!({
                "key": k,
                "dtype": f.dtype,
                "shape": f.shape,
                "names": f.names,
            })
        })
        .collect();
    let videos = info.features.video_keys();
    let recorded_from = ds
        .dreamyard()
        .and_then(|m| m.spec.scene.as_ref())
        .map(|s| s.name.clone());
    if as_json {
        let episodes: Vec<_> = ds
            .episodes()
            .iter()
            .map(|e| {
                json!({
                    "index": e.index,
                    "length": e.length,
                    "tasks": e.tasks,
                    "data_file": e.data_file,
                    "source": e.source,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dir": dir,
                "codebase_version": ds.version().as_str(),
                "fps": info.fps,
                "robot_type": info.robot_type,
                "total_episodes": info.total_episodes,
                "total_frames": info.total_frames,
                "tasks": ds.tasks(),
                "features": features,
                "cameras": ds.camera_keys(),
                "video_features": videos,
                "recorded_from_scene": recorded_from,
                "uncommitted_episodes": ds.uncommitted_episodes(),
                "episodes": episodes,
            }))?
        );
        return Ok(());
    }
    println!("dataset   {}", dir.display());
    println!(
        "version   LeRobot {}{}",
        ds.version().as_str(),
        recorded_from
            .map(|s| format!(", recorded by Dreamyard from scene {s}"))
            .unwrap_or_default()
    );
    println!("fps       {}", info.fps);
    println!("episodes  {}", info.total_episodes);
    println!("frames    {}", info.total_frames);
    println!("tasks     {}", ds.tasks().len());
    for (i, t) in ds.tasks().iter().enumerate() {
        println!("  {i:>3}  {t}");
    }
    println!("features");
    let width = info
        .features
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0);
    for (k, f) in info.features.iter() {
        let names = f.name_list().map(|n| n.join(", ")).unwrap_or_default();
        let note = match f.info.as_ref().filter(|_| f.dtype == "video") {
            Some(i) => format!(
                "  (video: {} {})",
                i["video.codec"].as_str().unwrap_or("codec not stated"),
                i["video.pix_fmt"].as_str().unwrap_or("")
            ),
            None => String::new(),
        };
        println!(
            "  {k:<width$} {:<8} {:<14} {names}{note}",
            f.dtype,
            format!("{:?}", f.shape)
        );
    }
    println!("episodes (index: frames, tasks)");
    const SHOWN: usize = 20;
    for e in ds.episodes().iter().take(SHOWN) {
        let src = match &e.source {
            Some(EpisodeSource::Scene { policy, seed, .. }) => {
                format!("  [{policy}, seed {seed}]")
            }
            Some(EpisodeSource::Model {
                model,
                ground_truth,
                cameras,
                ..
            }) => {
                let beside = ground_truth
                    .as_ref()
                    .map(|gt| format!(" beside {gt}"))
                    .unwrap_or_default();
                let shows: Vec<String> = cameras.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                if shows.is_empty() {
                    format!("  [model {model}{beside}]")
                } else {
                    format!("  [model {model}{beside}; {}]", shows.join(", "))
                }
            }
            None => String::new(),
        };
        println!(
            "  {:>5}: {:>5}  {}{src}",
            e.index,
            e.length,
            e.tasks.join(" | ")
        );
    }
    if ds.episodes().len() > SHOWN {
        println!(
            "  ... {} more (--json lists all)",
            ds.episodes().len() - SHOWN
        );
    }
    if ds.uncommitted_episodes() > 0 {
        println!(
            "note: {} uncommitted episode(s) from an interrupted recording are ignored",
            ds.uncommitted_episodes()
        );
    }
    Ok(())
}

fn frame(
    dir: &Path,
    episode: u64,
    index: u64,
    out: &Path,
    camera: Option<&str>,
) -> anyhow::Result<()> {
    let ds = Dataset::open(dir)?;
    let camera = match camera {
        Some(c) => c.to_owned(),
        None => ds
            .default_camera()
            .with_context(|| format!("{}: the dataset has no camera feature", dir.display()))?
            .to_owned(),
    };
    if ds
        .info()
        .features
        .get(&camera)
        .is_some_and(|f| f.dtype == "video")
    {
        return video_frame(&ds, &camera, episode, index, out);
    }
    let stored = ds.frame_bytes(&camera, episode, index)?;
    let wanted = match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jpg" | "jpeg") => ImageFormat::Jpeg,
        _ => ImageFormat::Png,
    };
    let decoded = dreamyard_scenes::dataset::decode_image(&stored.bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: episode {episode} frame {index}: expected {}, found {}",
            dir.display(),
            e.expected,
            e.found
        )
    })?;
    let converted = if stored.format == wanted {
        std::fs::write(out, &stored.bytes)
            .with_context(|| format!("{}: cannot write", out.display()))?;
        false
    } else if wanted == ImageFormat::Png {
        crate::image_io::write_png(out, &decoded)?;
        true
    } else {
        anyhow::bail!(
            "{}: the frame is stored as {:?}; write it as .png",
            out.display(),
            stored.format
        );
    };
    println!(
        "{}",
        json!({
            "episode": episode,
            "index": index,
            "camera": camera,
            "width": decoded.width,
            "height": decoded.height,
            "stored_format": stored.format.extension(),
            "converted": converted,
            "out": out,
        })
    );
    Ok(())
}

/// A frame of a video feature, decoded and written as PNG.
fn video_frame(
    ds: &Dataset,
    camera: &str,
    episode: u64,
    index: u64,
    out: &Path,
) -> anyhow::Result<()> {
    let is_png = out
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        anyhow::bail!(
            "{}: `{camera}` is a video feature; its decoded frames are written as .png",
            out.display()
        );
    }
    let frame = ds.frame(camera, episode, index)?;
    crate::image_io::write_png(out, &frame)?;
    let file = ds
        .episode_info(episode)?
        .video_file(camera)
        .map(Path::to_owned);
    println!(
        "{}",
        json!({
            "episode": episode,
            "index": index,
            "camera": camera,
            "width": frame.width,
            "height": frame.height,
            "stored_format": "video",
            "video_file": file,
            "converted": true,
            "out": out,
        })
    );
    Ok(())
}

pub fn bench(args: &BenchRecordArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => {
            tmp = TempDir::new()?;
            tmp.0.join("bench-dataset")
        }
    };
    let mut scene = load_scene(
        &SceneSource::parse(&args.scene),
        Some((args.size, args.size)),
    )?;
    let mut policy = scene.scripted_policy(args.policy);
    let mut writer = DatasetWriter::create(&dir, DatasetSpec::from_scene(scene.spec()))?;
    let task = default_task(scene.spec());
    let start = Instant::now();
    for e in 0..args.episodes {
        let plan = EpisodePlan {
            policy_name: args.policy.name(),
            seed: e,
            max_steps: args.max_steps,
            task: &task,
        };
        record_scene_episode(&mut writer, scene.as_mut(), policy.as_mut(), &plan, |_| {})?;
    }
    let record_secs = start.elapsed().as_secs_f64();
    let frames = writer.num_frames();
    let bytes = dir_size(&dir);

    let start = Instant::now();
    let ds = Dataset::open(&dir)?;
    let mut read = 0u64;
    for e in 0..ds.episodes().len() as u64 {
        read += ds.episode(e)?.len() as u64;
    }
    let read_secs = start.elapsed().as_secs_f64();

    // Random access: a fixed pseudo-random walk over (episode, frame).
    let start = Instant::now();
    let samples = 200u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..samples {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ep = &ds.episodes()[(x % ds.episodes().len() as u64) as usize];
        let camera = ds.default_camera().context("no camera")?;
        ds.frame(camera, ep.index, (x >> 20) % ep.length)?;
    }
    let random_secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "bench": "record",
            "scene": scene.spec().name,
            "policy": args.policy.name(),
            "frame": [args.size, args.size],
            "episodes": args.episodes,
            "frames": frames,
            "dataset_bytes": bytes,
            "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "record_seconds": record_secs,
            "record_frames_per_s": frames as f64 / record_secs,
            "read_seconds": read_secs,
            "read_frames_per_s": read as f64 / read_secs,
            "random_frames": samples,
            "random_frames_per_s": samples as f64 / random_secs,
        })
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct BenchVideoArgs {
    /// A dataset Dreamyard recorded with image storage: its frames, states and actions are
    /// written again with video storage.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Keep the video dataset here instead of a temporary folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Frames read at random.
    #[arg(long, default_value_t = 200)]
    pub random: u64,
}

/// Writes `args.dataset`'s episodes as a video dataset (timed: AV1 encoding, parquet,
/// metadata, fsync per episode), then reads every episode back (`Dataset::episode`) and
/// `args.random` frames at random (`Dataset::frame`).
pub fn bench_video(args: &BenchVideoArgs) -> anyhow::Result<()> {
    use dreamyard_scenes::dataset::Step;
    use dreamyard_scenes::{Action, ActionSpace};

    let src = Dataset::open(&args.dataset)
        .with_context(|| format!("{}: cannot open the dataset", args.dataset.display()))?;
    let mut spec = src
        .dreamyard()
        .with_context(|| {
            format!(
                "{}: not recorded by Dreamyard (meta/dreamyard.json gives the spec to write \
                 it again with)",
                args.dataset.display()
            )
        })?
        .spec
        .clone();
    anyhow::ensure!(
        !spec.video,
        "{}: already stored as video; record one with image storage (without --video)",
        args.dataset.display()
    );
    spec.video = true;
    let discrete = matches!(spec.action_space, ActionSpace::Discrete { .. });
    // Everything decoded and converted before the clock starts.
    struct Episode {
        data: dreamyard_scenes::dataset::EpisodeData,
        states: Vec<Vec<f64>>,
        actions: Vec<Action>,
        task: String,
        source: EpisodeSource,
    }
    let mut episodes = Vec::new();
    for info in src.episodes() {
        let data = src.episode(info.index)?;
        let states = (0..data.len())
            .map(|t| data.scene_state(t).iter().map(|&v| f64::from(v)).collect())
            .collect();
        let actions = (0..data.len())
            .map(|t| {
                let a = data.action(t);
                if discrete {
                    Action::Discrete(a.first().copied().unwrap_or(0.0) as u32)
                } else {
                    Action::Continuous(a.to_vec())
                }
            })
            .collect();
        episodes.push(Episode {
            data,
            states,
            actions,
            task: info.tasks.first().cloned().unwrap_or_else(|| "task".into()),
            source: info.source.clone().unwrap_or(EpisodeSource::Scene {
                scene: "unknown".into(),
                policy: "unknown".into(),
                seed: info.index,
            }),
        });
    }

    let tmp;
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => {
            tmp = TempDir::new()?;
            tmp.0.join("bench-video")
        }
    };
    let start = Instant::now();
    let mut writer = DatasetWriter::create(&dir, spec)?;
    for ep in &episodes {
        for t in 0..ep.data.len() {
            writer.add_frame(Step {
                frame: &ep.data.frames[t],
                state: &ep.states[t],
                action: &ep.actions[t],
                reward: ep.data.rewards.as_ref().map(|r| f64::from(r[t])),
                success: ep.data.success.as_ref().map(|s| s[t]),
            })?;
        }
        writer.save_episode(&ep.task, &ep.source)?;
    }
    let write_secs = start.elapsed().as_secs_f64();
    let frames = writer.num_frames();

    let start = Instant::now();
    let ds = Dataset::open(&dir)?;
    let camera = ds.default_camera().context("no camera")?.to_owned();
    let mut read = 0u64;
    for e in 0..ds.episodes().len() as u64 {
        read += ds.episode(e)?.len() as u64;
    }
    let read_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..args.random {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ep = &ds.episodes()[(x % ds.episodes().len() as u64) as usize];
        ds.frame(&camera, ep.index, (x >> 20) % ep.length)?;
    }
    let random_secs = start.elapsed().as_secs_f64();
    let image_bytes = dir_size(&args.dataset);
    let video_bytes = dir_size(&dir);
    let first = &episodes
        .first()
        .context("the dataset has no episodes")?
        .data;
    let size = first.frames.first().map_or((0, 0), |f| (f.width, f.height));
    println!(
        "{}",
        json!({
            "bench": "video",
            "dataset": args.dataset,
            "frame": [size.0, size.1],
            "episodes": episodes.len(),
            "frames": frames,
            "encoding": "libsvtav1 yuv420p g=2 crf=30 preset=12",
            "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "write_seconds": write_secs,
            "write_frames_per_s": frames as f64 / write_secs,
            "read_seconds": read_secs,
            "read_frames_per_s": read as f64 / read_secs,
            "random_frames": args.random,
            "random_frames_per_s": args.random as f64 / random_secs,
            "image_dataset_bytes": image_bytes,
            "video_dataset_bytes": video_bytes,
            "image_over_video": image_bytes as f64 / video_bytes.max(1) as f64,
        })
    );
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// A folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p =
            std::env::temp_dir().join(format!("dreamyard-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).with_context(|| format!("{}: cannot create", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
