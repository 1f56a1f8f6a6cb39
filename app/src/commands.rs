//! How the UI changes the core. Panels and input handlers read the [`Session`] and push
//! [`Command`]s into one queue; [`apply`] carries each out with one error policy: a command that
//! fails or is refused becomes a visible notice, and nothing is dropped silently. The paths the
//! app writes to (recordings, exports) are made here, once. No Bevy here: the GUI's driver
//! drains its queue into [`apply`], and the tests do the same without a window.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dreamyard_model::candle_core::DType;
use dreamyard_scenes::Action;

use crate::launch::{self, ModelRequest};
use crate::session::journal::{ModelRef, SESSION_FORMAT, SESSION_KIND, SessionFile};
use crate::session::recorder::DatasetRecorder;
use crate::session::truth::{GroundTruth, TruthKind, TruthSource};
use crate::session::{BranchId, Level, PollOutcome, Refused, Session, SessionConfig, export};

/// A change the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Start or stop automatic stepping.
    SetPlaying(bool),
    /// One step with this action (pauses playback).
    Step(Action),
    /// Restart the episode from the session's seed (the branches it drops can be undone).
    Reset,
    /// The next seed's episode.
    NewEpisode,
    /// New settings (pace, seed, re-anchoring, divergence threshold).
    SetConfig(SessionConfig),
    /// Show this step of the active branch (timeline, plots).
    Scrub(usize),
    /// A new branch from this step.
    Fork(usize),
    /// What other actions would have done: a branch forked at `at` retaking the next `steps`
    /// actions perturbed, in the model and the live scene (see `Session::counterfactual`).
    Counterfactual {
        at: usize,
        steps: usize,
        perturbation: crate::perturb::Perturbation,
    },
    /// K futures of the next `steps` steps from `at`: the same actions, other sampler noise
    /// (see `Session::sample_futures`).
    SampleFutures {
        at: usize,
        steps: usize,
        k: usize,
    },
    SwitchBranch(BranchId),
    DeleteBranch(BranchId),
    /// Take back the last reset or branch deletion (Ctrl+Z).
    Undo,
    /// Leave a replay's recorded actions and drive from the shown step.
    TakeOver,
    /// The next step starts from the last real frames.
    ResyncNow,
    /// The model alone, without ground truth.
    EnterDream,
    /// Record the model's frames into a new dataset under [`Outputs::recordings`], as AV1
    /// video (LeRobot's default storage) or PNG images.
    StartRecording {
        video: bool,
    },
    SaveEpisode,
    DiscardEpisode,
    StopRecording,
    /// A model (what `--model` / `--config` accept), on the app's device.
    OpenModel {
        path: PathBuf,
        config: Option<PathBuf>,
    },
    /// Where models run from now on (`auto`, `cpu`, `cuda:N`, `metal:N`): the open model is
    /// loaded again there. A device the build or machine lacks is refused with a notice.
    SetDevice(String),
    OpenScene(String),
    OpenDataset {
        dir: PathBuf,
        episode: usize,
    },
    /// A dropped or typed path: a saved session, a dataset (a folder with `meta/`), frames to
    /// dream from (a DIAMOND spawn folder or a folder of images without a model), or else a
    /// model.
    OpenPath(PathBuf),
    /// Dream from real frames: a DIAMOND spawn folder (or `csgo/spawn/`) or a folder of images.
    OpenSpawn(PathBuf),
    /// An export of the active branch, its error row at this gain (the Error panel's).
    Export {
        kind: ExportKind,
        gain: f32,
    },
    /// Save the session (what was opened, the settings and every event since) under
    /// [`Outputs::session`].
    SaveSession,
    /// Open a saved session: its ground truth and model, then its events replayed.
    OpenSession(PathBuf),
    /// A file dialog could not open (no desktop portal or zenity): say how to go on.
    DialogUnavailable,
    /// Show a folder (a recording's) in the desktop's file manager.
    OpenFolder(PathBuf),
    /// Where recordings, exports and saved sessions go from now on (created if missing).
    SetOutputFolder(PathBuf),
    ClearNotices,
}

/// What an export writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportKind {
    /// An animated GIF of Truth | Model | Error per step.
    Gif,
    /// A PNG strip: rows Truth, Model, Error over the last steps.
    PngStrip,
}

/// Something a command opened, for the caller's recent-files list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    Model(PathBuf),
    Dataset(PathBuf),
}

/// What commands need besides the session: where the app writes (recordings and exports, each
/// under its own name in one folder), the device and dtype models open with, and the model
/// last asked for (what a device change loads again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outputs {
    pub root: PathBuf,
    /// `--device` of the app: models opened later (File > Open, drag and drop, the Device menu)
    /// use it too.
    pub device: String,
    /// `--dtype` of the app.
    pub dtype: DType,
    /// The model last opened (path and config), if any.
    pub model: Option<(PathBuf, Option<PathBuf>)>,
}

impl Default for Outputs {
    fn default() -> Self {
        Self {
            root: PathBuf::from("."),
            device: "cpu".into(),
            dtype: DType::F32,
            model: None,
        }
    }
}

impl Outputs {
    /// A new recording's dataset folder, named for what it holds and when:
    /// `recordings/<scene>_<model>_<YYYY-MM-DD_HH-MM-SS>` (local time; `-2`, `-3`, ... when
    /// that folder exists already).
    pub fn recording(&self, scene: Option<&str>, model: Option<&str>, when: &str) -> PathBuf {
        let mut name: Vec<String> = [scene, model]
            .into_iter()
            .flatten()
            .map(slug)
            .filter(|s| !s.is_empty())
            .collect();
        name.push(when.to_owned());
        let base = self.root.join("recordings").join(name.join("_"));
        let mut dir = base.clone();
        let mut n = 2;
        while dir.exists() {
            dir = PathBuf::from(format!("{}-{n}", base.display()));
            n += 1;
        }
        dir
    }

