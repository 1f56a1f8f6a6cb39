//! The training configuration (`train.toml`): network size, sampler, and optimisation settings.
//!
//! The action space and frame size are not in the file: they come from the dataset, so one config
//! trains on any scene. Errors name the file and the dotted field (`training.batch_size`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::SamplerConfig;
use crate::config::{
    ActionMap, ActionSpace, DenoiserConfig, FrameSize, InnerModelConfig, ModelConfig,
};
use crate::error::{ModelError, Result};

/// Everything `dreamyard train` needs besides the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The network and its preconditioning.
    pub model: ModelSection,
    /// The sampler the trained model will use (written into its `config.json`; validation
    /// rollouts use it too).
    pub sampler: SamplerConfig,
    /// Optimisation.
    pub training: TrainingSection,
}

/// Size of the denoiser network (DIAMOND's `InnerModelConfig` without the action space) and the
/// EDM constants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Number of context frames (and actions).
    #[serde(default = "default_context")]
    pub num_steps_conditioning: usize,
    /// Width of the conditioning vector.
    pub cond_channels: usize,
    /// ResBlocks per UNet level.
    pub depths: Vec<usize>,
    /// Channels per UNet level.
    pub channels: Vec<usize>,
    /// Self-attention per UNet level.
    pub attn_depths: Vec<bool>,
    /// EDM's sigma_data.
    #[serde(default = "default_sigma_data")]
    pub sigma_data: f64,
    /// Standard deviation of the per-channel offset noise.
    #[serde(default = "default_sigma_offset_noise")]
    pub sigma_offset_noise: f64,
    /// Spatial action conditioning (`action_map = { sigma = 1.5 }`): each context step's
    /// action, an (x, y) position, drawn on the frame as an extra input channel. Needs
    /// continuous actions of at least two components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_map: Option<ActionMap>,
}

/// How the training noise levels are drawn: `exp(N(loc, scale))` clipped to
/// `[sigma_min, sigma_max]` (DIAMOND's `SigmaDistributionConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigmaDistribution {
    /// Mean of log sigma.
    pub loc: f64,
    /// Standard deviation of log sigma.
    pub scale: f64,
    /// Lower clip.
    pub sigma_min: f64,
    /// Upper clip.
    pub sigma_max: f64,
}

