//! What the desktop app opens: its command-line arguments and the loading of models, scenes and
//! episodes into a [`Session`]. No Bevy here, so it is shared by the GUI and its tests.

use std::path::{Path, PathBuf};

use clap::Args;
use dreamyard_model::candle_core::DType;
use dreamyard_scenes::dataset::Dataset;
use dreamyard_scenes::{SceneSource, load_scene};

use crate::bridge;
use crate::device::parse_device;
use crate::model_source::ModelSource;
use crate::session::backend::CandleBackend;
use crate::session::truth::{Episode, LiveScene, Replay};
use crate::session::worker::ModelWorker;
use crate::session::{Level, Session};

/// Where the shipped push-t model lives, relative to the repository root.
pub const DEFAULT_MODEL_DIR: &str = "assets/models/push-t";

/// Arguments of the desktop app (`dreamyard` or `dreamyard gui`).
#[derive(Debug, Clone, Default, Args)]
pub struct GuiArgs {
    /// World model: a native directory (`model.safetensors` + `config.json`), a DIAMOND
    /// `agent.pt` with `--config`, or a folder holding one with its yaml [default: the shipped
    /// push-t model, assets/models/push-t]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Config for `--model`: DIAMOND's yaml for an `agent.pt`, or a native `config.json`.
    #[arg(long, requires = "model")]
    pub config: Option<PathBuf>,
    /// Where the model runs: auto (a GPU when the build has one and one is present, else the
    /// CPU), cpu, cuda, cuda:N, metal or metal:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// What the network computes in: f32, f16 or bf16 (16-bit floats are for GPUs; the sampler
    /// stays f32) [default: f32]
    #[arg(long, value_parser = crate::device::parse_dtype)]
    pub dtype: Option<DType>,
    /// Ground truth: a built-in scene name or a scene file [default: push-t]
    #[arg(long, conflicts_with = "dataset")]
    pub scene: Option<String>,
    /// Ground truth: a LeRobot dataset directory, replayed with its actions.
    #[arg(long, requires = "episode")]
    pub dataset: Option<PathBuf>,
    /// Episode of `--dataset` to replay.
    #[arg(long)]
    pub episode: Option<usize>,
    /// Run the model alone, without ground truth.
    #[arg(long, conflicts_with_all = ["scene", "dataset"])]
    pub dream: bool,
    /// Seed of the scene's episode and of the sampling noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Re-anchor the model to the last real frames every N imagined steps (0 = never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub anchor_every: usize,
    /// Automation: take this many steps with synthetic input, then save a screenshot.
    #[arg(long, value_name = "N")]
    pub screenshot_after: Option<usize>,
    /// Automation: where `--screenshot-after` saves the window.
    #[arg(long, default_value = "dreamyard-screenshot.png")]
    pub screenshot: PathBuf,
    /// Automation: quit after the screenshot is saved.
    #[arg(long)]
    pub exit: bool,
}

/// `path` if it exists, else the same relative path under the repository root (so the default
/// model is found from any working directory of a source checkout).
pub fn resolve(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    let in_repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    if in_repo.exists() {
        return in_repo;
    }
    path.to_path_buf()
}

/// The model path the app opens.
pub fn model_dir(args: &GuiArgs) -> PathBuf {
    resolve(
        args.model
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_MODEL_DIR)),
    )
}

/// The model the arguments name: `--model` (+ `--config`), else the shipped push-t model.
pub fn model_request(args: &GuiArgs) -> ModelRequest {
    ModelRequest {
        path: model_dir(args),
        config: args.config.clone(),
        device: args.device.clone(),
        dtype: args.dtype.unwrap_or(DType::F32),
    }
}

/// A model to open: what the user named (a path, an optional config), the device name and
/// the dtype the network computes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRequest {
    pub path: PathBuf,
    pub config: Option<PathBuf>,
    pub device: String,
    pub dtype: DType,
}

