//! Command-line interface of the `dreamyard` binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{dataset_cmd, eval_cmd, model_cmd, predict_cmd, scene_cmd, train_cmd};

/// Dreamyard: an interactive world-model simulator for physical AI.
#[derive(Debug, Parser)]
#[command(name = "dreamyard", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and run the ground-truth scenes.
    #[command(subcommand)]
    Scene(scene_cmd::SceneCommand),
    /// Record a scene's scripted policy as a LeRobot v3.0 dataset.
    Record(dataset_cmd::RecordArgs),
    /// Inspect LeRobot datasets (v3.0, v2.1).
    #[command(subcommand)]
    Dataset(dataset_cmd::DatasetCommand),
    /// Measure speed.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Roll a world model out from tensors in a safetensors file (headless, for scripts).
    Predict(predict_cmd::PredictArgs),
    /// Convert a model (e.g. a DIAMOND agent.pt + yaml) to the native format.
    Convert(predict_cmd::ConvertArgs),
    /// Train a world model on a LeRobot dataset (native format out; resumable).
    Train(train_cmd::TrainArgs),
    /// Benchmark a model against a dataset's episodes: rollout-vs-truth metrics per horizon
    /// step, baselines, plots and a report (`eval merge` combines `--shard` runs).
    Eval(eval_cmd::EvalArgs),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Steps per second of a scene, rendering included; prints JSON.
    Scene(scene_cmd::BenchSceneArgs),
    /// Speed of a world model: ms per denoiser call and per generated frame, frames/s at each
    /// batch size; prints JSON.
    Model(model_cmd::BenchModelArgs),
    /// Frames per second recording a scene to a dataset and reading it back; prints JSON.
    Record(dataset_cmd::BenchRecordArgs),
}

/// Runs the command line `args` (program name first), printing results to stdout.
pub fn run<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = Cli::try_parse_from(&args)?;
    match cli.command {
        Command::Scene(cmd) => scene_cmd::run(cmd),
        Command::Record(args) => dataset_cmd::record(&args),
        Command::Dataset(cmd) => dataset_cmd::run(cmd),
        Command::Bench(BenchCommand::Scene(args)) => scene_cmd::bench(&args),
        Command::Bench(BenchCommand::Model(args)) => model_cmd::bench(&args),
        Command::Predict(args) => predict_cmd::predict(&args),
        Command::Convert(args) => predict_cmd::convert(&args),
        Command::Train(args) => train_cmd::run(&args),
        Command::Eval(eval) => {
            let argv: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            eval_cmd::run(&eval, &argv)
        }
        Command::Bench(BenchCommand::Record(args)) => dataset_cmd::bench(&args),
    }
}

/// The binary's entry point: errors are printed with their causes, never as a panic.
pub fn main() -> ExitCode {
    quiet_on_closed_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(std::env::args_os()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(clap_err) = err.downcast_ref::<clap::Error>() {
                // Help and version are "errors" to clap; it knows how to print them.
                let _ = clap_err.print();
                return if clap_err.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a closed stdout (`dreamyard dataset info DIR | head`) end the process quietly, as it
/// does for other command-line tools, instead of `println!` panicking on the write error.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; restoring the
    // default disposition of SIGPIPE installs no handler code, so there is nothing to race with.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
