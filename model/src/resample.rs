//! Resampling frames between the two stages of a two-stage model: PyTorch's bicubic
//! upsampling (what DIAMOND feeds its upsampler) and a box-filter downscale (to start a
//! two-stage rollout from full-resolution frames alone).
//!
//! Both are separable and written as two matrix products, `rows · x · colsᵀ`, so they run on
//! any device with the model's other tensor operations.

use candle_core::{DType, Device, Result, Tensor};

/// `F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)` as PyTorch
/// computes it: cubic convolution with A = -0.75, source coordinate
/// `(dst + 0.5) / factor - 0.5`, border indices clamped, the result not clamped (it may
/// overshoot [-1, 1]).
///
/// `x` [b, c, h, w] -> [b, c, h * factor, w * factor], f32.
pub fn bicubic_upsample(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let dev = x.device();
    let rows = bicubic_matrix(h, factor, dev)?; // [H, h]
    let cols = bicubic_matrix(w, factor, dev)?.t()?; // [w, W]
    separable(&x.to_dtype(DType::F32)?, &rows, &cols, (b, c, h, w))
}

/// Mean over `factor` x `factor` blocks: `x` [b, c, h, w] (h and w multiples of `factor`) ->
/// [b, c, h / factor, w / factor], f32.
pub fn box_downscale(x: &Tensor, factor: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if factor == 0 || !h.is_multiple_of(factor) || !w.is_multiple_of(factor) {
        candle_core::bail!("box downscale: {h}x{w} is not a multiple of the factor {factor}");
    }
    let dev = x.device();
    let rows = box_matrix(h, factor, dev)?; // [h/f, h]
    let cols = box_matrix(w, factor, dev)?.t()?; // [w, w/f]
    separable(&x.to_dtype(DType::F32)?, &rows, &cols, (b, c, h, w))
}

/// `rows · x · cols` per image: `rows` [H, h], `cols` [w, W].
fn separable(
    x: &Tensor,
    rows: &Tensor,
    cols: &Tensor,
    (b, c, h, w): (usize, usize, usize, usize),
) -> Result<Tensor> {
    let out_w = cols.dim(1)?;
    let out_h = rows.dim(0)?;
    let xc = x.reshape((b * c * h, w))?.matmul(&cols.contiguous()?)?; // [b*c*h, W]
    let xc = xc.reshape((b * c, h, out_w))?;
    let y = rows.unsqueeze(0)?.broadcast_matmul(&xc)?; // [b*c, H, W]
    y.reshape((b, c, out_h, out_w))
}

/// PyTorch's cubic convolution weights (A = -0.75) for the taps at offsets -1, 0, 1, 2 from
/// `floor(src)`, at fractional position `t`.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let cc1 = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let cc2 = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let t2 = 1.0 - t;
    [cc2(t + 1.0), cc1(t), cc1(t2), cc2(t2 + 1.0)]
}

/// The [n * factor, n] matrix of bicubic upsampling along one axis.
fn bicubic_matrix(n: usize, factor: usize, dev: &Device) -> Result<Tensor> {
    let out = n * factor;
    let mut m = vec![0f32; out * n];
    // PyTorch: scale = (float)(1.0 / scale_factor), src = scale * (dst + 0.5) - 0.5 in f32.
    let scale = (1.0 / factor as f64) as f32;
    for dst in 0..out {
        let src = scale * (dst as f32 + 0.5) - 0.5;
        let base = src.floor();
        let t = src - base;
        let weights = cubic_weights(t);
        for (k, wk) in weights.iter().enumerate() {
            let idx = (base as i64 - 1 + k as i64).clamp(0, n as i64 - 1) as usize;
            m[dst * n + idx] += wk;
        }
    }
    Tensor::from_vec(m, (out, n), dev)
}

/// The [n / factor, n] matrix averaging blocks of `factor` along one axis.
fn box_matrix(n: usize, factor: usize, dev: &Device) -> Result<Tensor> {
    let out = n / factor;
    let mut m = vec![0f32; out * n];
    let wgt = 1.0 / factor as f32;
    for o in 0..out {
        for k in 0..factor {
            m[o * n + o * factor + k] = wgt;
        }
    }
    Tensor::from_vec(m, (out, n), dev)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cubic_weights_sum_to_one_and_interpolate() {
        for t in [0.0f32, 0.1, 0.5, 0.9] {
            let s: f32 = cubic_weights(t).iter().sum();
            assert!((s - 1.0).abs() < 1e-6, "{t}: {s}");
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn upsampling_keeps_constants_and_box_downscale_undoes_it_on_them() {
        let x = Tensor::full(0.25f32, (1, 2, 3, 4), &Device::Cpu).unwrap();
        let up = bicubic_upsample(&x, 5).unwrap();
        assert_eq!(up.dims(), &[1, 2, 15, 20]);
        let v: Vec<f32> = up.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|a| (a - 0.25).abs() < 1e-6));
        let down = box_downscale(&up, 5).unwrap();
        assert_eq!(down.dims(), &[1, 2, 3, 4]);
        assert!(box_downscale(&up, 4).is_err());
    }
}
