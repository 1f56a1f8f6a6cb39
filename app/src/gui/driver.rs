//! Session driver: owns the [`Session`], opens what the arguments name, polls the model thread
//! every frame, paces playback and applies the commands the panels and input queue.

use std::time::Instant;

use bevy::prelude::*;

use super::input::ControlState;
use super::{AppSet, LaunchArgs};
use crate::commands::{self, Command, Opened, Outputs};
use crate::launch;
use crate::session::{Session, SessionConfig};

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

/// The one queue of [`Command`]s: panels, keys, dialogs and drops push; [`apply_commands`]
/// applies them once per frame with the core's error policy (failures become notices).
#[derive(Resource, Debug, Default)]
pub(super) struct AppCommands(pub Vec<Command>);

/// Where the app writes and which device models open on (from the arguments).
#[derive(Resource, Debug, Default, Deref, DerefMut)]
pub(super) struct OutputsRes(pub Outputs);

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
    launch::load_model(&mut session, &launch::model_request(args));

    commands.insert_resource(SessionRes(session));
    let request = launch::model_request(args);
    commands.insert_resource(OutputsRes(Outputs {
        root: args.out.clone(),
        device: args.device.clone(),
        dtype: request.dtype,
        model: Some((request.path, request.config)),
    }));
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

fn poll_and_play(mut session: ResMut<SessionRes>, mut control: ResMut<ControlState>) {
    commands::poll(&mut session);
    if let Some(action) = control.action.clone()
        && commands::tick(&mut session, Instant::now(), &action)
    {
        control.stepped();
    }
}

pub(super) fn apply_commands(
    mut queue: ResMut<AppCommands>,
    mut session: ResMut<SessionRes>,
    mut outputs: ResMut<OutputsRes>,
    mut recent: ResMut<super::files::Recent>,
) {
    let queued = std::mem::take(&mut queue.0);
    for opened in commands::apply_all(&mut session, &mut outputs, queued) {
        match opened {
            Opened::Model(path) => recent.push(&path, super::files::RecentKind::Model),
            Opened::Dataset(path) => recent.push(&path, super::files::RecentKind::Dataset),
        }
    }
}
