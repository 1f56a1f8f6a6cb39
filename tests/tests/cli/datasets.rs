//! `dreamyard record`, `dreamyard dataset ...` and `dreamyard bench record` driven as a user
//! would, and the crash test: a recording killed (SIGKILL) at seeded random moments keeps
//! every finished episode, stays a valid dataset, and `--resume` completes it into exactly
//! the dataset an uninterrupted run writes.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use dreamyard_scenes::dataset::Dataset;

use crate::common;

use common::{child_command as child, committed, record_args_at, run_cli, walk};

fn json_after(stdout: &str, start: char) -> serde_json::Value {
    let from = stdout
        .find(start)
        .unwrap_or_else(|| panic!("no JSON in {stdout}"));
    let to = stdout.rfind(if start == '{' { '}' } else { ']' }).unwrap();
    serde_json::from_str(&stdout[from..=to]).unwrap()
}

fn record_args<'a>(out: &'a str, episodes: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    record_args_at(out, episodes, "32", extra)
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
        keys[..5],
        [
            "observation.image",
            "observation.state",
            "observation.environment_state",
            "scene.state",
            "action"
        ]
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

#[test]
fn bench_video_writes_a_recording_as_video_and_reads_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out) = (tmp.path().join("img"), tmp.path().join("vid"));
    let (s, o) = (src.to_str().unwrap(), out.to_str().unwrap());
    assert!(run_cli(&record_args_at(s, "2", "64", &[])).0);
    let (ok, stdout, stderr) = run_cli(&[
        "bench",
        "video",
        "--dataset",
        s,
        "--out",
        o,
        "--random",
        "5",
    ]);
    assert!(ok, "{stdout}{stderr}");
    let v = json_after(&stdout, '{');
    assert_eq!(v["bench"], "video");
    let a = Dataset::open(&src).unwrap();
    let b = Dataset::open(&out).unwrap();
    assert_eq!(v["frames"], a.num_frames());
    assert_eq!(b.episode(1).unwrap().actions, a.episode(1).unwrap().actions);
    assert!(v["image_over_video"].as_f64().unwrap() > 1.0, "{v}");
    for k in [
        "write_frames_per_s",
        "read_frames_per_s",
        "random_frames_per_s",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
    }
    // A video dataset is refused as the source: there are no images to write again.
    let (ok, stdout, _) = run_cli(&["bench", "video", "--dataset", o]);
    assert!(
        !ok && stdout.contains("already stored as video"),
        "{stdout}"
    );
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
    kill_resume_and_compare("32", &[]);
}

#[test]
fn killed_video_recording_keeps_finished_episodes_and_resumes() {
    kill_resume_and_compare("64", &["--video"]);
}

