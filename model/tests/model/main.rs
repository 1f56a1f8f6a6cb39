//! Integration tests of the model crate, one module per area, in one test binary: DIAMOND
//! parity, the fast kernels against candle's ops, the runtime and training.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns panic on failure by design"
)]

use candle_core::{DType, Tensor};
use dreamyard_model::{
    ActionSpace, DenoiserConfig, FrameSize, InnerModelConfig, ModelConfig, SamplerConfig,
};

mod kernels;
mod parity;
mod parity_csgo;
mod precision;
mod runtime;
mod train;

/// The network part of a test model: context frames, conditioning width and the UNet's levels.
struct Net {
    context: usize,
    cond_channels: usize,
    depths: Vec<usize>,
    channels: Vec<usize>,
    attn_depths: Vec<bool>,
}

/// DIAMOND's sampler (sigma 2e-3 to 5, rho 7) with `steps` steps of Euler (`order` 1) or Heun
/// (2), and churn `s_churn` over every noise level.
fn sampler(steps: usize, order: u8, s_churn: f64) -> SamplerConfig {
    SamplerConfig {
        num_steps_denoising: steps,
        sigma_min: 2e-3,
        sigma_max: 5.0,
        rho: 7.0,
        order,
        s_churn,
        s_tmin: 0.0,
        s_tmax: f64::INFINITY,
        s_noise: 1.0,
        s_cond: 0.0,
    }
}

/// A model config with DIAMOND's EDM constants (sigma_data 0.5, offset noise 0.3), RGB frames
/// and no action map.
fn model_config(
    net: Net,
    action: ActionSpace,
    sampler: SamplerConfig,
    frame: Option<FrameSize>,
    fps: Option<f64>,
) -> ModelConfig {
    ModelConfig {
        denoiser: DenoiserConfig {
            sigma_data: 0.5,
            sigma_offset_noise: 0.3,
            inner_model: InnerModelConfig {
                img_channels: 3,
                num_steps_conditioning: net.context,
                cond_channels: net.cond_channels,
                depths: net.depths,
                channels: net.channels,
                attn_depths: net.attn_depths,
                action,
                action_map: None,
                noise_cond: false,
                is_upsampler: false,
            },
            upsampling_factor: None,
        },
        diffusion_sampler: sampler,
        upsampler: None,
        frame,
        fps,
    }
}

/// A tensor's values on the host, as f64, flattened.
fn host_values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}
