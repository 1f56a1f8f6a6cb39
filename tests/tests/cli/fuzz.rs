//! Mutation fuzzing of every parser of outside input, on stable Rust.
//!
//! Each target starts from real files the project writes or reads (a recorded dataset, a saved
//! model, the shipped configs and scenes, a LeRobot video dataset, a PyTorch zip checkpoint, a
//! DIAMOND spawn) and feeds mutated copies to the same entry point a user's file reaches:
//! `Checkpoint::from_native_files` + `build`, `PthTensors` and `Checkpoint::from_diamond`,
//! `Checkpoint::config_from_file`, `TrainConfig::from_toml_str`, `load_scene_file` (then a
//! reset, steps and a render), `Info::parse`, `Dataset::open` + `validate` + `episode`,
//! `decode_image`, `dreamyard predict`, `read_spawn`. Mutations are AFL's "havoc" kind (bit
//! flips, interesting integers, deleted, inserted, duplicated and spliced ranges, truncation,
//! numbers in text replaced). A case passes when the parser returns (accepting or rejecting the
//! input) without a panic and without a single allocation over [`ALLOC_LIMIT`] (no length read
//! from a file is trusted beyond the data there). `cargo-fuzz` would need a nightly toolchain
//! and libFuzzer's crate, which this offline machine lacks; the mutator is a few dozen lines.
//!
//! The test suite runs a fixed number of cases per target from a fixed seed;
//! `scripts/fuzz.sh MINUTES` runs [`long_fuzz_run`] for as long as asked.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dreamyard_model::candle_core::{DType, Device, Tensor};
use dreamyard_model::train::TrainConfig;
use dreamyard_model::{Checkpoint, ModelConfig};
use dreamyard_scenes::dataset::{Dataset, Info, decode_image, encode_png};
use dreamyard_scenes::{Action, ActionSpace};

use crate::alloc;

/// A single allocation above this in a case is a finding: every seed is at most a few MB.
const ALLOC_LIMIT: usize = 256 << 20;

/// xorshift64*: fast, and the same cases on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const BYTES: [u8; 12] = [
    0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'[', b'0', b'-', b'\n', b':',
];
const WORDS: [u32; 8] = [
    0,
    1,
    0x7fff_ffff,
    0xffff_ffff,
    0x8000_0000,
    0xffff,
    1 << 20,
    1 << 30,
];
const LONGS: [u64; 6] = [0, u64::MAX, 1 << 32, 1 << 40, i64::MAX as u64, 1 << 62];
const NUMBERS: [&str; 10] = [
    "0",
    "-1",
    "4294967296",
    "99999999999999999999",
    "1e308",
    "-1e308",
    "NaN",
    "inf",
    "0.0000001",
    "18446744073709551615",
];

/// Mutates `data` one to eight times; `donor` supplies spliced ranges.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, donor: &[u8]) {
    for _ in 0..1 << rng.below(4) {
        let len = data.len();
        match rng.below(10) {
            0 if len > 0 => data[rng.below(len)] ^= 1 << rng.below(8),
            1 if len > 0 => data[rng.below(len)] = BYTES[rng.below(BYTES.len())],
            2 if len >= 4 => {
                let at = rng.below(len - 3);
                let w = WORDS[rng.below(WORDS.len())];
                let bytes = if rng.below(2) == 0 {
                    w.to_le_bytes()
                } else {
                    w.to_be_bytes()
                };
                data[at..at + 4].copy_from_slice(&bytes);
            }
            3 if len >= 8 => {
                let at = rng.below(len - 7);
                data[at..at + 8].copy_from_slice(&LONGS[rng.below(LONGS.len())].to_le_bytes());
            }
            4 if len > 1 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(256));
                data.drain(at..at + n);
            }
            5 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(32);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            6 if len > 1 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(512));
                let chunk = data[from..from + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            7 if len > 0 => data.truncate(rng.below(len)),
            8 if !donor.is_empty() && len > 0 => {
                let from = rng.below(donor.len());
                let n = 1 + rng.below((donor.len() - from).min(512));
                let at = rng.below(len);
                let end = (at + n).min(len);
                data.splice(at..end, donor[from..from + n].iter().copied());
            }
            _ => {
                // A number in text replaced by an extreme one.
                let digits: Vec<usize> = (0..len).filter(|&i| data[i].is_ascii_digit()).collect();
                if digits.is_empty() {
                    continue;
                }
                let start = digits[rng.below(digits.len())];
                let end = (start..len)
                    .find(|&i| !data[i].is_ascii_digit() && data[i] != b'.')
                    .unwrap_or(len);
                let n = NUMBERS[rng.below(NUMBERS.len())].as_bytes().to_vec();
                data.splice(start..end, n);
            }
        }
    }
}

