//! Reliability as a person meets it: a second writer on a dataset, a disk that refuses writes
//! while recording (the CLI and the app's recorder), the app killed (SIGKILL) while it
//! records, and a short soak of the app's session core. Write errors are injected by the
//! kernel: the child runs with a per-file size limit (RLIMIT_FSIZE, SIGXFSZ ignored), so a
//! write past it fails with EFBIG exactly where a full disk fails with ENOSPC, without root
//! or a tmpfs mount.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use dreamyard_scenes::dataset::Dataset;

use crate::common::{child_command as child, committed, json_line, record_args_at, run_cli, walk};

/// `cmd` with writes past `bytes` in any one file failing with EFBIG ("File too large").
fn limit_file_size(cmd: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal) run.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Without this the kernel's SIGXFSZ would kill the child instead of failing the
            // write.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        })
    }
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Opens, validates and counts `dir`: every frame (image or video) decodes, at most one
/// uncommitted episode.
fn check_dataset(dir: &Path) -> u64 {
    let ds = Dataset::open(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let v = ds.validate().unwrap();
    assert!(v.is_valid(), "{}: {:?}", dir.display(), v.problems);
    // The app's recordings hold two images a row (the true frame and the model's).
    let per_row = if ds.info().features.get("observation.image_model").is_some() {
        2
    } else {
        1
    };
    assert_eq!(
        v.images_decoded + v.video_frames_decoded,
        per_row * ds.num_frames(),
        "{}",
        dir.display()
    );
    assert!(ds.uncommitted_episodes() <= 1, "{}", dir.display());
    ds.episodes().len() as u64
}

/// Files a killed or failed writer left behind that no reader would look at.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".dreamyard-tmp"))
        .collect()
}