    /// A saved session's file: `sessions/<unix seconds>.json`.
    pub fn session(&self, stamp: u64) -> PathBuf {
        self.root.join("sessions").join(format!("{stamp}.json"))
    }

    /// An export's file: `dreamyard-<unix seconds>.<ext>`.
    pub fn export(&self, stamp: u64, ext: &str) -> PathBuf {
        self.root.join(format!("dreamyard-{stamp}.{ext}"))
    }
}

/// Opens `dir` in the desktop's file manager (`xdg-open`, `open`, `explorer`); when none
/// starts, the error names the folder so it can be found by hand.
fn open_folder(dir: &Path) -> Result<(), String> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| {
            format!(
                "cannot show {} in a file manager ({opener}: {e})",
                dir.display()
            )
        })
}

/// `text` as a short file-name part: letters, digits, `-` and `.` kept, runs of anything
/// else one `-`, at most 40 characters.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '-' || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(40).collect()
}

/// The local date and time as it appears in folder names.
fn local_time() -> String {
    chrono::Local::now().format("%Y-%m-%d_%H-%M-%S").to_string()
}

/// Seconds since the Unix epoch (names of recordings and exports).
fn stamp() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a step was not taken, for a notice.
pub fn refused_text(r: &Refused) -> String {
    match r {
        Refused::Busy => "step not taken: the model is still working on the previous step".into(),
        Refused::Empty => "step not taken: no ground truth and no model are open".into(),
        Refused::EpisodeEnded => "step not taken: the replayed episode has ended".into(),
        Refused::Invalid(why) => format!("step not taken: {why}"),
    }
}

/// Carries out every command of `queue` in order (see [`apply`]); returns what was opened.
pub fn apply_all(
    session: &mut Session,
    outputs: &mut Outputs,
    queue: impl IntoIterator<Item = Command>,
) -> Vec<Opened> {
    queue
        .into_iter()
        .filter_map(|c| apply(session, outputs, c))
        .collect()
}

/// Carries out one command. A failure or refusal becomes a notice on the session (the error
/// policy of the whole UI); the return value names a model or dataset that was opened.
pub fn apply(session: &mut Session, outputs: &mut Outputs, cmd: Command) -> Option<Opened> {
    let result: Result<(), String> = match cmd {
        Command::SetPlaying(on) => {
            session.transport.playing = on;
            Ok(())
        }
        Command::Step(action) => {
            session.transport.playing = false;
            session.step(&action).map_err(|r| refused_text(&r))
        }
        Command::Reset => {
            reset_undoably(session, |_| {});
            Ok(())
        }
        Command::NewEpisode => {
            reset_undoably(session, |s| {
                s.config.seed = s.config.seed.wrapping_add(1);
            });
            Ok(())
        }
        Command::SetConfig(config) => {
            session.config = config;
            Ok(())
        }
        Command::Scrub(step) => {
            session.scrub(step);
            Ok(())
        }
        Command::Fork(step) => session.fork(step).map(|_| ()),
        Command::Counterfactual {
            at,
            steps,
            perturbation,
        } => {
            session.transport.playing = false;
            session.counterfactual(at, steps, perturbation)
        }
        Command::SampleFutures { at, steps, k } => {
            session.transport.playing = false;
            session.sample_futures(at, steps, k)
        }
        Command::SwitchBranch(id) => {
            if session.switch_branch(id) {
                Ok(())
            } else {
                Err(format!("no branch {}", id.0))
            }
        }
        Command::DeleteBranch(id) => session.delete_branch(id).map(|()| {
            session.notify(
                Level::Info,
                "branch deleted; Ctrl+Z (Edit > Undo) brings it back".into(),
            );
        }),
        Command::Undo => session.undo(),
        Command::TakeOver => session.take_over(),
        Command::ResyncNow => session.resync_now(),
        Command::EnterDream => enter_dream_at_shown_step(session),
        Command::StartRecording { video } => {
            // The scene as opened (a dataset: its folder), and the model's folder name.
            let scene = match session.origin() {
                Some(TruthSource::Scene { scene }) => Some(scene.clone()),
                Some(TruthSource::Dataset { dir, episode }) => Some(format!(
                    "{}-ep{episode}",
                    dir.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into())
                )),
                None => session.truth_spec().map(|t| t.name.clone()),
            };
            let model = session.model_info().map(|m| {
                let p = std::path::Path::new(&m.source);
                p.file_name()
                    .map_or_else(|| m.source.clone(), |n| n.to_string_lossy().into())
            });
            let dir = outputs.recording(scene.as_deref(), model.as_deref(), &local_time());
            session.start_recording(Box::new(DatasetRecorder::create(&dir).with_video(video)))
        }
        Command::SaveEpisode => session.save_episode().map(|_| ()),
        Command::DiscardEpisode => session.discard_episode(),
        Command::StopRecording => session.stop_recording(),
        Command::OpenModel { path, config } => {
            let request = ModelRequest {
                path: path.clone(),
                config: config.clone(),
                device: outputs.device.clone(),
                dtype: outputs.dtype,
            };
            let started = launch::load_model(session, &request);
            if started {
                outputs.model = Some((path.clone(), config));
            }
            return started.then_some(Opened::Model(path));
        }
        Command::SetDevice(name) => set_device(session, outputs, name),
        Command::OpenScene(name) => {
            if let Some(truth) = launch::scene_truth(session, &name) {
                open_with_model(session, outputs, &name, truth);
            }
            Ok(())
        }
        Command::OpenDataset { dir, episode } => {
            return open_dataset(session, outputs, dir, episode);
        }
        Command::OpenPath(path) => return open_path(session, outputs, path),
        Command::OpenSpawn(path) => {
            launch::open_spawn(session, &path);
            Ok(())
        }
        Command::Export { kind, gain } => export_now(session, outputs, kind, gain),
        Command::SaveSession => save_session(session, outputs, &outputs.session(stamp())),
        Command::OpenSession(path) => return open_session(session, outputs, &path),
        Command::DialogUnavailable => Err("no file dialog could open on this desktop (it needs \
             an XDG desktop portal or zenity): type the path under File > Open a path, or drop \
             the folder on the window"
            .into()),
        Command::OpenFolder(dir) => open_folder(&dir),
        Command::SetOutputFolder(dir) => match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                session.notify(
                    Level::Info,
                    format!(
                        "recordings, exports and sessions now go under {}",
                        dir.display()
                    ),
                );
                outputs.root = dir;
                Ok(())
            }
            Err(e) => Err(format!(
                "{}: cannot use as the output folder: {e}",
                dir.display()
            )),
        },
        Command::ClearNotices => {
            session.clear_notices();
            Ok(())
        }
    };
    if let Err(text) = result {
        session.notify(Level::Error, text);
    }
    None
}

