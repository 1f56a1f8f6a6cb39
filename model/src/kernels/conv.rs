//! 2D convolutions on NCHW f32 data: Winograd F(2x2, 3x3) for 3x3 / stride 1 / padding 1 (the
//! UNet's convolutions), im2col + GEMM for everything else (the stride-2 downsampling, 1x1
//! projections).
//!
//! Both split the image into blocks of output rows, run blocks on the rayon pool, and keep each
//! block's working set (transformed input, GEMM output) in per-thread scratch buffers that are
//! reused from call to call, small enough to stay in L2. The GEMMs are the `gemm` crate's
//! (runtime-dispatched AVX-512 / AVX2 / NEON microkernels).
//!
//! Winograd F(2x2, 3x3) (Lavin & Gray 2016) computes each 2x2 output tile from a 4x4 input tile
//! with 16 multiplications per (input, output) channel pair instead of 36: `Y = Aᵀ [U ⊙ V] A`
//! with `U = G g Gᵀ` (weights, transformed once when packed) and `V = Bᵀ d B`. Summed over input
//! channels, the 16 element-wise products become 16 GEMMs `[c_out x c_in] x [c_in x tiles]`.
//! The transforms only add and subtract, and `G` only halves, so the result differs from a
//! direct convolution by a few float roundings (tested against candle's `conv2d`).

use std::cell::RefCell;

use rayon::prelude::*;

use super::{SharedOut, multiversion, num_threads, sgemm};

/// A convolution's weights, rearranged for the kernel that will run it.
#[derive(Debug, Clone)]
pub struct PackedConv {
    c_in: usize,
    c_out: usize,
    kind: Kind,
    /// [c_out] (zeros without bias).
    bias: Vec<f32>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `U = G g Gᵀ`, laid out [16][c_out][c_in].
    Winograd { u: Vec<f32> },
    /// The weights as a [c_out][c_in * k * k] matrix.
    Im2col {
        w: Vec<f32>,
        k: usize,
        stride: usize,
        pad: usize,
    },
}

/// Which algorithm [`PackedConv::new`] may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvAlgo {
    /// Winograd where it applies (3x3, stride 1, padding 1), else im2col.
    Auto,
    /// im2col + GEMM always (for comparisons).
    Im2col,
}

/// Target working set of one block, in f32 elements per (input or output) channel: the
/// transformed input of a Winograd block is `16 * c_in * tiles` elements, kept at ~128 KiB so a
/// block's operands stay in the core's L2. Measured on the fixture's atari-4 model (2-core EPYC,
/// idle, BENCHMARKS.md), ms per denoiser call at batch 1 / 2 threads: 1 << 18: 77, 1 << 17: 71,
/// 1 << 16: 67, 1 << 15: 53, 1 << 14: 52 (but slower at batch 8). Blocks split only the GEMMs'
/// N dimension, so the block size never changes results.
const BLOCK_ELEMS: usize = 1 << 15;

impl PackedConv {
    /// Packs `weight` [c_out, c_in, k, k] (contiguous, row-major) and `bias` [c_out].
    ///
    /// Panics if `weight.len() != c_out * c_in * k * k`, `bias` has another length than
    /// `c_out`, or `k` or `stride` is 0.
    pub fn new(
        weight: &[f32],
        (c_out, c_in, k): (usize, usize, usize),
        bias: Option<&[f32]>,
        (stride, pad): (usize, usize),
        algo: ConvAlgo,
    ) -> Self {
        assert_eq!(
            weight.len(),
            c_out * c_in * k * k,
            "PackedConv: weight length"
        );
        assert!(
            k > 0 && stride > 0,
            "PackedConv: kernel size and stride must be positive"
        );
        let bias = match bias {
            Some(b) => {
                assert_eq!(b.len(), c_out, "PackedConv: bias length");
                b.to_vec()
            }
            None => vec![0.0; c_out],
        };
        let kind = if algo == ConvAlgo::Auto && k == 3 && stride == 1 && pad == 1 {
            Kind::Winograd {
                u: winograd_weights(weight, c_out, c_in),
            }
        } else {
            Kind::Im2col {
                w: weight.to_vec(),
                k,
                stride,
                pad,
            }
        };
        Self {
            c_in,
            c_out,
            kind,
            bias,
        }
    }

    /// Input channels.
    pub fn c_in(&self) -> usize {
        self.c_in
    }

