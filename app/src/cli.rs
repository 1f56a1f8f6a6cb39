//! Command-line interface of the `dreamyard` binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::launch::GuiArgs;
use crate::{dataset_cmd, eval_cmd, model_cmd, predict_cmd, scene_cmd, soak, train_cmd};

/// Dreamyard: an interactive world-model simulator for physical AI.
///
/// Without a subcommand it opens the desktop app (the shipped push-t model beside the live
/// push-t scene); `dreamyard gui` takes the same options.
#[derive(Debug, Parser)]
#[command(name = "dreamyard", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub gui: GuiArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the desktop app (the default without a subcommand).
    Gui(GuiArgs),
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
    /// Drive the app's session core headless for a while (play, fork, switch, delete, reset,
    /// re-anchor, record) and report how its memory grew; prints JSON.
    Soak(soak::SoakArgs),
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
    /// Frames per second writing a recorded dataset's frames as video (AV1, LeRobot's
    /// encoding) and decoding them back, whole episodes and at random; sizes on disk. Prints
    /// JSON; `scripts/bench-video.sh` runs LeRobot's own code on the same frames beside it.
    Video(dataset_cmd::BenchVideoArgs),
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
        None => open_app(cli.gui),
        Some(Command::Gui(args)) => open_app(args),
        Some(Command::Scene(cmd)) => scene_cmd::run(cmd),
        Some(Command::Record(args)) => dataset_cmd::record(&args),
        Some(Command::Dataset(cmd)) => dataset_cmd::run(cmd),
        Some(Command::Bench(BenchCommand::Scene(args))) => scene_cmd::bench(&args),
        Some(Command::Bench(BenchCommand::Model(args))) => model_cmd::bench(&args),
        Some(Command::Bench(BenchCommand::Record(args))) => dataset_cmd::bench(&args),
        Some(Command::Bench(BenchCommand::Video(args))) => dataset_cmd::bench_video(&args),
        Some(Command::Predict(args)) => predict_cmd::predict(&args),
        Some(Command::Convert(args)) => predict_cmd::convert(&args),
        Some(Command::Train(args)) => train_cmd::run(&args),
        Some(Command::Soak(args)) => soak::run(&args),
        Some(Command::Eval(eval)) => {
            let argv: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            eval_cmd::run(&eval, &argv)
        }
    }
}

/// The desktop app, after checking `--device` on the command line: a device the build or the
/// machine lacks is an error before any window opens (later changes, from the Device menu, are
/// notices in the app).
fn open_app(args: GuiArgs) -> anyhow::Result<()> {
    crate::device::DeviceRequest::parse(&args.device)?.open()?;
    open_gui(args)
}

#[cfg(feature = "gui")]
fn open_gui(args: GuiArgs) -> anyhow::Result<()> {
    crate::gui::run(args)
}

#[cfg(not(feature = "gui"))]
fn open_gui(_args: GuiArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this dreamyard was built without the desktop app (cargo feature `gui`); \
         run a subcommand (see --help) or rebuild with default features"
    )
}

/// The binary's entry point: errors are printed with their causes, never as a panic.
pub fn main() -> ExitCode {
    quiet_on_closed_pipe();
    keep_freed_buffers();
    quiet_video_encoder();
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
            eprintln!("error: {}", crate::error_chain(err.as_ref()));
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

/// SVT-AV1 (the AV1 encoder behind `record --video`) prints a 15-line banner to stderr for
/// every file it encodes, one per episode, unless its `SVT_LOG` level says otherwise: keep its
/// errors and warnings only. A level the user set is left alone.
fn quiet_video_encoder() {
    if std::env::var_os("SVT_LOG").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var("SVT_LOG", "2") };
    }
}

/// Keeps freed tensor buffers inside the process instead of handing them back to the kernel.
///
/// glibc serves blocks above its mmap threshold with a fresh `mmap` and unmaps them on free, and
/// trims the heap top after each large free. Candle allocates a new output buffer for every op,
/// so a training step paid for the same megabytes in page faults hundreds of times: these two
/// settings made a push-t training step 1.38x faster (1.94 s to 1.41 s, BENCHMARKS.md). Memory
/// stays at the process's high-water mark, which is what a training or inference loop reaches
/// anyway.
fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes two tuning parameters of glibc's allocator; it is called
    // before any other thread exists and its failure (returning 0) leaves the defaults in place.
    unsafe {
        // 32 MiB is the largest threshold glibc accepts on 64-bit targets.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Cli, Command};

    #[test]
    fn no_subcommand_means_the_app_with_its_options() {
        let cli = Cli::try_parse_from(["dreamyard"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.gui.model.is_none());
        let cli =
            Cli::try_parse_from(["dreamyard", "--model", "m", "--scene", "arm-push"]).unwrap();
        assert_eq!(cli.gui.model.as_deref(), Some(std::path::Path::new("m")));
        assert_eq!(cli.gui.scene.as_deref(), Some("arm-push"));
        let cli = Cli::try_parse_from([
            "dreamyard",
            "gui",
            "--dataset",
            "d",
            "--episode",
            "3",
            "--anchor-every",
            "8",
            "--screenshot-after",
            "5",
            "--exit",
        ])
        .unwrap();
        let Some(Command::Gui(args)) = cli.command else {
            panic!("expected the gui subcommand");
        };
        assert_eq!(args.episode, Some(3));
        assert_eq!(args.anchor_every, 8);
        assert_eq!(args.screenshot_after, Some(5));
        assert!(args.exit);
    }

    #[test]
    fn conflicting_app_options_are_errors() {
        for bad in [
            &[
                "dreamyard",
                "--scene",
                "push-t",
                "--dataset",
                "d",
                "--episode",
                "0",
            ][..],
            &["dreamyard", "--dataset", "d"],
            &["dreamyard", "--dream", "--scene", "push-t"],
            &["dreamyard", "--model", "m", "scene", "list"],
        ] {
            assert!(
                Cli::try_parse_from(bad).is_err(),
                "{bad:?} should not parse"
            );
        }
    }
}