/// Dream mode from the step shown: scrubbed back to an earlier step, a new branch forks there
/// first, so the model dreams on from that truth frame and the branch after it stays.
fn enter_dream_at_shown_step(session: &mut Session) -> Result<(), String> {
    let head = session.active_branch().head();
    if let (Some(shown), Some(head)) = (session.view_step(), head)
        && shown < head
    {
        session.fork(shown)?;
    }
    session.enter_dream_mode()
}

/// Resets (after `before`, e.g. a new seed), saying how to take it back when it dropped steps:
/// nothing is lost by a stray Enter.
fn reset_undoably(session: &mut Session, before: impl FnOnce(&mut Session)) {
    let branches = session.branches().len();
    let had_steps = session.can_undo_reset();
    before(session);
    session.reset();
    if had_steps {
        session.notify(
            Level::Info,
            format!(
                "reset: {branches} branch{} set aside; Ctrl+Z (Edit > Undo) brings {} back",
                if branches == 1 { "" } else { "es" },
                if branches == 1 { "it" } else { "them" }
            ),
        );
    }
}

/// Applies the model thread's finished work (call every frame). When a new model has loaded
/// beside a live scene, the scene is opened again at the model's frame size, so truth and
/// model frames compare pixel for pixel.
pub fn poll(session: &mut Session) -> PollOutcome {
    let outcome = session.poll();
    if outcome.model_loaded
        && session.active_branch().truth_kind() == Some(TruthKind::Live)
        && let Some(name) = session.truth_spec().map(|s| s.name.clone())
    {
        // The scene as it was opened (a file keeps its path), else by its name.
        let name = match session.origin() {
            Some(TruthSource::Scene { scene }) => scene.clone(),
            _ => name,
        };
        launch::open_scene(session, &name);
    }
    // A saved session being opened goes on once its ground truth and model are in place.
    session.advance_replay();
    outcome
}

/// Writes the session file: where the ground truth and model came from, the settings and the
/// events since they were opened (no frames: they are regenerated).
fn save_session(session: &mut Session, outputs: &Outputs, path: &Path) -> Result<(), String> {
    if session.replay_progress().is_some() {
        return Err("wait until the session being opened has been replayed".into());
    }
    let model = match (session.model_info(), &outputs.model) {
        (None, _) => None,
        (Some(info), Some((path, config))) => Some(ModelRef {
            path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
            config: config
                .as_ref()
                .map(|c| std::path::absolute(c).unwrap_or_else(|_| c.clone())),
            weights_sha256: info.weights_sha256.clone(),
        }),
        (Some(_), None) => {
            return Err("cannot save the session: the model was not opened from a file".into());
        }
    };
    if session.origin().is_none() && session.origin_had_truth() {
        return Err(
            "cannot save the session: its ground truth was not opened from a scene or dataset"
                .into(),
        );
    }
    let truth = session.origin().cloned().map(|t| match t {
        TruthSource::Dataset { dir, episode } => TruthSource::Dataset {
            dir: std::path::absolute(&dir).unwrap_or(dir),
            episode,
        },
        other => other,
    });
    let file = SessionFile {
        kind: SESSION_KIND.into(),
        format: SESSION_FORMAT,
        truth,
        model,
        steps_per_sec: session.config.steps_per_sec,
        divergence_psnr_db: session.config.divergence_psnr_db,
        seed: session.origin_seed(),
        anchor_every: session.config.anchor_every,
        events: session.journal().to_vec(),
    };
    file.write(path)
        .map_err(|e| crate::error_chain(e.as_ref()))?;
    session.notify(
        Level::Info,
        format!(
            "session saved ({} events) → {}",
            file.events.len(),
            path.display()
        ),
    );
    Ok(())
}

