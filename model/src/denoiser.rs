//! DIAMOND's `Denoiser` (`src/models/diffusion/denoiser.py`): EDM preconditioning around the
//! inner model, with offset noise, and output quantisation to 256 levels.

#![allow(
    clippy::needless_pass_by_value,
    reason = "candle convention: constructors take `VarBuilder` by value (a cheap Arc handle)"
)]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::config::DenoiserConfig;
use crate::error::{ModelError, Result};
use crate::inner_model::{InnerModel, InnerModelTrace};

/// EDM preconditioning coefficients for a batch of noise levels, each [b] (f32).
#[derive(Debug, Clone)]
pub struct Conditioners {
    /// Input scale of the noisy frame.
    pub c_in: Tensor,
    /// Scale of the network output.
    pub c_out: Tensor,
    /// Weight of the skip connection (noisy frame).
    pub c_skip: Tensor,
    /// Noise level fed to the network.
    pub c_noise: Tensor,
    /// Noise level of the context frames fed to the network, `ln(sigma_cond) / 4` (DIAMOND's
    /// `csgo` branch; `None`: not given, the network sees zeros).
    pub c_noise_cond: Option<Tensor>,
}

/// Conditioners of one noise level, in f32 with the operation order of DIAMOND's
/// `compute_conditioners` under PyTorch (python-float constants are rounded to f32 first;
/// `a / t` is `t.reciprocal() * a`, as PyTorch evaluates a scalar divided by a tensor).
///
/// Returns `(c_in, c_out, c_skip, c_noise)`.
pub fn conditioners_f32(sigma: f32, sigma_data: f64, sigma_offset_noise: f64) -> [f32; 4] {
    let off2 = (sigma_offset_noise * sigma_offset_noise) as f32;
    let sd2 = (sigma_data * sigma_data) as f32;
    let s = (sigma * sigma + off2).sqrt();
    let denom = s * s + sd2;
    let c_in = 1.0 / denom.sqrt();
    let c_skip = (1.0 / denom) * sd2;
    let c_out = s * c_skip.sqrt();
    let c_noise = s.ln() / 4.0;
    [c_in, c_out, c_skip, c_noise]
}

/// Quantises `d` to the 256-level grid as DIAMOND's `wrap_model_output`:
/// `clamp(-1, 1)`, map to [0, 255], truncate to an integer (`.byte()`), then `q / 255 * 2 - 1`.
pub fn quantize(d: &Tensor) -> Result<Tensor> {
    let q = ((d.clamp(-1f32, 1f32)? + 1.0)? / 2.0)?; // [0, 1]
    let q = (q * 255.0)?.floor()?; // truncation == floor on [0, 255]
    // A true division (not a multiplication by 1/255) to round like PyTorch's `uint8 / 255`.
    let q = q.broadcast_div(&Tensor::new(255f32, d.device())?)?;
    Ok(((q * 2.0)? - 1.0)?)
}

/// Output of one denoiser call with every intermediate (for parity checks).
#[derive(Debug, Clone)]
pub struct DenoiseTrace {
    /// The conditioners used.
    pub cs: Conditioners,
    /// The inner model's intermediates; `inner.out` is F.
    pub inner: InnerModelTrace,
    /// `c_skip * noisy + c_out * F`, before clamping / quantisation.
    pub d_raw: Tensor,
    /// The quantised denoised frame (what [`Denoiser::denoise`] returns).
    pub d_quant: Tensor,
}

/// The denoiser `D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)`.
#[derive(Debug, Clone)]
pub struct Denoiser {
    cfg: DenoiserConfig,
    inner_model: InnerModel,
    device: Device,
}

