//! Dreamyard: the binary's library. `cli` parses the command line and runs the headless
//! subcommands; each subcommand lives in its own module. `session` is the app's core (no Bevy);
//! `gui` (cargo feature `gui`, on by default) is the Bevy + egui desktop app over it.

pub mod cli;
pub mod controls;
mod dataset_cmd;
pub mod device;
pub mod eval;
mod eval_cmd;
#[cfg(feature = "gui")]
pub mod gui;
mod image_io;
pub mod launch;
pub mod metrics;
mod model_cmd;
mod predict_cmd;
mod scene_cmd;
pub mod session;
mod train_cmd;
