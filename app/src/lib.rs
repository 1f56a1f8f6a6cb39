//! Dreamyard: the binary's library. `cli` parses the command line and runs the headless
//! subcommands; each subcommand lives in its own module.

pub mod cli;
mod dataset_cmd;
mod image_io;
mod scene_cmd;
