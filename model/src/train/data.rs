//! Training data in memory: episodes of RGB8 frames with the action taken at each frame, and the
//! sampling of (context frames, context actions, next frame) windows from them.
//!
//! The caller (the app's `train` command) fills [`TrainData`] from a dataset; this module knows
//! nothing about files.

use candle_core::{DType, Device, Tensor};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::config::{ActionSpace, FrameSize};
use crate::error::{ModelError, Result};

/// One episode: `len` frames, interleaved RGB8 (height x width x channels, row-major, as images
/// are stored), and the action taken at each frame.
#[derive(Debug, Clone)]
pub struct EpisodeData {
    /// `len * h * w * c` bytes.
    pub frames_hwc: Vec<u8>,
    /// `len * dim` values (continuous) or `len` action ids (discrete, as f32).
    pub actions: Vec<f32>,
    /// Number of frames.
    pub len: usize,
}

/// Episodes that share a frame size and action space.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// Frame size.
    pub frame: FrameSize,
    /// Channels per frame.
    pub channels: usize,
    /// Action space.
    pub action: ActionSpace,
    /// Frames per second, if known.
    pub fps: Option<f64>,
    /// The episodes.
    pub episodes: Vec<EpisodeData>,
}

/// A batch of windows on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Context frames [b, T, C, h, w] in [-1, 1].
    pub obs: Tensor,
    /// Context actions [b, T] (u32) or [b, T, dim] (f32).
    pub act: Tensor,
    /// The frame after the context [b, C, h, w] in [-1, 1].
    pub next_obs: Tensor,
}

/// Where a window starts: episode and first context frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowStart {
    /// Episode index in [`TrainData::episodes`].
    pub episode: usize,
    /// First context frame.
    pub t: usize,
}

impl TrainData {
    /// Number of action components per step (1 for discrete).
    pub fn action_width(&self) -> usize {
        self.action.dim()
    }

    fn frame_bytes(&self) -> usize {
        self.frame.height * self.frame.width * self.channels
    }

    /// Checks that every episode's buffers have the sizes its length implies and that discrete
    /// ids are in range.
    pub fn validate(&self) -> Result<()> {
        let fb = self.frame_bytes();
        let aw = self.action_width();
        for (i, ep) in self.episodes.iter().enumerate() {
            if ep.frames_hwc.len() != ep.len * fb || ep.actions.len() != ep.len * aw {
                return Err(ModelError::input(
                    "training data",
                    format!(
                        "episode {i}: {} frame bytes and {} action values for {} frames",
                        ep.len * fb,
                        ep.len * aw,
                        ep.len
                    ),
                    format!("{} and {}", ep.frames_hwc.len(), ep.actions.len()),
                ));
            }
            if let ActionSpace::Discrete { num_actions } = &self.action
                && let Some(a) = ep
                    .actions
                    .iter()
                    .find(|&&a| a < 0.0 || a.fract() != 0.0 || a as usize >= *num_actions)
            {
                return Err(ModelError::input(
                    "training data",
                    format!("episode {i}: action ids in [0, {num_actions})"),
                    a.to_string(),
                ));
            }
        }
        Ok(())
    }

    /// Number of windows of `context` frames plus one target in episode `e`.
    pub fn windows_in(&self, e: usize, context: usize) -> usize {
        self.episodes
            .get(e)
            .map_or(0, |ep| ep.len.saturating_sub(context))
    }

