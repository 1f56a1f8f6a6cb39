//! Parity with DIAMOND's two-stage CS:GO world model (`csgo` branch), against the reference
//! tensors in `shared/fixtures/diamond-csgo/` (see its README.md): the loader, single denoiser
//! and upsampler calls (also at the published frame size), the bicubic upsampling, the four
//! sampler runs (Euler with conditioning noise, Euler and Heun with churn) and the 6-step
//! rollout of both stages, on the fast CPU kernels and on candle's ops (and CUDA GPU 0 where a
//! `cuda` build finds one), plus the keyboard-and-mouse action encoding.

use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device, IndexOp, Tensor};
use dreamyard_model::resample::bicubic_upsample;
use dreamyard_model::{
    ActionSpace, Checkpoint, DiffusionSampler, GivenNoise, KernelPath, KeyboardMouse,
    KeyboardMouseInput, SamplerConfig, WorldModel, with_kernel_path,
};

use super::parity::{
    Fixture, assert_close, assert_quantized, assert_quantized_levels, device_label, devices,
    fixture_dir_named, to_f32_vec,
};

fn fixture_dir() -> PathBuf {
    fixture_dir_named("diamond-csgo")
}

/// A uint8 input as DIAMOND's float frames: `x.div(255).mul(2).sub(1)`.
fn frames(f: &Fixture, name: &str) -> Tensor {
    u8_to_unit(f.input(name))
}

/// The denoiser's context [b, T*C, h, w] and actions [b, T, 51] (f32), from `obs` or, with a
/// prefix (`alt.`), from `<prefix>obs_u8`.
fn lr_context(f: &Fixture, prefix: &str) -> (Tensor, Tensor) {
    let obs = match prefix {
        "" => f.input("obs").clone(),
        p => frames(f, &format!("{p}obs_u8")),
    };
    let (b, t, c, h, w) = obs.dims5().unwrap();
    let act = f
        .input(&format!("{prefix}act"))
        .to_dtype(DType::F32)
        .unwrap();
    (obs.reshape((b, t * c, h, w)).unwrap(), act)
}

fn u8_to_unit(t: &Tensor) -> Tensor {
    let x = t.to_dtype(DType::F32).unwrap();
    let d = Tensor::new(255f32, t.device()).unwrap();
    ((x.broadcast_div(&d).unwrap() * 2.0).unwrap() - 1.0).unwrap()
}

fn fixture_on(dev: &Device) -> &'static Fixture {
    static CPU: OnceLock<Fixture> = OnceLock::new();
    static GPU: OnceLock<Fixture> = OnceLock::new();
    let cell = if dev.is_cpu() { &CPU } else { &GPU };
    cell.get_or_init(|| Fixture::load(&fixture_dir(), dev))
}

/// Runs `check` on every device, on the CPU with both kernel paths (a GPU has only candle's).
fn on_every_device_and_path(check: fn(&Device)) {
    for dev in devices() {
        for path in [KernelPath::Fast, KernelPath::Candle] {
            if !dev.is_cpu() && path == KernelPath::Fast {
                continue;
            }
            eprintln!("csgo, {}, kernel path: {}", device_label(&dev), path.name());
            with_kernel_path(path, || check(&dev));
        }
    }
}

/// A sampler config from `fixture.samplers` in config.yaml.
fn fixture_sampler(name: &str) -> SamplerConfig {
    let text = std::fs::read_to_string(fixture_dir().join("config.yaml")).unwrap();
    let y: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let v = y["fixture"]["samplers"][name].clone();
    serde_norway::from_value(v).unwrap()
}

/// The upsampler's context for the single calls and sampler runs: the last full-resolution
/// frame, then the bicubic-upsampled `up.low`, [b, 2, C, H, W].
fn up_context(f: &Fixture) -> Tensor {
    let full = frames(f, "full_obs_u8"); // [b, 4, C, H, W]
    let t = full.dim(1).unwrap();
    let last = full.narrow(1, t - 1, 1).unwrap();
    let bic = bicubic_upsample(f.input("up.low"), 5)
        .unwrap()
        .unsqueeze(1)
        .unwrap();
    Tensor::cat(&[&last, &bic], 1).unwrap()
}

fn flat(t: &Tensor) -> Tensor {
    let (b, n, c, h, w) = t.dims5().unwrap();
    t.reshape((b, n * c, h, w)).unwrap()
}

