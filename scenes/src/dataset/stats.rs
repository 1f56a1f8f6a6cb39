//! Feature statistics as LeRobot computes them (`lerobot/datasets/compute_stats.py`):
//! min, max, mean, std (population), count and the q01/q10/q50/q90/q99 quantiles from a
//! 5000-bin histogram; images per channel over a sample of frames, scaled to [0, 1] and
//! shaped (3, 1, 1); episodes aggregated with count-weighted means, the parallel variance
//! formula and a conservative envelope for quantiles.

use serde_json::{Value, json};

/// `DEFAULT_QUANTILES` and their keys.
pub const QUANTILES: [(f64, &str); 5] = [
    (0.01, "q01"),
    (0.10, "q10"),
    (0.50, "q50"),
    (0.90, "q90"),
    (0.99, "q99"),
];
/// Every statistic's key, in LeRobot's order.
pub const STAT_KEYS: [&str; 10] = [
    "min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99",
];
const NUM_BINS: usize = 5000;

/// How a feature's statistics are shaped in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsShape {
    /// One value per vector element: `[d]` (a scalar feature has `d = 1`).
    Vector,
    /// One value per image channel: `[c][1][1]`.
    Image,
}

/// Statistics of one feature. Every per-element list has the same length.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureStats {
    pub shape: StatsShape,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub count: u64,
    /// In the order of [`QUANTILES`].
    pub quantiles: [Vec<f64>; 5],
}

impl FeatureStats {
    /// Statistics of `rows` vectors of `dim` values (row-major), as `get_feature_stats(axis=0)`.
    pub fn of_vectors(values: &[f64], dim: usize) -> Self {
        let rows = values.len().checked_div(dim).unwrap_or(0);
        let mut s = column_stats(values, dim, rows);
        s.count = rows as u64;
        s
    }

    /// Statistics of RGB8 frames as LeRobot's image stats: frames sampled as
    /// `sample_indices`, downsampled when 300 pixels or larger, per channel over all pixels
    /// of the sample, divided by 255; `count` is the number of sampled frames.
    pub fn of_images(frames: &[&[u8]], width: usize, height: usize) -> Self {
        let picked = sample_indices(frames.len());
        let (step, w_out, h_out) = downsample(width, height);
        let mut pixels = Vec::with_capacity(picked.len() * w_out * h_out * 3);
        for &i in &picked {
            let data = frames[i];
            for y in (0..height).step_by(step) {
                for x in (0..width).step_by(step) {
                    let p = 3 * (y * width + x);
                    if let Some(rgb) = data.get(p..p + 3) {
                        pixels.extend(rgb.iter().map(|&v| f64::from(v)));
                    }
                }
            }
        }
        let rows = pixels.len() / 3;
        let mut s = column_stats(&pixels, 3, rows);
        let scale = |v: &mut Vec<f64>| v.iter_mut().for_each(|x| *x /= 255.0);
        scale(&mut s.min);
        scale(&mut s.max);
        scale(&mut s.mean);
        scale(&mut s.std);
        s.quantiles.iter_mut().for_each(scale);
        s.shape = StatsShape::Image;
        s.count = picked.len() as u64;
        s
    }

    /// `aggregate_feature_stats`: statistics of the union of the parts.
    pub fn aggregate(parts: &[&Self]) -> Option<Self> {
        let first = parts.first()?;
        let dim = first.mean.len();
        if parts.iter().any(|p| p.mean.len() != dim) {
            return None;
        }
        let total: u64 = parts.iter().map(|p| p.count).sum();
        let total_f = total as f64;
        let mut mean = vec![0.0; dim];
        for p in parts {
            for (m, v) in mean.iter_mut().zip(&p.mean) {
                *m += v * p.count as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= total_f);
        let mut var = vec![0.0; dim];
        for p in parts {
            for j in 0..dim {
                let d = p.mean[j] - mean[j];
                var[j] += (p.std[j] * p.std[j] + d * d) * p.count as f64;
            }
        }
        let fold = |get: fn(&Self) -> &Vec<f64>, pick: fn(f64, f64) -> f64| {
            (0..dim)
                .map(|j| {
                    parts
                        .iter()
                        .map(|p| get(p)[j])
                        .reduce(pick)
                        .unwrap_or(f64::NAN)
                })
                .collect::<Vec<_>>()
        };
        let quantiles = std::array::from_fn(|qi| {
            let low = QUANTILES[qi].0 <= 0.5;
            (0..dim)
                .map(|j| {
                    let values = parts.iter().map(|p| p.quantiles[qi][j]);
                    if low {
                        values.fold(f64::INFINITY, f64::min)
                    } else {
                        values.fold(f64::NEG_INFINITY, f64::max)
                    }
                })
                .collect()
        });
        Some(Self {
            shape: first.shape,
            min: fold(|p| &p.min, f64::min),
            max: fold(|p| &p.max, f64::max),
            mean,
            std: var.iter().map(|v| (v / total_f).sqrt()).collect(),
            count: total,
            quantiles,
        })
    }

    /// The values of statistic `key` (one of [`STAT_KEYS`] other than `count`).
    pub fn values(&self, key: &str) -> Option<&[f64]> {
        Some(match key {
            "min" => &self.min,
            "max" => &self.max,
            "mean" => &self.mean,
            "std" => &self.std,
            _ => {
                let i = QUANTILES.iter().position(|(_, k)| *k == key)?;
                &self.quantiles[i]
            }
        })
    }

    pub fn values_mut(&mut self, key: &str) -> Option<&mut Vec<f64>> {
        Some(match key {
            "min" => &mut self.min,
            "max" => &mut self.max,
            "mean" => &mut self.mean,
            "std" => &mut self.std,
            _ => {
                let i = QUANTILES.iter().position(|(_, k)| *k == key)?;
                &mut self.quantiles[i]
            }
        })
    }

    /// The JSON object `stats.json` holds for this feature.
    pub fn to_json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        for key in STAT_KEYS {
            let v = if key == "count" {
                json!([self.count])
            } else {
                self.shaped(self.values(key).unwrap_or(&[]))
            };
            obj.insert(key.to_owned(), v);
        }
        Value::Object(obj)
    }