#[test]
fn a_second_writer_is_refused_at_once_and_a_killed_one_leaves_no_stuck_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("busy");
    let d = dir.to_str().unwrap();
    let mut first = Killed(
        child(&record_args_at(d, "100000", "32", &[]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let since = Instant::now();
    while committed(&dir).is_none_or(|n| n < 2) {
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "the first writer ended"
        );
        assert!(
            since.elapsed() < Duration::from_secs(120),
            "no episode committed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A resume started while the first still writes: refused before touching a file, naming
    // the other writer (its process id and command).
    let had = committed(&dir).unwrap();
    let (ok, stdout, stderr) = run_cli(&record_args_at(d, "100000", "32", &["--resume"]));
    assert!(!ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("another writer has this dataset open"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("pid {} (", first.0.id())),
        "{stdout}"
    );
    assert!(stdout.contains("since 20"), "{stdout}");
    // A new recording into the same folder is refused too (it holds a dataset).
    let (ok, stdout, _) = run_cli(&record_args_at(d, "1", "32", &[]));
    assert!(
        !ok && stdout.contains("already holds a dataset"),
        "{stdout}"
    );
    // kill -9: the lock goes with the process; a resume takes over at once.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let n = check_dataset(&dir);
    assert!(n >= had, "the refused writers removed nothing: {n} < {had}");
    let total = (n + 1).to_string();
    let (ok, stdout, stderr) = run_cli(&record_args_at(d, &total, "32", &["--resume"]));
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(check_dataset(&dir), n + 1);
    let ds = Dataset::open(&dir).unwrap();
    assert_eq!(ds.uncommitted_episodes(), 0);
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
}

#[test]
fn a_recording_whose_writes_fail_stops_with_a_clear_error_and_keeps_what_it_committed() {
    writes_fail_while_recording("32", &[]);
}

#[test]
fn a_video_recording_whose_writes_fail_stops_with_a_clear_error_and_keeps_what_it_committed() {
    writes_fail_while_recording("64", &["--video"]);
}

/// Records at `size` with `extra` arguments until a write fails, then resumes with room.
fn writes_fail_while_recording(size: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("full");
    let d = dir.to_str().unwrap();
    let args = |episodes| record_args_at(d, episodes, size, extra);
    // Each file may hold 96 KiB: a handful of 20-step episodes.
    let out = limit_file_size(&mut child(&args("200")), 96 * 1024)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the process ends normally: {stdout}");
    assert!(!stdout.contains("CLI_OK"), "{stdout}");
    let err = stdout.lines().find(|l| l.starts_with("CLI_ERR")).unwrap();
    assert!(err.contains("File too large"), "{err}");
    assert!(
        err.contains(&dir.display().to_string()) && err.contains(".parquet"),
        "the error names the file: {err}"
    );
    let n = check_dataset(&dir);
    assert!(
        (1..200).contains(&n),
        "{n} episodes committed before the failure"
    );

    // With room again, a resume cleans up and completes it.
    let total = (n + 2).to_string();
    let mut resume = args(&total);
    resume.push("--resume");
    let (ok, stdout, stderr) = run_cli(&resume);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(check_dataset(&dir), n + 2);
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
}

/// Lines of `proc`'s stdout as they come.
fn lines_of(proc: &mut Child) -> Receiver<String> {
    let stdout = proc.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `(dataset folder, episode index)` of a soak's "saved episode N in DIR" line.
fn saved(line: &str) -> Option<(PathBuf, u64)> {
    let rest = line.strip_prefix("saved episode ")?;
    let (index, dir) = rest.split_once(" in ")?;
    Some((PathBuf::from(dir), index.parse().ok()?))
}

/// Every dataset a soak recorded under `out`, validated; every episode it announced as saved
/// is there.
fn check_recordings(out: &Path, announced: &[(PathBuf, u64)]) -> usize {
    let root = out.join("recordings");
    let mut datasets = 0;
    for e in std::fs::read_dir(&root).unwrap() {
        let dir = e.unwrap().path();
        if dir.join("meta/info.json").exists() {
            let n = check_dataset(&dir);
            for (_, i) in announced.iter().filter(|(d, _)| d == &dir) {
                assert!(
                    *i < n,
                    "{}: episode {i} was saved, {n} are there",
                    dir.display()
                );
            }
            datasets += 1;
        }
    }
    for (d, _) in announced {
        assert!(d.starts_with(&root), "{}", d.display());
    }
    datasets
}

fn soak_args<'a>(out: &'a str, minutes: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec![
        "soak",
        "--minutes",
        minutes,
        "--record",
        out,
        "--seed",
        seed,
        "--events-per-minute",
        "150",
        "--warmup-s",
        "5",
    ]
}

#[test]
fn the_apps_recorder_survives_failing_writes_and_the_session_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let run = limit_file_size(&mut child(&soak_args(o, "0.4", "5")), 120 * 1024)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("CLI_OK"),
        "the soak ran to its end: {stdout}"
    );
    let report = json_line(
        &stdout
            .lines()
            .filter(|l| !l.starts_with("saved episode"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let errors: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("File too large")),
        "a write failed: {report}"
    );
    assert!(
        report["steps_after_first_error"].as_u64().unwrap() > 10,
        "the session went on after the failure: {report}"
    );
    let announced: Vec<_> = stdout.lines().filter_map(saved).collect();
    assert!(!announced.is_empty(), "{stdout}");
    assert!(check_recordings(&out, &announced) >= 1);
}

#[test]
fn an_app_killed_while_recording_keeps_every_saved_episode() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let mut proc = Killed(
        child(&soak_args(o, "5", "11"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(&mut proc.0);
    let mut announced = Vec::new();
    let since = Instant::now();
    while announced.len() < 3 {
        match lines.recv_timeout(Duration::from_secs(180).saturating_sub(since.elapsed())) {
            Ok(line) => announced.extend(saved(&line)),
            Err(RecvTimeoutError::Timeout) => panic!("no 3 episodes saved in 3 minutes"),
            Err(RecvTimeoutError::Disconnected) => panic!("the soak ended: {announced:?}"),
        }
    }
    // Somewhere in the next recording's steps (or its save).
    std::thread::sleep(Duration::from_millis(
        100 + since.elapsed().subsec_millis() as u64 % 400,
    ));
    proc.0.kill().unwrap(); // SIGKILL
    proc.0.wait().unwrap();
    announced.extend(lines.try_iter().filter_map(|l| saved(&l)));
    assert!(check_recordings(&out, &announced) >= 1);
}

#[test]
fn a_short_soak_of_the_session_core_runs_every_command_without_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (ok, stdout, stderr) = run_cli(&soak_args(out.to_str().unwrap(), "0.5", "2"));
    assert!(ok, "{stdout}{stderr}");
    let report = json_line(
        &stdout
            .lines()
            .filter(|l| !l.starts_with("saved episode"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert!(report["steps"].as_u64().unwrap() > 50, "{report}");
    let commands = report["commands"].as_object().unwrap();
    for kind in ["fork", "switch", "delete", "reset", "record", "save"] {
        assert!(commands.contains_key(kind), "{kind} never ran: {report}");
    }
    let rss = &report["rss_mib"];
    assert!(rss["samples"].as_u64().unwrap() >= 25, "{report}");
    // A sanity bound (the session with the shipped model holds about 150 MiB), not a leak
    // test: BENCHMARKS.md has the hour.
    assert!(rss["max"].as_f64().unwrap() < 1024.0, "{report}");
    let announced: Vec<_> = stdout.lines().filter_map(saved).collect();
    check_recordings(&out, &announced);
}
