//! Building blocks of DIAMOND's UNet (`src/models/blocks.py`): group norms, conditional group
//! norm, self-attention, Fourier noise features, down/upsampling, residual blocks and the UNet.
//!
//! Weight names (from `vb.pp(..)`) reproduce DIAMOND's PyTorch state-dict keys, so a DIAMOND
//! checkpoint loads without renaming. Shapes in comments: `b` batch, `c` channels, `h`/`w` size.

#![allow(
    clippy::needless_pass_by_value,
    reason = "candle convention: constructors take `VarBuilder` by value (a cheap Arc handle)"
)]

use std::sync::{Arc, OnceLock};

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, Linear, VarBuilder};

use crate::kernels::conv::{ConvAlgo, PackedConv};
use crate::kernels::norm::Modulation;
use crate::kernels::{self, cpu_tensor, to_f32_vec, use_fast, with_f32};

/// Channels per GroupNorm group (`GN_GROUP_SIZE` in blocks.py).
pub const GN_GROUP_SIZE: usize = 32;
/// GroupNorm epsilon (`GN_EPS`).
pub const GN_EPS: f64 = 1e-5;
/// Channels per attention head (`ATTN_HEAD_DIM`).
pub const ATTN_HEAD_DIM: usize = 8;

/// Number of GroupNorm groups for `c` channels.
pub fn gn_groups(c: usize) -> usize {
    (c / GN_GROUP_SIZE).max(1)
}

/// Number of attention heads for `c` channels.
pub fn attn_heads(c: usize) -> usize {
    (c / ATTN_HEAD_DIM).max(1)
}

/// A 2D convolution: candle's `Conv2d` (the reference, and the path autograd uses) plus the
/// weights packed for the fast CPU kernel (see [`crate::kernels`]), made on first use.
///
/// The packed copy cannot go stale: weights that can change are `Var`s, which track gradients
/// and so never take the fast path.
#[derive(Debug, Clone)]
pub struct Conv {
    conv: candle_nn::Conv2d,
    packed: Arc<OnceLock<PackedConv>>,
}

impl Conv {
    /// Wraps a candle convolution.
    pub fn new(conv: candle_nn::Conv2d) -> Self {
        Self {
            conv,
            packed: Arc::new(OnceLock::new()),
        }
    }

    /// Weights and options as loaded `c_in -> c_out`, `k x k`, from `vb` (`weight`, `bias`).
    pub fn load(
        c_in: usize,
        c_out: usize,
        k: usize,
        cfg: Conv2dConfig,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        Ok(Self::new(candle_nn::conv2d(c_in, c_out, k, cfg, vb)?))
    }

    /// The candle convolution (weights, bias, options).
    pub fn inner(&self) -> &candle_nn::Conv2d {
        &self.conv
    }

    /// The weights packed for the fast kernel with `algo` (cached for [`ConvAlgo::Auto`]).
    pub fn pack(&self, algo: ConvAlgo) -> Result<PackedConv> {
        let w = self.conv.weight();
        let (c_out, c_in, kh, kw) = w.dims4()?;
        let cfg = self.conv.config();
        if kh != kw || cfg.groups != 1 || cfg.dilation != 1 {
            candle_core::bail!("fast conv: only square, ungrouped, undilated kernels");
        }
        let bias = self.conv.bias().map(to_f32_vec).transpose()?;
        Ok(PackedConv::new(
            &to_f32_vec(w)?,
            (c_out, c_in, kh),
            bias.as_deref(),
            (cfg.stride, cfg.padding),
            algo,
        ))
    }

    fn packed(&self) -> Result<&PackedConv> {
        if let Some(p) = self.packed.get() {
            return Ok(p);
        }
        let p = self.pack(ConvAlgo::Auto)?;
        Ok(self.packed.get_or_init(|| p))
    }

