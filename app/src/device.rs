//! Choosing the compute device from the command line (`--device cpu|cuda|metal|auto`).
//!
//! CUDA and Metal exist only in builds with the `cuda` / `metal` cargo features (forwarded to
//! candle); asking for one in a build without it is an error that says how to get it.

use anyhow::bail;
use dreamyard_model::candle_core::Device;

/// The names `--device` accepts.
pub const DEVICE_NAMES: [&str; 4] = ["cpu", "cuda", "metal", "auto"];

/// Parses `cpu`, `cuda`, `metal` or `auto` (the best available: CUDA GPU 0, else Metal
/// device 0, else the CPU) into a device.
pub fn parse_device(name: &str) -> anyhow::Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(),
        "metal" => metal(),
        "auto" => Ok(cuda().or_else(|_| metal()).unwrap_or(Device::Cpu)),
        other => bail!(
            "unknown device `{other}`; expected one of: {}",
            DEVICE_NAMES.join(", ")
        ),
    }
}

/// A short name for `device`: `cpu`, `cuda:N` or `metal:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        dreamyard_model::candle_core::DeviceLocation::Cpu => "cpu".to_owned(),
        dreamyard_model::candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        dreamyard_model::candle_core::DeviceLocation::Metal { gpu_id } => {
            format!("metal:{gpu_id}")
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> anyhow::Result<Device> {
    Ok(Device::new_cuda(0)?)
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> anyhow::Result<Device> {
    bail!("this build has no CUDA support; rebuild with `--features cuda`")
}

#[cfg(feature = "metal")]
fn metal() -> anyhow::Result<Device> {
    Ok(Device::new_metal(0)?)
}

#[cfg(not(feature = "metal"))]
fn metal() -> anyhow::Result<Device> {
    bail!("this build has no Metal support; rebuild with `--features metal`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_auto_parse_unknown_names_fail() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        // Whatever `auto` picks, it is a usable device.
        let auto = parse_device("auto").unwrap();
        assert!(!device_name(&auto).is_empty());
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(
            err.contains("tpu") && err.contains("cpu, cuda, metal, auto"),
            "{err}"
        );
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let err = parse_device("cuda").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