impl Denoiser {
    /// Keys under `inner_model.`.
    pub fn new(cfg: &DenoiserConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.inner_model.validate()?;
        Ok(Self {
            device: vb.device().clone(),
            inner_model: InnerModel::new(&cfg.inner_model, vb.pp("inner_model"))?,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DenoiserConfig {
        &self.cfg
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The network.
    pub fn inner_model(&self) -> &InnerModel {
        &self.inner_model
    }

    /// Conditioners for noise levels `sigma` [b] or [] (f32).
    ///
    /// Reads `sigma` back to the host; [`Self::conditioners_at`] takes host values (what the
    /// sampler does, so a GPU rollout makes no device-to-host copy here).
    pub fn compute_conditioners(&self, sigma: &Tensor) -> Result<Conditioners> {
        self.compute_conditioners_cond(sigma, None)
    }

    /// [`Self::compute_conditioners`] with the context frames' noise levels `sigma_cond` [b]
    /// or [] (DIAMOND's `csgo` branch).
    pub fn compute_conditioners_cond(
        &self,
        sigma: &Tensor,
        sigma_cond: Option<&Tensor>,
    ) -> Result<Conditioners> {
        let host = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
        };
        let sigmas = host(sigma)?;
        let mut cs = self.conditioners_at(&sigmas)?;
        if let Some(sc) = sigma_cond {
            cs.c_noise_cond = Some(self.noise_cond_at(&host(sc)?)?);
        }
        Ok(cs)
    }

    /// `ln(sigma_cond) / 4` per value, f32 [n] on the model's device.
    fn noise_cond_at(&self, sigma_cond: &[f32]) -> Result<Tensor> {
        let v: Vec<f32> = sigma_cond.iter().map(|s| s.ln() / 4.0).collect();
        Ok(Tensor::from_vec(v, sigma_cond.len(), &self.device)?)
    }

    /// Conditioners for the noise levels `sigmas`, one per batch element (or one shared), as
    /// f32 tensors [n] on the model's device.
    pub fn conditioners_at(&self, sigmas: &[f32]) -> Result<Conditioners> {
        let mut cols: [Vec<f32>; 4] = Default::default();
        for &s in sigmas {
            let c = conditioners_f32(s, self.cfg.sigma_data, self.cfg.sigma_offset_noise);
            for (col, v) in cols.iter_mut().zip(c) {
                col.push(v);
            }
        }
        let n = sigmas.len();
        let [c_in, c_out, c_skip, c_noise] = cols.map(|v| Tensor::from_vec(v, n, &self.device));
        Ok(Conditioners {
            c_in: c_in?,
            c_out: c_out?,
            c_skip: c_skip?,
            c_noise: c_noise?,
            c_noise_cond: None,
        })
    }

    /// One denoiser call keeping every intermediate.
    ///
    /// `noisy_next_obs` [b, C, h, w], `sigma` [b] or [] / [1] (shared), `obs` [b, T*C, h, w] in
    /// [-1, 1] (oldest frame first), `act` [b, T] (discrete) or [b, T, dim] (continuous).
    pub fn denoise_traced(
        &self,
        noisy_next_obs: &Tensor,
        sigma: &Tensor,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<DenoiseTrace> {
        self.denoise_traced_cond(noisy_next_obs, sigma, None, obs, act)
    }

    /// [`Self::denoise_traced`] with the context frames' noise levels `sigma_cond` [b] or []
    /// (DIAMOND's `csgo` branch: the network sees `ln(sigma_cond) / 4`; `None` gives zeros).
    pub fn denoise_traced_cond(
        &self,
        noisy_next_obs: &Tensor,
        sigma: &Tensor,
        sigma_cond: Option<&Tensor>,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<DenoiseTrace> {
        let cs = self.compute_conditioners_cond(sigma, sigma_cond)?;
        self.denoise_with(noisy_next_obs, cs, obs, act)
    }

    /// [`Self::denoise_traced`] with precomputed conditioners.
    fn denoise_with(
        &self,
        noisy_next_obs: &Tensor,
        cs: Conditioners,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<DenoiseTrace> {
        let col = |t: &Tensor| t.reshape((t.dim(0)?, 1, 1, 1)); // [b, 1, 1, 1]
        // True division, as PyTorch's `obs / sigma_data` (not a multiplication by the inverse).
        let sigma_data = Tensor::new(self.cfg.sigma_data as f32, &self.device)?;
        let rescaled_obs = obs.broadcast_div(&sigma_data)?;
        let rescaled_noise = noisy_next_obs.broadcast_mul(&col(&cs.c_in)?)?;
        let inner = self.inner_model.forward_traced(
            &rescaled_noise,
            &cs.c_noise,
            cs.c_noise_cond.as_ref(),
            &rescaled_obs,
            act,
        )?;
        // The network may run in f16/bf16; the preconditioning and the sampler stay in f32.
        let f = inner.out.to_dtype(DType::F32)?;
        let d_raw = (noisy_next_obs.broadcast_mul(&col(&cs.c_skip)?)?
            + f.broadcast_mul(&col(&cs.c_out)?)?)?;
        let d_quant = quantize(&d_raw)?;
        Ok(DenoiseTrace {
            cs,
            inner,
            d_raw,
            d_quant,
        })
    }

    /// The denoised (quantised) next frame [b, C, h, w]; arguments as in
    /// [`Self::denoise_traced`].
    pub fn denoise(
        &self,
        noisy_next_obs: &Tensor,
        sigma: &Tensor,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<Tensor> {
        self.check_inputs(noisy_next_obs, obs)?;
        Ok(self
            .denoise_traced(noisy_next_obs, sigma, obs, act)?
            .d_quant)
    }

    /// [`Self::denoise`] at one noise level shared by the batch, given on the host: the
    /// sampler's call, which reads nothing back from the device.
    pub fn denoise_at(
        &self,
        noisy_next_obs: &Tensor,
        sigma: f32,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<Tensor> {
        self.denoise_at_cond(noisy_next_obs, sigma, None, obs, act)
    }

    /// [`Self::denoise_at`] with the context frames' noise level `sigma_cond` shared by the
    /// batch (see [`Self::denoise_traced_cond`]).
    pub fn denoise_at_cond(
        &self,
        noisy_next_obs: &Tensor,
        sigma: f32,
        sigma_cond: Option<f32>,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<Tensor> {
        self.check_inputs(noisy_next_obs, obs)?;
        let mut cs = self.conditioners_at(&[sigma])?;
        if let Some(sc) = sigma_cond {
            cs.c_noise_cond = Some(self.noise_cond_at(&[sc])?);
        }
        Ok(self.denoise_with(noisy_next_obs, cs, obs, act)?.d_quant)
    }

    fn check_inputs(&self, noisy_next_obs: &Tensor, obs: &Tensor) -> Result<()> {
        let (b, c, _, _) = noisy_next_obs.dims4()?;
        let img = self.cfg.inner_model.img_channels;
        if c != img {
            return Err(ModelError::input(
                "noisy_next_obs",
                format!("{img} channels"),
                format!("{:?}", noisy_next_obs.dims()),
            ));
        }
        let obs_b = obs.dim(0)?;
        if obs_b != b {
            return Err(ModelError::input(
                "obs",
                format!("batch {b}"),
                format!("{:?}", obs.dims()),
            ));
        }
        Ok(())
    }
}