    fn fast_applies(&self, x: &Tensor, residual: Option<&Tensor>) -> bool {
        let cfg = self.conv.config();
        let (_, _, kh, kw) = self.conv.weight().dims4().unwrap_or_default();
        let mut ts = vec![x, self.conv.weight()];
        ts.extend(self.conv.bias());
        ts.extend(residual);
        kh == kw && cfg.groups == 1 && cfg.dilation == 1 && x.rank() == 4 && use_fast(&ts)
    }

    /// `conv(x) + residual` (the residual [b, c_out, h_out, w_out] added in the same pass on
    /// the fast path).
    pub fn forward_add(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        if !self.fast_applies(x, residual) {
            let y = self.forward_reference(x)?;
            return match residual {
                Some(r) => y + r,
                None => Ok(y),
            };
        }
        let packed = self.packed()?;
        run_packed(packed, x, residual)
    }
}

impl Conv {
    /// The convolution through candle's ops (autograd-capable). When gradients are tracked on
    /// the CPU, it runs the training op whose backward pass is GEMM-based: candle's own conv
    /// backward (a direct transposed convolution) would dominate a training step.
    fn forward_reference(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.conv.weight();
        let cfg = self.conv.config();
        let (_, _, kh, kw) = w.dims4()?;
        let trainable = kh == kw && cfg.groups == 1 && cfg.dilation == 1;
        if trainable && (x.track_op() || w.track_op()) && crate::kernels::conv_grad::applies(x, w) {
            return crate::kernels::conv_grad::conv2d(
                x,
                w,
                self.conv.bias(),
                cfg.stride,
                cfg.padding,
            );
        }
        self.conv.forward(x)
    }
}

/// Runs a packed convolution on `x` [b, c_in, h, w], adding `residual` if given.
pub fn run_packed(packed: &PackedConv, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if c != packed.c_in() {
        candle_core::bail!(
            "conv: input has {c} channels, weights expect {}",
            packed.c_in()
        );
    }
    let (ho, wo) = packed.out_size(h, w);
    let shape = (b, packed.c_out(), ho, wo);
    if let Some(r) = residual
        && r.dims() != [b, packed.c_out(), ho, wo]
    {
        candle_core::bail!("conv: residual {:?}, output {shape:?}", r.dims());
    }
    let out = with_f32(x, |xs| match residual {
        Some(r) => with_f32(r, |rs| Ok(packed.forward(xs, (b, h, w), Some(rs)))),
        None => Ok(packed.forward(xs, (b, h, w), None)),
    })?;
    cpu_tensor(out, shape)
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_add(x, None)
    }
}

/// 3x3 convolution, stride 1, padding 1 (`Conv3x3`).
pub fn conv3x3(c_in: usize, c_out: usize, vb: VarBuilder<'_>) -> Result<Conv> {
    let cfg = Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    Conv::load(c_in, c_out, 3, cfg, vb)
}

/// 1x1 convolution (`Conv1x1`).
pub fn conv1x1(c_in: usize, c_out: usize, vb: VarBuilder<'_>) -> Result<Conv> {
    Conv::load(c_in, c_out, 1, Conv2dConfig::default(), vb)
}

/// Whether `dtype` is a 16-bit float (f16, bf16): norms and softmax then run in f32.
pub fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

/// f32 for 16-bit floats, else `dtype` itself (f32, f64).
pub fn compute_dtype_at_least_f32(dtype: DType) -> DType {
    if is_half(dtype) { DType::F32 } else { dtype }
}

/// Per-group statistics of `x` [b, c, h, w] as PyTorch's group norm uses them: returns
/// `(mean, rstd)`, each [b, groups] in `x`'s dtype.
///
/// The sums run in f64: a group holds up to `32 * h * w` values, and a plain f32 running sum over
/// that many would drift by more than PyTorch's (pairwise) reduction does.
fn group_stats(x: &Tensor, groups: usize, eps: f64) -> Result<(Tensor, Tensor)> {
    let (b, c, h, w) = x.dims4()?;
    let n = (c / groups) * h * w;
    let x64 = x.reshape((b, groups, n))?.to_dtype(DType::F64)?; // [b, g, n]
    let mean = (x64.sum_keepdim(2)? / n as f64)?; // [b, g, 1]
    let var = (x64.broadcast_sub(&mean)?.sqr()?.sum_keepdim(2)? / n as f64)?;
    let rstd = (var + eps)?.sqrt()?.recip()?;
    Ok((
        mean.squeeze(2)?.to_dtype(x.dtype())?,
        rstd.squeeze(2)?.to_dtype(x.dtype())?,
    ))
}

