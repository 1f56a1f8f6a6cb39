//! DIAMOND's `InnerModel` (`src/models/diffusion/inner_model.py`): the network `F` that the
//! denoiser preconditions.
//!
//! It builds a conditioning vector from the noise level (Fourier features) and the context
//! actions (one embedding per context step, concatenated oldest first), then runs a UNet over
//! the context frames stacked on the channel axis with the noisy next frame after them.

#![allow(
    clippy::needless_pass_by_value,
    reason = "candle convention: constructors take `VarBuilder` by value (a cheap Arc handle)"
)]

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use crate::config::{ActionSpace, InnerModelConfig};
use crate::layers::{Conv, FourierFeatures, GroupNorm, UNet, conv3x3};

/// Per-step action embedding, concatenated over the context steps (frame-major).
#[derive(Debug, Clone)]
pub enum ActionEmbedding {
    /// `Embedding(num_actions, cond / T)` (DIAMOND); key `act_emb.0.weight`.
    Discrete(Embedding),
    /// `Linear(dim, cond / T)` applied to each step's action vector, after mapping it from the
    /// action space's `[low, high]` box to `[-1, 1]`; keys `act_emb.0.*`.
    Continuous {
        /// The per-step projection.
        linear: Linear,
        /// `low` per component [dim].
        low: Tensor,
        /// `2 / (high - low)` per component [dim] (1 where the range is empty).
        scale: Tensor,
    },
}

impl ActionEmbedding {
    fn new(cfg: &InnerModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let e = cfg.act_emb_dim();
        Ok(match &cfg.action {
            ActionSpace::Discrete { num_actions } => {
                Self::Discrete(candle_nn::embedding(*num_actions, e, vb.pp("0"))?)
            }
            ActionSpace::Continuous { dim, low, high } => {
                // Raw actions can be in any units (push-t: pixels up to 512); a fixed affine map
                // to [-1, 1] keeps the embedding's input well scaled for training.
                let scale: Vec<f32> = low
                    .iter()
                    .zip(high)
                    .map(|(&l, &h)| if h > l { 2.0 / (h - l) } else { 1.0 })
                    .collect();
                Self::Continuous {
                    linear: candle_nn::linear(*dim, e, vb.pp("0"))?,
                    low: Tensor::from_slice(low, *dim, vb.device())?,
                    scale: Tensor::from_vec(scale, *dim, vb.device())?,
                }
            }
        })
    }

    /// Discrete: `act` [b, T] integer ids -> [b, T * e]. Continuous: `act` [b, T, dim] float ->
    /// [b, T * e].
    pub fn forward(&self, act: &Tensor) -> Result<Tensor> {
        let emb = match self {
            Self::Discrete(e) => {
                // Embedding indices must be an integer dtype candle can gather with.
                let act = match act.dtype() {
                    DType::U8 | DType::U32 | DType::I64 => act.clone(),
                    _ => act.to_dtype(DType::U32)?,
                };
                e.forward(&act)? // [b, T, e]
            }
            Self::Continuous { linear, low, scale } => {
                let act = act.to_dtype(DType::F32)?; // [b, T, dim]
                let unit = (act.broadcast_sub(low)?.broadcast_mul(scale)? - 1.0)?; // in [-1, 1]
                linear.forward(&unit)? // [b, T, e]
            }
        };
        emb.flatten_from(1)
    }
}

/// Intermediate tensors of one forward pass (for parity checks and debugging).
#[derive(Debug, Clone)]
pub struct InnerModelTrace {
    /// Fourier features of `c_noise` [b, cond].
    pub noise_emb: Tensor,
    /// Action embedding [b, cond].
    pub act_emb: Tensor,
    /// `cond_proj(noise_emb + act_emb)` [b, cond].
    pub cond: Tensor,
    /// `conv_in` output [b, channels[0], h, w].
    pub conv_in: Tensor,
    /// UNet output [b, channels[0], h, w].
    pub unet_out: Tensor,
    /// Final output F [b, img_channels, h, w].
    pub out: Tensor,
}

