//! Choosing the compute device and dtype from the command line (`--device
//! auto|cpu|cuda[:N]|metal[:N]`, `--dtype f32|f16|bf16`), for every entry point: the app,
//! `predict`, `eval`, `train`, `bench model`.
//!
//! CUDA and Metal exist only in builds with the `cuda` / `metal` cargo features (forwarded to
//! candle); asking for one in a build without it is an error that names the flag and says how to
//! build with it. Both go through the same code below, behind `cfg`: the Metal arm cannot be
//! compiled on Linux, so it mirrors the CUDA one line for line.

use anyhow::bail;
use dreamyard_model::candle_core::{DType, Device, DeviceLocation};

/// The forms `--device` accepts.
pub const DEVICE_HELP: &str = "auto, cpu, cuda, cuda:N, metal, metal:N";

/// A parsed `--device` value, before any device is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    /// The best available: a CUDA GPU, else a Metal one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA GPU N.
    Cuda(usize),
    /// Metal device N.
    Metal(usize),
}

impl DeviceRequest {
    /// Parses `auto`, `cpu`, `cuda`, `cuda:N`, `metal`, `metal:N`.
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        let name = name.trim();
        let ordinal = |rest: &str| -> anyhow::Result<usize> {
            rest.parse::<usize>().map_err(|_| {
                anyhow::anyhow!(
                    "--device {name}: `{rest}` is not a device number; expected one of: \
                     {DEVICE_HELP}"
                )
            })
        };
        Ok(match name {
            "auto" => Self::Auto,
            "cpu" => Self::Cpu,
            "cuda" | "gpu" => Self::Cuda(0),
            "metal" => Self::Metal(0),
            other => match other.split_once(':') {
                Some(("cuda", n)) => Self::Cuda(ordinal(n)?),
                Some(("metal", n)) => Self::Metal(ordinal(n)?),
                _ => bail!("unknown --device `{other}`; expected one of: {DEVICE_HELP}"),
            },
        })
    }

    /// Opens the device. `auto` never fails: without a usable GPU it is the CPU.
    pub fn open(self) -> anyhow::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => cuda(n),
            Self::Metal(n) => metal(n),
            Self::Auto => Ok(cuda(0).or_else(|_| metal(0)).unwrap_or(Device::Cpu)),
        }
    }
}

/// Parses and opens `--device NAME`. For `auto`, logs which device it picked and why.
pub fn parse_device(name: &str) -> anyhow::Result<Device> {
    let request = DeviceRequest::parse(name)?;
    let device = request.open()?;
    if request == DeviceRequest::Auto {
        let why = if device.is_cpu() {
            match (cfg!(feature = "cuda"), cfg!(feature = "metal")) {
                (false, false) => " (this build has no GPU backend; see --features cuda)",
                _ => " (no GPU found)",
            }
        } else {
            ""
        };
        eprintln!(
            "--device auto: using {}{why}",
            device_label(&device).unwrap_or_else(|| device_name(&device))
        );
    }
    Ok(device)
}

/// A short name for `device`: `cpu`, `cuda:N` or `metal:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        DeviceLocation::Cpu => "cpu".to_owned(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// The device with its memory, for logs: `cuda:0 (139.8 GiB)`; `None` where nothing more is
/// known than the name.
fn device_label(device: &Device) -> Option<String> {
    let mem = device_memory(device)?;
    Some(format!(
        "{} ({:.1} GiB)",
        device_name(device),
        mem.total as f64 / GIB
    ))
}

const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

/// Memory in use on a device, and its size, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Bytes in use: on a GPU, the whole card's (every process); on the CPU, this process's
    /// resident set.
    pub used: u64,
    /// The device's size: the card's memory, or the machine's RAM.
    pub total: u64,
    /// Whether `used` is this process's resident set (the CPU) rather than the device's use.
    pub resident: bool,
}

impl DeviceMemory {
    /// `1.2/139.8 GiB` (GPU) or `312 MiB RSS` (CPU), for the HUD.
    pub fn label(&self) -> String {
        if self.resident {
            format!("{:.0} MiB RSS", self.used as f64 / MIB)
        } else {
            format!(
                "{:.1}/{:.1} GiB",
                self.used as f64 / GIB,
                self.total as f64 / GIB
            )
        }
    }
}

/// What `device` has in use now; `None` where the platform does not say (Metal, non-Linux CPU).
pub fn device_memory(device: &Device) -> Option<DeviceMemory> {
    match device {
        Device::Cpu => cpu_memory(),
        #[cfg(feature = "cuda")]
        Device::Cuda(dev) => {
            let (free, total) = dev.cuda_stream().context().mem_get_info().ok()?;
            Some(DeviceMemory {
                used: (total - free) as u64,
                total: total as u64,
                resident: false,
            })
        }
        #[allow(
            unreachable_patterns,
            reason = "a GPU variant exists only in GPU builds"
        )]
        _ => None,
    }
}

