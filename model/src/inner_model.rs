//! DIAMOND's `InnerModel` (`src/models/diffusion/inner_model.py`): the network `F` that the
//! denoiser preconditions.
//!
//! It builds a conditioning vector from the noise level (Fourier features) and the context
//! actions (one embedding per context step, concatenated oldest first), then runs a UNet over
//! the context frames stacked on the channel axis with the noisy next frame after them (and, with
//! a Dreamyard [`ActionMap`], one channel per context step with its action drawn on the frame).

#![allow(
    clippy::needless_pass_by_value,
    reason = "candle convention: constructors take `VarBuilder` by value (a cheap Arc handle)"
)]

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use crate::config::{ActionMap, ActionSpace, InnerModelConfig};
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
    /// Multi-hot vectors (DIAMOND's CS:GO): `act.float() @ weight`, the sum of the table's
    /// rows over the set entries; key `act_emb.0.weight` [num_actions, cond / T].
    MultiHot(Tensor),
}

impl ActionEmbedding {
    fn new(cfg: &InnerModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let e = cfg.act_emb_dim();
        Ok(match &cfg.action {
            ActionSpace::Discrete { num_actions } => {
                Self::Discrete(candle_nn::embedding(*num_actions, e, vb.pp("0"))?)
            }
            ActionSpace::MultiHot { num_actions, .. } => {
                Self::MultiHot(vb.pp("0").get((*num_actions, e), "weight")?)
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

    /// Discrete: `act` [b, T] integer ids -> [b, T * e]. Continuous and multi-hot: `act`
    /// [b, T, dim] float -> [b, T * e].
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
                // The box map runs in f32 (raw pixel coordinates lose whole pixels in bf16).
                linear.forward(&unit.to_dtype(linear.weight().dtype())?)? // [b, T, e]
            }
            Self::MultiHot(weight) => {
                let (b, t, n) = act.dims3()?;
                let act = act.to_dtype(weight.dtype())?.reshape((b * t, n))?;
                act.matmul(weight)?.reshape((b, t, ()))? // [b, T, e]
            }
        };
        emb.flatten_from(1)
    }
}

/// Draws each context step's action as a Gaussian blob on the frame ([`ActionMap`]).
#[derive(Debug, Clone, Copy)]
struct ActionPainter {
    /// `low` of components 0 (x) and 1 (y).
    low: [f32; 2],
    /// `high - low` of components 0 and 1.
    span: [f32; 2],
    /// Blob standard deviation in pixels.
    sigma: f32,
}

impl ActionPainter {
    fn new(map: &ActionMap, action: &ActionSpace) -> Option<Self> {
        match action {
            ActionSpace::Continuous { low, high, .. } if low.len() >= 2 && high.len() >= 2 => {
                Some(Self {
                    low: [low[0], low[1]],
                    span: [high[0] - low[0], high[1] - low[1]],
                    sigma: map.sigma as f32,
                })
            }
            // `InnerModelConfig::validate` refuses any other action space.
            _ => None,
        }
    }

