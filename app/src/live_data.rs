//! Training windows made by the simulator while a model trains (`dreamyard train --scene`).
//!
//! The stream is a set of lanes, one per window of a batch. Each lane plays episodes of
//! `episode_steps` steps one after the other (each from a fresh seed, driven by the policy
//! mixture) and cuts them into consecutive, non-overlapping windows: step `s` of training takes
//! lane `i`'s window number `s + offset_i`, counted over that lane's episodes, where the offsets
//! spread the lanes over the phases of an episode (so a batch mixes early and late moments).
//! Episode `k` of lane `i` is seeded from `(seed, k * lanes + i)`. So the windows of a step are
//! a function of the step alone: no window is used twice, a resumed run sees exactly what the
//! uninterrupted one did, and nothing is stored but the step the checkpoint already has.
//!
//! A worker thread makes the windows of the next steps while the trainer uses the current
//! ones; the validation episodes come from their own range of seeds.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, bail};
use dreamyard_model::config::FrameSize;
use dreamyard_model::train::{EpisodeData, TrainData, WindowStream};
use dreamyard_model::{ModelError, Result as ModelResult};
use dreamyard_scenes::policy_mix::PolicyMix;
use dreamyard_scenes::{Scene, SceneSource, builtin_toml, load_scene};
use serde_json::json;

use crate::bridge;

/// Where episode seeds of the validation set start (training episodes count up from 0).
const VALIDATION_IDS: u64 = 1 << 62;

/// Steps of windows the worker makes ahead of the trainer.
const AHEAD: usize = 2;

/// What a live stream plays: the scene, its rendering size, the policies and the seed.
#[derive(Clone, Debug)]
pub struct LiveSpec {
    /// `--scene`: a built-in name or a scene file.
    pub scene: String,
    /// Frame size (square) to render at instead of the scene file's.
    pub size: Option<u32>,
    /// The policy mixture and where it came from (`user-like` or a file path).
    pub mix: PolicyMix,
    pub mix_name: String,
    /// Seed of every episode.
    pub seed: u64,
    /// Steps (frames) per episode.
    pub episode_steps: usize,
}

