//! `dreamyard record`, `dreamyard dataset ...` and `dreamyard bench record` driven as a user
//! would, and the crash test: a recording killed (SIGKILL) at seeded random moments keeps
//! every finished episode, stays a valid dataset, and `--resume` completes it into exactly
//! the dataset an uninterrupted run writes.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use dreamyard_scenes::dataset::{Dataset, Info};

use crate::common;

use common::{child_command as child, run_cli};

fn json_after(stdout: &str, start: char) -> serde_json::Value {
    let from = stdout
        .find(start)
        .unwrap_or_else(|| panic!("no JSON in {stdout}"));
    let to = stdout.rfind(if start == '{' { '}' } else { ']' }).unwrap();
    serde_json::from_str(&stdout[from..=to]).unwrap()
}

fn record_args<'a>(out: &'a str, episodes: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
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
        "32",
        "--out",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn record_then_inspect_with_info_and_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pusht");
    let d = dir.to_str().unwrap();
    let (ok, stdout, stderr) = run_cli(&record_args(d, "3", &["--task", "push it"]));
    assert!(ok, "{stdout}{stderr}");
    let summary = json_after(&stdout, '{');
    assert_eq!(summary["episodes"], 3);
    assert_eq!(summary["recorded_episodes"], 3);

    let (ok, stdout, _) = run_cli(&["dataset", "info", d, "--json"]);
    assert!(ok, "{stdout}");
    let info = json_after(&stdout, '{');
    assert_eq!(info["codebase_version"], "v3.0");
    assert_eq!(info["fps"], 10.0);
    assert_eq!(info["total_episodes"], 3);
    assert_eq!(info["tasks"], serde_json::json!(["push it"]));
    assert_eq!(info["recorded_from_scene"], "push-t");
    assert_eq!(
        info["episodes"][2]["source"]["seed"], 5,
        "episode e uses seed SEED + e"
    );
    let total: u64 = (0..3)
        .map(|e| info["episodes"][e]["length"].as_u64().unwrap())
        .sum();
    assert_eq!(info["total_frames"], total);
    let keys: Vec<_> = info["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys[..3],
        ["observation.image", "observation.state", "action"]
    );

    let (ok, stdout, _) = run_cli(&["dataset", "info", d]);
    assert!(
        ok && stdout.contains("LeRobot v3.0") && stdout.contains("push it"),
        "{stdout}"
    );

    let png = tmp.path().join("f.png");
    let (ok, stdout, _) = run_cli(&[
        "dataset",
        "frame",
        d,
        "--episode",
        "1",
        "--index",
        "4",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}");
    let ds = Dataset::open(&dir).unwrap();
    let stored = ds.frame_bytes("observation.image", 1, 4).unwrap();
    assert_eq!(
        std::fs::read(&png).unwrap(),
        stored.bytes,
        "written exactly as stored"
    );
    let img = image::open(&png).unwrap().into_rgb8();
    assert_eq!(
        img.into_raw(),
        ds.frame("observation.image", 1, 4).unwrap().data
    );

    let (ok, stdout, _) = run_cli(&["dataset", "validate", d]);
    assert!(
        ok && json_after(&stdout, '{')["images_decoded"] == total,
        "{stdout}"
    );
}

#[test]
fn bad_input_is_a_clear_error_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    let d = dir.to_str().unwrap();
    assert!(run_cli(&record_args(d, "1", &[])).0);
    let before = std::fs::read(dir.join("meta/info.json")).unwrap();

    // Recording over a dataset without --resume is refused.
    let (ok, stdout, _) = run_cli(&record_args(d, "2", &[]));
    assert!(
        !ok && stdout.contains("already holds a dataset") && stdout.contains("--resume"),
        "{stdout}"
    );
    // Resuming with another frame size is refused.
    let mut args = record_args(d, "2", &["--resume"]);
    args[12] = "48";
    let (ok, stdout, _) = run_cli(&args);
    assert!(
        !ok && stdout.contains("dreamyard.json") && stdout.contains("48x48"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(dir.join("meta/info.json")).unwrap(), before);

    let (ok, stdout, _) = run_cli(&[
        "dataset",
        "frame",
        d,
        "--episode",
        "0",
        "--index",
        "999",
        "--out",
        "x.png",
    ]);
    assert!(
        !ok && stdout.contains("frame 999 is out of range"),
        "{stdout}"
    );
    let missing = tmp.path().join("nothing");
    std::fs::create_dir(&missing).unwrap();
    let (ok, stdout, _) = run_cli(&["dataset", "info", missing.to_str().unwrap()]);
    assert!(!ok && stdout.contains("meta/info.json"), "{stdout}");
}

#[test]
fn bench_record_reports_frames_per_second() {
    let (ok, stdout, stderr) = run_cli(&[
        "bench",
        "record",
        "--episodes",
        "2",
        "--max-steps",
        "10",
        "--size",
        "32",
    ]);
    assert!(ok, "{stdout}{stderr}");
    let v = json_after(&stdout, '{');
    assert_eq!(v["bench"], "record");
    assert_eq!(v["frames"], 20);
    for k in [
        "record_frames_per_s",
        "read_frames_per_s",
        "random_frames_per_s",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
    }
}

/// A small xorshift generator: the kill moments are random but reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `total_episodes` of the committed info.json, if there is one. Every read must parse:
/// info.json is only ever replaced whole.
fn committed(dir: &Path) -> Option<u64> {
    let file = dir.join("meta/info.json");
    let text = std::fs::read_to_string(&file).ok()?;
    Some(Info::parse(&file, &text).unwrap().total_episodes)
}

