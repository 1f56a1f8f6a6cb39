//! Image-quality metrics on model frames.

use candle_core::{DType, Tensor};

use crate::error::Result;

/// PSNR of identical frames is infinite; where PSNRs are averaged (the trainer's validation,
/// `eval`, the app's plots) each frame's is capped here first, so a window where nothing moves
/// counts as a perfect frame, not as an infinite mean.
pub const PSNR_CAP_DB: f64 = 100.0;

/// Peak signal-to-noise ratio in dB between two frames (any shape) with values in [-1, 1], on
/// the 8-bit scale: `10 log10(255^2 / mse)` with both mapped to [0, 255]. Identical frames give
/// infinity.
pub fn psnr_unit(a: &Tensor, b: &Tensor) -> Result<f64> {
    let mse = f64::from(
        (a.to_dtype(DType::F32)? - b.to_dtype(DType::F32)?)?
            .sqr()?
            .mean_all()?
            .to_scalar::<f32>()?,
    );
    // Range 2 in unit space is 255 on the 8-bit scale, so mse_255 = mse * (255 / 2)^2.
    Ok(10.0 * (4.0 / mse).log10())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn psnr_known_values() {
        let a = Tensor::zeros((3, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(psnr_unit(&a, &a).unwrap().is_infinite());
        // A uniform error of one 8-bit level: PSNR = 20 log10(255) = 48.13 dB.
        let b = (&a + 2.0 / 255.0).unwrap();
        assert!((psnr_unit(&a, &b).unwrap() - 20.0 * 255f64.log10()).abs() < 1e-3);
    }
}