impl Default for SigmaDistribution {
    fn default() -> Self {
        // DIAMOND's config/agent/default.yaml.
        Self {
            loc: -0.4,
            scale: 1.2,
            sigma_min: 2e-3,
            sigma_max: 20.0,
        }
    }
}

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// Constant learning rate (DIAMOND).
    Constant,
    /// Cosine decay from `learning_rate` to `learning_rate * min_lr_ratio` at the last step.
    Cosine,
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    /// Number of optimiser steps in total (a resumed run continues up to this).
    pub steps: u64,
    /// Windows per step.
    pub batch_size: usize,
    /// Peak learning rate of AdamW.
    pub learning_rate: f64,
    /// Schedule after warmup.
    #[serde(default = "default_schedule")]
    pub lr_schedule: LrSchedule,
    /// Final fraction of the learning rate for the cosine schedule.
    #[serde(default = "default_min_lr_ratio")]
    pub min_lr_ratio: f64,
    /// Linear warmup steps.
    #[serde(default = "default_warmup")]
    pub warmup_steps: u64,
    /// AdamW decoupled weight decay (applied to conv and linear weights only).
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Adam beta1.
    #[serde(default = "default_beta1")]
    pub adam_beta1: f64,
    /// Adam beta2.
    #[serde(default = "default_beta2")]
    pub adam_beta2: f64,
    /// Adam epsilon.
    #[serde(default = "default_eps")]
    pub adam_eps: f64,
    /// Gradients are rescaled when their global L2 norm exceeds this.
    #[serde(default = "default_max_grad_norm")]
    pub max_grad_norm: f64,
    /// Seed of initialisation, batch sampling and noise.
    #[serde(default)]
    pub seed: u64,
    /// Episodes held out for validation (the dataset's last ones).
    #[serde(default = "default_validation_episodes")]
    pub validation_episodes: usize,
    /// Log the training loss every this many steps.
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    /// Validate every this many steps (and at the end).
    #[serde(default = "default_validate_every")]
    pub validate_every: u64,
    /// Write a checkpoint and export the model every this many steps (and at the end).
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Longest horizon of the validation rollouts (PSNR is reported at 1, 4 and 16 where they
    /// fit).
    #[serde(default = "default_rollout_horizon")]
    pub rollout_horizon: usize,
    /// Rollouts per validation (spread over the held-out episodes).
    #[serde(default = "default_rollouts")]
    pub validation_rollouts: usize,
    /// Training noise-level distribution.
    #[serde(default)]
    pub sigma_distribution: SigmaDistribution,
    /// Context-noise augmentation: each training window's context frames get Gaussian noise of a
    /// standard deviation drawn uniformly from `[0, context_noise]` (frames in [-1, 1]), so the
    /// model learns to predict from imperfect context, as it must when it feeds on its own
    /// outputs in a rollout. 0 (the default) trains on clean context, as DIAMOND does. The model
    /// and its runtime do not change: sampling always uses the context as given.
    #[serde(default)]
    pub context_noise: f64,
    /// Self-generated context: for a `rollout_fraction` of each batch, the newest
    /// `rollout_context` context frames are the model's own autoregressive predictions (current
    /// weights, the configured sampler, the recorded actions, no gradient), started from the real
    /// frames before them; the target stays the real next frame. The model so learns to correct
    /// the errors it makes in its rollouts (exposure bias). A value above
    /// `num_steps_conditioning` makes the whole context generated, from deeper in a rollout of
    /// that many steps (the errors of later horizons). Each such window costs
    /// `rollout_context * num_steps_denoising` extra forward passes. 0 (the default) is off.
    #[serde(default)]
    pub rollout_context: usize,
    /// Fraction of each batch whose context is self-generated when `rollout_context > 0`.
    #[serde(default = "default_rollout_fraction")]
    pub rollout_fraction: f64,
    /// Change-weighted loss: pixels where the target frame differs from the newest context frame
    /// the model is given (any channel by more than `change_threshold`, frames in [-1, 1]) weigh
    /// `1 + change_weight` in the denoising loss, the others 1; the loss is the weighted mean.
    /// Moving objects cover few pixels, so a uniform mean spends most of its gradient on a static
    /// background; this puts it where the frame changes. With self-generated context the newest
    /// context frame is the model's own, so the pixels it got wrong count as changed too. 0 (the
    /// default) is DIAMOND's uniform mean.
    #[serde(default)]
    pub change_weight: f64,
    /// Per-channel difference above which a pixel counts as changed for `change_weight`.
    #[serde(default = "default_change_threshold")]
    pub change_threshold: f64,
}

fn default_change_threshold() -> f64 {
    0.1
}