/// Group norm of `x` [b, c, h, w] with optional per-channel affine `(weight, bias)` [c].
///
/// Computed as PyTorch's CPU kernel does, `y = x * scale + bias` with `scale = rstd * gamma` and
/// `bias = beta - scale * mean` per (sample, channel), which keeps results within float rounding of
/// DIAMOND's.
pub fn group_norm(
    x: &Tensor,
    groups: usize,
    eps: f64,
    affine: Option<(&Tensor, &Tensor)>,
) -> Result<Tensor> {
    let (b, c, _, _) = x.dims4()?;
    if groups == 0 || !c.is_multiple_of(groups) {
        candle_core::bail!("group_norm: {c} channels not divisible into {groups} groups");
    }
    let (mean, rstd) = group_stats(x, groups, eps)?;
    // Expand the per-group values to per-channel: [b, g] -> [b, g, c/g] -> [b, c].
    let per_channel = |t: &Tensor| -> Result<Tensor> {
        t.unsqueeze(2)?
            .broadcast_as((b, groups, c / groups))?
            .reshape((b, c))
    };
    let mean = per_channel(&mean)?;
    let rstd = per_channel(&rstd)?;
    let (scale, bias) = match affine {
        Some((gamma, beta)) => {
            let scale = rstd.broadcast_mul(&gamma.unsqueeze(0)?)?; // [b, c]
            let bias = beta.unsqueeze(0)?.broadcast_sub(&(&scale * &mean)?)?;
            (scale, bias)
        }
        None => {
            let bias = (&rstd * &mean)?.neg()?;
            (rstd, bias)
        }
    };
    let scale = scale.reshape((b, c, 1, 1))?;
    let bias = bias.reshape((b, c, 1, 1))?;
    x.broadcast_mul(&scale)?.broadcast_add(&bias)
}

/// What follows the normalisation in [`norm_act`].
#[derive(Debug, Clone, Copy)]
pub enum NormMod<'a> {
    /// Nothing.
    None,
    /// Per-channel `(weight, bias)` [c] (GroupNorm).
    Affine(&'a Tensor, &'a Tensor),
    /// `n * (1 + scale) + shift` with `[scale | shift]` = `ss` [b, 2c] (AdaGroupNorm).
    Ada(&'a Tensor),
}