    /// Builds the batch of the given windows on `device`.
    pub fn batch(&self, starts: &[WindowStart], context: usize, device: &Device) -> Result<Batch> {
        let b = starts.len();
        let (c, h, w) = (self.channels, self.frame.height, self.frame.width);
        let plane = h * w;
        let fb = self.frame_bytes();
        let aw = self.action_width();
        let mut obs = vec![0f32; b * context * fb];
        let mut next = vec![0f32; b * fb];
        let mut act = vec![0f32; b * context * aw];
        for (i, s) in starts.iter().enumerate() {
            let ep = self.episodes.get(s.episode).ok_or_else(|| {
                ModelError::input("window", "an episode index", s.episode.to_string())
            })?;
            if s.t + context >= ep.len {
                return Err(ModelError::input(
                    "window",
                    format!("start + {context} < episode length {}", ep.len),
                    s.t.to_string(),
                ));
            }
            for k in 0..=context {
                let src = &ep.frames_hwc[(s.t + k) * fb..(s.t + k + 1) * fb];
                let dst = if k < context {
                    &mut obs[(i * context + k) * fb..(i * context + k + 1) * fb]
                } else {
                    &mut next[i * fb..(i + 1) * fb]
                };
                hwc_to_chw_unit(src, dst, c, plane);
            }
            act[i * context * aw..(i + 1) * context * aw]
                .copy_from_slice(&ep.actions[s.t * aw..(s.t + context) * aw]);
        }
        let obs = Tensor::from_vec(obs, (b, context, c, h, w), device)?;
        let next_obs = Tensor::from_vec(next, (b, c, h, w), device)?;
        let act = match &self.action {
            ActionSpace::Discrete { .. } => {
                Tensor::from_vec(act, (b, context), device)?.to_dtype(DType::U32)?
            }
            ActionSpace::Continuous { .. } | ActionSpace::MultiHot { .. } => {
                Tensor::from_vec(act, (b, context, aw), device)?
            }
        };
        Ok(Batch { obs, act, next_obs })
    }

    /// Frames `t0..t0+n` of episode `e` as [n, C, h, w] in [-1, 1].
    pub fn frames(&self, e: usize, t0: usize, n: usize, device: &Device) -> Result<Tensor> {
        let (c, h, w) = (self.channels, self.frame.height, self.frame.width);
        let fb = self.frame_bytes();
        let ep = self
            .episodes
            .get(e)
            .ok_or_else(|| ModelError::input("episode", "an episode index", e.to_string()))?;
        if t0 + n > ep.len {
            return Err(ModelError::input(
                "frames",
                format!("frames within the episode's {}", ep.len),
                format!("{t0}..{}", t0 + n),
            ));
        }
        let mut out = vec![0f32; n * fb];
        for k in 0..n {
            let src = &ep.frames_hwc[(t0 + k) * fb..(t0 + k + 1) * fb];
            hwc_to_chw_unit(src, &mut out[k * fb..(k + 1) * fb], c, h * w);
        }
        Ok(Tensor::from_vec(out, (n, c, h, w), device)?)
    }

    /// Actions `t0..t0+n` of episode `e`: [n] (u32) or [n, dim] (f32).
    pub fn actions(&self, e: usize, t0: usize, n: usize, device: &Device) -> Result<Tensor> {
        let aw = self.action_width();
        let ep = self
            .episodes
            .get(e)
            .ok_or_else(|| ModelError::input("episode", "an episode index", e.to_string()))?;
        let slice = ep
            .actions
            .get(t0 * aw..(t0 + n) * aw)
            .ok_or_else(|| ModelError::input("actions", "a range within the episode", "beyond"))?
            .to_vec();
        Ok(match &self.action {
            ActionSpace::Discrete { .. } => {
                Tensor::from_vec(slice, n, device)?.to_dtype(DType::U32)?
            }
            ActionSpace::Continuous { .. } | ActionSpace::MultiHot { .. } => {
                Tensor::from_vec(slice, (n, aw), device)?
            }
        })
    }
}

/// Uniform sampling over every window of a set of episodes.
#[derive(Debug, Clone)]
pub struct WindowSampler {
    episodes: Vec<usize>,
    /// Cumulative window counts, one per entry of `episodes`.
    cumulative: Vec<usize>,
}