/// Shared inputs: a tiny saved model, a recorded dataset, the fixtures.
struct Ctx {
    _tmp: tempfile::TempDir,
    /// A native model at 16x16 with random weights (what `save_native` writes).
    model: PathBuf,
    /// A recorded push-t dataset (2 episodes of 20 steps at 32x32, PNG frames).
    dataset: PathBuf,
    /// DIAMOND's Atari yaml (`../shared/fixtures/diamond/config.yaml`).
    diamond_yaml: PathBuf,
}

type Run = fn(&Ctx, &Path) -> Result<(), String>;

/// A parser and the files it reads: each case mutates one of them inside a folder holding
/// the others unchanged.
struct Target {
    name: &'static str,
    /// Paths relative to the case folder, and their seed contents.
    files: Vec<(PathBuf, Vec<u8>)>,
    run: Run,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `root`, relative, with its bytes.
fn files_under(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = crate::common::walk(root)
        .into_iter()
        .map(|p| (p.strip_prefix(root).unwrap().to_owned(), read(&p)))
        .collect();
    out.sort();
    out
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn ctx() -> Ctx {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let mut config: serde_json::Value =
        serde_json::from_slice(&read(&repo().join("assets/models/push-t/config.json"))).unwrap();
    let inner = &mut config["denoiser"]["inner_model"];
    inner["channels"] = serde_json::json!([8, 8]);
    inner["depths"] = serde_json::json!([1, 1]);
    inner["attn_depths"] = serde_json::json!([0, 1]);
    inner["cond_channels"] = serde_json::json!(16);
    config["frame"] = serde_json::json!({"height": 16, "width": 16});
    let config: ModelConfig = serde_json::from_value(config).unwrap();
    Checkpoint::random(&config, 7)
        .unwrap()
        .save_native(&model)
        .unwrap();
    let dataset = tmp.path().join("dataset");
    let record = crate::common::record_args_at(dataset.to_str().unwrap(), "2", "32", &[]);
    dreamyard::cli::run(std::iter::once("dreamyard").chain(record)).unwrap();
    Ctx {
        _tmp: tmp,
        model,
        dataset,
        diamond_yaml: repo().join("../shared/fixtures/diamond/config.yaml"),
    }
}

fn tensor_bytes(tensors: &[(&str, Tensor)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.safetensors");
    let map: std::collections::HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| ((*k).to_owned(), t.clone()))
        .collect();
    dreamyard_model::candle_core::safetensors::save(&map, &p).unwrap();
    read(&p)
}

fn npy_bytes(t: &Tensor) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.npy");
    t.write_npy(&p).unwrap();
    read(&p)
}

fn one(path: &str, bytes: Vec<u8>) -> Vec<(PathBuf, Vec<u8>)> {
    vec![(PathBuf::from(path), bytes)]
}

fn targets(ctx: &Ctx) -> Vec<Target> {
    let cpu = Device::Cpu;
    let frame = {
        let mut scene = dreamyard_scenes::load_scene(
            &dreamyard_scenes::SceneSource::Builtin("push-t".into()),
            Some((24, 24)),
        )
        .unwrap();
        scene.reset(1).frame
    };
    let png = encode_png(&frame).unwrap();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode(
            &frame.data,
            frame.width,
            frame.height,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    let predict_inputs = tensor_bytes(&[
        (
            "obs_u8",
            Tensor::arange(0u8, 255, &cpu)
                .unwrap()
                .repeat(13)
                .unwrap()
                .narrow(0, 0, 3072)
                .unwrap()
                .reshape((1, 4, 3, 16, 16))
                .unwrap(),
        ),
        ("act", Tensor::full(100f32, (1, 4, 2), &cpu).unwrap()),
        (
            "rollout.actions",
            Tensor::full(200f32, (1, 2, 2), &cpu).unwrap(),
        ),
    ]);
    let spawn = vec![
        (
            PathBuf::from("low_res.npy"),
            npy_bytes(&Tensor::full(40u8, (4, 3, 6, 10), &cpu).unwrap()),
        ),
        (
            PathBuf::from("full_res.npy"),
            npy_bytes(&Tensor::full(90u8, (4, 3, 30, 50), &cpu).unwrap()),
        ),
        (
            PathBuf::from("act.npy"),
            npy_bytes(&Tensor::zeros((4, 51), DType::F32, &cpu).unwrap()),
        ),
    ];
    let train: Vec<(PathBuf, Vec<u8>)> = ["push-t/train.toml", "arm-push/train.toml"]
        .iter()
        .map(|p| {
            (
                PathBuf::from("train.toml"),
                read(&repo().join("assets/models").join(p)),
            )
        })
        .collect();
    vec![
        Target {
            name: "safetensors model",
            files: one(
                "model.safetensors",
                read(&ctx.model.join("model.safetensors")),
            ),
            run: |ctx, dir| {
                Checkpoint::from_native_files(
                    &ctx.model.join("config.json"),
                    &dir.join("model.safetensors"),
                )
                .and_then(|c| c.build(&Device::Cpu))
                .map(drop)
                .map_err(err)
            },
        },
        Target {
            name: "pickle checkpoint",
            files: one(
                "agent.pt",
                read(&repo().join("tests/fixtures/fuzz/tiny-agent.pt")),
            ),
            run: |ctx, dir| {
                let path = dir.join("agent.pt");
                let pth = dreamyard_model::pth::open(&path).map_err(err)?;
                for name in pth.tensor_infos().keys() {
                    dreamyard_model::pth::checked_get(&path, &pth, name).map_err(err)?;
                }
                // The whole DIAMOND loader too (it rejects these weights for that yaml).
                let _ = Checkpoint::from_diamond(&path, &ctx.diamond_yaml);
                Ok(())
            },
        },
        Target {
            name: "model config (JSON)",
            files: one("config.json", read(&ctx.model.join("config.json"))),
            run: |_, dir| {
                Checkpoint::config_from_file(&dir.join("config.json"))
                    .map(drop)
                    .map_err(err)
            },
        },
        Target {
            name: "model config (YAML)",
            files: vec![
                (
                    PathBuf::from("config.yaml"),
                    read(&repo().join("assets/configs/diamond-csgo.yaml")),
                ),
                (PathBuf::from("config.yaml"), read(&ctx.diamond_yaml)),
            ],
            run: |_, dir| {
                Checkpoint::config_from_file(&dir.join("config.yaml"))
                    .map(drop)
                    .map_err(err)
            },
        },
        Target {
            name: "train config (TOML)",
            files: train,
            run: |_, dir| {
                let bytes = std::fs::read(dir.join("train.toml")).map_err(err)?;
                let text = String::from_utf8(bytes).map_err(err)?;
                TrainConfig::from_toml_str(&text, "train.toml")
                    .map(drop)
                    .map_err(err)
            },
        },
        Target {
            name: "scene file (TOML)",
            files: ["push-t", "arm-push"]
                .iter()
                .map(|n| {
                    let text = dreamyard_scenes::builtin_toml(n).unwrap();
                    (PathBuf::from("scene.toml"), text.as_bytes().to_vec())
                })
                .collect(),
            run: |_, dir| {
                let mut scene = dreamyard_scenes::load_scene_file(&dir.join("scene.toml"), None)
                    .map_err(err)?;
                // An episode's start, steps and frames: what opening the scene in the app does.
                scene.reset(3);
                let action = match &scene.spec().action_space {
                    ActionSpace::Continuous { low, high, .. } => Action::Continuous(
                        low.iter().zip(high).map(|(l, h)| (l + h) / 2.0).collect(),
                    ),
                    ActionSpace::Discrete { .. } => Action::Discrete(0),
                };
                for _ in 0..3 {
                    scene.step(&action).map_err(err)?;
                }
                Ok(())
            },
        },
        Target {
            name: "LeRobot info.json",
            files: one("info.json", read(&ctx.dataset.join("meta/info.json"))),
            run: |_, dir| {
                let file = dir.join("info.json");
                let text = String::from_utf8(std::fs::read(&file).map_err(err)?).map_err(err)?;
                Info::parse(&file, &text).map(drop).map_err(err)
            },
        },
        Target {
            name: "LeRobot dataset (parquet, JSON)",
            files: files_under(&ctx.dataset),
            run: |_, dir| open_dataset(dir),
        },
        Target {
            name: "LeRobot video dataset (MP4)",
            files: files_under(&repo().join("scenes/tests/fixtures/lerobot-video/av1")),
            run: |_, dir| open_dataset(dir),
        },
        Target {
            name: "frame image (PNG, JPEG)",
            files: vec![
                (PathBuf::from("frame"), png),
                (PathBuf::from("frame"), jpeg),
            ],
            run: |_, dir| {
                let bytes = std::fs::read(dir.join("frame")).map_err(err)?;
                decode_image(&bytes).map(drop).map_err(|e| format!("{e:?}"))
            },
        },
        Target {
            name: "predict inputs (safetensors)",
            files: one("inputs.safetensors", predict_inputs),
            run: |ctx, dir| {
                dreamyard::cli::run([
                    "dreamyard",
                    "predict",
                    "--model",
                    ctx.model.to_str().unwrap_or_default(),
                    "--inputs",
                    dir.join("inputs.safetensors").to_str().unwrap_or_default(),
                    "--out",
                    dir.join("out.safetensors").to_str().unwrap_or_default(),
                    "--device",
                    "cpu",
                ])
                .map_err(|e| format!("{e:#}"))
            },
        },
        Target {
            name: "DIAMOND spawn (npy)",
            files: spawn,
            run: |_, dir| {
                dreamyard::spawn::read_spawn(dir)
                    .map(drop)
                    .map_err(|e| format!("{e:#}"))
            },
        },
    ]
}

/// A panic's message (a `String` or `&str` payload).
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

fn open_dataset(dir: &Path) -> Result<(), String> {
    let ds = Dataset::open(dir).map_err(err)?;
    let v = ds.validate().map_err(err)?;
    if !ds.episodes().is_empty() {
        ds.episode(0).map_err(err)?;
    }
    if v.is_valid() {
        Ok(())
    } else {
        Err(format!("{:?}", v.problems))
    }
}

/// What went wrong in one case.
#[derive(Debug)]
struct Finding {
    target: &'static str,
    case: u64,
    what: String,
    /// The input, kept for reproduction.
    saved: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    accepted: u64,
    time: Duration,
    slowest: Duration,
}

/// Runs `target` in `dir` for `cases` cases or until `deadline`; seeds must be accepted as
/// they are (else the target is broken, not fuzzed).
struct Fuzzer<'a> {
    ctx: &'a Ctx,
    target: Target,
    dir: PathBuf,
    rng: Rng,
    tally: Tally,
    /// The file last mutated (restored before the next case).
    dirty: Option<usize>,
}

impl<'a> Fuzzer<'a> {
    fn new(ctx: &'a Ctx, target: Target, root: &Path, seed: u64) -> Self {
        let dir = root.join(target.name.replace(|c: char| !c.is_alphanumeric(), "-"));
        for (rel, bytes) in &target.files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, bytes).unwrap();
        }
        Self {
            ctx,
            target,
            dir,
            rng: Rng(seed | 1),
            tally: Tally::default(),
            dirty: None,
        }
    }

    /// Every seed file as it is: accepted.
    fn check_seeds(&mut self) {
        for i in 0..self.target.files.len() {
            self.write(i, None);
            let (result, _) = alloc::track(|| (self.target.run)(self.ctx, &self.dir));
            assert_eq!(
                result,
                Ok(()),
                "{}: seed {} is not accepted",
                self.target.name,
                self.target.files[i].0.display()
            );
        }
    }

    fn write(&mut self, i: usize, bytes: Option<&[u8]>) {
        if let Some(d) = self.dirty.take() {
            let (rel, seed) = &self.target.files[d];
            std::fs::write(self.dir.join(rel), seed).unwrap();
        }
        let (rel, seed) = &self.target.files[i];
        std::fs::write(self.dir.join(rel), bytes.unwrap_or(seed)).unwrap();
        self.dirty = bytes.map(|_| i);
    }

    /// One mutated case; a finding if it panicked or allocated beyond the limit.
    fn case(&mut self, keep: Option<&Path>) -> Option<Finding> {
        let n = self.target.files.len();
        let i = self.rng.below(n);
        let donor_i = self.rng.below(n);
        let mut data = self.target.files[i].1.clone();
        let donor = self.target.files[donor_i].1.clone();
        // Time spent per target includes writing its files, so equal time is equal wall time.
        let started = Instant::now();
        mutate(&mut self.rng, &mut data, &donor);
        self.write(i, Some(&data));
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            alloc::track(|| (self.target.run)(self.ctx, &self.dir))
        }));
        let spent = started.elapsed();
        self.tally.cases += 1;
        self.tally.time += spent;
        self.tally.slowest = self.tally.slowest.max(spent);
        let case = self.tally.cases;
        let what = match outcome {
            Ok((result, largest)) => {
                self.tally.accepted += u64::from(result.is_ok());
                if largest <= ALLOC_LIMIT {
                    return None;
                }
                format!(
                    "allocated {largest} bytes at once (input {} bytes)",
                    data.len()
                )
            }
            Err(panic) => format!("panicked: {}", panic_text(panic.as_ref())),
        };
        // Kept as `KEEP/<target>/<case>/<file>`, the layout of tests/fixtures/fuzz/regressions.
        let saved = keep.map(|k| {
            let p = k
                .join(self.dir.file_name().unwrap())
                .join(case.to_string())
                .join(&self.target.files[i].0);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &data).unwrap();
            p
        });
        Some(Finding {
            target: self.target.name,
            case,
            what,
            saved,
        })
    }
}