/// Group norm of `x` [b, c, h, w], then `modulation`, then SiLU if `silu`: one fused kernel on
/// the fast path, the candle ops of [`group_norm`] otherwise.
pub fn norm_act(
    x: &Tensor,
    groups: usize,
    eps: f64,
    modulation: NormMod<'_>,
    silu: bool,
) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if groups == 0 || !c.is_multiple_of(groups) {
        candle_core::bail!("group_norm: {c} channels not divisible into {groups} groups");
    }
    let fast = match modulation {
        NormMod::None => use_fast(&[x]),
        NormMod::Affine(wt, bs) => use_fast(&[x, wt, bs]),
        NormMod::Ada(ss) => use_fast(&[x, ss]) && ss.dims() == [b, 2 * c],
    };
    if !fast && is_half(x.dtype()) {
        // f16/bf16 activations: normalise, modulate and activate in f32 (as PyTorch's autocast
        // runs group norm), then round once to the activations' dtype.
        let up = |t: &Tensor| t.to_dtype(DType::F32);
        let x32 = up(x)?;
        let y = match modulation {
            NormMod::None => norm_act(&x32, groups, eps, NormMod::None, silu)?,
            NormMod::Affine(wt, bs) => {
                let (wt, bs) = (up(wt)?, up(bs)?);
                norm_act(&x32, groups, eps, NormMod::Affine(&wt, &bs), silu)?
            }
            NormMod::Ada(ss) => norm_act(&x32, groups, eps, NormMod::Ada(&up(ss)?), silu)?,
        };
        return y.to_dtype(x.dtype());
    }
    if !fast {
        let tracked = x.track_op()
            || match modulation {
                NormMod::None => false,
                NormMod::Affine(wt, bs) => wt.track_op() || bs.track_op(),
                NormMod::Ada(ss) => ss.track_op(),
            };
        // Training on the CPU: the normalisation as one op with its own backward pass (the
        // composed ops below cost a dozen full-size tensors each way).
        let trained = tracked && crate::kernels::norm_grad::applies(x);
        let y = match modulation {
            NormMod::None if trained => crate::kernels::norm_grad::normalize(x, groups, eps)?,
            NormMod::None => group_norm(x, groups, eps, None)?,
            NormMod::Affine(wt, bs) if trained => {
                let n = crate::kernels::norm_grad::normalize(x, groups, eps)?;
                n.broadcast_mul(&wt.reshape((1, c, 1, 1))?)?
                    .broadcast_add(&bs.reshape((1, c, 1, 1))?)?
            }
            NormMod::Affine(wt, bs) => group_norm(x, groups, eps, Some((wt, bs)))?,
            NormMod::Ada(ss) => {
                let y = if trained {
                    crate::kernels::norm_grad::normalize(x, groups, eps)?
                } else {
                    group_norm(x, groups, eps, None)?
                };
                let bs = ss.dim(0)?;
                let scale = (ss.narrow(1, 0, c)? + 1.0)?.reshape((bs, c, 1, 1))?;
                let shift = ss.narrow(1, c, c)?.reshape((bs, c, 1, 1))?;
                y.broadcast_mul(&scale)?.broadcast_add(&shift)?
            }
        };
        return if silu {
            candle_nn::ops::silu(&y)
        } else {
            Ok(y)
        };
    }
    let dims = (b, c, h * w);
    let out = match modulation {
        NormMod::None => with_f32(x, |xs| {
            Ok(kernels::norm::group_norm(
                xs,
                dims,
                groups,
                eps,
                Modulation::None,
                silu,
            ))
        })?,
        NormMod::Affine(wt, bs) => {
            let (wt, bs) = (to_f32_vec(wt)?, to_f32_vec(bs)?);
            if wt.len() != c || bs.len() != c {
                candle_core::bail!(
                    "group_norm: affine of {} / {} for {c} channels",
                    wt.len(),
                    bs.len()
                );
            }
            let m = Modulation::Affine {
                weight: &wt,
                bias: &bs,
            };
            with_f32(x, |xs| {
                Ok(kernels::norm::group_norm(xs, dims, groups, eps, m, silu))
            })?
        }
        NormMod::Ada(ss) => {
            let ss = to_f32_vec(ss)?; // [b, 2c]
            let (scale, shift): (Vec<f32>, Vec<f32>) = (
                ss.chunks_exact(2 * c)
                    .flat_map(|r| &r[..c])
                    .copied()
                    .collect(),
                ss.chunks_exact(2 * c)
                    .flat_map(|r| &r[c..])
                    .copied()
                    .collect(),
            );
            let m = Modulation::Ada {
                scale: &scale,
                shift: &shift,
            };
            with_f32(x, |xs| {
                Ok(kernels::norm::group_norm(xs, dims, groups, eps, m, silu))
            })?
        }
    };
    cpu_tensor(out, (b, c, h, w))
}

/// GroupNorm with learned affine (`GroupNorm` wrapper of blocks.py; keys `norm.weight`,
/// `norm.bias`).
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
}