fn default_rollout_fraction() -> f64 {
    0.5
}
fn default_context() -> usize {
    4
}
fn default_sigma_data() -> f64 {
    0.5
}
fn default_sigma_offset_noise() -> f64 {
    0.3
}
fn default_schedule() -> LrSchedule {
    LrSchedule::Constant
}
fn default_min_lr_ratio() -> f64 {
    0.1
}
fn default_warmup() -> u64 {
    100
}
fn default_weight_decay() -> f64 {
    1e-2
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_max_grad_norm() -> f64 {
    1.0
}
fn default_validation_episodes() -> usize {
    2
}
fn default_log_every() -> u64 {
    10
}
fn default_validate_every() -> u64 {
    1000
}
fn default_checkpoint_every() -> u64 {
    500
}
fn default_rollout_horizon() -> usize {
    16
}
fn default_rollouts() -> usize {
    8
}

impl TrainConfig {
    /// Reads and validates a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let cfg: Self = dreamyard_fieldpath::from_toml_str(text).map_err(|e| {
            let field = if e.path.is_root() {
                // A syntax error: the key of the line it is on.
                e.inner
                    .span()
                    .map(|s| toml_field_at(text, s.start))
                    .unwrap_or_default()
            } else {
                e.path.to_string()
            };
            let line = e.inner.span().map_or(String::new(), |s| {
                format!(
                    " (line {})",
                    text[..s.start.min(text.len())].matches('\n').count() + 1
                )
            });
            ModelError::config(origin, field, format!("{}{line}", e.inner.message().trim()))
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Checks ranges; `origin` names the file in errors.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |field: &str, reason: String| Err(ModelError::config(origin, field, reason));
        let t = &self.training;
        if t.steps == 0 {
            return bad("training.steps", "must be positive, found 0".into());
        }
        if t.batch_size == 0 {
            return bad("training.batch_size", "must be positive, found 0".into());
        }
        for (field, v) in [
            ("training.learning_rate", t.learning_rate),
            ("training.max_grad_norm", t.max_grad_norm),
            ("training.adam_eps", t.adam_eps),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(field, format!("must be a positive number, found {v}"));
            }
        }
        for (field, v) in [
            ("training.adam_beta1", t.adam_beta1),
            ("training.adam_beta2", t.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return bad(field, format!("must be in [0, 1), found {v}"));
            }
        }
        if !(0.0..=1.0).contains(&t.min_lr_ratio) {
            return bad(
                "training.min_lr_ratio",
                format!("must be in [0, 1], found {}", t.min_lr_ratio),
            );
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return bad(
                "training.weight_decay",
                format!("must be >= 0, found {}", t.weight_decay),
            );
        }
        for (field, v) in [
            ("training.log_every", t.log_every),
            ("training.validate_every", t.validate_every),
            ("training.checkpoint_every", t.checkpoint_every),
        ] {
            if v == 0 {
                return bad(field, "must be positive, found 0".into());
            }
        }
        if t.validation_episodes == 0 {
            return bad(
                "training.validation_episodes",
                "must be at least 1 (validation needs held-out episodes)".into(),
            );
        }
        if t.rollout_horizon == 0 || t.validation_rollouts == 0 {
            return bad(
                "training.rollout_horizon",
                "rollout_horizon and validation_rollouts must be positive".into(),
            );
        }
        if !(t.context_noise.is_finite() && t.context_noise >= 0.0) {
            return bad(
                "training.context_noise",
                format!(
                    "must be a number >= 0 (0 turns the augmentation off), found {}",
                    t.context_noise
                ),
            );
        }
        if !(0.0..=1.0).contains(&t.rollout_fraction) {
            return bad(
                "training.rollout_fraction",
                format!("must be in [0, 1], found {}", t.rollout_fraction),
            );
        }
        if !(t.change_weight.is_finite() && t.change_weight >= 0.0) {
            return bad(
                "training.change_weight",
                format!(
                    "must be a number >= 0 (0 is the uniform loss), found {}",
                    t.change_weight
                ),
            );
        }
        if !(t.change_threshold.is_finite() && (0.0..2.0).contains(&t.change_threshold)) {
            return bad(
                "training.change_threshold",
                format!(
                    "must be in [0, 2) (a difference of frames in [-1, 1]), found {}",
                    t.change_threshold
                ),
            );
        }
        let s = &t.sigma_distribution;
        if !(s.sigma_min > 0.0 && s.sigma_max > s.sigma_min && s.scale >= 0.0 && s.loc.is_finite())
        {
            return bad(
                "training.sigma_distribution",
                format!(
                    "need 0 < sigma_min < sigma_max, scale >= 0, finite loc; found loc {}, scale {}, sigma_min {}, sigma_max {}",
                    s.loc, s.scale, s.sigma_min, s.sigma_max
                ),
            );
        }
        // Network and sampler checks, with an action space filled in only to run them (a
        // position, where an action map needs one).
        let probe_action = if self.model.action_map.is_some() {
            ActionSpace::Continuous {
                dim: 2,
                low: vec![0.0; 2],
                high: vec![1.0; 2],
            }
        } else {
            ActionSpace::Discrete { num_actions: 1 }
        };
        let probe = self.model_config(
            &probe_action,
            3,
            FrameSize {
                height: 64,
                width: 64,
            },
            None,
        );
        probe.validate().map_err(|e| match e {
            ModelError::Config { field, reason, .. } => {
                let section = if field.starts_with("diffusion_sampler") || field == "sampler" {
                    "sampler".to_string()
                } else {
                    format!("model.{field}")
                };
                ModelError::config(origin, section, reason)
            }
            other => other,
        })
    }

    /// The model configuration for data with `action` space, `img_channels` channels per frame and
    /// frames of `frame` size.
    pub fn model_config(
        &self,
        action: &ActionSpace,
        img_channels: usize,
        frame: FrameSize,
        fps: Option<f64>,
    ) -> ModelConfig {
        let m = &self.model;
        ModelConfig {
            denoiser: DenoiserConfig {
                sigma_data: m.sigma_data,
                sigma_offset_noise: m.sigma_offset_noise,
                inner_model: InnerModelConfig {
                    img_channels,
                    num_steps_conditioning: m.num_steps_conditioning,
                    cond_channels: m.cond_channels,
                    depths: m.depths.clone(),
                    channels: m.channels.clone(),
                    attn_depths: m.attn_depths.clone(),
                    action: action.clone(),
                    action_map: m.action_map,
                    noise_cond: false,
                    is_upsampler: false,
                },
                upsampling_factor: None,
            },
            diffusion_sampler: self.sampler.clone(),
            upsampler: None,
            frame: Some(frame),
            fps,
        }
    }

    /// Differences that make a checkpoint incompatible with this config: everything except the
    /// schedule of logging/validation/checkpoints and the total step count. Returns the first
    /// differing field.
    pub fn incompatible_field(&self, other: &Self) -> Option<&'static str> {
        let (a, b) = (&self.training, &other.training);
        if self.model != other.model {
            return Some("model");
        }
        if self.sampler != other.sampler {
            return Some("sampler");
        }
        let fields: [(&'static str, bool); 17] = [
            ("training.batch_size", a.batch_size == b.batch_size),
            ("training.learning_rate", a.learning_rate == b.learning_rate),
            ("training.lr_schedule", a.lr_schedule == b.lr_schedule),
            ("training.min_lr_ratio", a.min_lr_ratio == b.min_lr_ratio),
            ("training.warmup_steps", a.warmup_steps == b.warmup_steps),
            ("training.weight_decay", a.weight_decay == b.weight_decay),
            ("training.adam_beta1", a.adam_beta1 == b.adam_beta1),
            ("training.adam_beta2", a.adam_beta2 == b.adam_beta2),
            ("training.adam_eps", a.adam_eps == b.adam_eps),
            ("training.max_grad_norm", a.max_grad_norm == b.max_grad_norm),
            ("training.seed", a.seed == b.seed),
            ("training.context_noise", a.context_noise == b.context_noise),
            (
                "training.rollout_context",
                a.rollout_context == b.rollout_context,
            ),
            (
                "training.rollout_fraction",
                a.rollout_fraction == b.rollout_fraction,
            ),
            ("training.change_weight", a.change_weight == b.change_weight),
            (
                "training.change_threshold",
                a.change_threshold == b.change_threshold,
            ),
            (
                "training.validation_episodes",
                a.validation_episodes == b.validation_episodes
                    && a.sigma_distribution == b.sigma_distribution,
            ),
        ];
        fields.iter().find(|(_, same)| !same).map(|(f, _)| *f)
    }
}