fn wait_for_progress(child: &mut Child, dir: &Path, past: u64) {
    loop {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        if committed(dir).is_some_and(|n| n > past) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn killed_recording_keeps_finished_episodes_and_resumes() {
    const EPISODES: &str = "14";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("killed");
    let d = dir.to_str().unwrap();
    let mut rng = Rng(0x5eed_0000_2026_1124);
    let mut seen = 0;
    let mut kills = 0;
    for _round in 0..5 {
        let mut proc = child(&record_args(d, EPISODES, &["--resume"]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_progress(&mut proc, &dir, seen);
        std::thread::sleep(Duration::from_micros(rng.below(25_000)));
        if proc.try_wait().unwrap().is_none() {
            kills += 1;
        }
        proc.kill().unwrap_or(()); // SIGKILL
        proc.wait().unwrap();

        // Every episode committed before the kill loads, and the dataset validates.
        let ds = Dataset::open(&dir).unwrap();
        let n = ds.episodes().len() as u64;
        assert!(
            n > seen || n == 14,
            "a kill never loses a committed episode"
        );
        assert!(
            ds.uncommitted_episodes() <= 1,
            "at most the episode in progress"
        );
        let v = ds.validate().unwrap();
        assert_eq!(v.episodes, n);
        assert_eq!(v.images_decoded, ds.num_frames());
        seen = n;
    }
    // How many kills landed mid-run depends on the machine's speed; every round checks the
    // same invariants either way.
    eprintln!("{kills} of 5 rounds killed the recorder mid-run");

    let (ok, stdout, stderr) = run_cli(&record_args(d, EPISODES, &["--resume"]));
    assert!(ok, "{stdout}{stderr}");
    let ds = Dataset::open(&dir).unwrap();
    assert_eq!((ds.episodes().len(), ds.uncommitted_episodes()), (14, 0));
    ds.validate().unwrap();

    // The interrupted and resumed dataset is the one an uninterrupted run writes.
    let clean = tmp.path().join("clean");
    assert!(run_cli(&record_args(clean.to_str().unwrap(), EPISODES, &[])).0);
    let files = |root: &Path| {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap().path();
                if e.is_dir() {
                    stack.push(e);
                } else {
                    out.push(e.strip_prefix(root).unwrap().to_owned());
                }
            }
        }
        out.sort();
        out
    };
    assert_eq!(files(&dir), files(&clean), "no leftovers");
    for rel in files(&clean) {
        assert_eq!(
            std::fs::read(dir.join(&rel)).unwrap(),
            std::fs::read(clean.join(&rel)).unwrap(),
            "{}",
            rel.display()
        );
    }
}

/// The LeRobot-written video datasets of the scenes tests (`scenes/tests/fixtures/lerobot-video`).
fn video_fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenes/tests/fixtures/lerobot-video")
        .join(name)
}

#[test]
fn video_datasets_are_inspected_validated_and_evaluated() {
    // eval runs on a video dataset (the shipped push-t model on LeRobot's AV1 frames).
    let tmp = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/push-t");
    let out = tmp.path().join("eval");
    let av1 = video_fixture("av1");
    let (ok, stdout, stderr) = run_cli(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--dataset",
        av1.to_str().unwrap(),
        "--horizon",
        "2",
        "--stride",
        "6",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(report["windows_scored"].as_u64().unwrap() >= 3, "{report}");

    let d = av1.to_str().unwrap();
    let (ok, stdout, stderr) = run_cli(&["dataset", "info", d]);
    assert!(
        ok && stdout.contains("(video: av1 yuv420p)"),
        "{stdout}{stderr}"
    );

    // A decoded frame, the pixels LeRobot returns for it.
    let png = tmp.path().join("f.png");
    let p = png.to_str().unwrap();
    let (ok, stdout, stderr) = run_cli(&[
        "dataset",
        "frame",
        d,
        "--episode",
        "2",
        "--index",
        "5",
        "--out",
        p,
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(json_after(&stdout, '{')["stored_format"], "video");
    let ours = dreamyard_scenes::dataset::decode_image(&std::fs::read(&png).unwrap()).unwrap();
    let strip = dreamyard_scenes::dataset::decode_image(
        &std::fs::read(video_fixture("av1-decoded/episode-2.png")).unwrap(),
    )
    .unwrap();
    let row = 96 * 3;
    assert_eq!(ours.data, strip.data[5 * 96 * row..6 * 96 * row]);
    let (ok, stdout, _) = run_cli(&[
        "dataset",
        "frame",
        d,
        "--episode",
        "0",
        "--index",
        "0",
        "--out",
        "f.jpg",
    ]);
    assert!(!ok && stdout.contains("video feature"), "{stdout}");

    // validate decodes every frame, and fails, listing each problem, on a broken file.
    for name in ["av1", "v21-av1"] {
        let dir = video_fixture(name);
        let (ok, stdout, stderr) = run_cli(&["dataset", "validate", dir.to_str().unwrap()]);
        assert!(ok, "{stdout}{stderr}");
        let v = json_after(&stdout, '{');
        assert_eq!(
            (v["valid"].as_bool(), v["video_frames_decoded"].as_u64()),
            (Some(true), Some(36))
        );
    }
    let broken = tmp.path().join("broken");
    copy_tree(&video_fixture("v21-av1"), &broken);
    std::fs::remove_file(broken.join("videos/chunk-000/observation.image/episode_000001.mp4"))
        .unwrap();
    let (ok, stdout, _) = run_cli(&["dataset", "validate", broken.to_str().unwrap()]);
    let v = json_after(&stdout, '{');
    assert!(!ok && v["valid"] == false, "{stdout}");
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{stdout}");
    assert!(
        problems[0].as_str().unwrap().contains("episode_000001.mp4"),
        "{stdout}"
    );
    assert!(stdout.contains("1 problem(s) found"), "{stdout}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}
