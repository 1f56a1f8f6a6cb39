//! A CPU 2-D convolution with a fast backward pass, for training.
//!
//! candle's own convolution backward computes the input gradient with its transposed
//! convolution, a direct loop that runs at a few GFLOP/s on CPU and dominates a training step.
//! This op computes forward and both gradients as GEMMs over im2col patches:
//!
//! - forward: `y_b [O, P] = W [O, CKK] · col(x_b) [CKK, P]`
//! - input gradient: `dcol [CKK, P] = Wᵀ · dy_b`, scattered back with col2im
//! - weight gradient: `dW [O, CKK] = Σ_b dy_b · col(x_b)ᵀ`
//!
//! Batch elements run in parallel on the rayon pool, each with a single-threaded GEMM from the
//! `gemm` crate (the one candle itself uses), so no thread waits on another inside a GEMM.
//! Tested against candle's `conv2d` and its autograd.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

impl Geometry {
    fn out_hw(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }
    fn patch(&self) -> usize {
        self.c_in * self.k * self.k
    }
    fn pixels_out(&self) -> usize {
        let (ho, wo) = self.out_hw();
        ho * wo
    }
}

/// The output columns `ox` whose input column `ox * stride + kx - pad` lies inside `0..w`, as a
/// half-open range.
fn valid_cols(g: &Geometry, wo: usize, kx: usize) -> (usize, usize) {
    // ix = ox*s + kx - pad >= 0  <=>  ox >= ceil((pad - kx) / s)
    let lo = if kx >= g.pad {
        0
    } else {
        (g.pad - kx).div_ceil(g.stride)
    };
    // ix < w  <=>  ox*s < w + pad - kx
    let limit = g.w + g.pad - kx;
    let hi = limit.div_ceil(g.stride).min(wo);
    (lo.min(hi), hi)
}

