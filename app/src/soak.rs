//! `dreamyard soak`: the session core driven headless for a while as a person drives the app
//! (play with a moving target, fork, switch and delete branches, scrub, reset, undo, a new
//! episode, re-anchor, record / save / discard / stop), through the same commands the UI
//! pushes, at the pace the app plays (`steps_per_sec`, the model's own speed when slower).
//! The process's resident memory is sampled; the report says how it grew after a warm-up.
//! The tests run it for seconds (and kill it while it records); BENCHMARKS.md has an hour.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use dreamyard_scenes::ActionSpace;
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::commands::{self, Command, Outputs};
use crate::controls::ActionPad;
use crate::launch::{self, ModelRequest};
use crate::session::{Level, Session, SessionConfig};

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// How long to drive the session, in minutes (fractions too: 0.25 is 15 s).
    #[arg(long, default_value_t = 1.0)]
    pub minutes: f64,
    /// The live scene beside the model (a built-in name or a scene file).
    #[arg(long, default_value = "push-t")]
    pub scene: String,
    /// The model [default: the scene's shipped model].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Where the model runs (as the app's `--device`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Seed of the scene, the sampler and the driver's choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Record too: datasets go to `DIR/recordings/...`, as the app's Record puts them under
    /// its output folder. Each saved episode is announced on stdout as it is committed.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// How often the scripted person does something besides playing (fork, record, ...):
    /// intervals are drawn uniformly between a quarter and 1.75 times the mean.
    #[arg(long, default_value_t = 30.0)]
    pub events_per_minute: f64,
    /// Seconds at the start left out of the growth figure: the undo history, the branches'
    /// kept rollout states, recordings' buffers and the allocator's arenas fill up over the
    /// first minutes (an hour with the shipped push-t model: 76 MiB at the start, 237 MiB
    /// after 7.5 minutes, then flat).
    #[arg(long, default_value_t = 600.0)]
    pub warmup_s: f64,
    /// Seconds between memory samples.
    #[arg(long, default_value_t = 1.0)]
    pub sample_s: f64,
    /// Also write every sample (seconds, RSS in MiB, steps) as a JSON line to this file.
    #[arg(long, value_name = "FILE")]
    pub samples: Option<PathBuf>,
}

/// What a soak did and how memory went; printed as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub seconds: f64,
    pub steps: usize,
    pub steps_per_s: f64,
    /// Commands carried out, by kind.
    pub commands: std::collections::BTreeMap<&'static str, usize>,
    pub episodes_saved: usize,
    /// Distinct error notices, in the order first said (at most 20).
    pub errors: Vec<String>,
    /// Steps taken after the first error notice: the session went on.
    pub steps_after_first_error: usize,
    pub rss_mib: RssFigures,
}

#[derive(Debug, Clone, Serialize)]
pub struct RssFigures {
    pub start: f64,
    /// Median of the first tenth of the samples after the warm-up.
    pub after_warmup: f64,
    /// Median of the last tenth of the samples.
    pub end: f64,
    pub max: f64,
    /// `end` over `after_warmup`, in percent (positive: grew).
    pub growth_pct: f64,
    pub samples: usize,
}

