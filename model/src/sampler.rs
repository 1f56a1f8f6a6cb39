//! DIAMOND's `DiffusionSampler` (`src/models/diffusion/diffusion_sampler.py`): Karras noise
//! schedule and Euler / Heun integration with optional churn, plus the noise sources it draws
//! from.
//!
//! Randomness goes through [`NoiseSource`] so a caller can supply the exact initial noise
//! (parity with a PyTorch run) or a seeded generator (reproducible rollouts).

use std::collections::VecDeque;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::config::SamplerConfig;
use crate::denoiser::Denoiser;
use crate::error::{ModelError, Result};

/// Karras et al. noise levels `(max^(1/ρ) + l (min^(1/ρ) - max^(1/ρ)))^ρ` for `l` evenly spaced
/// in [0, 1], followed by a final 0: `num_steps + 1` values, decreasing.
///
/// Evaluated in f32 like DIAMOND's `build_sigmas` (float32 `torch.linspace`, python-float
/// constants rounded to f32, f32 power).
pub fn build_sigmas(num_steps: usize, sigma_min: f64, sigma_max: f64, rho: f64) -> Vec<f32> {
    let min_inv = sigma_min.powf(1.0 / rho);
    let max_inv = sigma_max.powf(1.0 / rho);
    let diff = (min_inv - max_inv) as f32;
    let (max_inv, rho) = (max_inv as f32, rho as f32);
    let mut out: Vec<f32> = linspace01(num_steps)
        .into_iter()
        .map(|l| (max_inv + l * diff).powf(rho))
        .collect();
    out.push(0.0);
    out
}

/// `torch.linspace(0, 1, n)` in f32: the first half counts up from 0, the second half down from
/// 1, with the step computed in f32.
fn linspace01(n: usize) -> Vec<f32> {
    match n {
        0 => vec![],
        1 => vec![0.0],
        _ => {
            let step = 1.0f32 / (n - 1) as f32;
            let half = n / 2;
            (0..n)
                .map(|i| {
                    if i < half {
                        step * i as f32
                    } else {
                        1.0 - step * (n - i - 1) as f32
                    }
                })
                .collect()
        }
    }
}

/// Where the sampler's Gaussian noise comes from.
pub trait NoiseSource {
    /// A standard normal tensor of `shape` (f32) on `device`.
    fn randn(&mut self, shape: &[usize], device: &Device) -> Result<Tensor>;
}

/// Standard normal noise from a seeded ChaCha8 generator: same seed, same rollout.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    rng: ChaCha8Rng,
}

impl SeededNoise {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl NoiseSource for SeededNoise {
    fn randn(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect();
        Ok(Tensor::from_vec(data, shape, device)?)
    }
}

/// Pre-drawn noise tensors handed out in order (e.g. the noise a PyTorch run used).
///
/// Each request must match the next tensor's shape; running out is an error.
#[derive(Debug, Clone, Default)]
pub struct GivenNoise {
    queue: VecDeque<Tensor>,
}

impl GivenNoise {
    /// Noise tensors in the order they will be requested.
    pub fn new(tensors: impl IntoIterator<Item = Tensor>) -> Self {
        Self {
            queue: tensors.into_iter().collect(),
        }
    }