impl Fuzzer<'_> {
    /// The inputs of earlier findings for this target (tests/fixtures/fuzz/regressions/
    /// `<target>/<case>/<file>`), each run in place of its file: none may panic or
    /// over-allocate again.
    fn regressions(&mut self) -> Vec<Finding> {
        let dir = repo()
            .join("tests/fixtures/fuzz/regressions")
            .join(self.dir.file_name().unwrap());
        let Ok(cases) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut findings = Vec::new();
        let mut cases: Vec<PathBuf> = cases.map(|c| c.unwrap().path()).collect();
        cases.sort();
        for case in cases {
            for (rel, bytes) in files_under(&case) {
                let i = self
                    .target
                    .files
                    .iter()
                    .position(|(r, _)| r == &rel)
                    .unwrap_or_else(|| panic!("{}: no such file in the target", rel.display()));
                self.write(i, Some(&bytes));
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    alloc::track(|| (self.target.run)(self.ctx, &self.dir))
                }));
                let what = match outcome {
                    Ok((_, largest)) if largest <= ALLOC_LIMIT => continue,
                    Ok((_, largest)) => format!("allocated {largest} bytes at once"),
                    Err(panic) => format!("panicked: {}", panic_text(panic.as_ref())),
                };
                findings.push(Finding {
                    target: self.target.name,
                    case: 0,
                    what,
                    saved: Some(case.join(&rel)),
                });
            }
        }
        findings
    }
}