pub fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let report = soak(args)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Drives a session for `args.minutes`; see the module docs.
pub fn soak(args: &SoakArgs) -> anyhow::Result<SoakReport> {
    if !(args.minutes.is_finite() && args.minutes > 0.0) {
        bail!(
            "--minutes: expected a positive number, found {}",
            args.minutes
        );
    }
    if !(args.events_per_minute.is_finite() && args.events_per_minute > 0.0) {
        bail!(
            "--events-per-minute: expected a positive number, found {}",
            args.events_per_minute
        );
    }
    let mean_ms = 60_000.0 / args.events_per_minute;
    let model = match &args.model {
        Some(m) => m.clone(),
        None => launch::shipped_model(&args.scene)
            .unwrap_or_else(|| launch::resolve(std::path::Path::new(launch::DEFAULT_MODEL_DIR))),
    };
    let mut session = Session::new(SessionConfig {
        seed: args.seed,
        ..SessionConfig::default()
    });
    let request = ModelRequest {
        path: model.clone(),
        config: None,
        device: args.device.clone(),
        dtype: dreamyard_model::candle_core::DType::F32,
    };
    if !launch::load_model(&mut session, &request) {
        bail!("{}: {}", model.display(), last_error(&session));
    }
    let loading = Instant::now();
    while session.model_loading().is_some() {
        commands::poll(&mut session);
        if loading.elapsed() > Duration::from_secs(600) {
            bail!("{}: the model did not load in 10 minutes", model.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if session.model_info().is_none() {
        bail!("{}: {}", model.display(), last_error(&session));
    }
    if !launch::open_scene(&mut session, &args.scene) {
        bail!("scene {}: {}", args.scene, last_error(&session));
    }
    let space = session
        .action_space()
        .cloned()
        .context("the scene has no action space")?;
    let mut outputs = Outputs {
        root: args.record.clone().unwrap_or_else(|| PathBuf::from(".")),
        device: args.device.clone(),
        dtype: dreamyard_model::candle_core::DType::F32,
        model: Some((model, None)),
    };
    let mut samples_out = match &args.samples {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        )),
        None => None,
    };

    let mut driver = Driver::new(args.seed, space);
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.minutes * 60.0);
    let mut rss: Vec<(f64, f64)> = Vec::new();
    let mut next_sample = started;
    let mut next_event = started + Duration::from_secs(2);
    commands::apply(&mut session, &mut outputs, Command::SetPlaying(true));
    while Instant::now() < end {
        let frame_start = Instant::now();
        commands::poll(&mut session);
        // Between steps, as a person's click lands between the frames they watch (one while
        // the model computes is refused by design, and would only count as an error here).
        if frame_start >= next_event && !session.is_pending() {
            driver.act(&mut session, &mut outputs, args.record.is_some());
            let wait = driver.rng.random_range(0.25 * mean_ms..1.75 * mean_ms);
            next_event = frame_start + Duration::from_secs_f64(wait / 1000.0);
        }
        driver.move_target(frame_start.duration_since(started).as_secs_f32());
        if commands::tick(&mut session, frame_start, &driver.pad.action()) {
            driver.steps += 1;
            if driver.first_error.is_some() {
                driver.steps_after_error += 1;
            }
        }
        driver.collect_errors(&session);
        if frame_start >= next_sample {
            let t = frame_start.duration_since(started).as_secs_f64();
            let mib = rss_mib()?;
            rss.push((t, mib));
            if let Some(out) = samples_out.as_mut() {
                writeln!(
                    out,
                    "{{\"t\":{t:.1},\"rss_mib\":{mib:.2},\"steps\":{}}}",
                    driver.steps
                )?;
                out.flush()?;
            }
            next_sample += Duration::from_secs_f64(args.sample_s.max(0.05));
        }
        // The app's frame: about 60 per second.
        let spent = frame_start.elapsed();
        if let Some(rest) = Duration::from_millis(16).checked_sub(spent) {
            std::thread::sleep(rest);
        }
    }
    // Ends as a person would: a recording is stopped (its episode saved).
    if session.recording().is_some() {
        session.wait_idle(Duration::from_secs(60));
        commands::apply(&mut session, &mut outputs, Command::StopRecording);
        driver.collect_errors(&session);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(SoakReport {
        seconds,
        steps: driver.steps,
        steps_per_s: driver.steps as f64 / seconds,
        commands: driver.counts,
        episodes_saved: driver.saved,
        errors: driver.errors,
        steps_after_first_error: driver.steps_after_error,
        rss_mib: figures(&rss, args.warmup_s),
    })
}

/// The scripted person: where the target goes and what they do next.
struct Driver {
    rng: ChaCha8Rng,
    pad: ActionPad,
    steps: usize,
    steps_after_error: usize,
    counts: std::collections::BTreeMap<&'static str, usize>,
    saved: usize,
    errors: Vec<String>,
    first_error: Option<Instant>,
    /// Error notices already counted (by text and count).
    seen: std::collections::HashMap<String, u32>,
    phase: f32,
}

impl Driver {
    fn new(seed: u64, space: ActionSpace) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x50a4),
            pad: ActionPad::new(space),
            steps: 0,
            steps_after_error: 0,
            counts: Default::default(),
            saved: 0,
            errors: Vec::new(),
            first_error: None,
            seen: Default::default(),
            phase: 0.0,
        }
    }

    /// The 2-D target circles the frame (a discrete action changes now and then).
    fn move_target(&mut self, t: f32) {
        if self.pad.is_planar() {
            let a = t * 0.7 + self.phase;
            self.pad
                .set_from_uv([0.5 + 0.3 * a.cos(), 0.5 + 0.25 * (1.3 * a).sin()]);
        } else if self.rng.random_range(0..30) == 0 {
            let n = match &self.pad.space {
                ActionSpace::Discrete { names } => names.len().max(1),
                ActionSpace::Continuous { .. } => 1,
            };
            self.pad.choose(self.rng.random_range(0..n));
        }
    }

    /// One thing a person does between watching steps.
    fn act(&mut self, session: &mut Session, outputs: &mut Outputs, record: bool) {
        let head = session.active_branch().steps.len().saturating_sub(1);
        let (name, cmd) = match self.rng.random_range(0..100) {
            0..12 => ("fork", Command::Fork(self.rng.random_range(0..=head))),
            12..22 => {
                let branches = session.branches();
                let pick = &branches[self.rng.random_range(0..branches.len())];
                ("switch", Command::SwitchBranch(pick.id))
            }
            22..32 => {
                let active = session.active_id();
                let others: Vec<_> = session
                    .branches()
                    .iter()
                    .map(|b| b.id)
                    .filter(|&id| id != active)
                    .collect();
                if others.is_empty() {
                    // Nothing else to delete: a fork that is then thrown away.
                    *self.counts.entry("fork").or_default() += 1;
                    commands::apply(session, outputs, Command::Fork(head));
                    ("delete", Command::DeleteBranch(session.active_id()))
                } else {
                    let id = others[self.rng.random_range(0..others.len())];
                    ("delete", Command::DeleteBranch(id))
                }
            }
            32..40 => ("scrub", Command::Scrub(self.rng.random_range(0..=head))),
            40..48 => ("reset", Command::Reset),
            48..52 => ("undo", Command::Undo),
            52..56 => ("new episode", Command::NewEpisode),
            56..62 => ("re-anchor", Command::ResyncNow),
            62..66 => {
                let mut config = session.config.clone();
                config.anchor_every = [0, 4, 8][self.rng.random_range(0..3)];
                ("settings", Command::SetConfig(config))
            }
            66..70 => ("pause", Command::SetPlaying(false)),
            70..100 if record => self.recording_command(session),
            _ => ("play", Command::SetPlaying(true)),
        };
        *self.counts.entry(name).or_default() += 1;
        if name == "save" {
            // As Command::SaveEpisode, but the index is announced (the kill test reads it).
            match session.save_episode() {
                Ok(i) => {
                    self.saved += 1;
                    let dir = session.recording().and_then(|r| r.path);
                    println!(
                        "saved episode {i} in {}",
                        dir.map_or_else(String::new, |d| d.display().to_string())
                    );
                    let _ = std::io::stdout().flush();
                }
                Err(e) => session.notify(Level::Error, e),
            }
        } else {
            commands::apply(session, outputs, cmd);
        }
        // Play goes on after every command but a pause (half of the time a person pauses,
        // they play again at the next event).
        if name != "pause" {
            session.transport.playing = true;
        }
        if self.rng.random_range(0..4) == 0 {
            self.phase = self.rng.random_range(0.0..std::f32::consts::TAU);
        }
    }

    fn recording_command(&mut self, session: &Session) -> (&'static str, Command) {
        let Some(status) = session.recording() else {
            return ("record", Command::StartRecording { video: false });
        };
        match self.rng.random_range(0..10) {
            _ if status.rows == 0 => ("play", Command::SetPlaying(true)),
            0..6 => ("save", Command::SaveEpisode),
            6..8 => ("discard", Command::DiscardEpisode),
            _ => ("stop recording", Command::StopRecording),
        }
    }

    fn collect_errors(&mut self, session: &Session) {
        for n in session.notices().iter().filter(|n| n.level == Level::Error) {
            if self.seen.get(&n.text) == Some(&n.count) {
                continue;
            }
            self.seen.insert(n.text.clone(), n.count);
            self.first_error.get_or_insert_with(Instant::now);
            if self.errors.len() < 20 && !self.errors.contains(&n.text) {
                self.errors.push(n.text.clone());
            }
        }
    }
}

