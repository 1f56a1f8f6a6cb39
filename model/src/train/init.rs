//! Initial weights as DIAMOND gets them from PyTorch: default Kaiming-uniform for convolutions and
//! linear layers, unit GroupNorm affines, standard-normal embeddings and Fourier features, and
//! DIAMOND's explicit zeros (`conv_out`, every ResBlock's `conv2`, attention `out_proj`).
//!
//! Drawn from the run's seeded generator, in key order, so a seed fixes the initial model.

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::config::{ActionSpace, InnerModelConfig};
use crate::error::Result;

/// Key of the Fourier-feature buffer: initialised but never trained (a buffer in PyTorch).
pub const NOISE_EMB_KEY: &str = "inner_model.noise_emb.weight";

/// How one tensor starts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    Zeros,
    Ones,
    Normal,
    /// Uniform in `[-bound, bound]`.
    Uniform(f64),
}

fn rule(
    name: &str,
    dims: &[usize],
    cfg: &InnerModelConfig,
    fan_in: &HashMap<String, usize>,
) -> Rule {
    // A two-stage model's upsampler has the same keys under `upsampler.`.
    let zero_init = name.ends_with("inner_model.conv_out.weight")
        || name.ends_with(".conv2.weight")
        || name.contains(".attn.out_proj.");
    if zero_init {
        return Rule::Zeros;
    }
    if name.ends_with(NOISE_EMB_KEY) || name.ends_with("inner_model.noise_cond_emb.weight") {
        return Rule::Normal;
    }
    let embedding = matches!(
        cfg.action,
        ActionSpace::Discrete { .. } | ActionSpace::MultiHot { .. }
    );
    if name == "inner_model.act_emb.0.weight" && embedding {
        return Rule::Normal;
    }
    if dims.len() == 1 && name.ends_with("norm.weight") {
        return Rule::Ones;
    }
    if dims.len() == 1 && name.ends_with("norm.bias") {
        return Rule::Zeros;
    }
    // PyTorch's default for conv/linear weights (kaiming_uniform_ with a = sqrt(5)) and biases
    // both come to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    let fan = if dims.len() >= 2 {
        dims[1..].iter().product::<usize>()
    } else {
        let weight = name.strip_suffix("bias").map(|p| format!("{p}weight"));
        weight.and_then(|w| fan_in.get(&w).copied()).unwrap_or(1)
    };
    Rule::Uniform(1.0 / (fan.max(1) as f64).sqrt())
}

/// Overwrites every variable of `vars` with its initial value.
pub fn init_params(
    vars: &HashMap<String, Var>,
    cfg: &InnerModelConfig,
    rng: &mut ChaCha8Rng,
) -> Result<()> {
    let fan_in: HashMap<String, usize> = vars
        .iter()
        .filter(|(_, v)| v.rank() >= 2)
        .map(|(k, v)| (k.clone(), v.dims()[1..].iter().product()))
        .collect();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let var = &vars[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = match rule(name, &dims, cfg, &fan_in) {
            Rule::Zeros => vec![0.0; n],
            Rule::Ones => vec![1.0; n],
            Rule::Normal => (0..n).map(|_| StandardNormal.sample(rng)).collect(),
            Rule::Uniform(b) => (0..n).map(|_| rng.random_range(-b..b) as f32).collect(),
        };
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_diamond() {
        let cfg = InnerModelConfig {
            img_channels: 3,
            num_steps_conditioning: 4,
            cond_channels: 8,
            depths: vec![1],
            channels: vec![8],
            attn_depths: vec![false],
            action: ActionSpace::Discrete { num_actions: 3 },
            action_map: None,
            noise_cond: false,
            is_upsampler: false,
        };
        let fans: HashMap<String, usize> =
            [("a.conv1.weight".to_string(), 36)].into_iter().collect();
        assert_eq!(
            rule("a.conv2.weight", &[4, 4, 3, 3], &cfg, &fans),
            Rule::Zeros
        );
        assert_eq!(rule(NOISE_EMB_KEY, &[1, 4], &cfg, &fans), Rule::Normal);
        assert_eq!(rule("x.norm.norm.weight", &[8], &cfg, &fans), Rule::Ones);
        assert_eq!(rule("x.norm.norm.bias", &[8], &cfg, &fans), Rule::Zeros);
        assert_eq!(
            rule("a.conv1.weight", &[4, 4, 3, 3], &cfg, &fans),
            Rule::Uniform(1.0 / 6.0)
        );
        assert_eq!(
            rule("a.conv1.bias", &[4], &cfg, &fans),
            Rule::Uniform(1.0 / 6.0)
        );
    }
}