/// The inner model (keys under `inner_model.` in DIAMOND's denoiser state dict).
#[derive(Debug, Clone)]
pub struct InnerModel {
    noise_emb: FourierFeatures,
    act_emb: ActionEmbedding,
    cond_proj_0: Linear,
    cond_proj_2: Linear,
    conv_in: Conv,
    unet: UNet,
    norm_out: GroupNorm,
    conv_out: Conv,
}

impl InnerModel {
    /// Builds the network from `cfg`, reading weights from `vb`.
    pub fn new(cfg: &InnerModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let cond = cfg.cond_channels;
        let c0 = cfg.channels.first().copied().unwrap_or(0);
        let cond_proj = vb.pp("cond_proj");
        Ok(Self {
            noise_emb: FourierFeatures::new(cond, vb.pp("noise_emb"))?,
            act_emb: ActionEmbedding::new(cfg, vb.pp("act_emb"))?,
            cond_proj_0: candle_nn::linear(cond, cond, cond_proj.pp("0"))?,
            cond_proj_2: candle_nn::linear(cond, cond, cond_proj.pp("2"))?,
            conv_in: conv3x3(
                (cfg.num_steps_conditioning + 1) * cfg.img_channels,
                c0,
                vb.pp("conv_in"),
            )?,
            unet: UNet::new(
                cond,
                &cfg.depths,
                &cfg.channels,
                &cfg.attn_depths,
                vb.pp("unet"),
            )?,
            norm_out: GroupNorm::new(c0, vb.pp("norm_out"))?,
            conv_out: conv3x3(c0, cfg.img_channels, vb.pp("conv_out"))?,
        })
    }

    /// The conditioning vector: `cond_proj(noise_emb(c_noise) + act_emb(act))`.
    ///
    /// `c_noise` [b] or [1] (broadcast over the batch, as DIAMOND's sampler does with a 0-d sigma).
    /// Returns `(noise_emb, act_emb, cond)`.
    pub fn conditioning(&self, c_noise: &Tensor, act: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let noise_emb = self.noise_emb.forward(c_noise)?; // [b or 1, cond]
        let act_emb = self.act_emb.forward(act)?; // [b, cond]
        let h = self
            .cond_proj_0
            .forward(&noise_emb.broadcast_add(&act_emb)?)?;
        let cond = self.cond_proj_2.forward(&candle_nn::ops::silu(&h)?)?;
        Ok((noise_emb, act_emb, cond))
    }

    /// `F(noisy_next_obs, c_noise, obs, act)`.
    ///
    /// `noisy_next_obs` [b, C, h, w] (already scaled by c_in), `c_noise` [b] or [1], `obs`
    /// [b, T*C, h, w] (already divided by sigma_data, oldest frame first), `act` [b, T] or
    /// [b, T, dim] -> [b, C, h, w].
    pub fn forward(
        &self,
        noisy_next_obs: &Tensor,
        c_noise: &Tensor,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<Tensor> {
        Ok(self.forward_traced(noisy_next_obs, c_noise, obs, act)?.out)
    }

    /// Like [`Self::forward`], keeping the intermediates.
    pub fn forward_traced(
        &self,
        noisy_next_obs: &Tensor,
        c_noise: &Tensor,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<InnerModelTrace> {
        let (noise_emb, act_emb, cond) = self.conditioning(c_noise, act)?;
        let x = Tensor::cat(&[obs, noisy_next_obs], 1)?; // [b, (T+1)*C, h, w]
        let conv_in = self.conv_in.forward(&x)?; // [b, c0, h, w]
        let unet_out = self.unet.forward(&conv_in, &cond)?; // [b, c0, h, w]
        let out = self
            .conv_out
            .forward(&self.norm_out.forward_silu(&unet_out)?)?; // [b, C, h, w]
        Ok(InnerModelTrace {
            noise_emb,
            act_emb,
            cond,
            conv_in,
            unet_out,
            out,
        })
    }
}

/// Flattens context frames `[b, T, C, h, w]` to `[b, T*C, h, w]` (channel index `C*t + c`).
pub fn flatten_frames(frames: &Tensor) -> Result<Tensor> {
    let (b, t, c, h, w) = frames.dims5()?;
    frames.reshape((b, t * c, h, w))
}