fn report(fuzzers: &[Fuzzer<'_>], findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in fuzzers {
        let t = &f.tally;
        out.push_str(&format!(
            "{:32} {:>8} cases {:>8} accepted {:>9.1} s  slowest {:>7.1} ms\n",
            f.target.name,
            t.cases,
            t.accepted,
            t.time.as_secs_f64(),
            t.slowest.as_secs_f64() * 1e3
        ));
    }
    for f in findings {
        out.push_str(&format!(
            "FINDING {} case {}: {} {:?}\n",
            f.target, f.case, f.what, f.saved
        ));
    }
    out
}

/// Cases per target in the test suite's run (about 10 s in all on 2 cores).
const CASES: usize = 300;

/// The short run of the test suite: [`CASES`] cases per target from a fixed seed.
#[test]
fn fuzzed_inputs_never_panic_or_allocate_beyond_their_size() {
    let ctx = ctx();
    let root = tempfile::tempdir().unwrap();
    eprintln!("fuzz cases in {}", root.path().display());
    let mut fuzzers: Vec<Fuzzer<'_>> = targets(&ctx)
        .into_iter()
        .enumerate()
        .map(|(i, t)| Fuzzer::new(&ctx, t, root.path(), 0x00f0_2200 + i as u64))
        .collect();
    let mut findings = Vec::new();
    for f in &mut fuzzers {
        f.check_seeds();
        findings.extend(f.regressions());
        for _ in 0..CASES {
            findings.extend(f.case(None));
        }
    }
    let table = report(&fuzzers, &findings);
    eprintln!("{table}");
    assert!(findings.is_empty(), "{table}");
    for f in &fuzzers {
        assert!(
            f.tally.accepted < f.tally.cases,
            "{}: mutations change nothing",
            f.target.name
        );
    }
}

