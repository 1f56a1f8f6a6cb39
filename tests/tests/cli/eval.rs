//! `dreamyard eval` driven as a user would: a tiny model trained for a few steps on a small
//! recorded push-t dataset is evaluated in one run and as two shards merged, which must give
//! the same numbers exactly; the report files are all there; a model that does not fit the
//! dataset is refused with an error naming the field. `train --init` fine-tunes that model.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common;

use common::{fixture_dir, run_cli};

/// A recorded dataset and a model trained on it, shared by the tests of this file.
struct Fixture {
    dataset: PathBuf,
    model: PathBuf,
}

const TRAIN_TOML: &str = r#"
[model]
num_steps_conditioning = 4
cond_channels = 16
depths = [1, 1]
channels = [8, 8]
attn_depths = [false, false]

[sampler]
num_steps_denoising = 2

[training]
steps = 3
batch_size = 4
learning_rate = 1e-3
warmup_steps = 1
validation_episodes = 1
log_every = 1
validate_every = 1000
checkpoint_every = 1000
rollout_horizon = 2
validation_rollouts = 1
"#;

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli_eval_fixture");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let dataset = root.join("pusht");
        let (ok, stdout, stderr) = run_cli(&[
            "record",
            "--scene",
            "push-t",
            "--policy",
            "heuristic",
            "--episodes",
            "2",
            "--seed",
            "1",
            "--max-steps",
            "30",
            "--size",
            "32",
            "--out",
            dataset.to_str().unwrap(),
        ]);
        assert!(ok, "record: {stdout}{stderr}");
        let cfg = root.join("train.toml");
        std::fs::write(&cfg, TRAIN_TOML).unwrap();
        let model = root.join("model");
        let (ok, stdout, stderr) = train_cli(&dataset, &cfg, &model, &[]);
        assert!(ok, "train: {stdout}{stderr}");
        Fixture { dataset, model }
    })
}

/// Runs `dreamyard train` on `dataset` on the CPU with `extra` arguments.
fn train_cli(dataset: &Path, cfg: &Path, out: &Path, extra: &[&str]) -> (bool, String, String) {
    train_on(&["--dataset", dataset.to_str().unwrap()], cfg, out, extra)
}

