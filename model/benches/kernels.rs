//! Per-kernel timings, fast path vs the plain candle ops, at batch 1 on the UNet's shapes (the
//! ones BENCHMARKS.md compares with PyTorch), plus one denoiser call of the DIAMOND fixture model.
//!
//! `cargo bench -p dreamyard-model --bench kernels` (add `-- conv3x3` etc. to filter). Every
//! group runs twice: timed by the wall clock, and as `cpu/<group>` by the CPU time of all the
//! process's threads (Linux), which other processes competing for the cores barely move.

#![allow(
    clippy::unwrap_used,
    reason = "benchmark setup: a failure should stop the run loudly"
)]

use std::path::Path;
use std::time::Duration;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Conv2dConfig;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dreamyard_model::kernels::conv::ConvAlgo;
use dreamyard_model::layers::{Conv, NormMod, norm_act, run_packed};
use dreamyard_model::{KernelPath, WorldModel, with_kernel_path};

fn conv(c_in: usize, c_out: usize, stride: usize) -> Conv {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 0.05, (c_out, c_in, 3, 3), &dev).unwrap();
    let b = Tensor::randn(0f32, 0.05, c_out, &dev).unwrap();
    let cfg = Conv2dConfig {
        padding: 1,
        stride,
        ..Default::default()
    };
    Conv::new(candle_nn::Conv2d::new(w, Some(b), cfg))
}

/// CPU time of every thread of this process (`/proc/self/task/*/schedstat`), in ns.
struct CpuTime;

fn process_cpu_ns() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum()
}

impl Measurement for CpuTime {
    type Intermediate = f64;
    type Value = f64;
    fn start(&self) -> f64 {
        process_cpu_ns()
    }
    fn end(&self, start: f64) -> f64 {
        process_cpu_ns() - start
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    fn to_f64(&self, v: &f64) -> f64 {
        *v
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuMs
    }
}

/// Shows CPU nanoseconds as CPU milliseconds.
struct CpuMs;

impl ValueFormatter for CpuMs {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "cpu-ms"
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        _t: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "cpu-ms"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "cpu-ns"
    }
}

/// `name`, prefixed with `cpu/` when `M` is not the wall clock.
fn group_name<M: Measurement>(c: &Criterion<M>, name: &str) -> String {
    let _ = c;
    if std::any::type_name::<M>().ends_with("CpuTime") {
        format!("cpu/{name}")
    } else {
        name.to_owned()
    }
}

fn convs<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(group_name(c, "conv3x3"));
    // (c_in, c_out, size, stride): the three shapes measured against torch, the up blocks'
    // first conv, and the downsampling conv.
    for (ci, co, hw, stride) in [
        (64, 64, 64, 1),
        (64, 64, 32, 1),
        (128, 128, 16, 1),
        (128, 64, 64, 1),
        (64, 64, 64, 2),
    ] {
        let cv = conv(ci, co, stride);
        let x = Tensor::randn(0f32, 1.0, (1, ci, hw, hw), &Device::Cpu).unwrap();
        let name = format!("{ci}->{co}@{hw}x{hw}/s{stride}");
        g.bench_with_input(BenchmarkId::new("candle", &name), &x, |b, x| {
            b.iter(|| with_kernel_path(KernelPath::Candle, || cv.forward(x).unwrap()));
        });
        g.bench_with_input(BenchmarkId::new("fast", &name), &x, |b, x| {
            b.iter(|| with_kernel_path(KernelPath::Fast, || cv.forward(x).unwrap()));
        });
        if stride == 1 {
            let im2col = cv.pack(ConvAlgo::Im2col).unwrap();
            g.bench_with_input(BenchmarkId::new("im2col", &name), &x, |b, x| {
                b.iter(|| run_packed(&im2col, x, None).unwrap());
            });
        }
    }
    g.finish();
}

fn norms<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group(group_name(c, "ada_group_norm_silu"));
    let dev = Device::Cpu;
    for (ch, hw) in [(64, 64), (128, 64), (64, 32)] {
        let x = Tensor::randn(0f32, 1.0, (1, ch, hw, hw), &dev).unwrap();
        let ss = Tensor::randn(0f32, 0.3, (1, 2 * ch), &dev).unwrap();
        let name = format!("{ch}@{hw}x{hw}");
        for path in KernelPath::ALL {
            g.bench_with_input(BenchmarkId::new(path.name(), &name), &x, |b, x| {
                b.iter(|| {
                    with_kernel_path(path, || {
                        norm_act(x, ch / 32, 1e-5, NormMod::Ada(&ss), true).unwrap()
                    })
                });
            });
        }
    }
    g.finish();
}

fn denoiser<M: Measurement>(c: &mut Criterion<M>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/diamond");
    if !dir.join("agent.pt").exists() {
        eprintln!(
            "skipping the denoiser bench: no fixture at {}",
            dir.display()
        );
        return;
    }
    let dev = Device::Cpu;
    let model =
        WorldModel::load_diamond(&dir.join("agent.pt"), &dir.join("config.yaml"), &dev).unwrap();
    let mut g = c.benchmark_group(group_name(c, "denoiser_call_atari4_64x64"));
    g.sample_size(10);
    for b in [1usize, 8] {
        let noisy = Tensor::randn(0f32, 1.0, (b, 3, 64, 64), &dev).unwrap();
        let obs = Tensor::rand(-1f32, 1.0, (b, 12, 64, 64), &dev).unwrap();
        let act = Tensor::zeros((b, 4), DType::U32, &dev).unwrap();
        let sigma = Tensor::new(1.0f32, &dev).unwrap();
        // The candle path takes seconds per call at batch 8; batch 1 shows the ratio.
        let paths: &[KernelPath] = if b == 1 {
            &KernelPath::ALL
        } else {
            &[KernelPath::Fast]
        };
        for &path in paths {
            g.bench_function(
                BenchmarkId::new(path.name(), format!("batch{b}")),
                |bench| {
                    bench.iter(|| {
                        with_kernel_path(path, || {
                            model
                                .denoiser()
                                .denoise(&noisy, &sigma, &obs, &act)
                                .unwrap()
                        })
                    });
                },
            );
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = convs, norms, denoiser
}
criterion_group! {
    name = cpu_benches;
    config = Criterion::default()
        .with_measurement(CpuTime)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = convs, norms, denoiser
}
criterion_main!(benches, cpu_benches);
