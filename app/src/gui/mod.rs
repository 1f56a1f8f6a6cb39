//! The desktop app: Bevy runs the window, input and the error shader; egui draws the panels.
//! Every concern is one small plugin over the plain-Rust [`Session`](crate::session::Session);
//! panels are `*_ui(ui, &mut state)` functions in [`ui`].
//!
//! Frame order: input (keys, gamepad) → drive (poll the model thread, pace playback, apply
//! commands) → present (upload the shown step's frames, render the error heat map) → egui pass.

// Bevy system parameters (`Res<T>`, `Commands`, `Query<..>`) are written without their
// lifetimes throughout Bevy's own code and docs; spelling out `'_` on each adds only noise.
#![allow(elided_lifetimes_in_paths)]
// Systems receive `Res<T>` by value: that is how Bevy hands out resources.
#![allow(clippy::needless_pass_by_value)]

mod automation;
mod driver;
mod episodes;
mod error_shader;
mod files;
mod input;
mod textures;
mod ui;

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_egui::EguiPlugin;

use crate::launch::GuiArgs;

/// The app's per-frame phases, in order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AppSet {
    Input,
    Drive,
    Present,
}

/// The arguments the app was opened with.
#[derive(Resource, Debug, Clone)]
struct LaunchArgs(GuiArgs);

/// Opens the window and runs until it is closed.
pub fn run(args: GuiArgs) -> anyhow::Result<()> {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: "Dreamyard".into(),
                    resolution: (1600, 960).into(),
                    ..default()
                }),
                ..default()
            })
            // The binary already logs through its own tracing subscriber.
            .disable::<LogPlugin>(),
    )
    .add_plugins(EguiPlugin::default())
    .insert_resource(ClearColor(Color::srgb_u8(18, 18, 20)))
    .insert_resource(LaunchArgs(args))
    .configure_sets(
        Update,
        (AppSet::Input, AppSet::Drive, AppSet::Present).chain(),
    )
    .add_plugins((
        driver::plugin,
        input::plugin,
        textures::plugin,
        error_shader::plugin,
        files::plugin,
        episodes::plugin,
        ui::plugin,
        automation::plugin,
    ));
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => anyhow::bail!("the app exited with code {code}"),
    }
}