/// `scripts/fuzz.sh MINUTES`: every target in turn for `DREAMYARD_FUZZ_MINUTES` minutes in
/// all (seed `DREAMYARD_FUZZ_SEED`, default the clock), inputs of findings kept under
/// `DREAMYARD_FUZZ_OUT` (default `target/fuzz-findings`).
#[test]
#[ignore = "long; run by scripts/fuzz.sh"]
fn long_fuzz_run() {
    let minutes: f64 = std::env::var("DREAMYARD_FUZZ_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(1.0);
    let seed: u64 = std::env::var("DREAMYARD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
    let keep = std::env::var_os("DREAMYARD_FUZZ_OUT")
        .map_or_else(|| repo().join("target/fuzz-findings"), PathBuf::from);
    let ctx = ctx();
    let root = tempfile::tempdir().unwrap();
    eprintln!("fuzz cases in {}", root.path().display());
    let mut fuzzers: Vec<Fuzzer<'_>> = targets(&ctx)
        .into_iter()
        .enumerate()
        .map(|(i, t)| Fuzzer::new(&ctx, t, root.path(), seed.wrapping_mul(31) + i as u64))
        .collect();
    for f in &mut fuzzers {
        f.check_seeds();
    }
    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let mut findings = Vec::new();
    // Equal time per target: the slow ones (video, predict) get fewer cases, not less time.
    while Instant::now() < deadline {
        let f = fuzzers.iter_mut().min_by_key(|f| f.tally.time).unwrap();
        findings.extend(f.case(Some(&keep)));
    }
    let table = report(&fuzzers, &findings);
    println!("seed {seed}, {minutes} minutes\n{table}");
    assert!(findings.is_empty(), "{table}");
}