fn last_error(session: &Session) -> String {
    session
        .notices()
        .iter()
        .rev()
        .find(|n| n.level == Level::Error)
        .map_or_else(
            || "failed (no notice said why)".to_owned(),
            |n| n.text.clone(),
        )
}

/// This process's resident set size, MiB, as the app's HUD reads it (`device::device_memory`).
fn rss_mib() -> anyhow::Result<f64> {
    let memory = crate::device::device_memory(&dreamyard_model::candle_core::Device::Cpu)
        .context("this platform does not report the process's resident memory (the soak reads Linux's /proc)")?;
    Ok(memory.used as f64 / (1024.0 * 1024.0))
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Figures from `(seconds, MiB)` samples, the first `warmup_s` left out of the growth.
fn figures(samples: &[(f64, f64)], warmup_s: f64) -> RssFigures {
    let after: Vec<f64> = samples
        .iter()
        .filter(|(t, _)| *t >= warmup_s)
        .map(|&(_, m)| m)
        .collect();
    let tenth = (after.len() / 10).max(1).min(after.len());
    let early = median(&mut after[..tenth].to_vec());
    let late = median(&mut after[after.len() - tenth..].to_vec());
    RssFigures {
        start: samples.first().map_or(f64::NAN, |s| s.1),
        after_warmup: early,
        end: late,
        max: samples.iter().map(|s| s.1).fold(f64::NAN, f64::max),
        growth_pct: (late / early - 1.0) * 100.0,
        samples: samples.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_measured_after_the_warm_up_from_medians() {
        let samples: Vec<(f64, f64)> = (0..100)
            .map(|i| {
                (
                    i as f64,
                    if i < 10 {
                        50.0
                    } else {
                        100.0 + (i >= 90) as u8 as f64 * 10.0
                    },
                )
            })
            .collect();
        let f = figures(&samples, 10.0);
        assert_eq!(
            (f.start, f.after_warmup, f.end, f.max),
            (50.0, 100.0, 110.0, 110.0)
        );
        assert!((f.growth_pct - 10.0).abs() < 1e-9);
        assert_eq!(f.samples, 100);
    }
}
