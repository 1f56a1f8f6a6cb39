//! What the desktop app opens: its command-line arguments and the loading of models, scenes and
//! episodes into a [`Session`]. No Bevy here, so it is shared by the GUI and its tests.

use std::path::{Path, PathBuf};

use clap::Args;
use dreamyard_scenes::{SceneSource, load_scene};

use crate::session::backend::CandleBackend;
use crate::session::truth::{Episode, LiveScene, Replay};
use crate::session::worker::ModelWorker;
use crate::session::{Level, Session};

/// Where the shipped push-t model lives, relative to the repository root.
pub const DEFAULT_MODEL_DIR: &str = "assets/models/push-t";

/// Arguments of the desktop app (`dreamyard` or `dreamyard gui`).
#[derive(Debug, Clone, Default, Args)]
pub struct GuiArgs {
    /// World model directory (`model.safetensors` + `config.json`) [default: the shipped
    /// push-t model, assets/models/push-t]
    #[arg(long)]
    pub model: Option<PathBuf>,
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

/// The model directory the app opens.
pub fn model_dir(args: &GuiArgs) -> PathBuf {
    resolve(
        args.model
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_MODEL_DIR)),
    )
}

/// Starts loading the model in `dir` on a worker thread. A missing default model is explained.
pub fn load_model(session: &mut Session, dir: &Path) {
    let dir = dir.to_path_buf();
    if !dir.join("model.safetensors").exists() || !dir.join("config.json").exists() {
        let hint = if dir.ends_with(DEFAULT_MODEL_DIR) {
            " The shipped push-t model is not in this checkout yet; open another model \
             (File > Open model, or --model DIR) — the scene still runs without one."
        } else {
            ""
        };
        session.notify(
            Level::Error,
            format!(
                "no model in {}: expected model.safetensors and config.json.{hint}",
                dir.display()
            ),
        );
        return;
    }
    let label = dir.display().to_string();
    let loader = Box::new(move || {
        CandleBackend::load(&dir).map(|b| Box::new(b) as Box<dyn crate::session::backend::Backend>)
    });
    match ModelWorker::spawn(loader) {
        Ok(worker) => session.load_model(worker, label),
        Err(e) => session.notify(
            Level::Error,
            format!("cannot start the model thread: {e:#}"),
        ),
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

/// Reads episode `index` of the LeRobot dataset in `dir`.
///
/// The LeRobot reader lives in the scenes crate's `dataset` module, which lands with the
/// datasets work; until then this reports that clearly instead of guessing at the format.
pub fn read_episode(dir: &Path, index: usize) -> anyhow::Result<Episode> {
    anyhow::ensure!(
        dir.join("meta").is_dir(),
        "{} is not a LeRobot dataset (no meta/ folder)",
        dir.display()
    );
    anyhow::bail!(
        "{}: reading LeRobot episodes (episode {index}) is not in this build yet; it comes \
         with the datasets module",
        dir.display()
    )
}

/// Opens episode `index` of a dataset as a replay (take-over uses the scene named by the
/// episode when it is a built-in one).
pub fn open_episode(session: &mut Session, dir: &Path, index: usize) -> bool {
    let episode = match read_episode(dir, index) {
        Ok(e) => e,
        Err(e) => {
            session.notify(Level::Error, format!("{e:#}"));
            return false;
        }
    };
    let scene = episode
        .name
        .split_whitespace()
        .next()
        .and_then(|name| load_scene(&SceneSource::parse(name), None).ok());
    match Replay::new(episode, scene) {
        Ok(replay) => session.set_truth(Box::new(replay)),
        Err(e) => {
            session.notify(Level::Error, format!("{e:#}"));
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
        load_model(&mut session, &dir.path().join(DEFAULT_MODEL_DIR));
        let text = &session.notices().last().unwrap().text;
        assert!(text.contains("model.safetensors"), "{text}");
        assert!(text.contains("not in this checkout yet"), "{text}");
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
    fn the_default_model_path_is_found_from_the_repository() {
        let dir = model_dir(&GuiArgs::default());
        assert!(dir.ends_with(DEFAULT_MODEL_DIR));
    }
}