    pub fn shaped(&self, values: &[f64]) -> Value {
        match self.shape {
            StatsShape::Vector => json!(values.iter().map(|&v| finite(v)).collect::<Vec<_>>()),
            StatsShape::Image => json!(
                values
                    .iter()
                    .map(|&v| json!([[finite(v)]]))
                    .collect::<Vec<_>>()
            ),
        }
    }
}

/// JSON has no NaN; a statistic that is not finite (an empty feature) is written as null.
fn finite(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// Per-column statistics of a `rows x dim` matrix (count left to the caller).
fn column_stats(values: &[f64], dim: usize, rows: usize) -> FeatureStats {
    let col = |j: usize| (0..rows).map(move |i| values[i * dim + j]);
    let mut s = FeatureStats {
        shape: StatsShape::Vector,
        min: Vec::with_capacity(dim),
        max: Vec::with_capacity(dim),
        mean: Vec::with_capacity(dim),
        std: Vec::with_capacity(dim),
        count: rows as u64,
        quantiles: Default::default(),
    };
    for j in 0..dim {
        let (lo, hi) = col(j).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let n = rows as f64;
        let mean = col(j).sum::<f64>() / n;
        let std = if rows < 2 {
            // `_compute_basic_stats`: np.std.
            (col(j).map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
        } else {
            // `RunningQuantileStats`: mean of squares minus squared mean.
            let mean_sq = col(j).map(|v| v * v).sum::<f64>() / n;
            (mean_sq - mean * mean).max(0.0).sqrt()
        };
        s.min.push(lo);
        s.max.push(hi);
        s.mean.push(mean);
        s.std.push(std);
        if rows < 2 {
            // Too few samples for a histogram: quantiles are the mean.
            for q in &mut s.quantiles {
                q.push(mean);
            }
        } else {
            let column: Vec<f64> = col(j).collect();
            let qs = histogram_quantiles(&column, lo, hi);
            for (q, v) in s.quantiles.iter_mut().zip(qs) {
                q.push(v);
            }
        }
    }
    s
}

/// `RunningQuantileStats._compute_quantiles` for one batch: a histogram over
/// `linspace(min - 1e-10, max + 1e-10, 5001)`, interpolated within the bin that reaches
/// `q * count`.
fn histogram_quantiles(values: &[f64], lo: f64, hi: f64) -> [f64; 5] {
    let first = lo - 1e-10;
    let last = hi + 1e-10;
    let step = (last - first) / NUM_BINS as f64;
    let edge = |i: usize| {
        if i == NUM_BINS {
            last
        } else {
            first + i as f64 * step
        }
    };
    let mut hist = vec![0u64; NUM_BINS];
    for &v in values {
        // np.histogram: bins are [e_i, e_{i+1}), the last one closed.
        let mut i = (((v - first) / step) as usize).min(NUM_BINS - 1);
        while i > 0 && v < edge(i) {
            i -= 1;
        }
        while i + 1 < NUM_BINS && v >= edge(i + 1) {
            i += 1;
        }
        hist[i] += 1;
    }
    let mut cumsum = Vec::with_capacity(NUM_BINS);
    let mut acc = 0u64;
    for h in &hist {
        acc += h;
        cumsum.push(acc as f64);
    }
    let count = values.len() as f64;
    QUANTILES.map(|(q, _)| {
        let target = q * count;
        // np.searchsorted(cumsum, target), side="left".
        let idx = cumsum.partition_point(|&c| c < target);
        if idx == 0 {
            return edge(0);
        }
        if idx >= cumsum.len() {
            return edge(NUM_BINS);
        }
        let before = cumsum[idx - 1];
        let in_bin = cumsum[idx] - before;
        if in_bin == 0.0 {
            return edge(idx);
        }
        let fraction = (target - before) / in_bin;
        edge(idx) + fraction * (edge(idx + 1) - edge(idx))
    })
}

/// `estimate_num_samples` + `sample_indices`: evenly spaced frame indices, rounded half to
/// even like `np.round`.
pub fn sample_indices(len: usize) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let min_samples = len.min(100);
    let power = ((len as f64).powf(0.75) as usize).min(10_000);
    let n = min_samples.max(power);
    if n == 1 {
        return vec![0];
    }
    let last = (len - 1) as f64;
    (0..n)
        .map(|k| (last * k as f64 / (n - 1) as f64).round_ties_even() as usize)
        .collect()
}

/// `auto_downsample_height_width`: (stride, width, height) of the sampled grid.
fn downsample(width: usize, height: usize) -> (usize, usize, usize) {
    if width.max(height) < 300 {
        return (1, width, height);
    }
    let factor = if width > height {
        width / 150
    } else {
        height / 150
    }
    .max(1);
    (factor, width.div_ceil(factor), height.div_ceil(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn vector_stats_match_numpy() {
        // 0..100 in one column and its negation in the other.
        let values: Vec<f64> = (0..100).flat_map(|i| [i as f64, -(i as f64)]).collect();
        let s = FeatureStats::of_vectors(&values, 2);
        assert_eq!(s.count, 100);
        assert_eq!(
            (s.min[0], s.max[0], s.min[1], s.max[1]),
            (0.0, 99.0, -99.0, 0.0)
        );
        assert!(close(s.mean[0], 49.5) && close(s.mean[1], -49.5));
        // np.std(np.arange(100)) = 28.86607004772212
        assert!(close(s.std[0], 28.866_070_047_722_12));
        // Histogram quantiles land within one bin of the ceil(q * n)-th smallest sample
        // (q01 here is the first edge, min - 1e-10, as numpy's searchsorted gives).
        let bin = 99.0 / 5000.0;
        for (qi, nth) in [(0, 0.0), (1, 9.0), (2, 49.0), (3, 89.0), (4, 98.0)] {
            let q = s.quantiles[qi][0];
            assert!((q - nth).abs() <= bin + 1e-9, "{qi}: {q}");
        }
    }

    #[test]
    fn a_single_row_has_quantiles_equal_to_the_mean() {
        let s = FeatureStats::of_vectors(&[3.0, 4.0], 2);
        assert_eq!(s.count, 1);
        assert_eq!(s.std, vec![0.0, 0.0]);
        for q in &s.quantiles {
            assert_eq!(q, &vec![3.0, 4.0]);
        }
    }

    #[test]
    fn sample_indices_follow_lerobot() {
        assert_eq!(sample_indices(3), vec![0, 1, 2]);
        assert_eq!(sample_indices(50).len(), 50);
        let s = sample_indices(300);
        assert_eq!(s.len(), 100);
        assert_eq!((s[0], s[99]), (0, 299));
        // np.round(np.linspace(0, 299, 100))[1] = round(3.0202...) = 3
        assert_eq!(s[1], 3);
        assert_eq!(sample_indices(20_000).len(), 1681);
    }

    #[test]
    fn image_stats_are_per_channel_in_unit_range() {
        let w = 4;
        let h = 2;
        // Red channel all 255, green 0, blue half the pixels 255.
        let frame: Vec<u8> = (0..w * h)
            .flat_map(|i| [255, 0, if i % 2 == 0 { 255 } else { 0 }])
            .collect();
        let frames = vec![frame.as_slice(); 3];
        let s = FeatureStats::of_images(&frames, w, h);
        assert_eq!(s.shape, StatsShape::Image);
        assert_eq!(s.count, 3);
        assert_eq!(s.min, vec![1.0, 0.0, 0.0]);
        assert_eq!(s.max, vec![1.0, 0.0, 1.0]);
        assert!(close(s.mean[2], 0.5) && close(s.std[2], 0.5));
        let j = s.to_json();
        assert_eq!(j["count"], json!([3]));
        assert_eq!(j["mean"][0], json!([[1.0]]));
    }

    #[test]
    fn aggregation_equals_stats_of_the_union() {
        let a: Vec<f64> = (0..40).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..70).map(|i| (i as f64 * 0.11).cos() * 3.0).collect();
        let all: Vec<f64> = a.iter().chain(&b).copied().collect();
        let sa = FeatureStats::of_vectors(&a, 1);
        let sb = FeatureStats::of_vectors(&b, 1);
        let agg = FeatureStats::aggregate(&[&sa, &sb]).unwrap();
        let whole = FeatureStats::of_vectors(&all, 1);
        assert_eq!(agg.count, 110);
        assert!(close(agg.mean[0], whole.mean[0]));
        assert!((agg.std[0] - whole.std[0]).abs() < 1e-9);
        assert_eq!((agg.min[0], agg.max[0]), (whole.min[0], whole.max[0]));
        // Envelope: lower quantiles take the min, upper the max.
        assert_eq!(
            agg.quantiles[0][0],
            sa.quantiles[0][0].min(sb.quantiles[0][0])
        );
        assert_eq!(
            agg.quantiles[4][0],
            sa.quantiles[4][0].max(sb.quantiles[4][0])
        );
    }
}