/// Starts loading the model `request` names on a worker thread, through the one model source
/// every command uses. Errors (a path that is no model, a missing default model, a device the
/// build lacks) become notices; the session keeps what it had. Returns whether loading started.
pub fn load_model(session: &mut Session, request: &ModelRequest) -> bool {
    let source = match ModelSource::resolve(&request.path, request.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let hint = if request.path.ends_with(DEFAULT_MODEL_DIR) {
                " The shipped push-t model (model.safetensors + config.json) is missing from this \
                 checkout; open another model (File > Open model, or --model DIR) — the scene \
                 still runs without one."
            } else {
                ""
            };
            session.notify(
                Level::Error,
                format!(
                    "cannot open model: {}.{hint}",
                    crate::error_chain(e.as_ref())
                ),
            );
            return false;
        }
    };
    let device = match parse_device(&request.device) {
        Ok(d) => d,
        Err(e) => {
            session.notify(
                Level::Error,
                format!(
                    "--device {}: {}",
                    request.device,
                    crate::error_chain(e.as_ref())
                ),
            );
            return false;
        }
    };
    let label = source.label();
    let dtype = request.dtype;
    let loader = Box::new(move || {
        CandleBackend::load(&source, &device, dtype)
            .map(|b| Box::new(b) as Box<dyn crate::session::backend::Backend>)
    });
    match ModelWorker::spawn(loader) {
        Ok(worker) => {
            session.load_model(worker, label);
            true
        }
        Err(e) => {
            session.notify(
                Level::Error,
                format!(
                    "cannot start the model thread: {}",
                    crate::error_chain(e.as_ref())
                ),
            );
            false
        }
    }
}

/// Opens a live scene at the model's frame size (or the scene's own) and makes it the ground
/// truth.
pub fn open_scene(session: &mut Session, name: &str) -> bool {
    let size = session
        .model_info()
        .map(|m| (m.frame_width, m.frame_height));
    match load_scene(&SceneSource::parse(name), size) {
        Ok(scene) => {
            let seed = session.config.seed;
            session.set_truth(Box::new(LiveScene::new(scene, seed)))
        }
        Err(e) => {
            session.notify(Level::Error, format!("cannot open scene: {e}"));
            false
        }
    }
}

/// Reads episode `index` of the LeRobot dataset (v3.0 or v2.1) in `dir` as a replay episode:
/// its camera frames, actions and, when present, states.
///
/// The action space is the recording scene's (datasets Dreamyard recorded keep it in
/// `meta/dreamyard.json`); for other datasets it is a continuous box spanning the episode's
/// actions, the same rule `train` uses. The name starts with the scene's name, so take-over
/// finds the live twin.
pub fn read_episode(dir: &Path, index: usize) -> anyhow::Result<Episode> {
    anyhow::ensure!(
        dir.join("meta").is_dir(),
        "{} is not a LeRobot dataset (no meta/ folder)",
        dir.display()
    );
    let ds = Dataset::open(dir)?;
    let count = ds.episodes().len();
    anyhow::ensure!(
        index < count,
        "{}: no episode {index}; the dataset has {count} episodes (0..{count})",
        dir.display(),
    );
    let data = ds.episode(index as u64)?;
    let dim = data.action_dim;
    anyhow::ensure!(
        dim > 0 && data.actions.len() == dim * data.frames.len(),
        "{}: episode {index} has no usable `action` feature (expected one action per frame)",
        dir.display()
    );
    let scene = ds.dreamyard().and_then(|m| m.spec.scene.clone());
    let action_space = bridge::dataset_action_space(&ds, dim, [data.actions.as_slice()])?;
    let actions = bridge::actions_from_rows(&data.actions, dim, &action_space);
    let states = (data.state_dim > 0).then(|| {
        data.states
            .chunks_exact(data.state_dim)
            .map(|s| s.iter().map(|&v| f64::from(v)).collect())
            .collect()
    });
    let folder = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let name = match &scene {
        Some(spec) => format!("{} episode {index} of {folder}", spec.name),
        None => format!("{folder} episode {index}"),
    };
    Ok(Episode {
        name,
        frames: data.frames,
        actions,
        states,
        action_space,
        fps: ds.fps(),
    })
}

/// Opens episode `index` of a dataset as a replay (take-over uses the scene named by the
/// episode when it is a built-in one, rendered at the episode's frame size).
pub fn open_episode(session: &mut Session, dir: &Path, index: usize) -> bool {
    let episode = match read_episode(dir, index) {
        Ok(e) => e,
        Err(e) => {
            session.notify(Level::Error, crate::error_chain(e.as_ref()));
            return false;
        }
    };
    let size = episode.frames.first().map(|f| (f.width, f.height));
    let scene = episode
        .name
        .split_whitespace()
        .next()
        .and_then(|name| load_scene(&SceneSource::parse(name), size).ok());
    match Replay::new(episode, scene) {
        Ok(replay) => session.set_truth(Box::new(replay)),
        Err(e) => {
            session.notify(Level::Error, crate::error_chain(e.as_ref()));
            false
        }
    }
}

