//! Session driver: owns the [`Session`], opens what the arguments name, polls the model thread
//! every frame, paces playback and applies the commands the panels queue.

use std::path::PathBuf;
use std::time::Instant;

use bevy::prelude::*;

use super::input::ControlState;
use super::{AppSet, LaunchArgs};
use crate::launch;
use crate::session::truth::TruthKind;
use crate::session::{Level, Session, SessionConfig, export};

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<AppCommands>()
        .add_systems(Startup, open_from_args)
        .add_systems(
            Update,
            (open_truth_when_model_settles, poll_and_play, apply_commands)
                .chain()
                .in_set(AppSet::Drive),
        );
}

/// The session as an app resource.
#[derive(Resource, Debug, Deref, DerefMut)]
pub(super) struct SessionRes(pub Session);

/// Things the panels ask for that need more than the session (files, dialogs, exports).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum AppCommand {
    OpenModel(PathBuf),
    OpenScene(String),
    OpenDataset { dir: PathBuf, episode: usize },
    OpenPath(PathBuf),
    ExportGif,
    ExportPng,
}

#[derive(Resource, Debug, Default)]
pub(super) struct AppCommands(pub Vec<AppCommand>);

/// Whether the ground truth named by the arguments has been opened yet (it waits for the
/// model, whose frame size it renders at).
#[derive(Resource, Debug, Default)]
struct TruthOpened(bool);

fn open_from_args(mut commands: Commands, args: Res<LaunchArgs>) {
    let args = &args.0;
    let mut session = Session::new(SessionConfig {
        seed: args.seed,
        anchor_every: args.anchor_every,
        ..default()
    });
    launch::load_model(&mut session, &launch::model_dir(args));
    commands.insert_resource(SessionRes(session));
    commands.insert_resource(TruthOpened(false));
}

fn open_truth_when_model_settles(
    mut session: ResMut<SessionRes>,
    mut opened: ResMut<TruthOpened>,
    args: Res<LaunchArgs>,
) {
    if opened.0 || session.model_loading().is_some() {
        return;
    }
    opened.0 = true;
    launch::open_truth(&mut session, &args.0);
}

fn poll_and_play(mut session: ResMut<SessionRes>, control: Res<ControlState>) {
    let outcome = session.poll();
    if outcome.model_loaded {
        // Render the live scene at the new model's frame size.
        let live = session
            .active_branch()
            .truth_kind()
            .is_some_and(|k| k == TruthKind::Live);
        if live && let Some(name) = session.truth_spec().map(|s| s.name.clone()) {
            launch::open_scene(&mut session, &name);
        }
    }
    let action = control.action.clone();
    if let Some(action) = action {
        let _ = session.tick(Instant::now(), &action);
    }
}

fn apply_commands(
    mut queue: ResMut<AppCommands>,
    mut session: ResMut<SessionRes>,
    mut recent: ResMut<super::files::Recent>,
) {
    for cmd in std::mem::take(&mut queue.0) {
        match cmd {
            AppCommand::OpenModel(dir) => {
                recent.push(&dir, super::files::RecentKind::Model);
                launch::load_model(&mut session, &dir);
            }
            AppCommand::OpenScene(name) => {
                launch::open_scene(&mut session, &name);
            }
            AppCommand::OpenDataset { dir, episode } => {
                recent.push(&dir, super::files::RecentKind::Dataset);
                launch::open_episode(&mut session, &dir, episode);
            }
            AppCommand::OpenPath(path) => {
                // Dropped files: a model directory (or a file in one), else a dataset.
                let dir = if path.is_file() {
                    path.parent().map(PathBuf::from).unwrap_or(path)
                } else {
                    path
                };
                if dir.join("model.safetensors").exists() || dir.join("config.json").exists() {
                    recent.push(&dir, super::files::RecentKind::Model);
                    launch::load_model(&mut session, &dir);
                } else if dir.join("meta").is_dir() {
                    recent.push(&dir, super::files::RecentKind::Dataset);
                    launch::open_episode(&mut session, &dir, 0);
                } else {
                    session.notify(
                        Level::Error,
                        format!(
                            "{}: neither a model (model.safetensors + config.json) nor a \
                             LeRobot dataset (meta/)",
                            dir.display()
                        ),
                    );
                }
            }
            AppCommand::ExportGif | AppCommand::ExportPng => export_now(&mut session, &cmd),
        }
    }
}

fn export_now(session: &mut Session, cmd: &AppCommand) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let fps = session.fps();
    let branch = session.active_branch();
    let result = if *cmd == AppCommand::ExportGif {
        let path = PathBuf::from(format!("dreamyard-{stamp}.gif"));
        export::export_gif(branch, &path, fps).map(|n| format!("{n} steps → {}", path.display()))
    } else {
        let path = PathBuf::from(format!("dreamyard-{stamp}.png"));
        export::export_png_strip(branch, &path, 12)
            .map(|n| format!("{n} steps → {}", path.display()))
    };
    match result {
        Ok(msg) => session.notify(Level::Info, format!("exported {msg}")),
        Err(e) => session.notify(
            Level::Error,
            format!("export failed: {}", crate::error_chain(e.as_ref())),
        ),
    }
}