impl GroupNorm {
    /// `vb` is the wrapper's prefix; the parameters live under `norm.`.
    pub fn new(channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let vb = vb.pp("norm");
        Ok(Self {
            weight: vb.get(channels, "weight")?,
            bias: vb.get(channels, "bias")?,
            groups: gn_groups(channels),
        })
    }
}

impl GroupNorm {
    /// `silu(norm(x))`, fused on the fast path.
    pub fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        let m = NormMod::Affine(&self.weight, &self.bias);
        norm_act(x, self.groups, GN_EPS, m, true)
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let m = NormMod::Affine(&self.weight, &self.bias);
        norm_act(x, self.groups, GN_EPS, m, false)
    }
}

/// Conditional group norm: plain group norm, then `x * (1 + scale) + shift` with
/// `(scale, shift) = linear(cond)` split in halves.
#[derive(Debug, Clone)]
pub struct AdaGroupNorm {
    linear: Linear,
    channels: usize,
    groups: usize,
}

impl AdaGroupNorm {
    /// Linear `cond_channels -> 2 * channels` under `linear.`.
    pub fn new(channels: usize, cond_channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            linear: candle_nn::linear(cond_channels, 2 * channels, vb.pp("linear"))?,
            channels,
            groups: gn_groups(channels),
        })
    }

    /// `x` [b, c, h, w], `cond` [b, cond_channels] -> [b, c, h, w].
    pub fn forward(&self, x: &Tensor, cond: &Tensor) -> Result<Tensor> {
        self.forward_act(x, cond, false)
    }

    /// `silu(forward(x, cond))`, fused on the fast path.
    pub fn forward_silu(&self, x: &Tensor, cond: &Tensor) -> Result<Tensor> {
        self.forward_act(x, cond, true)
    }

    fn forward_act(&self, x: &Tensor, cond: &Tensor, silu: bool) -> Result<Tensor> {
        let ss = self.linear.forward(cond)?; // [b, 2c]
        if ss.dim(1)? != 2 * self.channels {
            candle_core::bail!("AdaGroupNorm: linear gives {:?}", ss.dims());
        }
        norm_act(x, self.groups, GN_EPS, NormMod::Ada(&ss), silu)
    }
}

/// Multi-head self-attention over the pixels of a feature map.
///
/// Returns `norm(x) + out_proj(attn(norm(x)))`: DIAMOND's residual is the normalised input, not
/// the raw one, and this reproduces it.
#[derive(Debug, Clone)]
pub struct SelfAttention2d {
    norm: GroupNorm,
    qkv_proj: Conv,
    out_proj: Conv,
    heads: usize,
}

impl SelfAttention2d {
    /// Keys `norm.norm.*`, `qkv_proj.*`, `out_proj.*`.
    pub fn new(channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let heads = attn_heads(channels);
        if !channels.is_multiple_of(heads) {
            candle_core::bail!("attention: {channels} channels not divisible by {heads} heads");
        }
        Ok(Self {
            norm: GroupNorm::new(channels, vb.pp("norm"))?,
            qkv_proj: conv1x1(channels, 3 * channels, vb.pp("qkv_proj"))?,
            out_proj: conv1x1(channels, channels, vb.pp("out_proj"))?,
            heads,
        })
    }
}