impl LiveSpec {
    /// SHA-256 of the scene file's text (a built-in scene's shipped file): the stream's
    /// identity covers the physics, not only what the spec shows.
    pub fn scene_digest(&self) -> anyhow::Result<String> {
        use sha2::{Digest as _, Sha256};
        let text = match SceneSource::parse(&self.scene) {
            SceneSource::Builtin(name) => builtin_toml(&name).unwrap_or_default().to_owned(),
            SceneSource::File(path) => std::fs::read_to_string(&path).with_context(|| {
                format!("--scene {}: cannot read the scene file", path.display())
            })?,
        };
        Ok(Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// Loads the scene this spec plays.
    pub fn load(&self) -> anyhow::Result<Box<dyn Scene>> {
        Ok(load_scene(
            &SceneSource::parse(&self.scene),
            self.size.map(|s| (s, s)),
        )?)
    }
}

/// One lane-episode: `episode_steps` frames (RGB8, row-major) and the action taken at each
/// (row `t`: observation `t` and the action taken in it, as recorded datasets hold them).
fn play(scene: &mut dyn Scene, spec: &LiveSpec, id: u64) -> EpisodeData {
    let seed = episode_seed(spec.seed, id);
    let mut policy = spec.mix.policy(scene);
    policy.reset(seed);
    let mut obs = scene.reset(seed);
    let n = spec.episode_steps;
    let mut frames_hwc = Vec::with_capacity(n * obs.frame.data.len());
    let mut actions = Vec::new();
    for t in 0..n {
        let action = policy.act(&obs);
        frames_hwc.extend_from_slice(&obs.frame.data);
        actions.extend(action.to_vec());
        if t + 1 < n {
            // A scene refuses only actions outside its space, which its own policies never
            // make; such a step keeps the frame.
            if let Ok(next) = scene.step(&action) {
                obs = next;
            }
        }
    }
    EpisodeData {
        frames_hwc,
        actions,
        len: n,
    }
}

/// Episode `id`'s seed: SplitMix64 of the stream seed and the id, so neighbouring ids and seeds
/// give unrelated episodes.
fn episode_seed(seed: u64, id: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(id)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The frame size, channels, action space and fps of the model a scene trains, with no
/// episodes.
fn empty_data(scene: &dyn Scene) -> TrainData {
    let spec = scene.spec();
    TrainData {
        frame: FrameSize {
            height: spec.frame_height as usize,
            width: spec.frame_width as usize,
        },
        channels: 3,
        action: bridge::action_space_to_model(&spec.action_space),
        fps: Some(spec.fps),
        episodes: Vec::new(),
    }
}

/// The held-out episodes a live run validates on: `n` full episodes from their own seeds.
pub fn validation_data(spec: &LiveSpec, n: usize) -> anyhow::Result<TrainData> {
    let mut scene = spec.load()?;
    let mut data = empty_data(scene.as_ref());
    data.episodes = (0..n as u64)
        .map(|k| play(scene.as_mut(), spec, VALIDATION_IDS + k))
        .collect();
    Ok(data)
}

/// The lanes' layout: `lanes` windows of `len` frames per step, `per_episode` windows per
/// episode, lane `i` starting `offsets[i]` windows into its first episode.
#[derive(Clone, Debug)]
struct Layout {
    lanes: usize,
    len: usize,
    per_episode: u64,
}

impl Layout {
    /// Lane `lane`'s (episode id, window in the episode) at training step `step`.
    fn place(&self, step: u64, lane: usize) -> (u64, usize) {
        let offset = lane as u64 * self.per_episode / self.lanes as u64;
        let k = step + offset;
        let episode = k / self.per_episode;
        (
            episode * self.lanes as u64 + lane as u64,
            (k % self.per_episode) as usize,
        )
    }
}

/// The windows of steps `from`, `from + 1`, ... made on a worker thread.
#[derive(Debug)]
struct Worker {
    next: u64,
    rx: Receiver<TrainData>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Dropping the receiver makes the worker's next send fail, which ends it.
        let (_tx, rx) = sync_channel(1);
        drop(std::mem::replace(&mut self.rx, rx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The live stream (see the module docs).
#[derive(Debug)]
pub struct LiveWindows {
    spec: LiveSpec,
    layout: Layout,
    blank: TrainData,
    scene: Box<dyn Scene>,
    scene_digest: String,
    worker: Option<Worker>,
}

impl LiveWindows {
    /// A stream of `lanes` windows of `len` frames per step.
    pub fn new(spec: &LiveSpec, lanes: usize, len: usize) -> anyhow::Result<Self> {
        let scene = spec.load()?;
        let scene_digest = spec.scene_digest()?;
        if lanes == 0 || len == 0 {
            bail!("a live stream needs at least one window of at least one frame per step");
        }
        if spec.episode_steps < len {
            bail!(
                "--episode-steps {}: a training window needs {len} frames (context + rollout context + 1); give at least that",
                spec.episode_steps
            );
        }
        Ok(Self {
            layout: Layout {
                lanes,
                len,
                per_episode: (spec.episode_steps / len) as u64,
            },
            blank: empty_data(scene.as_ref()),
            scene,
            scene_digest,
            spec: spec.clone(),
            worker: None,
        })
    }

    /// The windows of step `step`, made here (what the worker runs).
    fn make(
        scene: &mut dyn Scene,
        spec: &LiveSpec,
        layout: &Layout,
        blank: &TrainData,
        cache: &mut [Option<(u64, EpisodeData)>],
        step: u64,
    ) -> TrainData {
        let fb = blank.frame.height * blank.frame.width * blank.channels;
        let aw = blank.action_width();
        let len = layout.len;
        let episodes = (0..layout.lanes)
            .map(|lane| {
                let (id, w) = layout.place(step, lane);
                if cache[lane].as_ref().is_none_or(|(have, _)| *have != id) {
                    cache[lane] = Some((id, play(scene, spec, id)));
                }
                let ep = cache[lane].as_ref().map(|(_, e)| e).expect("filled above");
                let t = w * len;
                EpisodeData {
                    frames_hwc: ep.frames_hwc[t * fb..(t + len) * fb].to_vec(),
                    actions: ep.actions[t * aw..(t + len) * aw].to_vec(),
                    len,
                }
            })
            .collect();
        TrainData {
            episodes,
            ..blank.clone()
        }
    }

    fn start_worker(&mut self, from: u64) {
        let (tx, rx): (SyncSender<TrainData>, _) = sync_channel(AHEAD);
        let mut scene = self.scene.boxed_clone();
        let (spec, layout, blank) = (self.spec.clone(), self.layout.clone(), self.blank.clone());
        let handle = std::thread::Builder::new()
            .name("live-data".into())
            .spawn(move || {
                let mut cache = vec![None; layout.lanes];
                for step in from.. {
                    let windows =
                        Self::make(scene.as_mut(), &spec, &layout, &blank, &mut cache, step);
                    if tx.send(windows).is_err() {
                        break;
                    }
                }
            })
            .ok();
        self.worker = Some(Worker {
            next: from,
            rx,
            handle,
        });
    }
}

impl WindowStream for LiveWindows {
    fn identity(&self) -> serde_json::Value {
        let s = &self.spec;
        json!({
            "scene": s.scene,
            "scene_sha256": self.scene_digest,
            "scene_spec": self.scene.spec(),
            "size": s.size,
            "policy_mix": s.mix_name,
            "policies": s.mix,
            "seed": s.seed,
            "episode_steps": s.episode_steps,
            "lanes": self.layout.lanes,
            "window": self.layout.len,
        })
    }

    fn windows(&mut self, step: u64, n: usize, len: usize) -> ModelResult<TrainData> {
        if n != self.layout.lanes || len != self.layout.len {
            return Err(ModelError::input(
                "live stream",
                format!(
                    "{} windows of {} frames",
                    self.layout.lanes, self.layout.len
                ),
                format!("a request for {n} of {len}"),
            ));
        }
        if self.worker.as_ref().is_none_or(|w| w.next != step) {
            self.start_worker(step);
        }
        let worker = self.worker.as_mut().expect("started above");
        match worker.rx.recv() {
            Ok(data) => {
                worker.next += 1;
                Ok(data)
            }
            Err(_) => {
                // The worker is gone (it could not start, or panicked): make the windows here.
                self.worker = None;
                let mut cache = vec![None; self.layout.lanes];
                Ok(Self::make(
                    self.scene.as_mut(),
                    &self.spec,
                    &self.layout,
                    &self.blank,
                    &mut cache,
                    step,
                ))
            }
        }
    }
}

/// Parses `--policy-mix`: `user-like` (the shipped mixture) or a mixture file.
pub fn policy_mix(arg: &str) -> anyhow::Result<(PolicyMix, String)> {
    if arg == "user-like" {
        return Ok((PolicyMix::user_like(), arg.to_owned()));
    }
    let path = std::path::Path::new(arg);
    let mix = PolicyMix::from_file(path).with_context(|| {
        format!("--policy-mix {arg}: not `user-like` nor a readable mixture file")
    })?;
    Ok((mix, arg.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> LiveSpec {
        LiveSpec {
            scene: "push-t".into(),
            size: Some(16),
            mix: PolicyMix::user_like(),
            mix_name: "user-like".into(),
            seed,
            episode_steps: 20,
        }
    }

    #[test]
    fn lanes_cover_every_window_once_and_spread_over_the_episode() {
        let layout = Layout {
            lanes: 3,
            len: 5,
            per_episode: 4,
        };
        let mut seen = std::collections::HashSet::new();
        for step in 0..40 {
            let phases: Vec<usize> = (0..3).map(|l| layout.place(step, l).1).collect();
            // The lanes sit at different phases of their episodes.
            assert_eq!(
                phases
                    .iter()
                    .collect::<std::collections::HashSet<_>>()
                    .len(),
                3
            );
            for lane in 0..3 {
                assert!(seen.insert(layout.place(step, lane)), "window used twice");
            }
        }
        // Each lane walks its episodes window by window; episode ids are per lane.
        assert_eq!(layout.place(0, 0), (0, 0));
        assert_eq!(layout.place(3, 0), (0, 3));
        assert_eq!(layout.place(4, 0), (3, 0));
        assert_eq!(layout.place(0, 1), (1, 1));
        assert_eq!(layout.place(2, 1), (1, 3));
        assert_eq!(layout.place(3, 1), (4, 0));
    }

    fn bytes(d: &TrainData) -> Vec<(Vec<u8>, Vec<f32>)> {
        d.episodes
            .iter()
            .map(|e| (e.frames_hwc.clone(), e.actions.clone()))
            .collect()
    }

    #[test]
    fn windows_depend_on_the_step_and_seed_only() {
        let mut a = LiveWindows::new(&spec(1), 4, 6).unwrap();
        let in_order: Vec<_> = (0..8)
            .map(|s| bytes(&a.windows(s, 4, 6).unwrap()))
            .collect();
        // A fresh stream asked for step 5 first (a resumed run) gives the same windows.
        let mut b = LiveWindows::new(&spec(1), 4, 6).unwrap();
        assert_eq!(bytes(&b.windows(5, 4, 6).unwrap()), in_order[5]);
        assert_eq!(bytes(&b.windows(6, 4, 6).unwrap()), in_order[6]);
        assert_eq!(bytes(&b.windows(2, 4, 6).unwrap()), in_order[2]);
        let d = a.windows(0, 4, 6).unwrap();
        assert_eq!(d.episodes.len(), 4);
        assert_eq!(d.episodes[0].len, 6);
        assert_eq!(d.episodes[0].frames_hwc.len(), 6 * 16 * 16 * 3);
        assert_eq!(d.episodes[0].actions.len(), 6 * 2);
        // Windows differ across lanes and steps, and with the seed.
        assert_ne!(in_order[0][0], in_order[0][1]);
        assert_ne!(in_order[0][0], in_order[1][0]);
        let mut c = LiveWindows::new(&spec(2), 4, 6).unwrap();
        assert_ne!(bytes(&c.windows(0, 4, 6).unwrap()), in_order[0]);
        // The identity names what makes the windows.
        assert_ne!(a.identity(), c.identity());
        assert_eq!(a.identity()["window"], 6);
        // Another batch shape is refused.
        assert!(a.windows(0, 3, 6).is_err());
        // A window longer than an episode is refused up front.
        let err = LiveWindows::new(&spec(1), 4, 21).err().unwrap().to_string();
        assert!(err.contains("--episode-steps 20"), "{err}");
    }

    #[test]
    fn a_window_is_a_piece_of_a_real_episode() {
        // Lane 0's first window is the start of episode 0 as the scene plays it.
        let s = spec(3);
        let mut stream = LiveWindows::new(&s, 2, 5).unwrap();
        let w = stream.windows(0, 2, 5).unwrap();
        let mut scene = s.load().unwrap();
        let ep = play(scene.as_mut(), &s, 0);
        let fb = 16 * 16 * 3;
        assert_eq!(w.episodes[0].frames_hwc, ep.frames_hwc[..5 * fb]);
        assert_eq!(w.episodes[0].actions, ep.actions[..10]);
        // The lane's next window is the next piece of the same episode.
        let next = stream.windows(1, 2, 5).unwrap();
        assert_eq!(next.episodes[0].frames_hwc, ep.frames_hwc[5 * fb..10 * fb]);
        assert_eq!(next.episodes[0].actions, ep.actions[10..20]);
        // The first frame is the scene's reset for the episode's seed.
        let first = scene.reset(episode_seed(3, 0));
        assert_eq!(&w.episodes[0].frames_hwc[..fb], &first.frame.data[..]);
        // Validation episodes are full episodes from their own seeds.
        let v = validation_data(&s, 3).unwrap();
        assert_eq!(v.episodes.len(), 3);
        assert!(v.episodes.iter().all(|e| e.len == 20));
        assert_ne!(
            v.episodes[0].frames_hwc[..fb],
            w.episodes[0].frames_hwc[..fb]
        );
    }
}
