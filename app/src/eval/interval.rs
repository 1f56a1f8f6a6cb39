//! Confidence intervals of an evaluation's per-step means: a percentile bootstrap that resamples
//! whole episodes.
//!
//! Windows of one episode share its scene and its policy, so their scores are correlated; a
//! bootstrap over windows would give intervals that are too narrow. Each resample draws as many
//! episodes as the evaluation has, with replacement, and takes every window of each draw. The
//! same draws serve every step and metric, and the model's gain over copy-last is paired per
//! window. Draws come from a generator seeded by the protocol's seed, so a merged shard report
//! gets the intervals of a single run.

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::WindowRecord;

/// Bootstrap resamples per report.
pub const RESAMPLES: usize = 2000;
/// Coverage of the intervals.
pub const COVERAGE: f64 = 0.95;

/// 95 % intervals `[low, high]` of one step's model means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepIntervals {
    /// Mean PSNR (dB) of the model.
    pub psnr: [f64; 2],
    /// Mean PSNR gain (dB) of the model over the copy-last-frame baseline, window by window.
    pub psnr_gain: [f64; 2],
    /// Mean mask IoU of the model per object (objects scored in no window are left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub iou: BTreeMap<String, [f64; 2]>,
    /// The physics means (see `physics.rs`) and the action-response ratios, per key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub physics: BTreeMap<String, [f64; 2]>,
}

/// Ratios of two physics means the report derives: `(name, numerator key, denominator key)`.
pub const RATIOS: [(&str, &str, &str); 2] = [
    (
        "response.pixel_ratio",
        "response.model_px",
        "response.world_px",
    ),
    (
        "response.pose_ratio",
        "response.model_pose",
        "response.world_pose",
    ),
];

/// Sums over one episode's windows at one step.
#[derive(Debug, Clone, Default)]
struct Sums {
    windows: f64,
    psnr: f64,
    gain: f64,
    /// Per object: sum of IoU and the windows where it is defined.
    iou: Vec<(f64, f64)>,
    /// Per physics key: sum and the windows where it is defined.
    physics: Vec<(f64, f64)>,
}

/// Per-step intervals of `records` (one entry per step of `horizon`), or `None` when the
/// windows come from fewer than two episodes and resampling episodes would say nothing.
pub fn step_intervals(
    records: &[WindowRecord],
    objects: &[String],
    horizon: usize,
    seed: u64,
) -> Option<Vec<StepIntervals>> {
    let mut episodes: Vec<u64> = records.iter().map(|r| r.window.episode).collect();
    episodes.sort_unstable();
    episodes.dedup();
    if episodes.len() < 2 {
        return None;
    }
    let keys = super::physics::physics_keys(records);
    let empty = || Sums {
        iou: vec![(0.0, 0.0); objects.len()],
        physics: vec![(0.0, 0.0); keys.len()],
        ..Sums::default()
    };
    // sums[episode][step]
    let mut sums = vec![vec![empty(); horizon]; episodes.len()];
    for r in records {
        let Ok(e) = episodes.binary_search(&r.window.episode) else {
            continue;
        };
        for (h, s) in sums[e].iter_mut().enumerate() {
            let (Some(m), Some(b)) = (r.model.get(h), r.baseline.get(h)) else {
                continue;
            };
            s.windows += 1.0;
            s.psnr += m.psnr;
            s.gain += m.psnr - b.psnr;
            for (slot, v) in s.iou.iter_mut().zip(&m.iou) {
                if let Some(v) = v {
                    slot.0 += v;
                    slot.1 += 1.0;
                }
            }
            for (slot, key) in s.physics.iter_mut().zip(&keys) {
                if let Some(Some(v)) = r.physics.get(*key).and_then(|vals| vals.get(h)) {
                    slot.0 += v;
                    slot.1 += 1.0;
                }
            }
        }
    }
    let ratios: Vec<(&str, usize, usize)> = RATIOS
        .iter()
        .filter_map(|(name, num, den)| {
            let at = |k: &str| keys.iter().position(|key| key.as_str() == k);
            Some((*name, at(num)?, at(den)?))
        })
        .collect();

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = episodes.len();
    let draws: Vec<Vec<usize>> = (0..RESAMPLES)
        .map(|_| (0..n).map(|_| rng.random_range(0..n)).collect())
        .collect();
    let out = (0..horizon)
        .map(|h| {
            let mut psnr = Vec::with_capacity(RESAMPLES);
            let mut gain = Vec::with_capacity(RESAMPLES);
            let mut iou = vec![Vec::with_capacity(RESAMPLES); objects.len()];
            let mut phys = vec![Vec::with_capacity(RESAMPLES); keys.len()];
            let mut ratio = vec![Vec::with_capacity(RESAMPLES); ratios.len()];
            for draw in &draws {
                let mut total = empty();
                for &e in draw {
                    let s = &sums[e][h];
                    total.windows += s.windows;
                    total.psnr += s.psnr;
                    total.gain += s.gain;
                    for (t, v) in total.iou.iter_mut().zip(&s.iou) {
                        t.0 += v.0;
                        t.1 += v.1;
                    }
                    for (t, v) in total.physics.iter_mut().zip(&s.physics) {
                        t.0 += v.0;
                        t.1 += v.1;
                    }
                }
                for (values, t) in phys.iter_mut().zip(&total.physics) {
                    if t.1 > 0.0 {
                        values.push(t.0 / t.1);
                    }
                }
                for (values, &(_, num, den)) in ratio.iter_mut().zip(&ratios) {
                    let (n, d) = (total.physics[num], total.physics[den]);
                    if n.1 > 0.0 && d.1 > 0.0 && d.0 > 0.0 {
                        values.push((n.0 / n.1) / (d.0 / d.1));
                    }
                }
                if total.windows > 0.0 {
                    psnr.push(total.psnr / total.windows);
                    gain.push(total.gain / total.windows);
                }
                for (values, t) in iou.iter_mut().zip(&total.iou) {
                    if t.1 > 0.0 {
                        values.push(t.0 / t.1);
                    }
                }
            }
            StepIntervals {
                psnr: percentile_interval(&mut psnr),
                psnr_gain: percentile_interval(&mut gain),
                iou: objects
                    .iter()
                    .zip(iou.iter_mut())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(o, v)| (o.clone(), percentile_interval(v)))
                    .collect(),
                physics: keys
                    .iter()
                    .map(|k| k.as_str())
                    .zip(phys.iter_mut())
                    .chain(ratios.iter().map(|r| r.0).zip(ratio.iter_mut()))
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.to_owned(), percentile_interval(v)))
                    .collect(),
            }
        })
        .collect();
    Some(out)
}