    /// Output channels.
    pub fn c_out(&self) -> usize {
        self.c_out
    }

    /// Whether this runs as Winograd F(2x2, 3x3).
    pub fn is_winograd(&self) -> bool {
        matches!(self.kind, Kind::Winograd { .. })
    }

    /// Output height and width for an `h` x `w` input.
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        match &self.kind {
            Kind::Winograd { .. } => (h, w),
            Kind::Im2col { k, stride, pad, .. } => (
                (h + 2 * pad).saturating_sub(*k) / stride + 1,
                (w + 2 * pad).saturating_sub(*k) / stride + 1,
            ),
        }
    }

    /// Convolves `x` [b, c_in, h, w] and adds the bias and, if given, `residual`
    /// [b, c_out, h_out, w_out]. Returns [b, c_out, h_out, w_out].
    ///
    /// Panics if the lengths do not match the shapes.
    pub fn forward(
        &self,
        x: &[f32],
        (b, h, w): (usize, usize, usize),
        residual: Option<&[f32]>,
    ) -> Vec<f32> {
        assert_eq!(x.len(), b * self.c_in * h * w, "conv: input length");
        let (ho, wo) = self.out_size(h, w);
        let out_len = b * self.c_out * ho * wo;
        if let Some(r) = residual {
            assert_eq!(r.len(), out_len, "conv: residual length");
        }
        let mut out = vec![0f32; out_len];
        if out_len == 0 {
            return out;
        }
        match &self.kind {
            Kind::Winograd { u } => self.winograd(u, x, (b, h, w), residual, &mut out),
            Kind::Im2col {
                w: wm,
                k,
                stride,
                pad,
            } => self.im2col(wm, (*k, *stride, *pad), x, (b, h, w), residual, &mut out),
        }
        out
    }

    fn winograd(
        &self,
        u: &[f32],
        x: &[f32],
        (b, h, w): (usize, usize, usize),
        residual: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (ci, co) = (self.c_in, self.c_out);
        let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
        let target_tiles = (BLOCK_ELEMS / (16 * ci.max(co).max(1))).max(16);
        let rows_per_block = split_rows(th, (target_tiles / tw).max(1), b);
        let blocks = th.div_ceil(rows_per_block);
        let shared = SharedOut::new(out);
        let pw = 2 * tw + 2; // padded input row
        let run = |item: usize| {
            let (bi, blk) = (item / blocks, item % blocks);
            let ty0 = blk * rows_per_block;
            let rows = rows_per_block.min(th - ty0);
            let nt = rows * tw;
            let need = 16 * ci * nt + 16 * co * nt + 4 * pw + w + 8 * (tw + 1) + 4 * tw;
            with_scratch(need, |scratch| {
                let (v, rest) = scratch.split_at_mut(16 * ci * nt);
                let (m, rest) = rest.split_at_mut(16 * co * nt);
                let xb = &x[bi * ci * h * w..][..ci * h * w];
                // V [c_in][16][nt]: each channel's 16 transformed planes side by side.
                for (plane, vc) in xb.chunks_exact(h * w).zip(v.chunks_exact_mut(16 * nt)) {
                    for r in 0..rows {
                        input_tile_row(plane, (h, w), ty0 + r, vc, (nt, r * tw), rest);
                    }
                }
                // M_ξ [c_out x nt] = U_ξ [c_out x c_in] · V_ξ [c_in x nt], rows 16 * nt apart.
                for xi in 0..16 {
                    sgemm(
                        (co, nt, ci),
                        &mut m[xi * nt..],
                        16 * nt,
                        false,
                        &u[xi * co * ci..],
                        ci,
                        &v[xi * nt..],
                        16 * nt,
                    );
                }
                for (o, mo) in m.chunks_exact(16 * nt).enumerate() {
                    let y0 = 2 * ty0;
                    let y1 = (2 * (ty0 + rows)).min(h);
                    let start = ((bi * co + o) * h + y0) * w;
                    let len = (y1 - y0) * w;
                    // SAFETY: this block owns output rows y0..y1 of every channel plane of
                    // sample `bi`; no other block writes them, and `out` outlives the loop.
                    let dst = unsafe { shared.slice_mut(start, len) };
                    let res = residual.map(|r| &r[start..start + len]);
                    for r in 0..rows {
                        let rows_here = (h - 2 * (ty0 + r)).min(2);
                        let row_dst = &mut dst[2 * r * w..][..rows_here * w];
                        let row_res = res.map(|s| &s[2 * r * w..][..rows_here * w]);
                        output_tile_row(mo, (nt, r * tw), self.bias[o], row_dst, row_res, w, rest);
                    }
                }
            });
        };
        par_items(b * blocks, run);
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "internal: the packed weights' fields plus the call's"
    )]
    fn im2col(
        &self,
        wm: &[f32],
        (k, stride, pad): (usize, usize, usize),
        x: &[f32],
        (b, h, w): (usize, usize, usize),
        residual: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (ci, co) = (self.c_in, self.c_out);
        let (ho, wo) = self.out_size(h, w);
        let kk = ci * k * k;
        let direct = k == 1 && stride == 1 && pad == 0;
        let target_px = (BLOCK_ELEMS / kk.max(co).max(1)).max(16);
        let rows_per_block = split_rows(ho, (target_px / wo).max(1), b);
        let blocks = ho.div_ceil(rows_per_block);
        let shared = SharedOut::new(out);
        let npix = ho * wo;
        let run = |item: usize| {
            let (bi, blk) = (item / blocks, item % blocks);
            let y0 = blk * rows_per_block;
            let rows = rows_per_block.min(ho - y0);
            let np = rows * wo;
            let xb = &x[bi * ci * h * w..][..ci * h * w];
            let need = if direct { 0 } else { kk * np } + co * np;
            with_scratch(need, |scratch| {
                let (col, acc) = scratch.split_at_mut(if direct { 0 } else { kk * np });
                let (rhs, rhs_rs): (&[f32], usize) = if direct {
                    (&xb[y0 * wo..], npix)
                } else {
                    fill_columns(xb, (h, w), (k, stride, pad), (y0, rows, wo), col);
                    (col, np)
                };
                sgemm((co, np, kk), acc, np, false, wm, kk, rhs, rhs_rs);
                for (o, acc_o) in acc.chunks_exact(np).enumerate() {
                    let start = (bi * co + o) * npix + y0 * wo;
                    // SAFETY: this block owns output rows y0..y0 + rows of every channel plane
                    // of sample `bi`; no other block writes them, and `out` outlives the loop.
                    let dst = unsafe { shared.slice_mut(start, np) };
                    let res = residual.map(|r| &r[start..start + np]);
                    add_bias(acc_o, self.bias[o], res, dst);
                }
            });
        };
        par_items(b * blocks, run);
    }
}