#[test]
fn csgo_checkpoint_loads_as_published_layout() {
    let dir = fixture_dir();
    let ck = Checkpoint::from_diamond(&dir.join("agent.pt"), &dir.join("config.yaml")).unwrap();
    let up = ck
        .tensors
        .keys()
        .filter(|k| k.starts_with("upsampler."))
        .count();
    assert_eq!((ck.tensors.len() - up, up), (301, 268));
    assert!(
        !ck.tensors
            .keys()
            .any(|k| k.contains("rew_end") || k.contains("actor"))
    );
    let cfg = &ck.config;
    let ActionSpace::MultiHot {
        num_actions: 51,
        keyboard_mouse: Some(km),
    } = &cfg.denoiser.inner_model.action
    else {
        panic!(
            "multi-hot actions expected, found {:?}",
            cfg.denoiser.inner_model.action
        );
    };
    assert_eq!(km, &KeyboardMouse::csgo());
    let up = cfg.upsampler.as_ref().unwrap();
    assert_eq!(up.factor(), 5);
    assert!(up.denoiser.inner_model.is_upsampler && up.denoiser.inner_model.noise_cond);
    assert_eq!(cfg.diffusion_sampler.s_cond, 0.005);
    assert_eq!(up.diffusion_sampler.s_churn, 10.0);
    // env.train.size is the full-resolution size; `frame` is the first stage's.
    assert_eq!(cfg.frame.map(|f| (f.height, f.width)), Some((15, 28)));
    let model = ck.build(&Device::Cpu).unwrap();
    let spec = model.spec();
    assert_eq!(
        spec.upsampling.map(|u| (u.factor, u.context_len)),
        Some((5, 1))
    );

    // Strict: a tensor of the wrong shape or a missing one is named.
    let mut bad = ck.clone();
    let key = "upsampler.inner_model.conv_in.weight";
    bad.tensors.insert(
        key.into(),
        Tensor::zeros((16, 6, 3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let e = bad.build(&Device::Cpu).unwrap_err().to_string();
    assert!(e.contains(key) && e.contains("[16, 9, 3, 3]"), "{e}");
    let mut bad = ck.clone();
    bad.tensors
        .remove("upsampler.inner_model.noise_cond_emb.weight");
    let e = bad.build(&Device::Cpu).unwrap_err().to_string();
    assert!(
        e.contains("upsampler.inner_model.noise_cond_emb.weight"),
        "{e}"
    );
}

#[test]
fn csgo_native_round_trip_gives_the_same_frames() {
    let dir = fixture_dir();
    let out = std::env::temp_dir().join(format!("dy-csgo-native-{}", std::process::id()));
    dreamyard_model::convert_diamond_to_native(
        &dir.join("agent.pt"),
        &dir.join("config.yaml"),
        &out,
    )
    .unwrap();
    let native = WorldModel::load_native(&out, &Device::Cpu).unwrap();
    let f = fixture_on(&Device::Cpu);
    assert_eq!(native.config(), f.model.config());
    let (obs, act) = lr_context(f, "");
    let a = f.model.denoiser().denoise_traced_cond(
        f.input("denoise.lr.s1.noisy_next_obs"),
        f.input("denoise.lr.s1.sigma"),
        Some(f.input("denoise.lr.s1.sigma_cond")),
        &obs,
        &act,
    );
    let b = native.denoiser().denoise_traced_cond(
        f.input("denoise.lr.s1.noisy_next_obs"),
        f.input("denoise.lr.s1.sigma"),
        Some(f.input("denoise.lr.s1.sigma_cond")),
        &obs,
        &act,
    );
    assert_close(
        "native.lr.s1.F",
        &a.unwrap().inner.out,
        &b.unwrap().inner.out,
        0.0,
    );
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn csgo_action_encoding_matches() {
    let text = std::fs::read_to_string(fixture_dir().join("config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    let km = KeyboardMouse::csgo();
    let f = fixture_on(&Device::Cpu);
    let want = f.output("action_encoding.vectors");
    let examples = cfg["action_vector"]["examples"].as_array().unwrap();
    assert_eq!(examples.len(), want.dim(0).unwrap());
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    };
    for (i, ex) in examples.iter().enumerate() {
        let mut buttons = Vec::new();
        if ex["l_click"].as_bool().unwrap() {
            buttons.push("left click".to_string());
        }
        if ex["r_click"].as_bool().unwrap() {
            buttons.push("right click".to_string());
        }
        let input = KeyboardMouseInput {
            keys: strings(&ex["keys"]),
            buttons,
            mouse: (
                ex["mouse_x"].as_f64().unwrap() as f32,
                ex["mouse_y"].as_f64().unwrap() as f32,
            ),
        };
        let enc = km.encode(&input);
        let name = ex["description"].as_str().unwrap();
        assert_eq!(enc.vector, to_f32_vec(&want.i(i).unwrap()), "{name}");
        assert_eq!(enc.kept_keys, strings(&ex["kept_keys"]), "{name}");
        let snapped = &ex["snapped_mouse"];
        assert_eq!(
            enc.mouse,
            (
                snapped[0].as_f64().unwrap() as f32,
                snapped[1].as_f64().unwrap() as f32
            ),
            "{name}"
        );
    }
}

#[test]
fn csgo_single_calls_match() {
    single_calls_on(&Device::Cpu, KernelPath::Fast);
}

#[test]
fn csgo_single_calls_match_on_candle_path() {
    for dev in devices() {
        single_calls_on(&dev, KernelPath::Candle);
    }
}

fn single_calls_on(dev: &Device, path: KernelPath) {
    let f = fixture_on(dev);
    eprintln!("csgo, {}, kernel path: {}", device_label(dev), path.name());
    let (lr_obs, act) = lr_context(f, "");
    let up_obs = flat(&up_context(f));
    assert_close(
        "up.bicubic",
        &up_obs.narrow(1, 3, 3).unwrap(),
        f.output("up.bicubic"),
        1e-4,
    );
    for (stage, calls) in [
        ("lr", &["s0", "s1", "s2", "mix"][..]),
        ("up", &["s0", "s1", "mix"][..]),
    ] {
        let (den, obs) = if stage == "lr" {
            (f.model.denoiser(), &lr_obs)
        } else {
            (f.model.upsampler().unwrap().denoiser(), &up_obs)
        };
        for &call in calls {
            let key = |n: &str| format!("denoise.{stage}.{call}.{n}");
            let sigma_cond = f.inputs.get(&key("sigma_cond"));
            let tr = with_kernel_path(path, || {
                den.denoise_traced_cond(
                    f.input(&key("noisy_next_obs")),
                    f.input(&key("sigma")),
                    sigma_cond,
                    obs,
                    &act,
                )
            })
            .unwrap();
            for (n, t) in [
                ("c_in", &tr.cs.c_in),
                ("c_out", &tr.cs.c_out),
                ("c_skip", &tr.cs.c_skip),
                ("c_noise", &tr.cs.c_noise),
            ] {
                assert_close(&key(n), t, f.output(&key(n)), 1e-5);
            }
            if let Some(c) = &tr.cs.c_noise_cond {
                assert_close(
                    &key("c_noise_cond"),
                    c,
                    f.output(&key("c_noise_cond")),
                    1e-5,
                );
            }
            assert_close(&key("F"), &tr.inner.out, f.output(&key("F")), 1e-4);
            assert_close(&key("D_raw"), &tr.d_raw, f.output(&key("D_raw")), 1e-4);
            assert_quantized(
                &key("D_quant"),
                &tr.d_quant,
                f.output(&key("D_quant")),
                1e-3,
            );
            if call == "s1" {
                let mut inner = vec![
                    ("noise_emb", tr.inner.noise_emb.clone()),
                    ("noise_cond_emb", tr.inner.noise_cond_emb.clone().unwrap()),
                    ("cond", tr.inner.cond.clone()),
                    ("conv_in", tr.inner.conv_in.clone()),
                    ("unet_out", tr.inner.unet_out.clone()),
                ];
                if stage == "lr" {
                    inner.push(("act_emb", tr.inner.act_emb.clone().unwrap()));
                } else {
                    assert!(tr.inner.act_emb.is_none());
                }
                for (n, t) in inner {
                    let k = format!("inner.{stage}.s1.{n}");
                    // noise_emb is [1, cond] broadcast over the batch when sigma is shared.
                    let want = f.output(&k);
                    let t = t.broadcast_as(want.dims()).unwrap();
                    assert_close(&k, &t, want, 1e-4);
                }
            }
        }
    }
}

/// The published frame sizes (low-res 30x56, full-res 150x280), one call per stage.
#[test]
fn csgo_published_size_calls_match() {
    for path in [KernelPath::Fast, KernelPath::Candle] {
        let f = fixture_on(&Device::Cpu);
        let (obs, act) = lr_context(f, "alt.");
        let tr = with_kernel_path(path, || {
            f.model.denoiser().denoise_traced_cond(
                f.input("alt.lr.noisy_next_obs"),
                f.input("alt.lr.sigma"),
                Some(f.input("alt.lr.sigma_cond")),
                &obs,
                &act,
            )
        })
        .unwrap();
        assert_close("alt.lr.F", &tr.inner.out, f.output("alt.lr.F"), 1e-4);
        assert_quantized(
            "alt.lr.D_quant",
            &tr.d_quant,
            f.output("alt.lr.D_quant"),
            1e-3,
        );

        let low = frames(f, "alt.up.low_u8");
        let bic = bicubic_upsample(&low, 5).unwrap();
        assert_close("alt.up.bicubic", &bic, f.output("alt.up.bicubic"), 1e-4);
        let full = frames(f, "alt.full_obs_u8");
        let up_obs = flat(&Tensor::cat(&[&full, &bic.unsqueeze(1).unwrap()], 1).unwrap());
        let tr = with_kernel_path(path, || {
            f.model.upsampler().unwrap().denoiser().denoise_traced_cond(
                f.input("alt.up.noisy_next_obs"),
                f.input("alt.up.sigma"),
                None,
                &up_obs,
                &act,
            )
        })
        .unwrap();
        assert_close("alt.up.F", &tr.inner.out, f.output("alt.up.F"), 1e-4);
        assert_quantized(
            "alt.up.D_quant",
            &tr.d_quant,
            f.output("alt.up.D_quant"),
            1e-3,
        );
    }
}

#[test]
fn csgo_sampler_runs_match() {
    on_every_device_and_path(sampler_runs_on);
}

fn sampler_runs_on(dev: &Device) {
    let f = fixture_on(dev);
    let act = f.input("act").to_dtype(DType::F32).unwrap();
    let up_ctx = up_context(f);
    for run in ["lr_fast", "lr_hq", "up_fast", "up_heun"] {
        let key = |n: &str| format!("sampler.{run}.{n}");
        let sampler = DiffusionSampler::new(&fixture_sampler(run)).unwrap();
        let mut draws = vec![f.input(&key("x0")).clone()];
        let lr = run.starts_with("lr");
        let steps = sampler.sigmas().len() - 1;
        let churn_steps: Vec<i64> = if lr {
            vec![]
        } else {
            f.input(&key("churn_steps"))
                .to_device(&Device::Cpu)
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        let mut churn_k = 0;
        for i in 0..steps {
            if churn_steps.contains(&(i as i64)) {
                draws.push(f.input(&key("churn")).i((.., churn_k)).unwrap());
                churn_k += 1;
            }
            if lr {
                draws.push(f.input(&key("cond_offset")).i((.., i)).unwrap());
                draws.push(f.input(&key("cond_noise")).i((.., i)).unwrap());
            }
        }
        let mut noise = GivenNoise::new(draws);
        let (den, obs) = if lr {
            (f.model.denoiser(), f.input("obs").clone())
        } else {
            (f.model.upsampler().unwrap().denoiser(), up_ctx.clone())
        };
        let tr = sampler.sample_traced(den, &obs, &act, &mut noise).unwrap();
        assert_eq!(noise.remaining(), 0, "{run}: every supplied draw used");
        assert_close(
            &key("sigmas"),
            &Tensor::new(sampler.sigmas(), &Device::Cpu).unwrap(),
            f.output(&key("sigmas")),
            1e-5,
        );
        if lr {
            let cond = Tensor::stack(&tr.cond_obs, 1).unwrap();
            assert_close(&key("cond_obs"), &cond, f.output(&key("cond_obs")), 1e-4);
        }
        // The reference lists every denoiser call; the trace keeps each step's first.
        let call_step: Vec<i64> = f.output(&key("call_step")).to_vec1().unwrap();
        let firsts: Vec<usize> = (0..call_step.len())
            .filter(|&j| j == 0 || call_step[j] != call_step[j - 1])
            .collect();
        let want_den = Tensor::stack(
            &firsts
                .iter()
                .map(|&j| f.output(&key("denoised")).i((.., j)).unwrap())
                .collect::<Vec<_>>(),
            1,
        )
        .unwrap();
        let den_got = Tensor::stack(&tr.denoised, 1).unwrap();
        assert_quantized(&key("denoised"), &den_got, &want_den, 1e-3);
        let traj = Tensor::stack(&tr.trajectory, 1).unwrap();
        // Heun / churn trajectories are not on the grid: a flipped D moves them by <= 1.25 levels.
        assert_quantized_levels(
            &key("trajectory"),
            &traj,
            f.output(&key("trajectory")),
            2,
            1e-3,
        );
        assert_quantized(&key("x"), &tr.x, f.output(&key("x")), 1e-3);
    }
}

/// The noise one rollout step of env `e` draws, in DIAMOND's order: the first stage's x0,
/// offset and conditioning noise, then the upsampler's x0 and churn.
fn rollout_draws(f: &Fixture, e: usize, t: usize) -> Vec<Tensor> {
    let g = |n: &str| f.input(n).i((e, t)).unwrap();
    let u = |x: Tensor| x.unsqueeze(0).unwrap();
    vec![
        u(g("rollout.lr.x0")),
        u(g("rollout.lr.cond_offset").i(0).unwrap()),
        u(g("rollout.lr.cond_noise").i(0).unwrap()),
        u(g("rollout.up.x0")),
        u(g("rollout.up.churn").i(0).unwrap()),
    ]
}

/// DIAMOND's `WorldModelEnv` rollout, free-running: each env reset from its spawn (low-res and
/// full-res context, actions), then 6 steps; every frame within one level of DIAMOND's.
#[test]
fn csgo_rollout_free_running_matches() {
    on_every_device_and_path(rollout_free_running_on);
}

fn rollout_free_running_on(dev: &Device) {
    let f = fixture_on(dev);
    let (low_all, full_all) = (frames(f, "obs_u8"), frames(f, "full_obs_u8"));
    let act_all = f.input("act").to_dtype(DType::F32).unwrap();
    for e in 0..2 {
        let r = |t: &Tensor| t.narrow(0, e, 1).unwrap();
        let mut state = f
            .model
            .reset_two_stage(&r(&low_all), &r(&full_all), &r(&act_all))
            .unwrap();
        let (mut lows, mut fulls) = (vec![], vec![]);
        for t in 0..6 {
            let mut noise = GivenNoise::new(rollout_draws(f, e, t));
            let a = f
                .input("rollout.actions")
                .i((e, t))
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let out = f.model.step_stages(&mut state, &a, &mut noise).unwrap();
            assert_eq!(noise.remaining(), 0);
            lows.push(out.low.squeeze(0).unwrap());
            fulls.push(out.full.unwrap().squeeze(0).unwrap());
        }
        let lows = Tensor::stack(&lows, 0).unwrap();
        let fulls = Tensor::stack(&fulls, 0).unwrap();
        let want = |n: &str| f.output(n).i(e).unwrap();
        // Flips multiply from step to step (DIAMOND against itself on one thread: up to 92 of
        // 63000 at step 6); one level per element, at most 1% of elements.
        assert_quantized(
            &format!("rollout.lr.frames[{e}]"),
            &lows,
            &want("rollout.lr.frames"),
            1e-2,
        );
        assert_quantized(
            &format!("rollout.up.frames[{e}]"),
            &fulls,
            &want("rollout.up.frames"),
            1e-2,
        );
    }
}

/// Each rollout step alone from the reference windows (teacher forcing): the single-call
/// tolerance at every step.
#[test]
fn csgo_rollout_teacher_forced_matches() {
    let f = fixture_on(&Device::Cpu);
    let (low_all, full_all) = (frames(f, "obs_u8"), frames(f, "full_obs_u8"));
    let up = f.model.upsampler().unwrap();
    for e in 0..2 {
        let lr_frames = f.output("rollout.lr.frames").i(e).unwrap();
        let up_frames = f.output("rollout.up.frames").i(e).unwrap();
        let lows = Tensor::cat(&[&low_all.i(e).unwrap(), &lr_frames], 0).unwrap();
        let fulls = Tensor::cat(&[&full_all.i(e).unwrap(), &up_frames], 0).unwrap();
        for t in 0..6 {
            let mut noise = GivenNoise::new(rollout_draws(f, e, t));
            let win = lows.narrow(0, t, 4).unwrap().unsqueeze(0).unwrap();
            let act = f
                .output("rollout.act_window")
                .i((e, t))
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let low = f
                .model
                .sampler()
                .sample(f.model.denoiser(), &win, &act, &mut noise)
                .unwrap();
            assert_quantized(
                &format!("teacher.lr[{e},{t}]"),
                &low,
                &lr_frames.narrow(0, t, 1).unwrap(),
                1e-3,
            );
            let full_win = fulls.narrow(0, t + 3, 1).unwrap().unsqueeze(0).unwrap();
            let ref_low = lr_frames.narrow(0, t, 1).unwrap();
            let (bic, full) = up.upsample(&full_win, &ref_low, &mut noise).unwrap();
            assert_eq!(noise.remaining(), 0);
            assert_close(
                &format!("teacher.bicubic[{e},{t}]"),
                &bic,
                &f.output("rollout.up.bicubic")
                    .i(e)
                    .unwrap()
                    .narrow(0, t, 1)
                    .unwrap(),
                1e-4,
            );
            assert_quantized(
                &format!("teacher.up[{e},{t}]"),
                &full,
                &up_frames.narrow(0, t, 1).unwrap(),
                1e-3,
            );
        }
    }
}