/// Runs `dreamyard train` on the CPU with the data arguments `data` and `extra` arguments.
fn train_on(data: &[&str], cfg: &Path, out: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["train"];
    args.extend_from_slice(data);
    args.extend_from_slice(&[
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    args.extend_from_slice(extra);
    run_cli(&args)
}

fn eval_args<'a>(fx: &'a Fixture, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "eval",
        "--model",
        fx.model.to_str().unwrap(),
        "--dataset",
        fx.dataset.to_str().unwrap(),
        "--horizon",
        "3",
        "--stride",
        "5",
        "--batch-size",
        "2",
        "--seed",
        "7",
        "--out",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn one_run_equals_two_shards_merged_and_writes_every_report_file() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: &str| tmp.path().join(n).to_str().unwrap().to_owned();
    let (full, s0, s1, merged) = (dir("full"), dir("s0"), dir("s1"), dir("merged"));

    let physics = ["--samples", "2", "--counterfactual", "mirror"];
    let (ok, stdout, stderr) = run_cli(&eval_args(fx, &full, &physics));
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stderr.contains("physics metrics"),
        "the cost line: {stderr}"
    );
    for (out, shard) in [(&s0, "0/2"), (&s1, "1/2")] {
        let mut args = physics.to_vec();
        args.extend(["--shard", shard]);
        let (ok, stdout, stderr) = run_cli(&eval_args(fx, out, &args));
        assert!(ok, "{stdout}{stderr}");
    }
    // Shards given in any order.
    let (ok, stdout, stderr) = run_cli(&["eval", "merge", "--out", &merged, &s1, &s0]);
    assert!(ok, "{stdout}{stderr}");

    let one = read_json(&Path::new(&full).join("report.json"));
    let two = read_json(&Path::new(&merged).join("report.json"));
    let windows = one["windows"].as_u64().unwrap();
    assert!(windows >= 4, "{one}");
    let shard0 = read_json(&Path::new(&s0).join("report.json"));
    assert!(shard0["windows_scored"].as_u64().unwrap() < windows);
    assert_eq!(shard0["shard"], serde_json::json!({"index": 0, "count": 2}));
    for key in [
        "per_step",
        "summary",
        "windows",
        "windows_scored",
        "protocol",
        "model",
        "dataset",
        "objects",
        "notes",
    ] {
        assert_eq!(
            one[key], two[key],
            "`{key}` differs between one run and the merge"
        );
    }
    for f in ["windows.csv", "physics.csv"] {
        assert_eq!(
            std::fs::read_to_string(Path::new(&full).join(f)).unwrap(),
            std::fs::read_to_string(Path::new(&merged).join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(one["protocol"]["counterfactual"], "mirror");
    assert_eq!(two["merged_from"].as_array().unwrap().len(), 2);
    assert_eq!(one["command"][0], "dreamyard");

    // The schema scripts read: one entry per step with step, psnr, ssim, iou, baseline.
    let steps = one["per_step"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for (i, e) in steps.iter().enumerate() {
        assert_eq!(e["step"], i + 1);
        assert!(e["psnr"].as_f64().unwrap() > 0.0);
        let ssim = e["ssim"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&ssim));
        assert!(e["iou"].is_object(), "push-t defines object colours: {e}");
        assert!(e["baseline"]["psnr"].is_number());
        assert!(e["baseline"]["iou"].is_object());
        // Autoregressive with K = 2: teacher-forced and best-of-K are reported too.
        assert!(e["teacher_forced"]["psnr"].is_number());
        let best = e["best_of_k"]["psnr"].as_f64().unwrap();
        assert!(best >= e["psnr"].as_f64().unwrap() - 1e-9);
        // Two episodes: a bootstrap interval over episodes holds the mean.
        let psnr = e["psnr"].as_f64().unwrap();
        let [lo, hi] = [0, 1].map(|i| e["interval"]["psnr"][i].as_f64().unwrap());
        assert!(lo <= psnr && psnr <= hi, "{psnr} outside {lo} – {hi}");
        // Physics: the T block's pose, the shares that lost it, the response to the mirrored
        // actions against the simulator's, and the spread of the 2 samples.
        let p = &e["physics"];
        for key in [
            "block.centroid_px",
            "block.lost_by",
            "block.teleport_by",
            "copy_last.block.centroid_px",
            "response.model_px",
            "response.world_px",
            "response.pixel_ratio",
            "samples.spread",
            "samples.coverage",
        ] {
            assert!(p[key].is_number(), "per_step physics lacks {key}: {p}");
        }
        assert!(p["response.world_px"].as_f64().unwrap() > 0.0, "{p}");
        let lost = p["block.lost_by"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&lost));
        let gain = psnr - e["baseline"]["psnr"].as_f64().unwrap();
        let [lo, hi] = [0, 1].map(|i| e["interval"]["psnr_gain"][i].as_f64().unwrap());
        assert!(
            lo <= gain + 1e-9 && gain <= hi + 1e-9,
            "{gain} outside {lo} – {hi}"
        );
    }
    assert_eq!(one["protocol"]["regime"], "autoregressive");
    assert_eq!(one["model"]["weights_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(one["dataset"]["fingerprint"].as_str().unwrap().len(), 64);
    for d in [&full, &merged] {
        for f in [
            "per_step.csv",
            "windows.csv",
            "physics.csv",
            "report.md",
            "psnr.png",
            "ssim.png",
            "physics_lost.png",
            "physics_centroid.png",
            "physics_response.png",
            "physics_coverage.png",
        ] {
            assert!(Path::new(d).join(f).is_file(), "{d}/{f} missing");
        }
        let examples = std::fs::read_dir(Path::new(d).join("examples"))
            .unwrap()
            .count();
        assert!(examples >= 1, "{d}: no example strips");
    }
    let csv = std::fs::read_to_string(Path::new(&full).join("per_step.csv")).unwrap();
    assert!(csv.starts_with("step,model_psnr,model_ssim"), "{csv}");
    assert!(csv.contains(",psnr_gain_lo,psnr_gain_hi"), "{csv}");
    assert_eq!(csv.lines().count(), 4);
    let md = std::fs::read_to_string(Path::new(&full).join("report.md")).unwrap();
    assert!(md.contains("capped at 100 dB"), "{md}");
    assert!(md.contains("95 % intervals"), "{md}");
    assert!(md.contains("## Physics and controls") && md.contains("### Action response"));
    assert!(csv.contains(",physics:response.pixel_ratio"), "{csv}");

    // Merging an incomplete set of shards is refused.
    let (ok, stdout, _) = run_cli(&["eval", "merge", "--out", &dir("bad"), &s0]);
    assert!(!ok && stdout.contains("shard"), "{stdout}");
}

#[test]
fn teacher_forced_run_is_deterministic_and_resizes_to_the_model() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a").to_str().unwrap().to_owned();
    let b = tmp.path().join("b").to_str().unwrap().to_owned();
    let extra = ["--regime", "teacher-forced", "--episodes", "1"];
    // A plot an earlier report left in the output folder (an object this run lacks) goes.
    std::fs::create_dir_all(&b).unwrap();
    let stale = Path::new(&b).join("iou_stale.png");
    std::fs::write(&stale, b"old").unwrap();
    for out in [&a, &b] {
        let (ok, stdout, stderr) = run_cli(&eval_args(fx, out, &extra));
        assert!(ok, "{stdout}{stderr}");
    }
    assert!(!stale.exists(), "stale IoU plot left in the report folder");
    let ra = read_json(&Path::new(&a).join("report.json"));
    let rb = read_json(&Path::new(&b).join("report.json"));
    assert_eq!(ra["per_step"], rb["per_step"]);
    assert_eq!(ra["protocol"]["episodes"], serde_json::json!([1]));
    let step = &ra["per_step"][0];
    assert!(step.get("teacher_forced").is_none() && step.get("best_of_k").is_none());

    // A model trained at 64x64 (same aspect ratio): frames are resized and the report says so.
    let big = tmp.path().join("model64");
    copy_model(&fx.model, &big, |cfg| {
        cfg["frame"] = serde_json::json!({"width": 64, "height": 64});
    });
    let out = tmp.path().join("r64").to_str().unwrap().to_owned();
    // The counterfactual's simulator renders at the dataset's size and is resized the same way.
    let mut args = eval_args(fx, &out, &["--counterfactual", "offset:0.25"]);
    args[2] = big.to_str().unwrap();
    let (ok, stdout, stderr) = run_cli(&args);
    assert!(ok, "{stdout}{stderr}");
    let r = read_json(&Path::new(&out).join("report.json"));
    assert_eq!(r["dataset"]["resized_to"], serde_json::json!([64, 64]));
    assert_eq!(r["protocol"]["frame"], serde_json::json!([64, 64]));
    assert!(r["notes"][0].as_str().unwrap().contains("resized"), "{r}");
}

/// Copies a native model directory, editing its config.json.
fn copy_model(from: &Path, to: &Path, edit: impl Fn(&mut Value)) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("model.safetensors"), to.join("model.safetensors")).unwrap();
    let mut cfg = read_json(&from.join("config.json"));
    edit(&mut cfg);
    std::fs::write(to.join("config.json"), cfg.to_string()).unwrap();
}

#[test]
fn mismatched_model_and_dataset_give_clear_errors() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r").to_str().unwrap().to_owned();

    // DIAMOND's Atari model: discrete actions (and 64x64 frames) vs push-t's continuous actions.
    let diamond = fixture_dir().join("denoiser.safetensors");
    let mut args = eval_args(fx, &out, &[]);
    args[2] = diamond.to_str().unwrap();
    let (ok, stdout, _) = run_cli(&args);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("action space mismatch")
            && stdout.contains("`action.kind`")
            && stdout.contains("discrete")
            && stdout.contains("continuous actions of width 2"),
        "{stdout}"
    );

    // DIAMOND's two-stage CS:GO model: eval does not score two-stage models, and says so.
    let csgo = fixture_dir().join("../diamond-csgo");
    let (agent, yaml) = (csgo.join("agent.pt"), csgo.join("config.yaml"));
    let mut args = eval_args(fx, &out, &["--config", yaml.to_str().unwrap()]);
    args[2] = agent.to_str().unwrap();
    let (ok, stdout, _) = run_cli(&args);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("two-stage model") && stdout.contains("x5"),
        "{stdout}"
    );

    // A frame size of another aspect ratio cannot be resized without distortion.
    let wide = tmp.path().join("wide");
    copy_model(&fx.model, &wide, |cfg| {
        cfg["frame"] = serde_json::json!({"width": 64, "height": 32});
    });
    let mut args = eval_args(fx, &out, &[]);
    args[2] = wide.to_str().unwrap();
    let (ok, stdout, _) = run_cli(&args);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("frame size mismatch") && stdout.contains("`frame`"),
        "{stdout}"
    );

    // A context the model was not trained with, and a horizon no episode can hold.
    let (ok, stdout, _) = run_cli(&eval_args(fx, &out, &["--context", "2"]));
    assert!(!ok && stdout.contains("num_steps_conditioning"), "{stdout}");
    let mut args = eval_args(fx, &out, &[]);
    args[6] = "500"; // --horizon
    let (ok, stdout, _) = run_cli(&args);
    assert!(!ok && stdout.contains("no window fits"), "{stdout}");
    let (ok, stdout, _) = run_cli(&eval_args(fx, &out, &["--episodes", "0-7"]));
    assert!(!ok && stdout.contains("no episode 2"), "{stdout}");

    // A counterfactual needs each future to follow its own actions, and a perturbation it
    // knows.
    let tf = ["--counterfactual", "mirror", "--regime", "teacher-forced"];
    let (ok, stdout, _) = run_cli(&eval_args(fx, &out, &tf));
    assert!(
        !ok && stdout.contains("--regime autoregressive"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run_cli(&eval_args(fx, &out, &["--counterfactual", "flip"]));
    let text = format!("{stdout}{stderr}");
    assert!(!ok && text.contains("offset:F"), "{text}");
}

/// Runs `dreamyard train --scene push-t` on the CPU with `extra` arguments.
fn train_live(cfg: &Path, out: &Path, extra: &[&str]) -> (bool, String, String) {
    let live = ["--scene", "push-t", "--episode-steps", "20"];
    train_on(&live, cfg, out, extra)
}

#[test]
fn train_from_the_live_scene_resumes_exactly_and_fine_tunes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("train.toml");
    std::fs::write(&cfg, TRAIN_TOML.replace("steps = 3", "steps = 4")).unwrap();
    let out = |n: &str| tmp.path().join(n);

    // Straight through, and stopped after 2 steps then resumed: the same weights.
    let (ok, stdout, stderr) = train_live(&cfg, &out("straight"), &["--size", "16"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stderr.contains("live push-t at 16x16 (user-like policies, seed 0)"),
        "{stderr}"
    );
    let json = &stdout[stdout.find('{').unwrap()..=stdout.rfind('}').unwrap()];
    let summary: Value = serde_json::from_str(json).unwrap();
    assert_eq!(summary["data"], "live");
    assert_eq!(summary["steps"], 4);
    let (ok, stdout, stderr) =
        train_live(&cfg, &out("split"), &["--size", "16", "--stop-after", "2"]);
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, stderr) = train_live(&cfg, &out("split"), &["--size", "16", "--resume"]);
    assert!(ok, "{stdout}{stderr}");
    let weights = |n: &str| std::fs::read(out(n).join("model.safetensors")).unwrap();
    assert_eq!(weights("split"), weights("straight"));

    // Resuming on another stream is refused, naming the field that differs.
    let longer = tmp.path().join("longer.toml");
    std::fs::write(&longer, TRAIN_TOML.replace("steps = 3", "steps = 6")).unwrap();
    let (ok, err, _) = train_live(&longer, &out("straight"), &["--size", "24", "--resume"]);
    assert!(!ok);
    assert!(
        err.contains("stream.") && err.contains("state.json"),
        "{err}"
    );

    // Another policy mixture trains another model; a bad mixture file names its field.
    let mix = tmp.path().join("mix.toml");
    std::fs::write(&mix, "segment_steps = [4, 4]\n[weights]\nhold = 1\n").unwrap();
    let (ok, stdout, stderr) = train_live(
        &cfg,
        &out("held"),
        &["--size", "16", "--policy-mix", mix.to_str().unwrap()],
    );
    assert!(ok, "{stdout}{stderr}");
    assert_ne!(weights("held"), weights("straight"));
    std::fs::write(&mix, "segment_steps = [4, 4]\n[weights]\nhover = 1\n").unwrap();
    let (ok, err, _) = train_live(
        &cfg,
        &out("bad-mix"),
        &["--size", "16", "--policy-mix", mix.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(
        err.contains("mix.toml") && err.contains("weights.hover"),
        "{err}"
    );

    // --init: frames at the model's size (32x32) unless --size says otherwise.
    let fx = fixture();
    let (ok, stdout, stderr) =
        train_live(&cfg, &out("tuned"), &["--init", fx.model.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stderr.contains("at 32x32"), "{stderr}");

    // Exactly one of --dataset and --scene.
    let (ok, err, _) = run_cli(&["train", "--config", cfg.to_str().unwrap(), "--out", "x"]);
    assert!(!ok);
    assert!(
        err.contains("--dataset") && err.contains("--scene"),
        "{err}"
    );
}

#[test]
fn train_init_fine_tunes_the_model_and_refuses_one_that_does_not_fit() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let train = |cfg_text: &str, out: &str, extra: &[&str]| {
        let cfg = tmp.path().join(format!("{out}.toml"));
        std::fs::write(&cfg, cfg_text).unwrap();
        train_cli(&fx.dataset, &cfg, &tmp.path().join(out), extra)
    };
    let model = fx.model.to_str().unwrap();

    // Same network, another objective: a new run that starts from the model and exports.
    let noisy = TRAIN_TOML.replace("rollout_horizon", "context_noise = 0.1\nrollout_horizon");
    let (ok, stdout, stderr) = train(&noisy, "tuned", &["--init", model]);
    assert!(ok, "{stdout}{stderr}");
    assert!(tmp.path().join("tuned/model.safetensors").is_file());
    assert!(tmp.path().join("tuned/config.json").is_file());

    // Another network: refused, naming the model and the field.
    let wider = TRAIN_TOML.replace("channels = [8, 8]", "channels = [8, 16]");
    // (The child prints the CLI's error on stdout, after `CLI_ERR`.)
    let (ok, err, _) = train(&wider, "wider", &["--init", model]);
    assert!(!ok);
    assert!(err.contains("`denoiser.inner_model.channels`"), "{err}");
    assert!(err.contains("[8,16]") && err.contains("[8,8]"), "{err}");
    assert!(err.contains(model), "{err}");

    // A directory without a model, and --init with --resume, are clear errors.
    let missing = tmp.path().join("no-model");
    let (ok, err, _) = train(
        TRAIN_TOML,
        "nothing",
        &["--init", missing.to_str().unwrap()],
    );
    assert!(!ok);
    assert!(
        err.contains("no-model") && err.contains("config.json"),
        "{err}"
    );
    let (ok, err, _) = train(TRAIN_TOML, "both", &["--init", model, "--resume"]);
    assert!(!ok);
    assert!(err.contains("--resume") && err.contains("--init"), "{err}");
}

/// `(step, loss)` of every training line in a run's `metrics.jsonl`.
fn train_losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap()))
        .collect()
}

