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
use crate::session::truth::{Episode, GroundTruth, LiveScene, Replay, TruthSource};
use crate::session::worker::ModelWorker;
use crate::session::{Level, Session};

/// Where the shipped push-t model lives, relative to the repository root: the app's model when
/// nothing names another.
pub const DEFAULT_MODEL_DIR: &str = "assets/models/push-t";

/// Where the shipped models live, one folder per built-in scene (`assets/models/<scene>`),
/// relative to the repository root.
pub const SHIPPED_MODELS_DIR: &str = "assets/models";

/// Arguments of the desktop app (`dreamyard` or `dreamyard gui`).
#[derive(Debug, Clone, Default, Args)]
pub struct GuiArgs {
    /// World model: a native directory (`model.safetensors` + `config.json`), a DIAMOND
    /// `agent.pt` with `--config`, or a folder holding one with its yaml [default: the shipped
    /// model of the scene (`--scene`, or the scene `--dataset` was recorded from):
    /// assets/models/<scene>, else assets/models/push-t]
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
    /// Dream from real frames: a DIAMOND spawn folder (`low_res.npy`, `full_res.npy`,
    /// `act.npy`; or DIAMOND's `csgo/spawn/`, whose first spawn is taken) or a folder of PNG /
    /// JPEG images (name order, the last ones are the context). Implies `--dream`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["scene", "dataset"])]
    pub spawn: Option<PathBuf>,
    /// Seed of the scene's episode and of the sampling noise.
    /// Folder for recordings, exports and saved sessions (the app can change it too).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
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

/// The model path the app opens: `--model`, else the shipped model of the scene the arguments
/// show (`--scene`, or the scene a Dreamyard-recorded `--dataset` came from), else the shipped
/// push-t model.
pub fn model_dir(args: &GuiArgs) -> PathBuf {
    if let Some(path) = &args.model {
        return resolve(path);
    }
    let scene = match (&args.scene, &args.dataset) {
        (Some(scene), _) => Some(scene.clone()),
        (None, Some(dir)) => recorded_scene(dir),
        (None, None) => None,
    };
    scene
        .as_deref()
        .and_then(shipped_model)
        .unwrap_or_else(|| resolve(Path::new(DEFAULT_MODEL_DIR)))
}

/// The shipped model of built-in scene `scene` (`assets/models/<scene>`), if this checkout has
/// one.
pub fn shipped_model(scene: &str) -> Option<PathBuf> {
    dreamyard_scenes::builtin_toml(scene)?;
    let dir = resolve(&Path::new(SHIPPED_MODELS_DIR).join(scene));
    dir.join("config.json").is_file().then_some(dir)
}

/// Whether choosing built-in scene `scene` keeps a model beside it: `None` when it does (no
/// model is open, the scene brings its own shipped model in place of a shipped one, or the
/// open model fits the scene's actions), else why the scene would open with its ground truth
/// only. The Scene menu says so before the user chooses.
pub fn scene_fit(
    scene: &str,
    model: Option<&crate::session::backend::ModelInfo>,
    model_path: Option<&Path>,
) -> Option<String> {
    let model = model?;
    if model_path.is_some_and(is_shipped_model) && shipped_model(scene).is_some() {
        return None;
    }
    let spec = load_scene(&SceneSource::parse(scene), None)
        .ok()?
        .spec()
        .clone();
    crate::session::fits(model, &spec.action_space, scene).err()
}

/// Whether `path` is one of the shipped models (`assets/models/<built-in scene>`).
pub fn is_shipped_model(path: &Path) -> bool {
    dreamyard_scenes::BUILTIN_SCENES
        .iter()
        .filter_map(|s| shipped_model(s))
        .any(|dir| same_path(&dir, path))
}

/// Whether two paths name the same file or folder.
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The scene a Dreamyard-recorded dataset came from, if it says: only `meta/dreamyard.json`
/// is read, not the episodes' metadata.
/// One episode of a dataset, as the episode list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeSummary {
    pub index: usize,
    pub length: u64,
    pub task: String,
    /// Where it came from (a scene's policy and seed, or a model), when the dataset says.
    pub source: Option<String>,
}

