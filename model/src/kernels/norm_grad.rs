//! Group normalisation for training on the CPU: one op forward and one op backward.
//!
//! Through candle's ops, a group norm is a dozen full-size tensors (an f64 copy, the centred
//! values, their squares, the broadcasts) each way, and its backward pass as many again; this
//! op computes `(x - mean) * rstd` per (sample, group) in one pass with f64 statistics, as the
//! reference path does, and its gradient in two:
//!
//! `dx = rstd * (dy - mean(dy) - y * mean(dy * y))` over each group, with `y` the normalised
//! input (recomputed from `x`, not stored).
//!
//! The affine or adaptive modulation and the activation stay candle ops around it.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `(x - mean) * rstd` per (sample, group) of `x` [b, c, h, w] (f32, CPU), with gradients.
pub fn normalize(x: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if groups == 0 || !c.is_multiple_of(groups) {
        candle_core::bail!("group_norm: {c} channels not divisible into {groups} groups");
    }
    x.contiguous()?.apply_op1(Normalize { groups, eps })
}

/// Whether [`normalize`] applies to `x`: f32 on the CPU, rank 4.
pub fn applies(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32 && x.rank() == 4
}

#[derive(Debug, Clone, Copy)]
struct Normalize {
    groups: usize,
    eps: f64,
}

/// Mean and `1 / sqrt(var + eps)` of one group, two passes in f64 (the reference's sums).
fn stats(g: &[f32], eps: f64) -> (f64, f64) {
    let n = g.len().max(1) as f64;
    let mean = g.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = g
        .iter()
        .map(|&v| {
            let d = f64::from(v) - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean, 1.0 / (var + eps).sqrt())
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("training group norm: {what} must be f32");
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("training group norm: {what} must be contiguous");
    };
    Ok(&v[a..b])
}

/// Elements per group of a [b, c, h, w] layout.
fn group_len(l: &Layout, groups: usize) -> Result<usize> {
    let (_, c, h, w) = l.shape().dims4()?;
    Ok((c / groups.max(1)) * h * w)
}

impl CustomOp1 for Normalize {
    fn name(&self) -> &'static str {
        "dreamyard-group-normalize"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, "input")?;
        let n = group_len(l, self.groups)?;
        let mut y = vec![0f32; x.len()];
        if n > 0 {
            y.par_chunks_mut(n)
                .zip(x.par_chunks(n))
                .for_each(|(yg, xg)| {
                    let (mean, rstd) = stats(xg, self.eps);
                    for (o, &v) in yg.iter_mut().zip(xg) {
                        *o = ((f64::from(v) - mean) * rstd) as f32;
                    }
                });
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad_res.contiguous()?;
        let dx = arg.contiguous()?.apply_op2_no_bwd(
            &grad,
            &NormalizeGrad {
                groups: self.groups,
                eps: self.eps,
            },
        )?;
        Ok(Some(dx))
    }
}

/// `(x, dy) -> dx` of [`Normalize`].
#[derive(Debug, Clone, Copy)]
struct NormalizeGrad {
    groups: usize,
    eps: f64,
}

impl CustomOp2 for NormalizeGrad {
    fn name(&self) -> &'static str {
        "dreamyard-group-normalize-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "training group norm: input {:?}, gradient {:?}",
                l1.shape(),
                l2.shape()
            );
        }
        let x = contiguous_f32(s1, l1, "input")?;
        let dy = contiguous_f32(s2, l2, "output gradient")?;
        let n = group_len(l1, self.groups)?;
        let mut dx = vec![0f32; x.len()];
        if n > 0 {
            dx.par_chunks_mut(n)
                .zip(x.par_chunks(n).zip(dy.par_chunks(n)))
                .for_each(|(dxg, (xg, dyg))| {
                    let (mean, rstd) = stats(xg, self.eps);
                    let (mut sum_dy, mut sum_dy_y) = (0f64, 0f64);
                    for (&v, &d) in xg.iter().zip(dyg) {
                        let y = (f64::from(v) - mean) * rstd;
                        sum_dy += f64::from(d);
                        sum_dy_y += f64::from(d) * y;
                    }
                    let (m_dy, m_dy_y) = (sum_dy / n as f64, sum_dy_y / n as f64);
                    for (o, (&v, &d)) in dxg.iter_mut().zip(xg.iter().zip(dyg)) {
                        let y = (f64::from(v) - mean) * rstd;
                        *o = (rstd * (f64::from(d) - m_dy - y * m_dy_y)) as f32;
                    }
                });
        }
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Var};

    use super::*;
    use crate::kernels::conv_grad::tests::max_diff;

    /// The composed candle ops (what the layers ran before), as the reference for values and
    /// gradients.
    fn reference(x: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = (c / groups) * h * w;
        let x64 = x.reshape((b, groups, n))?.to_dtype(DType::F64)?;
        let mean = (x64.sum_keepdim(2)? / n as f64)?;
        let xc = x64.broadcast_sub(&mean)?;
        let var = (xc.sqr()?.sum_keepdim(2)? / n as f64)?;
        let y = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
        y.to_dtype(DType::F32)?.reshape((b, c, h, w))
    }

    #[test]
    fn values_and_gradients_match_the_composed_ops() {
        let dev = Device::Cpu;
        let (b, c, h, w, groups) = (2, 8, 5, 3, 4);
        let x = Var::from_tensor(
            &((Tensor::randn(0f32, 1.0, (b, c, h, w), &dev).unwrap() * 3.0).unwrap() + 1.5)
                .unwrap(),
        )
        .unwrap();
        // A loss that weighs elements differently, so every gradient term matters.
        let weights = Tensor::randn(0f32, 1.0, (b, c, h, w), &dev).unwrap();
        let eps = 1e-5;

        let ours = normalize(x.as_tensor(), groups, eps).unwrap();
        let want = reference(x.as_tensor(), groups, eps).unwrap();
        assert!(max_diff(&ours, &want) < 1e-5, "{}", max_diff(&ours, &want));

        let g_ours = (ours * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g_want = (want * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, r) = (
            g_ours.get(x.as_tensor()).unwrap(),
            g_want.get(x.as_tensor()).unwrap(),
        );
        let scale = r.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        let scale = scale.to_scalar::<f32>().unwrap();
        assert!(scale > 0.1, "the loss has a real gradient");
        assert!(max_diff(a, r) < 1e-5 * scale.max(1.0), "{}", max_diff(a, r));
    }

    #[test]
    fn bad_groups_are_errors() {
        let x = Tensor::zeros((1, 6, 2, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(normalize(&x, 4, 1e-5).is_err());
        assert!(normalize(&x, 0, 1e-5).is_err());
    }
}
