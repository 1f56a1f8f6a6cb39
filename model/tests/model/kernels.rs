//! The fast CPU kernels against the plain candle ops they replace (the reference path), layer by
//! layer and for a whole denoiser call, plus the fallback that keeps autograd working.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder, VarMap};
use dreamyard_model::kernels::conv::ConvAlgo;
use dreamyard_model::layers::{Conv, NormMod, norm_act, run_packed};
use dreamyard_model::{ActionSpace, KernelPath, WorldModel, kernel_path, with_kernel_path};

use crate::{Net, model_config, sampler};

fn randn(shape: &[usize], std: f64, seed: u64) -> Tensor {
    // Deterministic per seed without relying on candle's global RNG.
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            // Sum of 4 uniforms: roughly normal, good enough for test data.
            let mut acc = 0.0f64;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                acc += (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            }
            (acc * std * 1.73) as f32
        })
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize, seed: u64) -> Conv {
    let w = randn(&[c_out, c_in, k, k], 0.1, seed);
    let b = randn(&[c_out], 0.1, seed + 1);
    let cfg = Conv2dConfig {
        padding: pad,
        stride,
        ..Default::default()
    };
    Conv::new(candle_nn::Conv2d::new(w, Some(b), cfg))
}

/// Fast vs candle for one convolution, with and without a residual, both algorithms.
fn check_conv(
    (c_in, c_out, k, stride, pad): (usize, usize, usize, usize, usize),
    (b, h, w): (usize, usize, usize),
) {
    let cv = conv(c_in, c_out, k, stride, pad, (c_in * 31 + h) as u64);
    let x = randn(&[b, c_in, h, w], 1.0, 7 + w as u64);
    let want = with_kernel_path(KernelPath::Candle, || cv.forward(&x).unwrap());
    let got = with_kernel_path(KernelPath::Fast, || cv.forward(&x).unwrap());
    // Relative to the output's size: sums of up to 9 * c_in products in another order.
    let tol = 2e-6 * max_abs(&want).max(1.0) * ((9 * c_in) as f32).sqrt();
    let d = max_abs_diff(&got, &want);
    let what = format!("conv {c_in}->{c_out} k{k} s{stride} p{pad} on {b}x{h}x{w}");
    assert!(d <= tol, "{what}: max |diff| {d:e} > {tol:e}");

    let im2col = run_packed(&cv.pack(ConvAlgo::Im2col).unwrap(), &x, None).unwrap();
    let d = max_abs_diff(&im2col, &want);
    assert!(d <= tol, "{what} (im2col): max |diff| {d:e} > {tol:e}");

    let r = randn(want.dims(), 1.0, 99);
    let want_r = (&want + &r).unwrap();
    let got_r = with_kernel_path(KernelPath::Fast, || cv.forward_add(&x, Some(&r)).unwrap());
    let d = max_abs_diff(&got_r, &want_r);
    assert!(d <= tol, "{what} + residual: max |diff| {d:e} > {tol:e}");
}

#[test]
fn winograd_3x3_matches_candle() {
    // The UNet's shapes, odd sizes (partial tiles, odd tile rows), few channels, batches.
    for (c_in, c_out, b, h, w) in [
        (64, 64, 1, 64, 64),
        (128, 64, 2, 16, 16),
        (15, 64, 1, 21, 30),
        (64, 3, 3, 9, 7),
        (5, 7, 2, 1, 1),
        (3, 4, 1, 2, 5),
        (32, 16, 1, 33, 3),
    ] {
        check_conv((c_in, c_out, 3, 1, 1), (b, h, w));
    }
}

#[test]
fn im2col_convs_match_candle() {
    for (shape, size) in [
        ((64, 64, 3, 2, 1), (1, 64, 64)),  // Downsample
        ((16, 8, 3, 2, 1), (2, 15, 9)),    // odd sizes
        ((128, 64, 1, 1, 0), (2, 16, 16)), // ResBlock proj
        ((32, 96, 1, 1, 0), (1, 8, 8)),    // attention qkv
        ((4, 6, 3, 1, 0), (1, 7, 6)),      // no padding
        ((4, 6, 5, 1, 2), (1, 7, 6)),      // 5x5
    ] {
        check_conv(shape, size);
    }
}

#[test]
fn fused_group_norm_matches_candle() {
    for (b, c, h, w, groups) in [
        (1, 64, 64, 64, 2),
        (2, 128, 8, 8, 4),
        (3, 16, 5, 7, 1),
        (1, 6, 3, 3, 3),
    ] {
        let x = (randn(&[b, c, h, w], 2.0, c as u64) + 0.5).unwrap();
        let weight = (randn(&[c], 0.2, 3) + 1.0).unwrap();
        let bias = randn(&[c], 0.2, 4);
        let ss = randn(&[b, 2 * c], 0.5, 5);
        for m in [
            NormMod::None,
            NormMod::Affine(&weight, &bias),
            NormMod::Ada(&ss),
        ] {
            for silu in [false, true] {
                let want = with_kernel_path(KernelPath::Candle, || {
                    norm_act(&x, groups, 1e-5, m, silu).unwrap()
                });
                let got = with_kernel_path(KernelPath::Fast, || {
                    norm_act(&x, groups, 1e-5, m, silu).unwrap()
                });
                let d = max_abs_diff(&got, &want);
                assert!(
                    d <= 2e-6 * max_abs(&want).max(1.0),
                    "norm {m:?} silu {silu} on {b}x{c}x{h}x{w}/{groups}: max |diff| {d:e}"
                );
            }
        }
    }
}