/// The dotted key whose value starts near byte `pos` of TOML `text` (`section.key`), for error
/// messages; empty when it cannot be told.
fn toml_field_at(text: &str, pos: usize) -> String {
    let pos = pos.min(text.len());
    let mut section = String::new();
    let mut key = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .to_string();
            key.clear();
        } else if let Some((k, _)) = trimmed.split_once('=') {
            key = k.trim().to_string();
        }
        offset += line.len();
        if offset > pos {
            break;
        }
    }
    match (section.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => section,
        (false, false) => format!("{section}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[model]
cond_channels = 64
depths = [1, 1]
channels = [16, 32]
attn_depths = [false, false]

[sampler]
num_steps_denoising = 2

[training]
steps = 10
batch_size = 4
learning_rate = 1e-3
"#;

    /// The error message of parsing `text` as `t.toml`.
    fn toml_err(text: &str) -> String {
        TrainConfig::from_toml_str(text, "t.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_with_defaults() {
        let cfg = TrainConfig::from_toml_str(GOOD, "t.toml").unwrap();
        assert_eq!(cfg.model.num_steps_conditioning, 4);
        assert_eq!(cfg.training.warmup_steps, 100);
        assert_eq!(
            cfg.training.sigma_distribution,
            SigmaDistribution::default()
        );
    }

    #[test]
    fn errors_name_file_and_field() {
        let bad = GOOD.replace("batch_size = 4", "batch_size = \"four\"");
        let err = toml_err(&bad);
        assert!(err.contains("t.toml"), "{err}");
        assert!(err.contains("training.batch_size"), "{err}");

        let zero = GOOD.replace("batch_size = 4", "batch_size = 0");
        let err = toml_err(&zero);
        assert!(err.contains("training.batch_size"), "{err}");

        let unknown = GOOD.replace("steps = 10", "steps = 10\nstepz = 3");
        let err = toml_err(&unknown);
        assert!(err.contains("stepz"), "{err}");

        let odd = GOOD.replace("cond_channels = 64", "cond_channels = 66");
        let err = toml_err(&odd);
        assert!(err.contains("model.cond_channels"), "{err}");

        let negative = GOOD.replace("steps = 10", "steps = 10\ncontext_noise = -0.1");
        let err = toml_err(&negative);
        assert!(err.contains("training.context_noise"), "{err}");
        assert!(err.contains(">= 0"), "{err}");

        let weight = GOOD.replace("steps = 10", "steps = 10\nchange_weight = -2");
        let err = toml_err(&weight);
        assert!(
            err.contains("t.toml") && err.contains("training.change_weight"),
            "{err}"
        );
        let threshold = GOOD.replace("steps = 10", "steps = 10\nchange_threshold = 2.5");
        let err = toml_err(&threshold);
        assert!(err.contains("training.change_threshold"), "{err}");
        assert!(err.contains("[0, 2)"), "{err}");
    }

    #[test]
    fn an_action_map_is_checked_and_reaches_the_model_config() {
        let with = |map: &str| GOOD.replace("[sampler]", &format!("{map}\n[sampler]"));
        let cfg =
            TrainConfig::from_toml_str(&with("action_map = { sigma = 1.5 }"), "t.toml").unwrap();
        assert_eq!(cfg.model.action_map, Some(ActionMap { sigma: 1.5 }));
        let position = ActionSpace::Continuous {
            dim: 2,
            low: vec![0.0; 2],
            high: vec![512.0; 2],
        };
        let frame = FrameSize {
            height: 64,
            width: 64,
        };
        let model = cfg.model_config(&position, 3, frame, None);
        assert_eq!(
            model.denoiser.inner_model.action_map,
            Some(ActionMap { sigma: 1.5 })
        );
        // Where the data's actions are no position, the model config says why.
        let err = cfg
            .model_config(&ActionSpace::Discrete { num_actions: 3 }, 3, frame, None)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("action_map") && err.contains("discrete"),
            "{err}"
        );

        let err = toml_err(&with("action_map = { sigma = -1 }"));
        assert!(
            err.contains("t.toml") && err.contains("model.action_map.sigma"),
            "{err}"
        );
        let err = toml_err(&with("action_map = 1.5"));
        assert!(err.contains("action_map"), "{err}");
    }
}