    /// `act` [b, T, dim] -> [b, T, h, w]: one blob of peak 1 per context step, centred where
    /// the action's (x, y) falls on an `h` x `w` frame (pixel `j` spans `[j, j + 1)`).
    fn paint(&self, act: &Tensor, h: usize, w: usize) -> Result<Tensor> {
        let (b, t, _) = act.dims3()?;
        let dev = act.device();
        let act = act.to_dtype(DType::F32)?;
        // One axis: exp(-(centre_j - a)^2 / 2 sigma^2) for every pixel centre j, [b, T, n].
        let axis = |k: usize, n: usize| -> Result<Tensor> {
            let a = act.narrow(2, k, 1)?; // [b, T, 1]
            let a = ((a - f64::from(self.low[k]))? * (n as f64 / f64::from(self.span[k])))?;
            let centres: Vec<f32> = (0..n).map(|j| j as f32 + 0.5).collect();
            let centres = Tensor::from_vec(centres, (1, 1, n), dev)?;
            let d = centres.broadcast_sub(&a)?; // [b, T, n]
            let s2 = 2.0 * f64::from(self.sigma).powi(2);
            (d.sqr()? / -s2)?.exp()
        };
        let gx = axis(0, w)?.reshape((b, t, 1, w))?;
        let gy = axis(1, h)?.reshape((b, t, h, 1))?;
        gy.broadcast_mul(&gx) // [b, T, h, w]
    }
}

/// Intermediate tensors of one forward pass (for parity checks and debugging).
#[derive(Debug, Clone)]
pub struct InnerModelTrace {
    /// Fourier features of `c_noise` [b, cond].
    pub noise_emb: Tensor,
    /// Fourier features of `c_noise_cond` [b or 1, cond] (models with `noise_cond`).
    pub noise_cond_emb: Option<Tensor>,
    /// Action embedding [b, cond] (none for an upsampler).
    pub act_emb: Option<Tensor>,
    /// `cond_proj(noise_emb + noise_cond_emb + act_emb)` [b, cond].
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
    noise_cond_emb: Option<FourierFeatures>,
    act_emb: Option<ActionEmbedding>,
    cond_proj_0: Linear,
    cond_proj_2: Linear,
    conv_in: Conv,
    unet: UNet,
    norm_out: GroupNorm,
    conv_out: Conv,
    action_map: Option<ActionPainter>,
}

impl InnerModel {
    /// Builds the network from `cfg`, reading weights from `vb`.
    pub fn new(cfg: &InnerModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        let cond = cfg.cond_channels;
        let c0 = cfg.channels.first().copied().unwrap_or(0);
        let cond_proj = vb.pp("cond_proj");
        Ok(Self {
            noise_emb: FourierFeatures::new(cond, vb.pp("noise_emb"))?,
            noise_cond_emb: if cfg.noise_cond {
                Some(FourierFeatures::new(cond, vb.pp("noise_cond_emb"))?)
            } else {
                None
            },
            act_emb: if cfg.is_upsampler {
                None
            } else {
                Some(ActionEmbedding::new(cfg, vb.pp("act_emb"))?)
            },
            cond_proj_0: candle_nn::linear(cond, cond, cond_proj.pp("0"))?,
            cond_proj_2: candle_nn::linear(cond, cond, cond_proj.pp("2"))?,
            conv_in: conv3x3(cfg.in_channels(), c0, vb.pp("conv_in"))?,
            unet: UNet::new(
                cond,
                &cfg.depths,
                &cfg.channels,
                &cfg.attn_depths,
                vb.pp("unet"),
            )?,
            norm_out: GroupNorm::new(c0, vb.pp("norm_out"))?,
            conv_out: conv3x3(c0, cfg.img_channels, vb.pp("conv_out"))?,
            action_map: cfg
                .action_map
                .as_ref()
                .and_then(|m| ActionPainter::new(m, &cfg.action)),
        })
    }

    /// The dtype the network computes in: its weights' (f32 unless built otherwise).
    pub fn dtype(&self) -> DType {
        self.conv_in.inner().weight().dtype()
    }

    /// Whether this is an upsampler's network (no action input).
    pub fn is_upsampler(&self) -> bool {
        self.act_emb.is_none()
    }

    /// The conditioning vector:
    /// `cond_proj(noise_emb(c_noise) + noise_cond_emb(c_noise_cond) + act_emb(act))`, summed in
    /// that order as DIAMOND does.
    ///
    /// `c_noise` [b] or [1] (broadcast over the batch, as DIAMOND's sampler does with a 0-d
    /// sigma); `c_noise_cond` likewise, zeros when `None` (DIAMOND without `sigma_cond`), used
    /// only by models with `noise_cond`; `act` ignored by an upsampler.
    /// Returns `(noise_emb, noise_cond_emb, act_emb, cond)`.
    pub fn conditioning(
        &self,
        c_noise: &Tensor,
        c_noise_cond: Option<&Tensor>,
        act: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>, Option<Tensor>, Tensor)> {
        let noise_emb = self.noise_emb.forward(c_noise)?; // [b or 1, cond]
        let mut sum = noise_emb.clone();
        let noise_cond_emb = match &self.noise_cond_emb {
            Some(f) => {
                let c = match c_noise_cond {
                    Some(c) => c.clone(),
                    None => c_noise.zeros_like()?,
                };
                let e = f.forward(&c)?; // [b or 1, cond]
                sum = sum.broadcast_add(&e)?;
                Some(e)
            }
            None => None,
        };
        let act_emb = match &self.act_emb {
            Some(a) => {
                let e = a.forward(act)?; // [b, cond]
                sum = sum.broadcast_add(&e)?;
                Some(e)
            }
            None => None,
        };
        let h = self.cond_proj_0.forward(&sum)?;
        let cond = self.cond_proj_2.forward(&candle_nn::ops::silu(&h)?)?;
        Ok((noise_emb, noise_cond_emb, act_emb, cond))
    }