/// The fused attention against candle's matmuls and softmax, on the shapes DIAMOND's models
/// use (8 channels per head): the CS:GO upsampler's deepest level (665 pixels, 32 heads), a
/// denoiser's, and a small batch of 2.
#[test]
fn fused_attention_matches_candle() {
    use dreamyard_model::layers::SelfAttention2d;
    for (b, c, h, w) in [(1, 256, 19, 35), (2, 64, 8, 8), (1, 32, 5, 3)] {
        let dev = Device::Cpu;
        let mut tensors = std::collections::HashMap::new();
        tensors.insert(
            "norm.norm.weight".to_string(),
            (randn(&[c], 0.2, 1) + 1.0).unwrap(),
        );
        tensors.insert("norm.norm.bias".to_string(), randn(&[c], 0.2, 2));
        let scale = 1.0 / (c as f64).sqrt();
        tensors.insert(
            "qkv_proj.weight".to_string(),
            randn(&[3 * c, c, 1, 1], 3.0 * scale, 3),
        );
        tensors.insert("qkv_proj.bias".to_string(), randn(&[3 * c], 0.1, 4));
        tensors.insert(
            "out_proj.weight".to_string(),
            randn(&[c, c, 1, 1], scale, 5),
        );
        tensors.insert("out_proj.bias".to_string(), randn(&[c], 0.1, 6));
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let attn = SelfAttention2d::new(c, vb).unwrap();
        let x = randn(&[b, c, h, w], 1.0, c as u64);
        let want = with_kernel_path(KernelPath::Candle, || attn.forward(&x).unwrap());
        let got = with_kernel_path(KernelPath::Fast, || attn.forward(&x).unwrap());
        let d = max_abs_diff(&got, &want);
        assert!(
            d <= 2e-5 * max_abs(&want).max(1.0),
            "attention {b}x{c}x{h}x{w}: max |diff| {d:e}"
        );
    }
}

#[test]
fn tracked_tensors_take_the_candle_path_and_get_gradients() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let cv = dreamyard_model::layers::conv3x3(4, 8, vb.pp("c")).unwrap();
    let x = randn(&[2, 4, 6, 6], 1.0, 1);
    let ss = candle_nn::linear(3, 16, vb.pp("l"))
        .unwrap()
        .forward(&randn(&[2, 3], 1.0, 2))
        .unwrap();
    // Fast path selected, but the weights are Vars: candle runs, autograd works.
    let loss = with_kernel_path(KernelPath::Fast, || {
        let y = cv.forward(&x).unwrap();
        norm_act(&y, 2, 1e-5, NormMod::Ada(&ss), true)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    });
    let grads = loss.backward().unwrap();
    for (name, var) in vm.data().lock().unwrap().iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert!(max_abs(g) > 0.0, "zero gradient for {name}");
    }
    // And the result equals the reference path's.
    let want = with_kernel_path(KernelPath::Candle, || cv.forward(&x).unwrap());
    let got = with_kernel_path(KernelPath::Fast, || cv.forward(&x).unwrap());
    assert_eq!(max_abs_diff(&got, &want), 0.0);
}

#[test]
fn kernel_path_override_is_scoped() {
    let outer = kernel_path();
    with_kernel_path(KernelPath::Candle, || {
        assert_eq!(kernel_path(), KernelPath::Candle);
        with_kernel_path(KernelPath::Fast, || {
            assert_eq!(kernel_path(), KernelPath::Fast);
        });
        assert_eq!(kernel_path(), KernelPath::Candle);
    });
    assert_eq!(kernel_path(), outer);
    assert_eq!(KernelPath::parse("candle"), Some(KernelPath::Candle));
    assert_eq!(KernelPath::parse("fast"), Some(KernelPath::Fast));
    assert_eq!(KernelPath::parse("gpu"), None);
}

/// A whole denoiser call (attention, odd frame size, several levels) on both paths.
#[test]
fn denoiser_fast_matches_candle() {
    let net = Net {
        context: 2,
        cond_channels: 32,
        depths: vec![1, 2, 1],
        channels: vec![32, 64, 32],
        attn_depths: vec![false, true, false],
    };
    let action = ActionSpace::Discrete { num_actions: 3 };
    let cfg = model_config(net, action, sampler(1, 1, 0.0), None, None);
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    WorldModel::new(&cfg, vb).unwrap();
    // Plain tensors (not Vars) with non-trivial values, so the fast path applies.
    let mut tensors = std::collections::HashMap::new();
    for (i, (name, var)) in vm.data().lock().unwrap().iter().enumerate() {
        let t = var.as_tensor();
        let noise = randn(t.dims(), 0.05, 1000 + i as u64);
        tensors.insert(name.clone(), (t.detach() + noise).unwrap());
    }
    let model = WorldModel::new(&cfg, VarBuilder::from_tensors(tensors, DType::F32, &dev)).unwrap();
    let (b, h, w) = (2, 19, 26);
    let noisy = randn(&[b, 3, h, w], 1.0, 1);
    let obs = randn(&[b, 6, h, w], 0.5, 2);
    let act = Tensor::new(&[[0u32, 2], [1, 1]], &dev).unwrap();
    let sigma = Tensor::new(&[0.7f32, 3.0], &dev).unwrap();
    let run = |p| {
        with_kernel_path(p, || {
            model
                .denoiser()
                .denoise_traced(&noisy, &sigma, &obs, &act)
                .unwrap()
        })
    };
    let (fast, slow) = (run(KernelPath::Fast), run(KernelPath::Candle));
    for (name, a, b) in [
        ("conv_in", &fast.inner.conv_in, &slow.inner.conv_in),
        ("unet_out", &fast.inner.unet_out, &slow.inner.unet_out),
        ("F", &fast.inner.out, &slow.inner.out),
        ("D_raw", &fast.d_raw, &slow.d_raw),
    ] {
        let d = max_abs_diff(a, b);
        assert!(d <= 1e-4, "{name}: max |fast - candle| {d:e}");
    }
}
