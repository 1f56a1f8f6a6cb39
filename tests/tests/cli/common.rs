//! Shared by the end-to-end test modules: run the `dreamyard` CLI in a child process.
//!
//! The test binary re-runs itself with `--exact cli_child` and the CLI arguments in
//! `DREAMYARD_CLI_ARGS`; the child calls `dreamyard::cli::run` and prints `CLI_OK` or
//! `CLI_ERR <message>`, so stdout can be captured and checked (the CLI prints its results).

use std::path::Path;
use std::process::Command;

/// The child-process command that runs the CLI with `args` (not started yet).
pub fn child_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "cli_child",
        "--include-ignored",
        "--nocapture",
        "--quiet",
    ])
    .env("DREAMYARD_CLI_ARGS", serde_json::to_string(args).unwrap());
    cmd
}

/// Runs the CLI with `args` in a child process: (succeeded, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = child_command(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let ok = stdout.contains("CLI_OK");
    (ok, stdout, stderr)
}

/// Body of the binary's `cli_child` test: runs the CLI when started by [`run_cli`].
pub fn child_main() {
    let Ok(args) = std::env::var("DREAMYARD_CLI_ARGS") else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let argv = std::iter::once("dreamyard".to_owned()).chain(args);
    match dreamyard::cli::run(argv) {
        Ok(()) => println!("CLI_OK"),
        Err(e) => println!("CLI_ERR {}", dreamyard::error_chain(e.as_ref())),
    }
}

/// The first line of `stdout` that is a JSON object.
pub fn json_line(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {stdout}"));
    serde_json::from_str(line).unwrap()
}

/// The DIAMOND parity fixtures (`../shared/fixtures/diamond`).
pub fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/diamond")
}

/// `dreamyard record` of push-t's heuristic policy (20-step episodes, seed 3) at `size` x
/// `size` pixels (video storage needs at least 64).
pub fn record_args_at<'a>(
    out: &'a str,
    episodes: &'a str,
    size: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec![
        "record",
        "--scene",
        "push-t",
        "--policy",
        "heuristic",
        "--episodes",
        episodes,
        "--seed",
        "3",
        "--max-steps",
        "20",
        "--size",
        size,
        "--out",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

/// `total_episodes` of the committed info.json, if there is one. Every read must parse:
/// info.json is only ever replaced whole.
pub fn committed(dir: &Path) -> Option<u64> {
    let file = dir.join("meta/info.json");
    let text = std::fs::read_to_string(&file).ok()?;
    Some(
        dreamyard_scenes::dataset::Info::parse(&file, &text)
            .unwrap()
            .total_episodes,
    )
}

/// Every file under `root`.
pub fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                stack.push(e);
            } else {
                out.push(e);
            }
        }
    }
    out
}