/// Rows per block: at most `max_rows`, and small enough that `b` images give every thread
/// at least two blocks (when the image has that many rows).
fn split_rows(rows: usize, max_rows: usize, b: usize) -> usize {
    let want_items = 2 * num_threads();
    let per_image = want_items.div_ceil(b.max(1));
    max_rows.min(rows.div_ceil(per_image)).max(1)
}

/// Runs `f(0..n)` on the rayon pool (inline when there is only one item).
fn par_items(n: usize, f: impl Fn(usize) + Sync + Send) {
    if n <= 1 || num_threads() == 1 {
        (0..n).for_each(f);
    } else {
        (0..n).into_par_iter().for_each(f);
    }
}

/// Runs `f` on a per-thread buffer of at least `len` elements (contents unspecified), reused
/// across calls so the hot loop does not allocate.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        // Re-entered on this thread (cannot happen today: nothing inside `f` waits on rayon);
        // a fresh buffer keeps it correct.
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// `U = G g Gᵀ` for every (output, input) channel pair, computed in f64, laid out
/// [16][c_out][c_in].
fn winograd_weights(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let mut u = vec![0f32; 16 * c_out * c_in];
    for (pair, g) in weight.chunks_exact(9).enumerate() {
        // Gg [4][3], then (Gg)Gᵀ [4][4].
        let mut gg = [[0f64; 3]; 4];
        for (a, row) in gg.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (0..3).map(|i| G[a][i] * f64::from(g[3 * i + j])).sum();
            }
        }
        for a in 0..4 {
            for bb in 0..4 {
                let v: f64 = (0..3).map(|j| gg[a][j] * G[bb][j]).sum();
                u[(4 * a + bb) * c_out * c_in + pair] = v as f32;
            }
        }
    }
    u
}

