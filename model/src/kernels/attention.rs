//! Multi-head self-attention over a feature map's pixels, fused: `softmax(q kᵀ / √d) v` per
//! head, one query at a time, without materialising the `n x n` attention matrix.
//!
//! It reads the qkv projection as the convolution writes it (channels first: q heads, then k,
//! then v, each head `d` consecutive channels of `n` pixels) and writes the result in the same
//! layout, so no transposes are needed around it. With DIAMOND's 8 channels per head, candle's
//! batched matmuls (inner dimension 8) and its scalar-`exp` softmax took ~0.1 s per layer at
//! 665 pixels; here each query row is a few vectorised passes over `n` values.

use rayon::prelude::*;

use super::math::exp_f32;
use super::multiversion;

/// Queries per parallel task.
const QUERY_BLOCK: usize = 32;

/// `qkv` [3 * heads * d, n] (one batch element) -> [heads * d, n]:
/// `y[h, :, i] = Σ_j softmax_j(q_i · k_j / √d) v_j` for every head `h` and pixel `i`.
pub fn attention(qkv: &[f32], heads: usize, d: usize, n: usize) -> Vec<f32> {
    let c = heads * d;
    assert_eq!(qkv.len(), 3 * c * n, "attention: qkv length");
    let mut out = vec![0f32; c * n];
    // Divided by √d as DIAMOND's `att / math.sqrt(d)` (a true division).
    let sqrt_d = (d as f64).sqrt() as f32;
    let blocks = n.div_ceil(QUERY_BLOCK);
    // Tasks: (head, block of queries). Each writes its queries' outputs in every channel of
    // its head, gathered per task and scattered afterwards.
    let results: Vec<(usize, usize, Vec<f32>)> = (0..heads * blocks)
        .into_par_iter()
        .map(|task| {
            let (h, blk) = (task / blocks, task % blocks);
            let q = &qkv[h * d * n..(h + 1) * d * n];
            let k = &qkv[(c + h * d) * n..(c + (h + 1) * d) * n];
            let v = &qkv[(2 * c + h * d) * n..(2 * c + (h + 1) * d) * n];
            let i0 = blk * QUERY_BLOCK;
            let i1 = (i0 + QUERY_BLOCK).min(n);
            let mut scores = vec![0f32; n];
            let mut y = vec![0f32; d * (i1 - i0)];
            for i in i0..i1 {
                let qi: Vec<f32> = (0..d).map(|ch| q[ch * n + i]).collect();
                let ys = &mut y[(i - i0) * d..(i - i0 + 1) * d];
                query_row(&qi, k, v, n, sqrt_d, &mut scores, ys);
            }
            (h, i0, y)
        })
        .collect();
    for (h, i0, y) in results {
        let rows = y.len() / d;
        for r in 0..rows {
            for ch in 0..d {
                out[(h * d + ch) * n + i0 + r] = y[r * d + ch];
            }
        }
    }
    out
}

multiversion!(fn query_row = query_row_impl(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n: usize,
    sqrt_d: f32,
    scores: &mut [f32],
    y: &mut [f32],
));

/// One query: `scores = q · K / √d` (K as `d` rows of `n`), softmax, `y[ch] = Σ p_j V[ch, j]`.
#[inline(always)]
fn query_row_impl(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n: usize,
    sqrt_d: f32,
    scores: &mut [f32],
    y: &mut [f32],
) {
    let scores = &mut scores[..n];
    scores.fill(0.0);
    for (ch, &qc) in q.iter().enumerate() {
        let row = &k[ch * n..(ch + 1) * n];
        for (s, &kv) in scores.iter_mut().zip(row) {
            *s += qc * kv;
        }
    }
    let mut max = f32::NEG_INFINITY;
    for s in scores.iter_mut() {
        *s /= sqrt_d;
        max = max.max(*s);
    }
    let mut acc = [0f32; 8];
    let chunks = scores.chunks_exact_mut(8);
    let mut tail = 0f32;
    for s in chunks.into_remainder() {
        *s = exp_f32(*s - max);
        tail += *s;
    }
    for ch in scores.chunks_exact_mut(8) {
        for (a, s) in acc.iter_mut().zip(ch) {
            *s = exp_f32(*s - max);
            *a += *s;
        }
    }
    let inv = 1.0 / (acc.iter().sum::<f32>() + tail);
    for (ch, out) in y.iter_mut().enumerate() {
        let row = &v[ch * n..(ch + 1) * n];
        let mut acc = [0f32; 8];
        let mut tail = 0f32;
        let pc = scores.chunks_exact(8);
        let rc = row.chunks_exact(8);
        for (p, r) in pc.remainder().iter().zip(rc.remainder()) {
            tail += p * r;
        }
        for (p8, r8) in scores.chunks_exact(8).zip(row.chunks_exact(8)) {
            for ((a, p), r) in acc.iter_mut().zip(p8).zip(r8) {
                *a += p * r;
            }
        }
        *out = (acc.iter().sum::<f32>() + tail) * inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition in f64, directly.
    fn reference(qkv: &[f32], heads: usize, d: usize, n: usize) -> Vec<f64> {
        let c = heads * d;
        let at = |ch: usize, i: usize| f64::from(qkv[ch * n + i]);
        let mut out = vec![0f64; c * n];
        for h in 0..heads {
            for i in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..d)
                            .map(|x| at(h * d + x, i) * at(c + h * d + x, j))
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for x in 0..d {
                    out[(h * d + x) * n + i] =
                        (0..n).map(|j| e[j] * at(2 * c + h * d + x, j)).sum::<f64>() / z;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition() {
        for (heads, d, n) in [(2, 8, 37), (1, 4, 8), (3, 8, 70)] {
            let len = 3 * heads * d * n;
            // Deterministic values in about [-2, 2].
            let qkv: Vec<f32> = (0..len)
                .map(|i| ((i * 7919 % 1000) as f32 / 250.0) - 2.0)
                .collect();
            let got = attention(&qkv, heads, d, n);
            let want = reference(&qkv, heads, d, n);
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-5, "{heads}x{d}x{n}: {worst:e}");
        }
    }
}