/// This process's resident set and the machine's RAM, from `/proc` (Linux).
fn cpu_memory() -> Option<DeviceMemory> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(DeviceMemory {
        used: pages * page_size(),
        total: total_kib * 1024,
        resident: true,
    })
}

#[cfg(unix)]
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

#[cfg(not(unix))]
fn page_size() -> u64 {
    4096
}

/// The names `--dtype` accepts.
pub const DTYPE_HELP: &str = "f32, f16, bf16";

/// Parses `--dtype f32|f16|bf16`: what the network computes in (the sampler stays f32).
pub fn parse_dtype(name: &str) -> Result<DType, String> {
    match name.trim() {
        "f32" | "float32" => Ok(DType::F32),
        "f16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(format!(
            "unknown dtype `{other}`; expected one of: {DTYPE_HELP}"
        )),
    }
}

/// `f32`, `f16` or `bf16`.
pub fn dtype_name(dtype: DType) -> &'static str {
    dtype.as_str()
}

#[cfg(feature = "cuda")]
fn cuda(n: usize) -> anyhow::Result<Device> {
    Device::new_cuda(n).map_err(|e| {
        anyhow::anyhow!(
            "--device cuda:{n}: no usable CUDA GPU {n} on this machine ({e}); check `nvidia-smi`, \
             or run with --device cpu"
        )
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda(n: usize) -> anyhow::Result<Device> {
    bail!(
        "--device cuda:{n}: this build has no CUDA support; rebuild with \
         `cargo build --release --features cuda` (needs the CUDA toolkit's nvcc; README: \
         \"NVIDIA GPUs\"), or run with --device cpu"
    )
}

#[cfg(feature = "metal")]
fn metal(n: usize) -> anyhow::Result<Device> {
    Device::new_metal(n).map_err(|e| {
        anyhow::anyhow!(
            "--device metal:{n}: no usable Metal device {n} on this machine ({e}); run with \
             --device cpu"
        )
    })
}

#[cfg(not(feature = "metal"))]
fn metal(n: usize) -> anyhow::Result<Device> {
    bail!(
        "--device metal:{n}: this build has no Metal support; rebuild on macOS with \
         `cargo build --release --features metal`, or run with --device cpu"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_unknown_ones_fail() {
        assert_eq!(DeviceRequest::parse("cpu").unwrap(), DeviceRequest::Cpu);
        assert_eq!(DeviceRequest::parse("auto").unwrap(), DeviceRequest::Auto);
        assert_eq!(
            DeviceRequest::parse("cuda").unwrap(),
            DeviceRequest::Cuda(0)
        );
        assert_eq!(
            DeviceRequest::parse("cuda:3").unwrap(),
            DeviceRequest::Cuda(3)
        );
        assert_eq!(
            DeviceRequest::parse("metal:1").unwrap(),
            DeviceRequest::Metal(1)
        );
        assert!(parse_device("cpu").unwrap().is_cpu());
        // Whatever `auto` picks, it is a usable device.
        let auto = parse_device("auto").unwrap();
        assert!(!device_name(&auto).is_empty());
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains(DEVICE_HELP), "{err}");
        let err = parse_device("cuda:x").unwrap_err().to_string();
        assert!(err.contains("`x` is not a device number"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_names_the_flag_and_the_build() {
        for name in ["cuda", "cuda:1"] {
            let err = parse_device(name).unwrap_err().to_string();
            assert!(
                err.contains("--device cuda") && err.contains("--features cuda"),
                "{err}"
            );
        }
        // `auto` falls back to the CPU instead.
        assert!(parse_device("auto").unwrap().is_cpu());
    }

    #[cfg(not(feature = "metal"))]
    #[test]
    fn metal_without_the_feature_names_the_flag_and_the_build() {
        let err = parse_device("metal").unwrap_err().to_string();
        assert!(
            err.contains("--device metal") && err.contains("--features metal"),
            "{err}"
        );
    }

    #[test]
    fn dtypes_parse() {
        assert_eq!(parse_dtype("f32").unwrap(), DType::F32);
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert_eq!(parse_dtype("f16").unwrap(), DType::F16);
        assert!(parse_dtype("f8").unwrap_err().contains(DTYPE_HELP));
        assert_eq!(dtype_name(DType::BF16), "bf16");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_memory_is_this_process_and_the_machine() {
        let m = device_memory(&Device::Cpu).unwrap();
        assert!(m.used > 0 && m.total > m.used, "{m:?}");
        assert!(m.resident && m.label().ends_with("MiB RSS"));
    }
}
