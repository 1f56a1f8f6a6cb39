//! The `dreamyard` command line, driven as a user would: scene inspection, episodes written
//! as GIF, benchmarks as JSON, and clear errors for bad input.

use crate::common;

use common::{json_line, run_cli};

#[test]
fn bench_scene_prints_steps_per_second_as_json() {
    for scene in ["push-t", "arm-push"] {
        let (ok, stdout, stderr) = run_cli(&["bench", "scene", scene, "--steps", "50"]);
        assert!(ok, "{stdout}{stderr}");
        let v = json_line(&stdout);
        assert_eq!(v["scene"], scene);
        assert_eq!(v["steps"], 50);
        assert!(v["steps_per_s"].as_f64().unwrap() > 0.0);
        assert_eq!(v["frame"], serde_json::json!([96, 96]));
    }
}

#[test]
fn play_writes_an_animated_gif_and_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("ep.gif");
    let png = dir.path().join("last.png");
    let (ok, stdout, stderr) = run_cli(&[
        "scene",
        "play",
        "--scene",
        "arm-push",
        "--policy",
        "random-walk",
        "--seed",
        "3",
        "--steps",
        "12",
        "--size",
        "64",
        "--out",
        gif.to_str().unwrap(),
        "--last-png",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{stderr}");
    let v = json_line(&stdout);
    assert_eq!(v["steps"], 12);
    let bytes = std::fs::read(&gif).unwrap();
    assert!(bytes.starts_with(b"GIF89a"));
    // 13 frames: the reset frame and one per step.
    let mut decoder = gif::DecodeOptions::new()
        .read_info(std::io::Cursor::new(bytes))
        .unwrap();
    let mut frames = 0;
    while decoder.read_next_frame().unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 13);
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
}

#[test]
fn rollout_fingerprint_is_reproducible_and_seed_dependent() {
    let args = |seed: &'static str| {
        [
            "scene", "rollout", "--scene", "push-t", "--seed", seed, "--steps", "30",
        ]
    };
    let a = json_line(&run_cli(&args("4")).1);
    let b = json_line(&run_cli(&args("4")).1);
    let c = json_line(&run_cli(&args("5")).1);
    assert_eq!(a["sha256"], b["sha256"]);
    assert_ne!(a["sha256"], c["sha256"]);
    assert_eq!(a["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn scene_info_prints_the_spec() {
    let (ok, stdout, _) = run_cli(&["scene", "info", "push-t"]);
    assert!(ok);
    let start = stdout.find('{').unwrap();
    let end = stdout.rfind('}').unwrap();
    let spec: dreamyard_scenes::SceneSpec = serde_json::from_str(&stdout[start..=end]).unwrap();
    assert_eq!(spec.state_names.len(), 5);
    assert_eq!(spec.fps, 10.0);
    assert!(spec.object("block").is_some());
}

#[test]
fn bad_input_is_a_clear_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "kind = \"push-t\"\nname = 3\n").unwrap();
    let (ok, stdout, _) = run_cli(&["scene", "info", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stdout.contains("CLI_ERR") && stdout.contains("bad.toml") && stdout.contains("name"),
        "{stdout}"
    );

    let (ok, stdout, _) = run_cli(&["scene", "play", "--policy", "greedy", "--out", "x.gif"]);
    assert!(!ok);
    assert!(stdout.contains("unknown policy `greedy`"), "{stdout}");
}