/// Opens a saved session: its ground truth and model as they were opened, then its events
/// replayed as the model allows (every frame regenerated).
fn open_session(session: &mut Session, outputs: &mut Outputs, path: &Path) -> Option<Opened> {
    let file = match SessionFile::read(path) {
        Ok(f) => f,
        Err(e) => {
            session.notify(Level::Error, crate::error_chain(e.as_ref()));
            return None;
        }
    };
    if file.model.is_none() && session.model_info().is_some() {
        session.notify(
            Level::Error,
            format!(
                "{}: the session ran without a model, and a model is open now (its frames \
                 would differ); open the session in a Dreamyard that has not loaded one",
                path.display()
            ),
        );
        return None;
    }
    session.transport.playing = false;
    session.config = crate::session::SessionConfig {
        anchor_every: file.anchor_every,
        divergence_psnr_db: file.divergence_psnr_db,
        seed: file.seed,
        steps_per_sec: file.steps_per_sec,
    };
    let truth = match &file.truth {
        Some(TruthSource::Scene { scene }) => Some(launch::scene_truth(session, scene)?),
        Some(TruthSource::Dataset { dir, episode }) => {
            Some(launch::episode_truth(session, dir, *episode)?)
        }
        None => None,
    };
    match &file.model {
        Some(m) => {
            let request = ModelRequest {
                path: m.path.clone(),
                config: m.config.clone(),
                device: outputs.device.clone(),
                dtype: outputs.dtype,
            };
            if truth.is_none() {
                session.drop_truth();
            }
            if !launch::load_model_with(session, &request, truth) {
                return None;
            }
            outputs.model = Some((m.path.clone(), m.config.clone()));
            session.replay_events(file.events, Some(m.weights_sha256.clone()));
        }
        None => {
            if let Some(t) = truth
                && !session.set_truth(t)
            {
                return None;
            }
            session.replay_events(file.events, None);
        }
    }
    session.notify(Level::Info, format!("opening session {}", path.display()));
    None
}

/// Steps if playing and the pace allows (call every frame); a refused step becomes a notice
/// (playback has stopped then).
/// Paced playback: takes a step with `action` when one is due; returns whether it did.
pub fn tick(session: &mut Session, now: Instant, action: &Action) -> bool {
    match session.tick(now, action) {
        Some(Ok(())) => true,
        Some(Err(r)) => {
            session.notify(Level::Error, refused_text(&r));
            false
        }
        None => false,
    }
}

/// A dropped path: a LeRobot dataset (a folder with `meta/`, or a file inside one) opens its
/// first episode; anything else opens as a model through the one model source, whose error
/// says what a model must hold.
/// Switches the device models run on, loading the open model again there. The device is
/// opened first: one the build or machine lacks changes nothing.
fn set_device(session: &mut Session, outputs: &mut Outputs, name: String) -> Result<(), String> {
    crate::device::parse_device(&name).map_err(|e| crate::error_chain(e.as_ref()))?;
    outputs.device = name;
    if let Some((path, config)) = outputs.model.clone() {
        let request = ModelRequest {
            path,
            config,
            device: outputs.device.clone(),
            dtype: outputs.dtype,
        };
        // Failures to load become notices inside.
        launch::load_model(session, &request);
    }
    Ok(())
}

/// Opens episode `episode` of the dataset in `dir` as the ground truth, with the shipped model
/// of the scene it was recorded from when a shipped model is open.
fn open_dataset(
    session: &mut Session,
    outputs: &mut Outputs,
    dir: PathBuf,
    episode: usize,
) -> Option<Opened> {
    let truth = launch::episode_truth(session, &dir, episode)?;
    let opened = match launch::recorded_scene(&dir) {
        Some(scene) => open_with_model(session, outputs, &scene, truth),
        None => session.set_truth(truth),
    };
    opened.then_some(Opened::Dataset(dir))
}

/// Makes `truth` (from built-in scene `scene`, live or recorded) the ground truth, keeping the
/// model with the scene: when the open model is a shipped one (or none is open) and `scene`
/// ships its own, that model loads and the truth comes with it, so picking arm-push from the
/// Scene menu shows the arm-push model's dream. A model the user opened stays. Returns whether
/// the truth was set or its model started loading.
fn open_with_model(
    session: &mut Session,
    outputs: &mut Outputs,
    scene: &str,
    truth: Box<dyn GroundTruth>,
) -> bool {
    let Some(shipped) = launch::shipped_model(scene) else {
        return session.set_truth(truth);
    };
    if let Some((path, _)) = &outputs.model
        && (!launch::is_shipped_model(path) || launch::same_path(path, &shipped))
    {
        return session.set_truth(truth);
    }
    let request = ModelRequest {
        path: shipped.clone(),
        config: None,
        device: outputs.device.clone(),
        dtype: outputs.dtype,
    };
    let started = launch::load_model_with(session, &request, Some(truth));
    if started {
        outputs.model = Some((shipped, None));
    }
    started
}

fn open_path(session: &mut Session, outputs: &mut Outputs, path: PathBuf) -> Option<Opened> {
    if path.is_file()
        && path.extension().is_some_and(|e| e == "json")
        && std::fs::read_to_string(&path).is_ok_and(|t| t.contains(SESSION_KIND))
    {
        return open_session(session, outputs, &path);
    }
    let dataset = [Some(path.as_path()), path.parent()]
        .into_iter()
        .flatten()
        .find(|p| p.is_dir() && p.join("meta").is_dir());
    if let Some(dir) = dataset {
        return open_dataset(session, outputs, dir.to_path_buf(), 0);
    }
    if crate::spawn::is_seed_folder(&path) {
        return apply(session, outputs, Command::OpenSpawn(path));
    }
    apply(session, outputs, Command::OpenModel { path, config: None })
}