/// The episodes of the LeRobot dataset in `dir` (its metadata only: nothing is decoded).
pub fn list_episodes(dir: &Path) -> anyhow::Result<Vec<EpisodeSummary>> {
    use dreamyard_scenes::dataset::EpisodeSource;
    let ds = Dataset::open(dir)?;
    Ok(ds
        .episodes()
        .iter()
        .map(|e| EpisodeSummary {
            index: e.index as usize,
            length: e.length,
            task: e.tasks.join(" | "),
            source: e.source.as_ref().map(|s| match s {
                EpisodeSource::Scene { policy, seed, .. } => format!("{policy}, seed {seed}"),
                EpisodeSource::Model {
                    model,
                    ground_truth: Some(gt),
                    ..
                } => format!("model {model} beside {gt}"),
                EpisodeSource::Model { model, .. } => format!("imagined by {model}"),
            }),
        })
        .collect())
}

pub fn recorded_scene(dir: &Path) -> Option<String> {
    let meta = dreamyard_scenes::dataset::read_dreamyard(dir).ok()??;
    Some(meta.spec.scene?.name)
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
    load_model_with(session, request, None)
}

/// [`load_model`], with ground truth that replaces the current one together with the model
/// once it has loaded (a scene and its shipped model).
pub fn load_model_with(
    session: &mut Session,
    request: &ModelRequest,
    truth: Option<Box<dyn GroundTruth>>,
) -> bool {
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
            match truth {
                Some(t) => session.load_model_with_truth(worker, label, t),
                None => session.load_model(worker, label),
            }
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
    scene_truth(session, name).is_some_and(|t| session.set_truth(t))
}

/// The live scene `name` at the model's frame size (or the scene's own), as ground truth; an
/// error is a notice.
pub fn scene_truth(session: &mut Session, name: &str) -> Option<Box<dyn GroundTruth>> {
    let size = session
        .model_info()
        .map(|m| (m.frame_width, m.frame_height));
    match load_scene(&SceneSource::parse(name), size) {
        Ok(scene) => Some(Box::new(
            LiveScene::new(scene, session.config.seed).with_source(TruthSource::Scene {
                scene: name.to_owned(),
            }),
        )),
        Err(e) => {
            session.notify(Level::Error, format!("cannot open scene: {e}"));
            None
        }
    }
}