    /// How many tensors have not been requested yet.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl NoiseSource for GivenNoise {
    fn randn(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let t = self.queue.pop_front().ok_or_else(|| {
            ModelError::Noise(format!(
                "no supplied noise left for a request of shape {shape:?}"
            ))
        })?;
        if t.dims() != shape {
            return Err(ModelError::Noise(format!(
                "supplied noise has shape {:?}, the sampler needs {shape:?}",
                t.dims()
            )));
        }
        Ok(t.to_dtype(DType::F32)?.to_device(device)?)
    }
}

/// Result of one sampler run.
#[derive(Debug, Clone)]
pub struct SampleTrace {
    /// Final sample [b, C, h, w].
    pub x: Tensor,
    /// `x` before each step and after the last: `num_steps + 1` tensors, first = initial noise.
    pub trajectory: Vec<Tensor>,
    /// Denoised estimate at each step (first Heun evaluation for order 2).
    pub denoised: Vec<Tensor>,
    /// The noised context frames [b, T*C, h, w] each step saw (with `s_cond`; empty otherwise).
    pub cond_obs: Vec<Tensor>,
}

/// The diffusion sampler: holds its config and noise schedule.
#[derive(Debug, Clone)]
pub struct DiffusionSampler {
    cfg: SamplerConfig,
    sigmas: Vec<f32>,
}

impl DiffusionSampler {
    /// Builds the schedule from `cfg`.
    pub fn new(cfg: &SamplerConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            sigmas: build_sigmas(
                cfg.num_steps_denoising,
                cfg.sigma_min,
                cfg.sigma_max,
                cfg.rho,
            ),
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// The noise levels, ending with 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// The steps that draw churn noise (gamma > 0), in order.
    pub fn churn_steps(&self) -> Vec<usize> {
        let n_steps = self.sigmas.len() - 1;
        if self.cfg.s_churn / (n_steps as f64) <= 0.0 {
            return vec![];
        }
        (0..n_steps)
            .filter(|&i| {
                let s = f64::from(self.sigmas[i]);
                self.cfg.s_tmin <= s && s <= self.cfg.s_tmax
            })
            .collect()
    }

    /// Samples the next frame given context frames `prev_obs` [b, T, C, h, w] and actions
    /// `prev_act` [b, T] or [b, T, dim]. Draws the initial state, churn noise (if any) and the
    /// context frames' noise (with `s_cond`) from `noise`, in DIAMOND's order: `x0`, then per
    /// step the churn `eps`, the offset draw [b, T*C, 1, 1] (scaled by 0, as DIAMOND does) and
    /// the context noise [b, T*C, h, w].
    pub fn sample(
        &self,
        denoiser: &Denoiser,
        prev_obs: &Tensor,
        prev_act: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        Ok(self.sample_traced(denoiser, prev_obs, prev_act, noise)?.x)
    }

    /// Like [`Self::sample`], keeping the trajectory and the denoised estimates.
    pub fn sample_traced(
        &self,
        denoiser: &Denoiser,
        prev_obs: &Tensor,
        prev_act: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> Result<SampleTrace> {
        let (b, t, c, h, w) = prev_obs.dims5()?;
        let dev = prev_obs.device();
        let mut prev_obs = prev_obs.reshape((b, t * c, h, w))?; // [b, T*C, h, w]
        let scalar = |v: f32| Tensor::new(v, dev);
        let n_steps = self.sigmas.len() - 1;
        let gamma_ = (self.cfg.s_churn / n_steps as f64).min(2f64.sqrt() - 1.0);

        let mut x = noise.randn(&[b, c, h, w], dev)?; // [b, C, h, w]
        let mut trajectory = Vec::with_capacity(n_steps + 1);
        let mut denoised_all = Vec::with_capacity(n_steps);
        let mut cond_obs = Vec::new();
        trajectory.push(x.clone());
        for pair in self.sigmas.windows(2) {
            let (sigma, next_sigma) = (pair[0], pair[1]);
            let s = f64::from(sigma);
            let gamma = if self.cfg.s_tmin <= s && s <= self.cfg.s_tmax {
                gamma_
            } else {
                0.0
            };
            let sigma_hat = sigma * (gamma + 1.0) as f32;
            if gamma > 0.0 {
                let eps = (noise.randn(&[b, c, h, w], dev)? * self.cfg.s_noise)?;
                let amp = (sigma_hat * sigma_hat - sigma * sigma).sqrt();
                x = (x + eps.broadcast_mul(&scalar(amp)?)?)?;
            }
            // Conditioning noise (DIAMOND's `csgo` branch): added at every step to the already
            // noised frames, so it accumulates; the offset draw is made and multiplied by 0.
            let sigma_cond = if self.cfg.s_cond > 0.0 {
                let _offset = noise.randn(&[b, t * c, 1, 1], dev)?;
                let eps = noise.randn(&[b, t * c, h, w], dev)?;
                let s_cond = self.cfg.s_cond as f32;
                prev_obs = (prev_obs + eps.broadcast_mul(&scalar(s_cond)?)?)?;
                cond_obs.push(prev_obs.clone());
                Some(s_cond)
            } else {
                None
            };
            // DIAMOND denoises at `sigma`, not `sigma_hat`, even with churn; kept for parity.
            let denoised = denoiser.denoise_at_cond(&x, sigma, sigma_cond, &prev_obs, prev_act)?;
            let d = (&x - &denoised)?.broadcast_div(&scalar(sigma_hat)?)?;
            let dt = scalar(next_sigma - sigma_hat)?;
            if self.cfg.order == 1 || next_sigma == 0.0 {
                // Euler.
                x = (&x + d.broadcast_mul(&dt)?)?;
            } else {
                // Heun: average the slopes at both ends.
                let x_2 = (&x + d.broadcast_mul(&dt)?)?;
                let denoised_2 =
                    denoiser.denoise_at_cond(&x_2, next_sigma, sigma_cond, &prev_obs, prev_act)?;
                let d_2 = (&x_2 - &denoised_2)?.broadcast_div(&scalar(next_sigma)?)?;
                let d_prime = ((d + d_2)? / 2.0)?;
                x = (&x + d_prime.broadcast_mul(&dt)?)?;
            }
            denoised_all.push(denoised);
            trajectory.push(x.clone());
        }
        Ok(SampleTrace {
            x,
            trajectory,
            denoised: denoised_all,
            cond_obs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmas_end_with_zero_and_decrease() {
        let s = build_sigmas(5, 2e-3, 5.0, 7.0);
        assert_eq!(s.len(), 6);
        assert_eq!(s[5], 0.0);
        assert!(s.windows(2).all(|p| p[0] > p[1]));
        assert!((s[0] - 5.0).abs() < 1e-5 && (s[4] - 2e-3).abs() < 1e-6);
        assert_eq!(build_sigmas(1, 2e-3, 5.0, 7.0).len(), 2);
    }

    #[test]
    fn given_noise_checks_shape_and_count() {
        let dev = Device::Cpu;
        let mut g = GivenNoise::new([Tensor::zeros((1, 2), DType::F32, &dev).unwrap()]);
        assert!(g.randn(&[2, 1], &dev).is_err());
        let mut g = GivenNoise::new([Tensor::zeros((1, 2), DType::F32, &dev).unwrap()]);
        assert!(g.randn(&[1, 2], &dev).is_ok());
        assert!(g.randn(&[1, 2], &dev).is_err());
    }

    #[test]
    fn seeded_noise_is_reproducible() {
        let dev = Device::Cpu;
        let a = SeededNoise::new(7).randn(&[3, 4], &dev).unwrap();
        let b = SeededNoise::new(7).randn(&[3, 4], &dev).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    }
}
