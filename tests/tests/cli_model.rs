//! `dreamyard bench model`, driven as a user would, on the DIAMOND fixture model
//! (`shared/fixtures/diamond`): its JSON, both checkpoint formats, and clear errors.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::Command;

/// Runs this test binary again as a child that calls the CLI with `args` (see cli_scenes.rs).
fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cli_child",
            "--include-ignored",
            "--nocapture",
            "--quiet",
        ])
        .env("DREAMYARD_CLI_ARGS", serde_json::to_string(args).unwrap())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stdout.contains("CLI_OK"), stdout, stderr)
}

#[test]
#[ignore = "run as a child process by the tests below"]
fn cli_child() {
    let Ok(args) = std::env::var("DREAMYARD_CLI_ARGS") else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let argv = std::iter::once("dreamyard".to_owned()).chain(args);
    match dreamyard::cli::run(argv) {
        Ok(()) => println!("CLI_OK"),
        Err(e) => println!("CLI_ERR {e:#}"),
    }
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/diamond")
        .join(name)
        .display()
        .to_string()
}

fn json_line(stdout: &str) -> serde_json::Value {
    let line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in {stdout}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn bench_model_prints_per_call_and_per_frame_figures() {
    let (agent, yaml) = (fixture("agent.pt"), fixture("config.yaml"));
    // Small frames and one timed step keep this quick; the figures' meaning is the same.
    for kernels in ["fast", "candle"] {
        let (ok, stdout, stderr) = run_cli(&[
            "bench",
            "model",
            "--model",
            &agent,
            "--config",
            &yaml,
            "--size",
            "16x24",
            "--steps",
            "1",
            "--batch",
            "1,2",
            "--kernels",
            kernels,
            "--device",
            "cpu",
        ]);
        assert!(ok, "{stdout}{stderr}");
        let v = json_line(&stdout);
        assert_eq!(v["bench"], "model");
        assert_eq!(v["device"], "cpu");
        assert_eq!(v["kernels"], kernels);
        assert_eq!(v["frame"], serde_json::json!([16, 24]));
        assert_eq!(v["denoiser_calls_per_frame"], 3);
        assert!(v["frames_per_s"].as_f64().unwrap() > 0.0);
        for key in ["ms_per_denoiser_call", "ms_per_frame", "frames_per_s"] {
            assert!(v["batch_2"][key].as_f64().unwrap() > 0.0, "batch_2.{key}");
            assert_eq!(v[key], v["batch_1"][key], "{key}");
        }
    }
}

#[test]
fn bench_model_reads_a_native_directory() {
    let dir = tempfile::tempdir().unwrap();
    dreamyard_model::convert_diamond_to_native(
        std::path::Path::new(&fixture("agent.pt")),
        std::path::Path::new(&fixture("config.yaml")),
        dir.path(),
    )
    .unwrap();
    let model = dir.path().display().to_string();
    let args = [
        "bench", "model", "--model", &model, "--size", "8", "--steps", "1",
    ];
    let (ok, stdout, stderr) = run_cli(&[&args[..], &["--batch", "1"]].concat());
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(json_line(&stdout)["frame"], serde_json::json!([8, 8]));
}

#[test]
fn bench_model_errors_say_what_is_wrong() {
    let agent = fixture("agent.pt");
    let (ok, stdout, _) = run_cli(&["bench", "model", "--model", &agent]);
    assert!(!ok && stdout.contains("--config"), "{stdout}");

    let yaml = fixture("config.yaml");
    let (ok, stdout, _) = run_cli(&[
        "bench", "model", "--model", &agent, "--config", &yaml, "--device", "tpu",
    ]);
    assert!(!ok && stdout.contains("unknown device `tpu`"), "{stdout}");
}