fn export_now(
    session: &mut Session,
    outputs: &Outputs,
    kind: ExportKind,
    gain: f32,
) -> Result<(), String> {
    let style = export::ExportStyle {
        gain,
        ..export::ExportStyle::default()
    };
    std::fs::create_dir_all(&outputs.root).map_err(|e| {
        format!(
            "export failed: {}: cannot create the output folder: {e}",
            outputs.root.display()
        )
    })?;
    let fps = session.fps();
    let branch = session.active_branch();
    let stamp = stamp();
    let result = match kind {
        ExportKind::Gif => {
            let path = outputs.export(stamp, "gif");
            export::export_gif(branch, &path, fps, &style).map(|n| (n, path))
        }
        ExportKind::PngStrip => {
            let path = outputs.export(stamp, "png");
            export::export_png_strip(branch, &path, 12, &style).map(|n| (n, path))
        }
    };
    match result {
        Ok((n, path)) => {
            session.notify(
                Level::Info,
                format!("exported {n} steps → {}", path.display()),
            );
            Ok(())
        }
        Err(e) => Err(format!("export failed: {}", crate::error_chain(e.as_ref()))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dreamyard_scenes::{ActionSpace, Frame, SceneSource, load_scene};

    use super::*;
    use crate::session::truth::{Episode, LiveScene, Replay};
    use crate::session::{BranchId, FrameKind};

    fn last_error(s: &Session) -> String {
        let n = s.notices().last().expect("a notice");
        assert_eq!(n.level, Level::Error, "{}", n.text);
        n.text.clone()
    }

    /// Polls until the loading model has loaded (at most a minute).
    fn wait_for_model(s: &mut Session) {
        let start = Instant::now();
        while s.model_info().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{:?}",
                s.notices()
            );
            poll(s);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn push_t() -> Session {
        let mut s = Session::default();
        let scene = load_scene(&SceneSource::parse("push-t"), Some((32, 32))).unwrap();
        assert!(s.set_truth(Box::new(LiveScene::new(scene, 0))));
        s
    }

    #[test]
    fn a_refused_step_becomes_a_visible_notice() {
        let mut out = Outputs::default();
        // Nothing open.
        let mut s = Session::default();
        apply(
            &mut s,
            &mut out,
            Command::Step(Action::Continuous(vec![1.0, 2.0])),
        );
        assert!(last_error(&s).contains("no ground truth"));
        // An action that does not fit the scene.
        let mut s = push_t();
        apply(&mut s, &mut out, Command::Step(Action::Discrete(3)));
        assert!(last_error(&s).starts_with("step not taken"));
        assert_eq!(s.active_branch().steps.len(), 1, "no step was taken");
        // The last branch cannot go.
        let id = s.active_id();
        apply(&mut s, &mut out, Command::DeleteBranch(id));
        assert!(last_error(&s).contains("last branch"));
    }

    #[test]
    fn playback_that_fails_stops_with_a_notice() {
        // A two-frame replay: the second played step runs past its end.
        let frame = Frame {
            width: 8,
            height: 8,
            data: vec![9; 8 * 8 * 3],
        };
        let episode = Episode {
            name: "short".into(),
            frames: vec![frame.clone(), frame],
            actions: vec![Action::Discrete(0), Action::Discrete(1)],
            states: None,
            action_space: ActionSpace::Discrete {
                names: vec!["0".into(), "1".into()],
            },
            fps: 10.0,
        };
        let mut s = Session::default();
        assert!(s.set_truth(Box::new(Replay::new(episode, None).unwrap())));
        let mut out = Outputs::default();
        apply(&mut s, &mut out, Command::SetPlaying(true));
        let mut now = Instant::now();
        for _ in 0..4 {
            tick(&mut s, now, &Action::Discrete(0));
            now += Duration::from_secs(1);
        }
        assert!(!s.transport.playing, "playback stops");
        assert!(last_error(&s).contains("episode has ended"));
    }

    #[test]
    fn opening_what_is_not_there_is_a_notice_and_keeps_the_session() {
        let mut s = push_t();
        let mut out = Outputs::default();
        let opened = apply(&mut s, &mut out, Command::OpenPath("/no/such/model".into()));
        assert_eq!(opened, None);
        assert!(last_error(&s).contains("no such model file or directory"));
        let opened = apply(
            &mut s,
            &mut out,
            Command::OpenModel {
                path: "/no/such/agent.pt".into(),
                config: None,
            },
        );
        assert_eq!(opened, None);
        assert!(s.model_loading().is_none());
        let mut bad_device = Outputs {
            device: "tpu".into(),
            ..Outputs::default()
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.safetensors"), b"x").unwrap();
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        apply(
            &mut s,
            &mut bad_device,
            Command::OpenPath(dir.path().into()),
        );
        assert!(last_error(&s).contains("unknown --device `tpu`"));
        assert_eq!(s.truth_spec().unwrap().name, "push-t");
    }

    #[test]
    fn a_model_loaded_beside_a_live_scene_renders_it_at_the_models_size() {
        let mut s = Session::default();
        assert!(launch::open_scene(&mut s, "push-t"));
        let first = |s: &Session| s.active_branch().steps[0].truth.clone().unwrap();
        assert_eq!((first(&s).width, first(&s).height), (96, 96));
        let model = launch::resolve(std::path::Path::new(launch::DEFAULT_MODEL_DIR));
        let command = Command::OpenModel {
            path: model,
            config: None,
        };
        let mut out = Outputs::default();
        assert!(apply(&mut s, &mut out, command).is_some());
        assert!(
            out.model.is_some(),
            "the model is remembered for a device change"
        );
        wait_for_model(&mut s);
        // Rendered again at 64x64, not a resized 96x96 frame.
        let mut scene = load_scene(&SceneSource::parse("push-t"), Some((64, 64))).unwrap();
        assert_eq!(*first(&s), scene.reset(0).frame);
    }

    #[test]
    fn a_scene_brings_its_shipped_model_and_keeps_the_users_own() {
        let shipped = |scene: &str| launch::shipped_model(scene).expect("a shipped model");
        let mut s = push_t();
        let mut out = Outputs {
            model: Some((shipped("push-t"), None)),
            ..Outputs::default()
        };
        apply(&mut s, &mut out, Command::OpenScene("arm-push".into()));
        assert_eq!(out.model, Some((shipped("arm-push"), None)));
        assert!(s.model_loading().is_some(), "{:?}", s.notices());
        // The scene changes with its model, not before (the push-t model cannot drive it).
        assert_eq!(s.truth_spec().unwrap().name, "push-t");
        wait_for_model(&mut s);
        assert!(s.truth_spec().unwrap().name.starts_with("arm-push"));
        // The truth is rendered at the arm-push model's frame size.
        let info = s.model_info().unwrap();
        let truth = s.active_branch().steps[0].truth.clone().unwrap();
        assert_eq!(
            (truth.width, truth.height),
            (info.frame_width, info.frame_height)
        );

        // Back to push-t: its shipped model again.
        apply(&mut s, &mut out, Command::OpenScene("push-t".into()));
        assert_eq!(out.model, Some((shipped("push-t"), None)));

        // A model the user opened stays whatever the scene.
        let mine = tempfile::tempdir().unwrap();
        let mut own = Outputs {
            model: Some((mine.path().into(), None)),
            ..Outputs::default()
        };
        let mut s = push_t();
        apply(&mut s, &mut own, Command::OpenScene("arm-push".into()));
        assert_eq!(own.model, Some((mine.path().into(), None)));
        assert!(s.model_loading().is_none());
        assert!(s.truth_spec().unwrap().name.starts_with("arm-push"));
    }

    #[test]
    fn a_device_change_reloads_the_model_and_a_missing_device_changes_nothing() {
        let mut s = push_t();
        let mut out = Outputs::default();
        // No model yet: the device is simply remembered.
        apply(&mut s, &mut out, Command::SetDevice("auto".into()));
        assert_eq!(out.device, "auto");
        assert!(s.notices().is_empty(), "{:?}", s.notices());
        // A device this build lacks: a notice naming the flag and the build; nothing changes.
        if !cfg!(feature = "cuda") {
            apply(&mut s, &mut out, Command::SetDevice("cuda".into()));
            assert!(
                last_error(&s).contains("--features cuda"),
                "{}",
                last_error(&s)
            );
            assert_eq!(out.device, "auto");
        }
        // With a model open, switching loads it again on the new device.
        let model = launch::resolve(std::path::Path::new(launch::DEFAULT_MODEL_DIR));
        out.model = Some((model, None));
        apply(&mut s, &mut out, Command::SetDevice("cpu".into()));
        assert_eq!(out.device, "cpu");
        assert!(s.model_loading().is_some(), "the model is loading again");
    }

    #[test]
    fn a_reset_that_drops_steps_says_how_to_undo_it() {
        let mut s = push_t();
        let mut out = Outputs::default();
        apply(&mut s, &mut out, Command::Undo);
        assert!(last_error(&s).contains("nothing to undo"));
        apply(&mut s, &mut out, Command::Reset);
        assert!(
            s.notices().iter().all(|n| !n.text.contains("Ctrl+Z")),
            "nothing dropped"
        );
        for _ in 0..3 {
            apply(
                &mut s,
                &mut out,
                Command::Step(Action::Continuous(vec![200.0, 200.0])),
            );
        }
        apply(&mut s, &mut out, Command::NewEpisode);
        assert_eq!(s.config.seed, 1);
        let text = &s.notices().last().unwrap().text;
        assert!(
            text.contains("1 branch set aside") && text.contains("Ctrl+Z"),
            "{text}"
        );
        apply(&mut s, &mut out, Command::Undo);
        assert_eq!(s.active_branch().steps.len(), 4, "the three steps are back");
    }

    /// Every branch's truth and model frames, by branch id.
    fn all_frames(s: &Session) -> Vec<(BranchId, Vec<Option<std::sync::Arc<Frame>>>)> {
        s.branches()
            .iter()
            .map(|b| {
                let frames = b
                    .steps
                    .iter()
                    .flat_map(|r| [r.truth.clone(), r.model.clone()])
                    .collect();
                (b.id, frames)
            })
            .collect()
    }

    /// Polls as the app does until the model is idle and any saved session is replayed.
    fn settle(s: &mut Session) {
        let start = Instant::now();
        while s.model_loading().is_some() || s.is_pending() || s.replay_progress().is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{:?}",
                s.notices()
            );
            poll(s);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_saved_session_reopens_with_every_frame_regenerated_bit_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Outputs {
            root: dir.path().into(),
            ..Outputs::default()
        };
        let mut s = Session::default();
        let model = launch::resolve(std::path::Path::new(launch::DEFAULT_MODEL_DIR));
        apply(
            &mut s,
            &mut out,
            Command::OpenModel {
                path: model,
                config: None,
            },
        );
        settle(&mut s);
        apply(&mut s, &mut out, Command::OpenScene("push-t".into()));
        let mut cfg = s.config.clone();
        cfg.seed = 3;
        cfg.anchor_every = 3;
        apply(&mut s, &mut out, Command::SetConfig(cfg));
        apply(&mut s, &mut out, Command::Reset);
        let step = |s: &mut Session, out: &mut Outputs, x: f32| {
            apply(
                s,
                out,
                Command::Step(Action::Continuous(vec![x, 300.0 - x])),
            );
            settle(s);
        };
        for i in 0..7 {
            step(&mut s, &mut out, 150.0 + 15.0 * i as f32);
        }
        // A held action: one event with a count.
        for _ in 0..4 {
            step(&mut s, &mut out, 260.0);
        }
        apply(&mut s, &mut out, Command::Fork(5));
        step(&mut s, &mut out, 40.0);
        step(&mut s, &mut out, 60.0);
        apply(&mut s, &mut out, Command::ResyncNow);
        step(&mut s, &mut out, 80.0);
        apply(&mut s, &mut out, Command::NewEpisode);
        step(&mut s, &mut out, 100.0);
        apply(&mut s, &mut out, Command::Undo);
        let main = s.branches()[0].id;
        apply(&mut s, &mut out, Command::SwitchBranch(main));
        step(&mut s, &mut out, 222.0);
        apply(&mut s, &mut out, Command::SaveSession);
        let saved = s.notices().last().unwrap().text.clone();
        assert!(saved.starts_with("session saved"), "{saved}");
        let file = std::fs::read_dir(dir.path().join("sessions"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.len() < 8_000, "a small file: {} bytes", text.len());
        assert!(text.contains("\"repeat\": 4"), "{text}");
        assert_eq!(s.branches().len(), 2);

        // A fresh app opens it: same branches, same frames, bit for bit.
        let mut t = Session::default();
        let mut out2 = Outputs::default();
        apply(&mut t, &mut out2, Command::OpenPath(file.clone()));
        settle(&mut t);
        assert!(
            t.notices()
                .iter()
                .any(|n| n.text.starts_with("session restored")),
            "{:?}",
            t.notices()
        );
        assert_eq!(all_frames(&t), all_frames(&s));
        assert_eq!(t.active_id(), s.active_id());
        assert_eq!(t.config.seed, s.config.seed);
        // And it goes on: the next step is the one the first session takes.
        step(&mut s, &mut out, 250.0);
        step(&mut t, &mut out2, 250.0);
        assert_eq!(all_frames(&t), all_frames(&s));

        // A file that is not a session says so.
        std::fs::write(&file, "{\"kind\": \"dreamyard-session\", \"format\": 9}").unwrap();
        apply(&mut t, &mut out2, Command::OpenSession(file.clone()));
        assert!(
            last_error(&t).contains("not a Dreamyard session file"),
            "{}",
            last_error(&t)
        );
    }

    #[test]
    fn a_dropped_image_folder_starts_a_two_stage_dream() {
        // DIAMOND's two-stage CS:GO fixture model, opened as a user would.
        let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/diamond-csgo");
        let dir = tempfile::tempdir().unwrap();
        let mut out = Outputs {
            root: dir.path().into(),
            ..Outputs::default()
        };
        let mut s = Session::default();
        apply(
            &mut s,
            &mut out,
            Command::OpenModel {
                path: fx.join("agent.pt"),
                config: Some(fx.join("config.yaml")),
            },
        );
        settle(&mut s);
        // Five images of another size: the last four are the context, scaled to 140x75.
        let frames = dir.path().join("frames");
        std::fs::create_dir(&frames).unwrap();
        for i in 0..5u8 {
            let f = crate::session::frames::solid(56, 30, [40 * i, 100, 200 - 30 * i]);
            crate::image_io::write_png(&frames.join(format!("{i:02}.png")), &f).unwrap();
        }
        apply(&mut s, &mut out, Command::OpenPath(frames));
        assert_eq!(s.active_branch().truth_kind(), None, "dream mode");
        let steps = &s.active_branch().steps;
        assert_eq!(steps.len(), 4);
        let first = steps[0].model.as_ref().unwrap();
        assert_eq!((first.width, first.height), (140, 75));
        assert_eq!(
            first.pixel(0, 0),
            [40, 100, 170],
            "image 01 is the oldest context frame"
        );
        // The first stage starts from the frames' 5x5 means, shown beside the dream.
        let low = steps[3].model_low.as_ref().unwrap();
        assert_eq!((low.width, low.height), (28, 15));
        let layout = s.model_info().unwrap().keyboard_mouse.clone().unwrap();
        let pad = crate::keyboard_mouse::KeyboardMousePad::new(layout);
        apply(&mut s, &mut out, Command::Step(pad.action()));
        settle(&mut s);
        let last = s.active_branch().steps.last().unwrap();
        assert_eq!(last.kind, FrameKind::Imagined);
        assert!(
            last.model.is_some() && last.model_low.is_some(),
            "{:?}",
            s.notices()
        );
    }

    #[test]
    fn dream_mode_starts_from_the_truth_frame_shown() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Outputs {
            root: dir.path().into(),
            ..Outputs::default()
        };
        let mut s = Session::default();
        let model = launch::resolve(std::path::Path::new(launch::DEFAULT_MODEL_DIR));
        apply(
            &mut s,
            &mut out,
            Command::OpenModel {
                path: model,
                config: None,
            },
        );
        settle(&mut s);
        apply(&mut s, &mut out, Command::OpenScene("push-t".into()));
        for i in 0..8 {
            apply(
                &mut s,
                &mut out,
                Command::Step(Action::Continuous(vec![200.0 + 10.0 * i as f32, 250.0])),
            );
            settle(&mut s);
        }
        let main = s.active_id();
        let truth_at_5 = s.active_branch().steps[5].truth.clone().unwrap();
        apply(&mut s, &mut out, Command::Scrub(5));
        apply(&mut s, &mut out, Command::EnterDream);
        assert_ne!(s.active_id(), main, "a new branch from the shown step");
        assert_eq!(s.active_branch().steps.len(), 6);
        assert_eq!(s.active_branch().truth_kind(), None, "the model alone");
        assert_eq!(s.branches()[0].steps.len(), 9, "the branch after it stays");
        apply(
            &mut s,
            &mut out,
            Command::Step(Action::Continuous(vec![300.0, 300.0])),
        );
        settle(&mut s);
        let rec = s.active_branch().steps.last().unwrap();
        assert_eq!(rec.kind, FrameKind::Imagined);
        assert!(rec.truth.is_none() && rec.model.is_some());
        // Its context was the real frames up to step 5.
        assert_eq!(s.active_branch().steps[5].truth.as_ref(), Some(&truth_at_5));
    }

    #[test]
    fn a_recording_goes_to_a_folder_named_for_its_scene_model_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Outputs {
            root: dir.path().into(),
            ..Outputs::default()
        };
        let mut s = Session::default();
        let model = launch::resolve(std::path::Path::new(launch::DEFAULT_MODEL_DIR));
        apply(
            &mut s,
            &mut out,
            Command::OpenModel {
                path: model,
                config: None,
            },
        );
        settle(&mut s);
        apply(&mut s, &mut out, Command::OpenScene("push-t".into()));
        apply(&mut s, &mut out, Command::StartRecording { video: false });
        let path = s.recording().unwrap().path.unwrap();
        assert_eq!(path.parent().unwrap(), dir.path().join("recordings"));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("push-t_push-t_"), "{name}");
        // A second recording in the same second gets its own folder.
        apply(&mut s, &mut out, Command::StopRecording);
        std::fs::create_dir_all(&path).unwrap();
        apply(&mut s, &mut out, Command::StartRecording { video: false });
        let second = s.recording().unwrap().path.unwrap();
        assert_ne!(second, path);
    }

    #[test]
    fn the_same_error_again_is_counted_not_stacked() {
        let mut s = push_t();
        let mut out = Outputs::default();
        for _ in 0..5 {
            apply(&mut s, &mut out, Command::Step(Action::Discrete(3)));
        }
        apply(&mut s, &mut out, Command::Undo);
        apply(&mut s, &mut out, Command::Step(Action::Discrete(3)));
        let errors: Vec<(&str, u32)> = s
            .notices()
            .iter()
            .filter(|n| n.level == Level::Error)
            .map(|n| (n.text.as_str(), n.count))
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].0.contains("nothing to undo"));
        assert!(
            errors[1].0.starts_with("step not taken") && errors[1].1 == 6,
            "{errors:?}"
        );
    }

    #[test]
    fn the_output_folder_can_be_set_and_exports_go_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = push_t();
        let mut out = Outputs::default();
        // `--out` names a folder that does not exist yet: the first export makes it.
        let fresh = Outputs {
            root: dir.path().join("not-yet"),
            ..Outputs::default()
        };
        let mut fresh_out = fresh.clone();
        apply(
            &mut s,
            &mut fresh_out,
            Command::Step(Action::Continuous(vec![200.0, 200.0])),
        );
        apply(
            &mut s,
            &mut fresh_out,
            Command::Export {
                kind: ExportKind::Gif,
                gain: 1.0,
            },
        );
        assert!(
            s.notices().last().unwrap().text.starts_with("exported"),
            "{:?}",
            s.notices().last()
        );
        assert!(fresh.root.is_dir());
        let target = dir.path().join("runs/today");
        apply(&mut s, &mut out, Command::SetOutputFolder(target.clone()));
        assert_eq!(out.root, target);
        apply(
            &mut s,
            &mut out,
            Command::Step(Action::Continuous(vec![200.0, 200.0])),
        );
        apply(
            &mut s,
            &mut out,
            Command::Export {
                kind: ExportKind::PngStrip,
                gain: 2.0,
            },
        );
        let names: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().any(|n| n.ends_with(".png")), "{names:?}");
        // A folder that cannot be made is refused and the old one kept.
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        apply(&mut s, &mut out, Command::SetOutputFolder(file.join("sub")));
        assert!(last_error(&s).contains("cannot use as the output folder"));
        assert_eq!(out.root, target);
    }

    #[test]
    fn outputs_name_recordings_and_exports_in_one_folder() {
        let out = Outputs {
            root: "/data/dy".into(),
            ..Outputs::default()
        };
        let when = "2026-12-06_07-01-02";
        assert_eq!(
            out.recording(Some("push-t"), Some("push-t"), when),
            PathBuf::from("/data/dy/recordings/push-t_push-t_2026-12-06_07-01-02")
        );
        assert_eq!(
            out.recording(Some("/home/me/my scene.toml"), None, when),
            PathBuf::from("/data/dy/recordings/home-me-my-scene.toml_2026-12-06_07-01-02")
        );
        // A folder of that name already there: the next free suffix.
        let dir = tempfile::tempdir().unwrap();
        let local = Outputs {
            root: dir.path().into(),
            ..Outputs::default()
        };
        let first = local.recording(Some("push-t"), None, when);
        std::fs::create_dir_all(&first).unwrap();
        assert_eq!(
            local.recording(Some("push-t"), None, when),
            PathBuf::from(format!("{}-2", first.display()))
        );
        assert_eq!(local_time().len(), when.len());
        assert_eq!(out.session(5), PathBuf::from("/data/dy/sessions/5.json"));
        assert_eq!(
            out.export(5, "gif"),
            PathBuf::from("/data/dy/dreamyard-5.gif")
        );
    }
}