impl Module for SelfAttention2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (nh, hd) = (self.heads, c / self.heads);
        let x = self.norm.forward(x)?;
        // Channel order of qkv: [q heads | k heads | v heads], each head `hd` consecutive channels.
        let qkv = self.qkv_proj.forward(&x)?; // [b, 3c, h, w]
        if use_fast(&[&x, &qkv]) {
            // The fused kernel reads and writes the channel-first layout directly.
            let n = h * w;
            let y = with_f32(&qkv, |data| {
                let mut out = Vec::with_capacity(b * c * n);
                for batch in data.chunks_exact(3 * c * n) {
                    out.extend(kernels::attention::attention(batch, nh, hd, n));
                }
                Ok(out)
            })?;
            let y = cpu_tensor(y, (b, c, h, w))?;
            return self.out_proj.forward_add(&y, Some(&x));
        }
        let qkv = qkv.reshape((b, 3 * nh, hd, h * w))?.transpose(2, 3)?; // [b, 3nh, hw, hd]
        let q = qkv.narrow(1, 0, nh)?.contiguous()?; // [b, nh, hw, hd]
        let k = qkv.narrow(1, nh, nh)?.contiguous()?;
        let v = qkv.narrow(1, 2 * nh, nh)?.contiguous()?;
        let scale = Tensor::new((hd as f64).sqrt() as f32, x.device())?.to_dtype(x.dtype())?;
        let att = q.matmul(&k.t()?)?.broadcast_div(&scale)?; // [b, nh, hw, hw]
        // f16/bf16: the softmax runs in f32 (as under PyTorch's autocast).
        let att_in = if is_half(att.dtype()) {
            att.to_dtype(DType::F32)?
        } else {
            att
        };
        // The fused softmax has no backward pass; training (tracked tensors) takes the composed one.
        let att = if att_in.track_op() {
            candle_nn::ops::softmax(&att_in, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&att_in)?
        };
        let y = att.to_dtype(v.dtype())?.matmul(&v)?; // [b, nh, hw, hd]
        let y = y.transpose(2, 3)?.reshape((b, c, h, w))?;
        self.out_proj.forward_add(&y, Some(&x))
    }
}

/// Random Fourier features of the (scalar) noise level: `cat(cos f, sin f)` with
/// `f = 2π · input · weight`, `weight` a saved buffer [1, cond/2].
#[derive(Debug, Clone)]
pub struct FourierFeatures {
    weight: Tensor,
}

impl FourierFeatures {
    /// Key `weight` [1, cond_channels / 2].
    pub fn new(cond_channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            weight: vb.get((1, cond_channels / 2), "weight")?,
        })
    }
}

impl Module for FourierFeatures {
    /// `input` [b] -> [b, cond_channels].
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        // Same association as PyTorch: (2π · input) first, then the rank-1 product.
        let two_pi = (2.0 * std::f64::consts::PI) as f32;
        // In f32 (f64 for an f64 model) whatever the weights' dtype: cos/sin of a large argument
        // rounded to f16/bf16 would be noise. The result is cast to the weights' dtype.
        let dt = compute_dtype_at_least_f32(self.weight.dtype());
        let w = self.weight.to_dtype(dt)?;
        let f = (input.to_dtype(dt)?.unsqueeze(1)? * f64::from(two_pi))?.matmul(&w)?; // [b, cond/2]
        Tensor::cat(&[f.cos()?, f.sin()?], D::Minus1)?.to_dtype(self.weight.dtype())
    }
}

/// 3x3 convolution with stride 2 (halves the size).
#[derive(Debug, Clone)]
pub struct Downsample {
    conv: Conv,
}

impl Downsample {
    /// Key `conv.*`.
    pub fn new(channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        Ok(Self {
            conv: Conv::load(channels, channels, 3, cfg, vb.pp("conv"))?,
        })
    }
}

impl Module for Downsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.conv.forward(x)
    }
}

/// Nearest-neighbour x2 upsampling followed by a 3x3 convolution.
#[derive(Debug, Clone)]
pub struct Upsample {
    conv: Conv,
}

impl Upsample {
    /// Key `conv.*`.
    pub fn new(channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            conv: conv3x3(channels, channels, vb.pp("conv"))?,
        })
    }
}

impl Module for Upsample {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        self.conv.forward(&x.upsample_nearest2d(2 * h, 2 * w)?)
    }
}

/// Residual block conditioned through AdaGroupNorm, with optional self-attention at its end.
#[derive(Debug, Clone)]
pub struct ResBlock {
    proj: Option<Conv>,
    norm1: AdaGroupNorm,
    conv1: Conv,
    norm2: AdaGroupNorm,
    conv2: Conv,
    attn: Option<SelfAttention2d>,
}

