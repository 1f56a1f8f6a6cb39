//! Group norm fused with what follows it in the UNet: the per-channel affine (GroupNorm) or the
//! per-sample conditional scale and shift (AdaGroupNorm), then optionally SiLU.
//!
//! One pass for the mean, one for the variance (both accumulated in f64, as the reference path
//! does), one that writes the output: three reads of a group that fits in L2, instead of the
//! dozen full-tensor passes of the candle ops.

use rayon::prelude::*;

use super::math::silu_f32;
use super::multiversion;

/// What is applied to the normalised value `n` of sample `i`, channel `ch`.
#[derive(Debug, Clone, Copy)]
pub enum Modulation<'a> {
    /// `n`.
    None,
    /// `n * weight[ch] + bias[ch]` (GroupNorm's affine), folded into the normalisation as
    /// PyTorch does: `x * (rstd * weight) + (bias - rstd * weight * mean)`.
    Affine { weight: &'a [f32], bias: &'a [f32] },
    /// `n * (1 + scale[i, ch]) + shift[i, ch]` (AdaGroupNorm), `scale`/`shift` [b, c].
    Ada { scale: &'a [f32], shift: &'a [f32] },
}

/// Below this many elements the work is not worth handing to other threads.
const PAR_MIN_ELEMS: usize = 1 << 14;

/// Group norm of `x` [b, c, hw] (contiguous) over `groups` groups of channels, then
/// `modulation`, then SiLU if `silu`. Returns the [b, c, hw] result.
///
/// Panics if `x.len() != b * c * hw`, `groups` does not divide `c`, or a modulation slice is
/// shorter than its shape.
pub fn group_norm(
    x: &[f32],
    (b, c, hw): (usize, usize, usize),
    groups: usize,
    eps: f64,
    modulation: Modulation<'_>,
    silu: bool,
) -> Vec<f32> {
    assert_eq!(x.len(), b * c * hw, "group_norm: input length");
    assert!(groups > 0 && c.is_multiple_of(groups), "group_norm: groups");
    match modulation {
        Modulation::None => {}
        Modulation::Affine { weight, bias } => {
            assert!(
                weight.len() >= c && bias.len() >= c,
                "group_norm: affine length"
            );
        }
        Modulation::Ada { scale, shift } => {
            assert!(
                scale.len() >= b * c && shift.len() >= b * c,
                "group_norm: ada length"
            );
        }
    }
    let cpg = c / groups;
    let group_len = cpg * hw;
    let mut out = vec![0f32; x.len()];
    if group_len == 0 {
        return out;
    }
    let job = |(idx, (src, dst)): (usize, (&[f32], &mut [f32]))| {
        let (i, g) = (idx / groups, idx % groups);
        let (mean, rstd) = stats(src, eps);
        for (k, (src_ch, dst_ch)) in src
            .chunks_exact(hw)
            .zip(dst.chunks_exact_mut(hw))
            .enumerate()
        {
            let ch = g * cpg + k;
            // `n = x * a + b0`, then `y = n * m + s`, in the reference's order of operations.
            let (a, b0, m, s) = match modulation {
                Modulation::None => (rstd, -(rstd * mean), 1.0, 0.0),
                Modulation::Affine { weight, bias } => {
                    let a = rstd * weight[ch];
                    (a, bias[ch] - a * mean, 1.0, 0.0)
                }
                Modulation::Ada { scale, shift } => (
                    rstd,
                    -(rstd * mean),
                    scale[i * c + ch] + 1.0,
                    shift[i * c + ch],
                ),
            };
            apply(src_ch, dst_ch, [a, b0, m, s], silu);
        }
    };
    if x.len() >= PAR_MIN_ELEMS && super::num_threads() > 1 {
        x.par_chunks_exact(group_len)
            .zip(out.par_chunks_exact_mut(group_len))
            .enumerate()
            .for_each(job);
    } else {
        x.chunks_exact(group_len)
            .zip(out.chunks_exact_mut(group_len))
            .enumerate()
            .for_each(job);
    }
    out
}

/// `(mean, 1 / sqrt(var + eps))` of `v` as f32, accumulated in f64 (two passes).
fn stats(v: &[f32], eps: f64) -> (f32, f32) {
    let n = v.len() as f64;
    let mean = sum_f64(v) / n;
    let var = sum_sq_dev_f64(v, mean) / n;
    (mean as f32, (1.0 / (var + eps).sqrt()) as f32)
}

multiversion!(fn sum_f64 = sum_f64_impl(v: &[f32]) -> f64);

#[inline(always)]
fn sum_f64_impl(v: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| f64::from(x)).sum();
    for ch in chunks {
        for (a, &x) in acc.iter_mut().zip(ch) {
            *a += f64::from(x);
        }
    }
    acc.iter().sum::<f64>() + tail
}

multiversion!(fn sum_sq_dev_f64 = sum_sq_dev_f64_impl(v: &[f32], mean: f64) -> f64);

#[inline(always)]
fn sum_sq_dev_f64_impl(v: &[f32], mean: f64) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&x| (f64::from(x) - mean) * (f64::from(x) - mean))
        .sum();
    for ch in chunks {
        for (a, &x) in acc.iter_mut().zip(ch) {
            let d = f64::from(x) - mean;
            *a += d * d;
        }
    }
    acc.iter().sum::<f64>() + tail
}

multiversion!(fn apply = apply_impl(src: &[f32], dst: &mut [f32], coef: [f32; 4], silu: bool));

#[inline(always)]
fn apply_impl(src: &[f32], dst: &mut [f32], [a, b0, m, s]: [f32; 4], silu: bool) {
    if silu {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = silu_f32((x * a + b0) * m + s);
        }
    } else {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = (x * a + b0) * m + s;
        }
    }
}