/// `col [CKK, P]` of one image `x [C, H, W]`.
fn im2col(g: &Geometry, x: &[f32], col: &mut [f32]) {
    let (ho, wo) = g.out_hw();
    let p = ho * wo;
    for c in 0..g.c_in {
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = &mut col[((c * g.k + ky) * g.k + kx) * p..][..p];
                let (lo, hi) = valid_cols(g, wo, kx);
                for oy in 0..ho {
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    let dst = &mut row[oy * wo..(oy + 1) * wo];
                    if iy < 0 || iy as usize >= g.h {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &x[(c * g.h + iy as usize) * g.w..][..g.w];
                    dst[..lo].fill(0.0);
                    dst[hi..].fill(0.0);
                    let first = lo * g.stride + kx - g.pad;
                    if g.stride == 1 {
                        dst[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
                    } else {
                        for (d, &v) in dst[lo..hi]
                            .iter_mut()
                            .zip(src[first..].iter().step_by(g.stride))
                        {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// Adds `col [CKK, P]` back into the image gradient `dx [C, H, W]`.
fn col2im(g: &Geometry, col: &[f32], dx: &mut [f32]) {
    let (ho, wo) = g.out_hw();
    let p = ho * wo;
    for c in 0..g.c_in {
        for ky in 0..g.k {
            for kx in 0..g.k {
                let row = &col[((c * g.k + ky) * g.k + kx) * p..][..p];
                let (lo, hi) = valid_cols(g, wo, kx);
                if lo >= hi {
                    continue;
                }
                let first = lo * g.stride + kx - g.pad;
                for oy in 0..ho {
                    let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                    if iy < 0 || iy as usize >= g.h {
                        continue;
                    }
                    let dst = &mut dx[(c * g.h + iy as usize) * g.w..][..g.w];
                    let src = &row[oy * wo + lo..oy * wo + hi];
                    if g.stride == 1 {
                        for (d, &v) in dst[first..first + src.len()].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (d, &v) in dst[first..].iter_mut().step_by(g.stride).zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        }
    }
}

/// A row-major matrix view: `rows x cols`, optionally read transposed.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl Mat<'_> {
    /// (rows, cols) as the GEMM sees it.
    fn dims(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
    /// (column stride, row stride) as the GEMM sees it.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (self.cols as isize, 1)
        } else {
            (1, self.cols as isize)
        }
    }
}

/// `dst [m, n] (+)= a [m, k] · b [k, n]`, single-threaded, row-major `dst`.
fn gemm(dst: &mut [f32], accumulate: bool, a: Mat<'_>, b: Mat<'_>) -> Result<()> {
    gemm_into(dst, false, accumulate, a, b)
}

/// [`gemm`] with `dst` stored row-major, or column-major (`dst_transposed`: element (i, j) at
/// `j * m + i`). The gemm crate is several times faster for some operand layouts with a
/// column-major destination (measured for the weight gradient: 8-24 vs 39-77 GFLOP/s).
fn gemm_into(
    dst: &mut [f32],
    dst_transposed: bool,
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
) -> Result<()> {
    let (m, k) = a.dims();
    let (k2, n) = b.dims();
    if k != k2
        || dst.len() < m * n
        || a.data.len() < a.rows * a.cols
        || b.data.len() < b.rows * b.cols
    {
        candle_core::bail!("conv gemm: shapes [{m}x{k}]·[{k2}x{n}] into {}", dst.len());
    }
    let (a_cs, a_rs) = a.strides();
    let (b_cs, b_rs) = b.strides();
    let (d_cs, d_rs) = if dst_transposed {
        (m as isize, 1)
    } else {
        (1, n as isize)
    };
    // SAFETY: the checks above keep every index the GEMM forms inside the three slices: `dst`
    // holds m*n elements (row stride n, or column stride m when transposed), `a` and `b` hold
    // their full row-major extents and the strides describe exactly those extents (transposed or
    // not). `dst` is a unique borrow, so it does not alias the inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            d_cs,
            d_rs,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("training conv: {what} must be f32");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("training conv: {what} must be contiguous");
    };
    Ok(&v[a..b])
}

/// Scratch per batch element, reused across the elements a thread handles.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = vec![0f32; len];
    f(&mut buf)
}

/// The forward op on `(x [B, C, H, W], w [O, C, K, K])`.
#[derive(Debug, Clone, Copy)]
struct ConvTrain {
    stride: usize,
    pad: usize,
}

fn geometry(x: &Layout, w: &Layout, stride: usize, pad: usize) -> Result<(usize, Geometry)> {
    let (b, c, h, wd) = x.shape().dims4()?;
    let (o, c2, k, k2) = w.shape().dims4()?;
    if c != c2 || k != k2 || h + 2 * pad < k || wd + 2 * pad < k || stride == 0 {
        candle_core::bail!(
            "training conv: input {:?}, weight {:?}, stride {stride}, padding {pad}",
            x.shape(),
            w.shape()
        );
    }
    Ok((
        b,
        Geometry {
            c_in: c,
            h,
            w: wd,
            c_out: o,
            k,
            stride,
            pad,
        },
    ))
}

impl CustomOp2 for ConvTrain {
    fn name(&self) -> &'static str {
        "dreamyard-conv2d-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, g) = geometry(l1, l2, self.stride, self.pad)?;
        let x = f32_slice(s1, l1, "input")?;
        let w = f32_slice(s2, l2, "weight")?;
        let (ho, wo) = g.out_hw();
        let (p, ckk, img) = (g.pixels_out(), g.patch(), g.c_in * g.h * g.w);
        let mut y = vec![0f32; b * g.c_out * p];
        y.par_chunks_mut(g.c_out * p)
            .enumerate()
            .try_for_each(|(i, y_b)| {
                with_scratch(ckk * p, |col| {
                    im2col(&g, &x[i * img..(i + 1) * img], col);
                    let wm = Mat {
                        data: w,
                        rows: g.c_out,
                        cols: ckk,
                        transposed: false,
                    };
                    let cm = Mat {
                        data: col,
                        rows: ckk,
                        cols: p,
                        transposed: false,
                    };
                    gemm(y_b, false, wm, cm)
                })
            })?;
        Ok((CpuStorage::F32(y), Shape::from((b, g.c_out, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = grad.apply_op2_no_bwd(
            w,
            &ConvGradInput {
                stride: self.stride,
                pad: self.pad,
                h: x.dim(2)?,
                w: x.dim(3)?,
            },
        )?;
        let dw = x.apply_op2_no_bwd(
            &grad,
            &ConvGradWeight {
                stride: self.stride,
                pad: self.pad,
                k: w.dim(2)?,
            },
        )?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `(dy [B, O, Ho, Wo], w [O, C, K, K]) -> dx [B, C, H, W]`.
#[derive(Debug, Clone, Copy)]
struct ConvGradInput {
    stride: usize,
    pad: usize,
    h: usize,
    w: usize,
}

impl CustomOp2 for ConvGradInput {
    fn name(&self) -> &'static str {
        "dreamyard-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, o, _, _) = l1.shape().dims4()?;
        let (o2, c, k, _) = l2.shape().dims4()?;
        let g = Geometry {
            c_in: c,
            h: self.h,
            w: self.w,
            c_out: o,
            k,
            stride: self.stride,
            pad: self.pad,
        };
        if o != o2 || l1.shape().dims()[2..] != [g.out_hw().0, g.out_hw().1] {
            candle_core::bail!("conv grad input: dy {:?}, w {:?}", l1.shape(), l2.shape());
        }
        let dy = f32_slice(s1, l1, "output gradient")?;
        let w = f32_slice(s2, l2, "weight")?;
        let (p, ckk, img) = (g.pixels_out(), g.patch(), c * g.h * g.w);
        let mut dx = vec![0f32; b * img];
        dx.par_chunks_mut(img)
            .enumerate()
            .try_for_each(|(i, dx_b)| {
                with_scratch(ckk * p, |dcol| {
                    let wt = Mat {
                        data: w,
                        rows: o,
                        cols: ckk,
                        transposed: true,
                    };
                    let dym = Mat {
                        data: &dy[i * o * p..(i + 1) * o * p],
                        rows: o,
                        cols: p,
                        transposed: false,
                    };
                    gemm(dcol, false, wt, dym)?;
                    col2im(&g, dcol, dx_b);
                    Ok::<(), candle_core::Error>(())
                })
            })?;
        Ok((CpuStorage::F32(dx), Shape::from((b, c, g.h, g.w))))
    }
}

/// `(x [B, C, H, W], dy [B, O, Ho, Wo]) -> dW [O, C, K, K]`.
#[derive(Debug, Clone, Copy)]
struct ConvGradWeight {
    stride: usize,
    pad: usize,
    k: usize,
}

impl CustomOp2 for ConvGradWeight {
    fn name(&self) -> &'static str {
        "dreamyard-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, h, w) = l1.shape().dims4()?;
        let (b2, o, _, _) = l2.shape().dims4()?;
        let g = Geometry {
            c_in: c,
            h,
            w,
            c_out: o,
            k: self.k,
            stride: self.stride,
            pad: self.pad,
        };
        if b != b2 || l2.shape().dims()[2..] != [g.out_hw().0, g.out_hw().1] {
            candle_core::bail!("conv grad weight: x {:?}, dy {:?}", l1.shape(), l2.shape());
        }
        let x = f32_slice(s1, l1, "input")?;
        let dy = f32_slice(s2, l2, "output gradient")?;
        let (p, ckk, img) = (g.pixels_out(), g.patch(), c * h * w);
        // Each rayon task sums the gradient of a contiguous run of batch elements; the partial
        // sums are added at the end (in a fixed order, so results do not depend on scheduling).
        // The partial sums are dWᵀ [C*K*K, O] (column-major dW, the fast layout for the gemm
        // crate here), transposed once at the end.
        let tasks = rayon::current_num_threads().clamp(1, b.max(1));
        let per = b.div_ceil(tasks);
        let partials: Vec<Vec<f32>> = (0..tasks)
            .into_par_iter()
            .map(|t| -> Result<Vec<f32>> {
                let mut dw = vec![0f32; o * ckk];
                let mut col = vec![0f32; ckk * p];
                for i in t * per..((t + 1) * per).min(b) {
                    im2col(&g, &x[i * img..(i + 1) * img], &mut col);
                    let dym = Mat {
                        data: &dy[i * o * p..(i + 1) * o * p],
                        rows: o,
                        cols: p,
                        transposed: false,
                    };
                    let colt = Mat {
                        data: &col,
                        rows: ckk,
                        cols: p,
                        transposed: true,
                    };
                    gemm_into(&mut dw, true, i != t * per, dym, colt)?;
                }
                Ok(dw)
            })
            .collect::<Result<_>>()?;
        let mut dwt = vec![0f32; o * ckk];
        for part in partials {
            for (d, s) in dwt.iter_mut().zip(part) {
                *d += s;
            }
        }
        let mut dw = vec![0f32; o * ckk];
        for (j, row) in dwt.chunks_exact(o).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                dw[i * ckk + j] = v;
            }
        }
        Ok((CpuStorage::F32(dw), Shape::from((o, c, self.k, self.k))))
    }
}

/// Whether [`conv2d`] takes the fast path for these tensors (CPU, f32); otherwise callers use
/// candle's convolution.
pub fn applies(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu()
        && w.device().is_cpu()
        && x.dtype() == candle_core::DType::F32
        && w.dtype() == candle_core::DType::F32
        && x.rank() == 4
}

/// `conv2d(x, w) + bias` with gradients for `x`, `w` and `bias`; square kernels, no dilation,
/// no groups. `x` [B, C, H, W], `w` [O, C, K, K], `bias` [O].
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    let y = x
        .contiguous()?
        .apply_op2(&w.contiguous()?, ConvTrain { stride, pad })?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
        None => Ok(y),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Largest absolute difference between two tensors of the same shape (the training ops'
    /// tests share it).
    pub(in crate::kernels) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Forward and all three gradients agree with candle's convolution and autograd.
    fn check(
        b: usize,
        c: usize,
        o: usize,
        hw: (usize, usize),
        k: usize,
        stride: usize,
        pad: usize,
    ) {
        let x = Var::from_tensor(&rand(&[b, c, hw.0, hw.1], 1)).unwrap();
        let w = Var::from_tensor(&rand(&[o, c, k, k], 2)).unwrap();
        let bias = Var::from_tensor(&rand(&[o], 3)).unwrap();
        let probe = rand(
            &[
                b,
                o,
                (hw.0 + 2 * pad - k) / stride + 1,
                (hw.1 + 2 * pad - k) / stride + 1,
            ],
            4,
        );

        let ours = conv2d(&x, &w, Some(&bias), stride, pad).unwrap();
        let reference = x
            .conv2d(&w, pad, stride, 1, 1)
            .unwrap()
            .broadcast_add(&bias.reshape((1, o, 1, 1)).unwrap())
            .unwrap();
        assert!(max_diff(&ours, &reference) < 1e-4, "forward");

        let g_ours = (ours * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g_ref = (reference * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, v) in [("x", &x), ("w", &w), ("bias", &bias)] {
            let a = g_ours.get(v.as_tensor()).unwrap();
            let r = g_ref.get(v.as_tensor()).unwrap();
            let scale = r
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                max_diff(a, r) <= 1e-4 * scale.max(1.0),
                "grad {name}: {} vs scale {scale}",
                max_diff(a, r)
            );
        }
    }

    #[test]
    fn matches_candle_3x3_same() {
        check(3, 5, 7, (9, 6), 3, 1, 1);
    }

    #[test]
    fn matches_candle_strided_downsample() {
        check(2, 4, 4, (8, 8), 3, 2, 1);
        check(2, 3, 2, (7, 9), 3, 2, 1);
    }

    #[test]
    fn matches_candle_1x1() {
        check(2, 6, 3, (5, 4), 1, 1, 0);
    }
}
