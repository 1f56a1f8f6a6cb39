//! Argument values that more than one subcommand parses (clap value parsers), in one place so
//! subcommand modules never import each other. `--device` lives in `device.rs`, `--model` /
//! `--config` in `model_source.rs`.

use dreamyard_model::KernelPath;
use dreamyard_scenes::policy::PolicyKind;

/// `--kernels fast|candle`.
pub fn parse_kernels(s: &str) -> Result<KernelPath, String> {
    KernelPath::parse(s).ok_or_else(|| format!("unknown kernels `{s}`; expected fast or candle"))
}

/// `--policy NAME`: one of the scripted policies.
pub fn parse_policy(s: &str) -> Result<PolicyKind, String> {
    PolicyKind::parse(s).ok_or_else(|| {
        let names: Vec<_> = PolicyKind::ALL.iter().map(|k| k.name()).collect();
        format!(
            "unknown policy `{s}`; expected one of: {}",
            names.join(", ")
        )
    })
}