/// The central [`COVERAGE`] interval of `values` (sorted in place); NaN for no values.
fn percentile_interval(values: &mut [f64]) -> [f64; 2] {
    if values.is_empty() {
        return [f64::NAN, f64::NAN];
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - COVERAGE) / 2.0;
    let last = values.len() - 1;
    let at = |q: f64| values[((q * last as f64).round() as usize).min(last)];
    [at(tail), at(1.0 - tail)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::eval::{FrameMetrics, Window};

    fn metrics(psnr: f64, iou: Option<f64>) -> FrameMetrics {
        FrameMetrics {
            psnr,
            ssim: 0.9,
            iou: vec![iou],
        }
    }

    /// A window of `episode` whose model scores `psnr` (IoU `iou`) against a baseline 2 dB lower
    /// at every one of 2 steps.
    fn window(id: usize, episode: u64, psnr: f64, iou: Option<f64>) -> WindowRecord {
        WindowRecord {
            window: Window {
                id,
                episode,
                start: 0,
            },
            model: vec![metrics(psnr, iou); 2],
            best_of_k: None,
            baseline: vec![metrics(psnr - 2.0, iou); 2],
            teacher_forced: None,
            physics: BTreeMap::new(),
        }
    }

    #[test]
    fn intervals_hold_the_mean_and_widen_with_the_spread_between_episodes() {
        let objects = vec!["block".to_owned()];
        let tight: Vec<WindowRecord> = (0..20)
            .map(|i| window(i, i as u64 / 2, 30.0 + (i % 3) as f64 * 0.1, Some(0.5)))
            .collect();
        let wide: Vec<WindowRecord> = (0..20)
            .map(|i| window(i, i as u64 / 2, 20.0 + (i / 2) as f64 * 2.0, Some(0.5)))
            .collect();
        let t = step_intervals(&tight, &objects, 2, 0).unwrap();
        let w = step_intervals(&wide, &objects, 2, 0).unwrap();
        assert_eq!(t.len(), 2);
        let mean = |rs: &[WindowRecord]| rs.iter().map(|r| r.model[0].psnr).sum::<f64>() / 20.0;
        for (iv, m) in [(&t[0], mean(&tight)), (&w[0], mean(&wide))] {
            assert!(iv.psnr[0] < m && m < iv.psnr[1], "{:?} around {m}", iv.psnr);
        }
        assert!(t[0].psnr[1] - t[0].psnr[0] < 0.2, "{:?}", t[0].psnr);
        assert!(w[0].psnr[1] - w[0].psnr[0] > 4.0, "{:?}", w[0].psnr);
        // The gain is paired per window: exactly 2 dB in every resample.
        assert_eq!(w[1].psnr_gain, [2.0, 2.0]);
        // Every window has IoU 0.5.
        assert_eq!(w[0].iou["block"], [0.5, 0.5]);
    }

    #[test]
    fn episodes_are_resampled_whole_and_undefined_iou_is_skipped() {
        // Two episodes: one of 10 windows at 10 dB, one of 1 window at 40 dB. Resampling
        // episodes gives means of 10, 40 or (100 + 40) / 11 only; resampling windows would give
        // many others.
        let objects = vec!["block".to_owned()];
        let mut records: Vec<WindowRecord> = (0..10).map(|i| window(i, 3, 10.0, None)).collect();
        records.push(window(10, 8, 40.0, Some(0.25)));
        let iv = step_intervals(&records, &objects, 2, 7).unwrap();
        let allowed = [10.0, 40.0, 140.0 / 11.0];
        for v in iv[0].psnr {
            assert!(
                allowed.iter().any(|a| (a - v).abs() < 1e-9),
                "{v} is no episode mean"
            );
        }
        // The IoU is defined only in episode 8's window.
        assert_eq!(iv[0].iou["block"], [0.25, 0.25]);
    }

    #[test]
    fn one_episode_gives_no_interval_and_the_seed_fixes_the_draws() {
        let objects = vec!["block".to_owned()];
        let one: Vec<WindowRecord> = (0..5)
            .map(|i| window(i, 4, 20.0 + i as f64, None))
            .collect();
        assert!(step_intervals(&one, &objects, 2, 0).is_none());
        let many: Vec<WindowRecord> = (0..12)
            .map(|i| window(i, i as u64 % 5, 20.0 + i as f64, None))
            .collect();
        assert_eq!(
            step_intervals(&many, &objects, 2, 1),
            step_intervals(&many, &objects, 2, 1)
        );
    }
}