impl ResBlock {
    /// Keys `proj.*` (only when `c_in != c_out`), `norm1.*`, `conv1.*`, `norm2.*`, `conv2.*`,
    /// `attn.*` (only with `attn`).
    pub fn new(
        c_in: usize,
        c_out: usize,
        cond_channels: usize,
        attn: bool,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        Ok(Self {
            proj: if c_in != c_out {
                Some(conv1x1(c_in, c_out, vb.pp("proj"))?)
            } else {
                None
            },
            norm1: AdaGroupNorm::new(c_in, cond_channels, vb.pp("norm1"))?,
            conv1: conv3x3(c_in, c_out, vb.pp("conv1"))?,
            norm2: AdaGroupNorm::new(c_out, cond_channels, vb.pp("norm2"))?,
            conv2: conv3x3(c_out, c_out, vb.pp("conv2"))?,
            attn: if attn {
                Some(SelfAttention2d::new(c_out, vb.pp("attn"))?)
            } else {
                None
            },
        })
    }

    /// `x` [b, c_in, h, w], `cond` [b, cond] -> [b, c_out, h, w].
    pub fn forward(&self, x: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let r = match &self.proj {
            Some(p) => p.forward(x)?,
            None => x.clone(),
        };
        let y = self.conv1.forward(&self.norm1.forward_silu(x, cond)?)?;
        let y = self
            .conv2
            .forward_add(&self.norm2.forward_silu(&y, cond)?, Some(&r))?;
        match &self.attn {
            Some(a) => a.forward(&y),
            None => Ok(y),
        }
    }
}

/// A sequence of ResBlocks (`ResBlocks`, keys `resblocks.{i}.*`).
#[derive(Debug, Clone)]
pub struct ResBlocks {
    resblocks: Vec<ResBlock>,
}