multiversion!(fn input_tile_row = input_tile_row_impl(
    plane: &[f32],
    hw: (usize, usize),
    ty: usize,
    vc: &mut [f32],
    nt_t0: (usize, usize),
    scratch: &mut [f32],
));

/// `V = Bᵀ d B` for the tiles of tile row `ty` of one input channel `plane` [h, w]: writes
/// element `ξ` of tile `tx` to `vc[ξ * nt + t0 + tx]`.
///
/// Tile `(ty, tx)` reads input rows `2ty - 1 .. 2ty + 3` and columns `2tx - 1 .. 2tx + 3`,
/// zero outside the image (the padding).
#[inline(always)]
fn input_tile_row_impl(
    plane: &[f32],
    (h, w): (usize, usize),
    ty: usize,
    vc: &mut [f32],
    (nt, t0): (usize, usize),
    scratch: &mut [f32],
) {
    let tw = w.div_ceil(2);
    let pw = 2 * tw + 2;
    let (p, rest) = scratch.split_at_mut(4 * pw);
    let (zero, rest) = rest.split_at_mut(w);
    zero.fill(0.0);
    // Input rows 2ty - 1 + i (zeros outside the image).
    let src = |i: usize| -> &[f32] {
        let y = 2 * ty + i;
        if (1..=h).contains(&y) {
            &plane[(y - 1) * w..][..w]
        } else {
            zero
        }
    };
    let (s0, s1, s2, s3) = (src(0), src(1), src(2), src(3));
    // Bᵀ d over rows, into padded rows r_i[m] (input column m - 1; zero at the borders):
    // r0 = d0 - d2, r1 = d1 + d2, r2 = d2 - d1, r3 = d1 - d3.
    for (i, row) in p.chunks_exact_mut(pw).enumerate() {
        row[0] = 0.0;
        row[w + 1..].fill(0.0);
        let inner = &mut row[1..=w];
        match i {
            0 => binary(inner, s0, s2, |d0, d2| d0 - d2),
            1 => binary(inner, s1, s2, |d1, d2| d1 + d2),
            2 => binary(inner, s2, s1, |d2, d1| d2 - d1),
            _ => binary(inner, s1, s3, |d1, d3| d1 - d3),
        }
    }
    // (Bᵀ d) B over columns, on even/odd split rows: d_j = r[2tx + j].
    let (e, o) = rest[..8 * (tw + 1)].split_at_mut(4 * (tw + 1));
    for i in 0..4 {
        let r = &p[i * pw..][..pw];
        let ei = &mut e[i * (tw + 1)..][..tw + 1];
        let oi = &mut o[i * (tw + 1)..][..tw + 1];
        deinterleave(r, ei, oi);
        let (ei, oi) = (&*ei, &*oi);
        let row = |j: usize| (4 * i + j) * nt + t0;
        // One store stream per loop, so each vectorises without aliasing checks.
        let (e0, e1, o0, o1) = (&ei[..tw], &ei[1..=tw], &oi[..tw], &oi[1..=tw]);
        binary(&mut vc[row(0)..][..tw], e0, e1, |d0, d2| d0 - d2);
        binary(&mut vc[row(1)..][..tw], o0, e1, |d1, d2| d1 + d2);
        binary(&mut vc[row(2)..][..tw], e1, o0, |d2, d1| d2 - d1);
        binary(&mut vc[row(3)..][..tw], o0, o1, |d1, d3| d1 - d3);
    }
}