/// Records 14 episodes at `size` with `extra` arguments, killed (SIGKILL) at seeded random
/// moments and resumed, and checks it ends as the dataset an uninterrupted run writes.
fn kill_resume_and_compare(size: &str, extra: &[&str]) {
    const EPISODES: &str = "14";
    let video = extra.contains(&"--video");
    let resume: Vec<&str> = extra.iter().copied().chain(["--resume"]).collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("killed");
    let d = dir.to_str().unwrap();
    let mut rng = Rng(0x5eed_0000_2026_1124);
    let mut seen = 0;
    let mut kills = 0;
    for _round in 0..5 {
        let mut proc = child(&record_args_at(d, EPISODES, size, &resume))
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
        let decoded = if video {
            v.video_frames_decoded
        } else {
            v.images_decoded
        };
        assert_eq!(decoded, ds.num_frames());
        assert!(v.is_valid(), "{:?}", v.problems);
        seen = n;
    }
    // How many kills landed mid-run depends on the machine's speed; every round checks the
    // same invariants either way.
    eprintln!("{kills} of 5 rounds killed the recorder mid-run");

    let (ok, stdout, stderr) = run_cli(&record_args_at(d, EPISODES, size, &resume));
    assert!(ok, "{stdout}{stderr}");
    let ds = Dataset::open(&dir).unwrap();
    assert_eq!((ds.episodes().len(), ds.uncommitted_episodes()), (14, 0));
    assert!(ds.validate().unwrap().is_valid());

    // The interrupted and resumed dataset is the one an uninterrupted run writes (SVT-AV1
    // encodes the same frames into the same bytes on the same machine).
    let clean = tmp.path().join("clean");
    assert!(
        run_cli(&record_args_at(
            clean.to_str().unwrap(),
            EPISODES,
            size,
            extra
        ))
        .0
    );
    let files = |root: &Path| {
        let mut out: Vec<_> = walk(root)
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_owned())
            .collect();
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

#[test]
fn video_recording_is_lerobot_video_storage_of_the_same_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let (img, vid) = (tmp.path().join("img"), tmp.path().join("vid"));
    let (i, v) = (img.to_str().unwrap(), vid.to_str().unwrap());
    let (ok, stdout, stderr) = run_cli(&record_args_at(i, "3", "64", &[]));
    assert!(ok, "{stdout}{stderr}");
    // Two episodes with --video, then a resume without the flag keeps the dataset's storage.
    let (ok, stdout, stderr) = run_cli(&record_args_at(v, "2", "64", &["--video"]));
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, stderr) = run_cli(&record_args_at(v, "3", "64", &["--resume"]));
    assert!(ok, "{stdout}{stderr}");

    // LeRobot's v3.0 video layout and metadata.
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vid.join("meta/info.json")).unwrap())
            .unwrap();
    let camera = &info["features"]["observation.image"];
    assert_eq!(camera["dtype"], "video");
    assert_eq!(camera["info"]["video.codec"], "av1");
    assert_eq!(camera["info"]["video.pix_fmt"], "yuv420p");
    assert_eq!(camera["info"]["video.g"], 2);
    assert_eq!(
        info["video_path"],
        "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    );
    for e in 0..3 {
        let mp4 = vid.join(format!(
            "videos/observation.image/chunk-000/file-{e:03}.mp4"
        ));
        assert!(mp4.is_file(), "{}", mp4.display());
    }

    let (ok, stdout, stderr) = run_cli(&["dataset", "validate", v]);
    assert!(ok, "{stdout}{stderr}");
    let report = json_after(&stdout, '{');
    let (a, b) = (Dataset::open(&img).unwrap(), Dataset::open(&vid).unwrap());
    assert_eq!(report["video_frames_decoded"], b.num_frames());
    assert_eq!(report["video_codecs"], serde_json::json!({"av1": 3}));
    assert_eq!(b.episodes()[2].videos[0].from_timestamp, 0.0);

    // The same episodes as image storage, within AV1's CRF 30 loss; random access returns the
    // frames a whole-episode decode does.
    let (mut se, mut n) = (0.0f64, 0usize);
    for e in 0..3 {
        let (ea, eb) = (a.episode(e).unwrap(), b.episode(e).unwrap());
        assert_eq!((ea.actions, ea.states), (eb.actions.clone(), eb.states));
        assert_eq!(ea.frames.len(), eb.frames.len());
        for (fa, fb) in ea.frames.iter().zip(&eb.frames) {
            for (x, y) in fa.data.iter().zip(&fb.data) {
                se += (*x as f64 - *y as f64).powi(2);
            }
            n += fa.data.len();
        }
        let last = eb.frames.len() as u64 - 1;
        for t in [last, 0, last / 2] {
            assert_eq!(
                b.frame("observation.image", e, t).unwrap(),
                eb.frames[t as usize]
            );
        }
    }
    let psnr = 10.0 * (255.0f64 * 255.0 / (se / n as f64)).log10();
    eprintln!("AV1 CRF 30 against the rendered frames: {psnr:.2} dB");
    assert!(psnr > 30.0, "{psnr:.2} dB");
    let bytes =
        |root: &Path| -> u64 { walk(root).iter().map(|p| p.metadata().unwrap().len()).sum() };
    assert!(bytes(&vid.join("data")) < bytes(&img.join("data")) / 2);

    // Frames SVT-AV1 cannot encode are refused before anything is written.
    let small = tmp.path().join("small");
    let (ok, stdout, stderr) = run_cli(&record_args_at(
        small.to_str().unwrap(),
        "1",
        "32",
        &["--video"],
    ));
    assert!(!ok && stdout.contains("at least 64x64"), "{stdout}{stderr}");
    assert!(!small.join("meta/info.json").exists());
}

#[test]
fn validate_reports_a_video_whose_declared_end_cuts_its_last_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cut");
    let d = dir.to_str().unwrap();
    let (ok, stdout, stderr) = run_cli(&[
        "record",
        "--video",
        "--episodes",
        "1",
        "--max-steps",
        "30",
        "--size",
        "96",
        "--seed",
        "7",
        "--out",
        d,
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(Dataset::open(&dir).unwrap().num_frames(), 30);
    let (ok, stdout, _) = run_cli(&["dataset", "validate", d]);
    assert!(ok, "{stdout}");

    let mp4 = dir.join("videos/observation.image/chunk-000/file-000.mp4");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/last-frame-cut.mp4");
    std::fs::copy(fixture, &mp4).unwrap();
    let (ok, stdout, _) = run_cli(&["dataset", "validate", d]);
    let v = json_after(&stdout, '{');
    assert!(!ok && v["valid"] == false, "{stdout}");
    let problem = v["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("file-000.mp4")
            && problem.contains("episode 0")
            && problem.contains("2.9000 s"),
        "{problem}"
    );
    // FFmpeg 5 (Debian 12's) still decodes the last frame: the declared end gives it away.
    if v["video_frames_decoded"] == 30 {
        assert!(problem.contains("edit list"), "{problem}");
    }
}