    /// `F(noisy_next_obs, c_noise, obs, act)`.
    ///
    /// With an [`ActionMap`], the actions are also drawn onto the frame as extra input channels.
    ///
    /// `noisy_next_obs` [b, C, h, w] (already scaled by c_in), `c_noise` [b] or [1], `obs`
    /// [b, T*C, h, w] (already divided by sigma_data, oldest frame first; an upsampler's ends
    /// with the bicubic-upsampled new frame), `act` [b, T] or [b, T, dim] (an upsampler ignores
    /// it) -> [b, C, h, w].
    pub fn forward(
        &self,
        noisy_next_obs: &Tensor,
        c_noise: &Tensor,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<Tensor> {
        Ok(self
            .forward_traced(noisy_next_obs, c_noise, None, obs, act)?
            .out)
    }

    /// Like [`Self::forward`] with the context frames' noise level `c_noise_cond` (see
    /// [`Self::conditioning`]), keeping the intermediates.
    pub fn forward_traced(
        &self,
        noisy_next_obs: &Tensor,
        c_noise: &Tensor,
        c_noise_cond: Option<&Tensor>,
        obs: &Tensor,
        act: &Tensor,
    ) -> Result<InnerModelTrace> {
        // Inputs of any float dtype run in the weights' dtype (f16/bf16 inference).
        let dt = self.dtype();
        let (noisy_next_obs, obs) = (&noisy_next_obs.to_dtype(dt)?, &obs.to_dtype(dt)?);
        let (noise_emb, noise_cond_emb, act_emb, cond) =
            self.conditioning(c_noise, c_noise_cond, act)?;
        let x = match &self.action_map {
            None => Tensor::cat(&[obs, noisy_next_obs], 1)?, // [b, (T+1)*C, h, w]
            Some(painter) => {
                let (_, _, h, w) = obs.dims4()?;
                let map = painter.paint(act, h, w)?.to_dtype(obs.dtype())?; // [b, T, h, w]
                Tensor::cat(&[obs, noisy_next_obs, &map], 1)? // [b, (T+1)*C + T, h, w]
            }
        };
        let conv_in = self.conv_in.forward(&x)?; // [b, c0, h, w]
        let unet_out = self.unet.forward(&conv_in, &cond)?; // [b, c0, h, w]
        let out = self
            .conv_out
            .forward(&self.norm_out.forward_silu(&unet_out)?)?; // [b, C, h, w]
        Ok(InnerModelTrace {
            noise_emb,
            noise_cond_emb,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use candle_core::Device;

    use super::*;

    #[test]
    fn action_map_draws_each_step_where_its_action_falls_on_the_frame() {
        let painter = ActionPainter::new(
            &ActionMap { sigma: 1.0 },
            &ActionSpace::Continuous {
                dim: 3,
                low: vec![0.0, 0.0, -1.0],
                high: vec![512.0, 512.0, 1.0],
            },
        )
        .unwrap();
        // 512 units onto 64 pixels: (100, 300) is pixel centre (12.5, 37.5); the third
        // component plays no part.
        let act = Tensor::new(
            &[
                [[100f32, 300.0, 0.3], [0.0, 0.0, -1.0]],
                [[508.0, 4.0, 1.0], [256.0, 256.0, 0.0]],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let map = painter.paint(&act, 64, 64).unwrap();
        assert_eq!(map.dims(), &[2, 2, 64, 64]);
        let px = |b: usize, t: usize, y: usize, x: usize| -> f32 {
            map.get(b)
                .unwrap()
                .get(t)
                .unwrap()
                .get(y)
                .unwrap()
                .get(x)
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert!((px(0, 0, 37, 12) - 1.0).abs() < 1e-6);
        // One pixel off along one axis: exp(-1/2); along both: exp(-1).
        assert!((px(0, 0, 37, 13) - (-0.5f32).exp()).abs() < 1e-6);
        assert!((px(0, 0, 38, 11) - (-1f32).exp()).abs() < 1e-6);
        assert!(px(0, 0, 37, 30) < 1e-12);
        // The corner (0, 0) sits half a pixel from pixel (0, 0)'s centre.
        assert!((px(0, 1, 0, 0) - (-0.25f32).exp()).abs() < 1e-6);
        // Top right corner; and the frame centre, between pixels: four equal neighbours.
        assert!((px(1, 0, 0, 63) - 1.0).abs() < 1e-6);
        let mid = [(31, 31), (31, 32), (32, 31), (32, 32)].map(|(y, x)| px(1, 1, y, x));
        assert!(mid.iter().all(|v| (v - mid[0]).abs() < 1e-6), "{mid:?}");
        // Each blob's peak is the step's own maximum.
        let peak = |b: usize, t: usize| -> f32 {
            map.get(b)
                .unwrap()
                .get(t)
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap()
        };
        assert!((peak(0, 0) - px(0, 0, 37, 12)).abs() < 1e-9);
        assert!((peak(1, 0) - px(1, 0, 0, 63)).abs() < 1e-9);
    }
}