#[test]
fn train_stop_after_pauses_the_run_and_resume_finishes_it_exactly() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("train.toml");
    std::fs::write(&cfg, TRAIN_TOML).unwrap();
    let out = tmp.path().join("run");
    let train = |extra: &[&str]| train_cli(&fx.dataset, &cfg, &out, extra);

    // Stopped after step 2 of 3: a checkpoint, an exported model and a validation there.
    let (ok, stdout, stderr) = train(&["--stop-after", "2"]);
    assert!(ok, "{stdout}{stderr}");
    // The child's stdout: the test harness's header, the pretty-printed summary, `CLI_OK`.
    let json = &stdout[stdout.find('{').unwrap()..stdout.rfind("CLI_OK").unwrap()];
    let summary: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(summary["steps"], 2, "{stdout}");
    assert_eq!(summary["validation"]["step"], 2, "{stdout}");
    assert!(out.join("model.safetensors").is_file());
    assert_eq!(
        train_losses(&out).iter().map(|l| l.0).collect::<Vec<_>>(),
        [1, 2]
    );

    // Resumed, it ends where the fixture's uninterrupted run (same data and config) did.
    let (ok, stdout, stderr) = train(&["--resume"]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(train_losses(&out), train_losses(&fx.model));
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(fx.model.join("model.safetensors")).unwrap()
    );

    // A finished run has nothing left to train; a zero step is refused by the parser.
    let (ok, err, _) = train(&["--resume"]);
    assert!(!ok && err.contains("already at step 3 of 3"), "{err}");
    // It says so before reading the dataset: even one that is gone.
    let gone = tmp.path().join("moved-dataset");
    let (ok, err, _) = train_cli(&gone, &cfg, &out, &["--resume"]);
    assert!(!ok && err.contains("already at step 3 of 3"), "{err}");
    let (ok, stdout, stderr) = train(&["--resume", "--stop-after", "0"]);
    assert!(!ok && format!("{stdout}{stderr}").contains("--stop-after"));
}