/// Reads episode `index` of the LeRobot dataset (v3.0 or v2.1) in `dir` as a replay episode:
/// its camera frames, actions and, when present, the scene's full states (for take-over).
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
    let states = (data.scene_state_dim > 0).then(|| {
        data.scene_states
            .chunks_exact(data.scene_state_dim)
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
    episode_truth(session, dir, index).is_some_and(|t| session.set_truth(t))
}

/// Episode `index` of the dataset in `dir` as a replay (see [`open_episode`]); an error is a
/// notice.
pub fn episode_truth(
    session: &mut Session,
    dir: &Path,
    index: usize,
) -> Option<Box<dyn GroundTruth>> {
    let episode = match read_episode(dir, index) {
        Ok(e) => e,
        Err(e) => {
            session.notify(Level::Error, crate::error_chain(e.as_ref()));
            return None;
        }
    };
    let size = episode.frames.first().map(|f| (f.width, f.height));
    let scene = episode
        .name
        .split_whitespace()
        .next()
        .and_then(|name| load_scene(&SceneSource::parse(name), size).ok());
    match Replay::new(episode, scene) {
        Ok(replay) => Some(Box::new(replay.with_source(TruthSource::Dataset {
            dir: dir.to_path_buf(),
            episode: index,
        }))),
        Err(e) => {
            session.notify(Level::Error, crate::error_chain(e.as_ref()));
            None
        }
    }
}

/// Dream mode from a spawn or image folder (see [`GuiArgs::spawn`]); a message if it cannot
/// be read, and dream mode from grey then.
pub fn open_spawn(session: &mut Session, path: &Path) {
    let dim = session.model_info().map_or(0, |m| m.action_space.dim());
    match crate::spawn::read_seed(path, dim) {
        Ok(seed) => {
            let n = seed.frames.len();
            session.set_dream_seed_full(seed);
            session.notify(
                Level::Info,
                format!("dreaming from {} ({n} frames)", path.display()),
            );
        }
        Err(e) => session.notify(Level::Error, crate::error_chain(e.as_ref())),
    }
    if let Err(e) = session.enter_dream_mode() {
        session.notify(Level::Error, e);
    }
    session.reset();
}

/// Applies the arguments' ground truth choice once a model (if any) is known.
pub fn open_truth(session: &mut Session, args: &GuiArgs) {
    if let Some(path) = &args.spawn {
        open_spawn(session, path);
        return;
    }
    if args.dream {
        if let Err(e) = session.enter_dream_mode() {
            session.notify(Level::Error, e);
        }
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
    fn the_scene_menu_knows_which_scenes_keep_the_model() {
        let info = |space| crate::session::backend::ModelInfo {
            source: "mine".into(),
            weights_sha256: String::new(),
            context_len: 4,
            action_space: space,
            frame_width: 64,
            frame_height: 64,
            fps: Some(10.0),
            device: "cpu".into(),
            dtype: "f32".into(),
            memory: None,
            stages: None,
            keyboard_mouse: None,
        };
        let discrete = info(dreamyard_scenes::ActionSpace::Discrete {
            names: vec!["a".into(), "b".into()],
        });
        assert_eq!(
            scene_fit("push-t", None, None),
            None,
            "no model: nothing lost"
        );
        let why = scene_fit("push-t", Some(&discrete), Some(Path::new("/my/model"))).unwrap();
        assert!(why.contains("do not fit `push-t`"), "{why}");
        let push_t = load_scene(&SceneSource::parse("push-t"), None).unwrap();
        let continuous = info(push_t.spec().action_space.clone());
        assert_eq!(scene_fit("push-t", Some(&continuous), None), None);
        // A shipped model gives way to the scene's own.
        let shipped = shipped_model("push-t").unwrap();
        assert_eq!(scene_fit("arm-push", Some(&discrete), Some(&shipped)), None);
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
    fn each_built_in_scene_opens_with_its_shipped_model() {
        use dreamyard_scenes::dataset::{DatasetSpec, DatasetWriter, EpisodePlan};
        use dreamyard_scenes::policy::PolicyKind;
        let scene_args = |scene: &str| GuiArgs {
            scene: Some(scene.into()),
            ..GuiArgs::default()
        };
        let arm_push = Path::new(SHIPPED_MODELS_DIR).join("arm-push");
        assert!(model_dir(&scene_args("arm-push")).ends_with(&arm_push));
        assert!(model_dir(&scene_args("push-t")).ends_with(DEFAULT_MODEL_DIR));
        // A scene file ships no model: the default one.
        assert!(model_dir(&scene_args("my/arm-push.toml")).ends_with(DEFAULT_MODEL_DIR));
        // --model wins over the scene's.
        let own = GuiArgs {
            model: Some("/models/mine".into()),
            ..scene_args("arm-push")
        };
        assert_eq!(model_dir(&own), PathBuf::from("/models/mine"));
        assert!(is_shipped_model(&model_dir(&scene_args("arm-push"))));
        assert!(!is_shipped_model(Path::new("/models/mine")));

        // A dataset recorded from arm-push replays beside the arm-push model.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("arm");
        let mut scene = load_scene(&SceneSource::parse("arm-push"), Some((32, 32))).unwrap();
        let mut writer =
            DatasetWriter::create(&root, DatasetSpec::from_scene(scene.spec())).unwrap();
        let mut policy = scene.scripted_policy(PolicyKind::RandomWalk);
        let plan = EpisodePlan {
            policy_name: "random-walk",
            seed: 1,
            max_steps: 3,
            task: "push the puck",
        };
        dreamyard_scenes::dataset::record_scene_episode(
            &mut writer,
            scene.as_mut(),
            policy.as_mut(),
            &plan,
            |_| {},
        )
        .unwrap();
        // The episode list reads the metadata: one episode, its length, task and source.
        assert_eq!(
            list_episodes(&root).unwrap(),
            [EpisodeSummary {
                index: 0,
                length: 3,
                task: "push the puck".into(),
                source: Some("random-walk, seed 1".into()),
            }]
        );
        let err = list_episodes(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("info.json"), "{err:#}");
        let replay = GuiArgs {
            dataset: Some(root),
            episode: Some(0),
            ..GuiArgs::default()
        };
        assert!(model_dir(&replay).ends_with(&arm_push));
        // A folder that is no dataset: the default model (the error comes when it opens).
        let other = GuiArgs {
            dataset: Some(dir.path().into()),
            ..replay
        };
        assert!(model_dir(&other).ends_with(DEFAULT_MODEL_DIR));
    }

    #[test]
    fn the_default_model_path_is_found_from_the_repository() {
        let dir = model_dir(&GuiArgs::default());
        assert!(dir.ends_with(DEFAULT_MODEL_DIR));
    }
}
