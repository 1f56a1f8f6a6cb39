//! Dreamyard: the binary's library. `cli` parses the command line and runs the headless
//! subcommands; each subcommand lives in its own module.

pub mod cli;
mod dataset_cmd;
pub mod device;
pub mod eval;
mod eval_cmd;
mod image_io;
pub mod metrics;
mod model_cmd;
mod predict_cmd;
mod scene_cmd;
mod train_cmd;
