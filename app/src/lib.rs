//! Dreamyard: the binary's library. `cli` parses the command line and runs the headless
//! subcommands; each subcommand lives in its own module.

pub mod cli;
mod image_io;
pub mod metrics;
mod scene_cmd;