/// Applies the arguments' ground truth choice once a model (if any) is known.
pub fn open_truth(session: &mut Session, args: &GuiArgs) {
    if args.dream {
        session.enter_dream_mode();
        session.reset();
        return;
    }
    if let (Some(dir), Some(ep)) = (&args.dataset, args.episode)
        && open_episode(session, dir, ep)
    {
        return;
    }
    // No dataset, or it failed: the scene, so there is something to look at.
    open_scene(session, args.scene.as_deref().unwrap_or("push-t"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_is_a_message_and_the_scene_still_opens() {
        let mut session = Session::default();
        let dir = tempfile::tempdir().unwrap();
        load_model(
            &mut session,
            &ModelRequest {
                path: dir.path().join(DEFAULT_MODEL_DIR),
                config: None,
                device: "cpu".into(),
                dtype: DType::F32,
            },
        );
        let text = &session.notices().last().unwrap().text;
        assert!(text.contains("model.safetensors"), "{text}");
        assert!(text.contains("missing from this checkout"), "{text}");
        assert!(session.model_loading().is_none());
        open_truth(&mut session, &GuiArgs::default());
        assert_eq!(session.truth_spec().unwrap().name, "push-t");
        assert_eq!(session.active_branch().steps.len(), 1);
    }

    #[test]
    fn bad_scenes_and_datasets_are_messages() {
        let mut session = Session::default();
        assert!(!open_scene(&mut session, "/no/such/scene.toml"));
        assert!(session.notices().last().unwrap().text.contains("scene"));
        let dir = tempfile::tempdir().unwrap();
        assert!(!open_episode(&mut session, dir.path(), 0));
        assert!(
            session
                .notices()
                .last()
                .unwrap()
                .text
                .contains("not a LeRobot dataset")
        );
        // Falls back to the default scene.
        let args = GuiArgs {
            dataset: Some(dir.path().to_path_buf()),
            episode: Some(0),
            ..GuiArgs::default()
        };
        open_truth(&mut session, &args);
        assert_eq!(session.truth_spec().unwrap().name, "push-t");
    }

    #[test]
    fn recorded_episodes_replay_with_their_actions_and_states() {
        use dreamyard_scenes::dataset::{DatasetSpec, DatasetWriter, EpisodeSource, Step};
        use dreamyard_scenes::policy::PolicyKind;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pusht");
        let mut scene = load_scene(&SceneSource::parse("push-t"), Some((32, 32))).unwrap();
        let mut writer =
            DatasetWriter::create(&root, DatasetSpec::from_scene(scene.spec())).unwrap();
        let mut obs = scene.reset(3);
        let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
        policy.reset(3);
        let mut recorded = Vec::new();
        for _ in 0..6 {
            let action = policy.act(&obs);
            let next = scene.step(&action).unwrap();
            writer
                .add_frame(Step {
                    frame: &obs.frame,
                    state: &obs.state,
                    action: &action,
                    reward: Some(next.reward),
                    success: Some(next.success),
                })
                .unwrap();
            recorded.push((obs.frame.clone(), action));
            obs = next;
        }
        let source = EpisodeSource::Scene {
            scene: "push-t".into(),
            policy: "heuristic".into(),
            seed: 3,
        };
        writer.save_episode("push the T", &source).unwrap();

        let ep = read_episode(&root, 0).unwrap();
        assert!(ep.name.starts_with("push-t episode 0"), "{}", ep.name);
        assert_eq!(ep.frames.len(), 6);
        for (i, (frame, action)) in recorded.iter().enumerate() {
            assert_eq!(&ep.frames[i], frame, "frame {i}");
            assert_eq!(&ep.actions[i], action, "action {i}");
        }
        assert_eq!(ep.states.as_ref().map(Vec::len), Some(6));
        assert_eq!(&ep.action_space, &scene.spec().action_space);

        let mut session = Session::default();
        assert!(open_episode(&mut session, &root, 0));
        assert!(session.truth_spec().unwrap().name.starts_with("push-t"));
        let err = read_episode(&root, 1).unwrap_err().to_string();
        assert!(
            err.contains("no episode 1") && err.contains("1 episodes"),
            "{err}"
        );
    }

    #[test]
    fn the_default_model_path_is_found_from_the_repository() {
        let dir = model_dir(&GuiArgs::default());
        assert!(dir.ends_with(DEFAULT_MODEL_DIR));
    }
}