impl ResBlocks {
    /// One ResBlock per `(c_in, c_out)` pair.
    pub fn new(
        ins: &[usize],
        outs: &[usize],
        cond_channels: usize,
        attn: bool,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        let vb = vb.pp("resblocks");
        let resblocks = ins
            .iter()
            .zip(outs)
            .enumerate()
            .map(|(i, (&ci, &co))| ResBlock::new(ci, co, cond_channels, attn, vb.pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { resblocks })
    }

    /// Runs the blocks; before block `i`, concatenates `to_cat[i]` after `x` along channels (the
    /// UNet's skip connections). Returns every block's output (the last one is the result).
    pub fn forward(
        &self,
        x: &Tensor,
        cond: &Tensor,
        to_cat: Option<&[Tensor]>,
    ) -> Result<Vec<Tensor>> {
        let mut outputs: Vec<Tensor> = Vec::with_capacity(self.resblocks.len());
        for (i, block) in self.resblocks.iter().enumerate() {
            let prev = outputs.last().unwrap_or(x);
            let input = match to_cat {
                Some(skips) => {
                    let skip = skips.get(i).ok_or_else(|| {
                        candle_core::Error::msg(format!("ResBlocks: missing skip {i}"))
                    })?;
                    Tensor::cat(&[prev, skip], 1)?
                }
                None => prev.clone(),
            };
            outputs.push(block.forward(&input, cond)?);
        }
        Ok(outputs)
    }
}

/// The UNet: `L` levels of down ResBlocks, a mid block with attention, `L` levels of up
/// ResBlocks with skip connections.
#[derive(Debug, Clone)]
pub struct UNet {
    d_blocks: Vec<ResBlocks>,
    u_blocks: Vec<ResBlocks>,
    mid_blocks: ResBlocks,
    /// Level `i >= 1` downsamples on entry (level 0 does not: DIAMOND's `Identity`).
    downsamples: Vec<Downsample>,
    /// Up level `j >= 1` upsamples on entry.
    upsamples: Vec<Upsample>,
}

impl UNet {
    /// Keys `d_blocks.{i}`, `u_blocks.{j}` (j = L-1-level: deepest first), `mid_blocks`,
    /// `downsamples.{1..L}`, `upsamples.{1..L}`.
    pub fn new(
        cond_channels: usize,
        depths: &[usize],
        channels: &[usize],
        attn_depths: &[bool],
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        let levels = channels.len();
        if levels == 0 || depths.len() != levels || attn_depths.len() != levels {
            candle_core::bail!("UNet: depths, channels, attn_depths must have one equal length");
        }
        let mut d_blocks = Vec::with_capacity(levels);
        let mut u_blocks = Vec::with_capacity(levels);
        for i in 0..levels {
            let n = depths[i];
            let c1 = channels[i.saturating_sub(1)];
            let c2 = channels[i];
            let mut d_in = vec![c2; n];
            if let Some(first) = d_in.first_mut() {
                *first = c1;
            }
            d_blocks.push(ResBlocks::new(
                &d_in,
                &vec![c2; n],
                cond_channels,
                attn_depths[i],
                vb.pp("d_blocks").pp(i),
            )?);
            let mut u_in = vec![2 * c2; n];
            u_in.push(c1 + c2);
            let mut u_out = vec![c2; n];
            u_out.push(c1);
            // DIAMOND stores the up blocks deepest level first.
            u_blocks.push(ResBlocks::new(
                &u_in,
                &u_out,
                cond_channels,
                attn_depths[i],
                vb.pp("u_blocks").pp(levels - 1 - i),
            )?);
        }
        u_blocks.reverse();
        let c_last = channels[levels - 1];
        let mid_blocks = ResBlocks::new(
            &[c_last, c_last],
            &[c_last, c_last],
            cond_channels,
            true,
            vb.pp("mid_blocks"),
        )?;
        let downsamples = (1..levels)
            .map(|i| Downsample::new(channels[i - 1], vb.pp("downsamples").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        let upsamples = (1..levels)
            .map(|j| Upsample::new(channels[levels - 1 - j], vb.pp("upsamples").pp(j)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            d_blocks,
            u_blocks,
            mid_blocks,
            downsamples,
            upsamples,
        })
    }

    /// `x` [b, channels[0], h, w], `cond` [b, cond] -> [b, channels[0], h, w].
    ///
    /// Pads right/bottom with zeros to a multiple of `2^(L-1)` so every downsampling halves
    /// exactly, and crops the result back.
    pub fn forward(&self, x: &Tensor, cond: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let m = 1usize << self.downsamples.len();
        let (pad_h, pad_w) = (h.div_ceil(m) * m - h, w.div_ceil(m) * m - w);
        let mut x = x.pad_with_zeros(3, 0, pad_w)?.pad_with_zeros(2, 0, pad_h)?;

        // Per level: [level input after downsampling, block outputs...].
        let mut skips: Vec<Vec<Tensor>> = Vec::with_capacity(self.d_blocks.len());
        for (i, block) in self.d_blocks.iter().enumerate() {
            let x_down = match i {
                0 => x.clone(),
                _ => self.downsamples[i - 1].forward(&x)?,
            };
            let outs = block.forward(&x_down, cond, None)?;
            x = outs.last().cloned().unwrap_or_else(|| x_down.clone());
            let mut level = Vec::with_capacity(outs.len() + 1);
            level.push(x_down);
            level.extend(outs);
            skips.push(level);
        }

        x = self.mid_blocks.forward(&x, cond, None)?.pop().unwrap_or(x);

        for (j, block) in self.u_blocks.iter().enumerate() {
            let x_up = match j {
                0 => x.clone(),
                _ => self.upsamples[j - 1].forward(&x)?,
            };
            // Skips of the matching level, newest first, ending with the level's input.
            let mut level = skips.pop().unwrap_or_default();
            level.reverse();
            x = block
                .forward(&x_up, cond, Some(&level))?
                .pop()
                .unwrap_or(x_up);
        }

        x.narrow(2, 0, h)?.narrow(3, 0, w)
    }
}