impl WindowSampler {
    /// Windows of `context` + 1 frames in `episodes` of `data`.
    pub fn new(data: &TrainData, episodes: &[usize], context: usize) -> Self {
        let mut cumulative = Vec::with_capacity(episodes.len());
        let mut total = 0;
        for &e in episodes {
            total += data.windows_in(e, context);
            cumulative.push(total);
        }
        Self {
            episodes: episodes.to_vec(),
            cumulative,
        }
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Whether there is no window at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k`-th window (in episode order).
    pub fn get(&self, k: usize) -> Option<WindowStart> {
        let i = self.cumulative.partition_point(|&c| c <= k);
        let episode = *self.episodes.get(i)?;
        let before = if i == 0 { 0 } else { self.cumulative[i - 1] };
        Some(WindowStart {
            episode,
            t: k - before,
        })
    }

    /// `n` windows drawn uniformly with replacement.
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<WindowStart> {
        let total = self.len();
        (0..n)
            .filter_map(|_| self.get(rng.random_range(0..total.max(1))))
            .collect()
    }

    /// `n` windows spread evenly over all windows (deterministic).
    pub fn spread(&self, n: usize) -> Vec<WindowStart> {
        let total = self.len();
        let n = n.min(total);
        (0..n).filter_map(|i| self.get(i * total / n)).collect()
    }
}

/// Interleaved u8 pixels -> planar f32 in [-1, 1] (`x / 255 * 2 - 1`, DIAMOND's convention).
fn hwc_to_chw_unit(src: &[u8], dst: &mut [f32], c: usize, plane: usize) {
    for (p, px) in src.chunks_exact(c).enumerate().take(plane) {
        for (ch, &v) in px.iter().enumerate() {
            dst[ch * plane + p] = f32::from(v) / 255.0 * 2.0 - 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn data() -> TrainData {
        let frame = FrameSize {
            height: 2,
            width: 2,
        };
        let ep = |len: usize, base: u8| EpisodeData {
            frames_hwc: (0..len * 12).map(|i| base.wrapping_add(i as u8)).collect(),
            actions: (0..len * 2).map(|i| i as f32).collect(),
            len,
        };
        TrainData {
            frame,
            channels: 3,
            action: ActionSpace::Continuous {
                dim: 2,
                low: vec![0.0, 0.0],
                high: vec![1.0, 1.0],
            },
            fps: None,
            episodes: vec![ep(6, 0), ep(4, 100), ep(7, 200)],
        }
    }

    #[test]
    fn windows_cover_every_start_once() {
        let d = data();
        let s = WindowSampler::new(&d, &[0, 2], 4);
        assert_eq!(s.len(), 2 + 3);
        let all: Vec<_> = (0..s.len()).filter_map(|k| s.get(k)).collect();
        assert_eq!(all[0], WindowStart { episode: 0, t: 0 });
        assert_eq!(all[1], WindowStart { episode: 0, t: 1 });
        assert_eq!(all[2], WindowStart { episode: 2, t: 0 });
        assert_eq!(all[4], WindowStart { episode: 2, t: 2 });
        assert_eq!(s.get(5), None);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(s.sample(50, &mut rng).iter().all(|w| w.episode != 1));
    }

    #[test]
    fn batch_layout_is_planar_and_aligned() {
        let d = data();
        let b = d
            .batch(&[WindowStart { episode: 1, t: 0 }], 3, &Device::Cpu)
            .unwrap();
        assert_eq!(b.obs.dims(), &[1, 3, 3, 2, 2]);
        // Frame 0 of episode 1, channel 1, pixel 0 is byte 100 + 1.
        let v: Vec<f32> = b.obs.flatten_all().unwrap().to_vec1().unwrap();
        assert!((v[4] - (101.0 / 255.0 * 2.0 - 1.0)).abs() < 1e-6);
        // The target is frame 3; its first byte is 100 + 36.
        let n: Vec<f32> = b.next_obs.flatten_all().unwrap().to_vec1().unwrap();
        assert!((n[0] - (136.0 / 255.0 * 2.0 - 1.0)).abs() < 1e-6);
        let a: Vec<f32> = b.act.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(
            d.batch(&[WindowStart { episode: 1, t: 1 }], 3, &Device::Cpu)
                .is_err()
        );
    }
}