/// `out[k] = f(a[k], b[k])`.
#[inline(always)]
fn binary(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

multiversion!(fn output_tile_row = output_tile_row_impl(
    mo: &[f32],
    nt_t0: (usize, usize),
    bias: f32,
    dst: &mut [f32],
    res: Option<&[f32]>,
    w: usize,
    tmp: &mut [f32],
));

/// `Y = Aᵀ M A` for the tiles of one tile row of one output channel (`mo` [16][nt], this row's
/// tiles from `t0`), plus bias and residual, written to `dst` (one or two output rows of `w`).
#[inline(always)]
fn output_tile_row_impl(
    mo: &[f32],
    (nt, t0): (usize, usize),
    bias: f32,
    dst: &mut [f32],
    res: Option<&[f32]>,
    w: usize,
    tmp: &mut [f32],
) {
    let tw = w.div_ceil(2);
    let m = |xi: usize| &mo[xi * nt + t0..][..tw];
    let (ye, rest) = tmp.split_at_mut(tw);
    let yo = &mut rest[..tw];
    let two_rows = dst.len() >= 2 * w;
    // Output row i of every tile: Aᵀ over rows gives a_j (a0j = m0j + (m1j + m2j),
    // a1j = m1j - (m2j + m3j)), then over columns y_i0 = a0 + a1 + a2, y_i1 = a1 - a2 - a3.
    for i in 0..if two_rows { 2 } else { 1 } {
        let (r0, r1, r2, r3) = if i == 0 {
            ((0, 4, 8), (1, 5, 9), (2, 6, 10), (3, 7, 11))
        } else {
            ((4, 8, 12), (5, 9, 13), (6, 10, 14), (7, 11, 15))
        };
        let sign = if i == 0 { 1.0 } else { -1.0 };
        let col = |(a, b, c): (usize, usize, usize)| (m(a), m(b), m(c));
        let (c0, c1, c2, c3) = (col(r0), col(r1), col(r2), col(r3));
        let a = |c: (&[f32], &[f32], &[f32]), tx: usize| c.0[tx] + sign * (c.1[tx] + c.2[tx]);
        // Two loops (one store stream each) vectorise; one loop writing both would not.
        for (tx, e) in ye.iter_mut().enumerate() {
            *e = a(c0, tx) + a(c1, tx) + a(c2, tx) + bias;
        }
        for (tx, o) in yo.iter_mut().enumerate() {
            *o = a(c1, tx) - a(c2, tx) - a(c3, tx) + bias;
        }
        let row = &mut dst[i * w..][..w];
        interleave(ye, yo, row);
        if let Some(res) = res {
            for (d, r) in row.iter_mut().zip(&res[i * w..][..w]) {
                *d += r;
            }
        }
    }
}

/// `even[k] -> row[2k]`, `odd[k] -> row[2k + 1]` (as far as `row` reaches).
#[inline(always)]
fn interleave(even: &[f32], odd: &[f32], row: &mut [f32]) {
    let pairs = row.len() / 2;
    for ((pair, &e), &o) in row
        .chunks_exact_mut(2)
        .zip(&even[..pairs])
        .zip(&odd[..pairs])
    {
        pair[0] = e;
        pair[1] = o;
    }
    if row.len() % 2 == 1 {
        row[2 * pairs] = even[pairs];
    }
}

/// `row[2k] -> even[k]`, `row[2k + 1] -> odd[k]` for `k < even.len()`; `row` has even length
/// `2 * even.len()`.
#[inline(always)]
fn deinterleave(row: &[f32], even: &mut [f32], odd: &mut [f32]) {
    for ((pair, e), o) in row.chunks_exact(2).zip(even.iter_mut()).zip(odd.iter_mut()) {
        *e = pair[0];
        *o = pair[1];
    }
}

/// im2col for output rows `y0 .. y0 + rows`: `col[(c * k + a) * k + b][p]` is the input under
/// kernel tap `(a, b)` of channel `c` for output pixel `p` of the block (0 in the padding).
fn fill_columns(
    xb: &[f32],
    (h, w): (usize, usize),
    (k, stride, pad): (usize, usize, usize),
    (y0, rows, wo): (usize, usize, usize),
    col: &mut [f32],
) {
    let np = rows * wo;
    for (idx, dst) in col.chunks_exact_mut(np).enumerate() {
        let (c, a, bb) = (idx / (k * k), (idx / k) % k, idx % k);
        let plane = &xb[c * h * w..][..h * w];
        for (r, drow) in dst.chunks_exact_mut(wo).enumerate() {
            let y = (y0 + r) * stride + a;
            if y < pad || y - pad >= h {
                drow.fill(0.0);
                continue;
            }
            let src = &plane[(y - pad) * w..][..w];
            for (xo, d) in drow.iter_mut().enumerate() {
                let x = xo * stride + bb;
                *d = if x < pad || x - pad >= w {
                    0.0
                } else {
                    src[x - pad]
                };
            }
        }
    }
}

/// `dst = acc + bias (+ res)`.
fn add_bias(acc: &[f32], bias: f32, res: Option<&[f32]>, dst: &mut [f32]) {
    match res {
        Some(res) => {
            for ((d, &a), &r) in dst.iter_mut().zip(acc).zip(res) {
                *d = (a + bias) + r;
            }
        }
        None => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                *d = a + bias;
            }
        }
    }
}
