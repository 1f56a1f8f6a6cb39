//! Configuration of a DIAMOND-style world model: denoiser, inner model (UNet), sampler, action
//! space and frame size.
//!
//! The field names follow DIAMOND's dataclasses (`DenoiserConfig`, `InnerModelConfig`,
//! `DiffusionSamplerConfig`) so that the native `config.json` reads like DIAMOND's yaml. Two
//! extensions: an explicit [`ActionSpace`] (DIAMOND only has `num_actions`, which is still accepted)
//! and optional frame size / fps metadata.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ModelError, Result};

/// The action space a model is conditioned on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionSpace {
    /// `num_actions` discrete actions, embedded with a lookup table (DIAMOND).
    Discrete {
        /// Number of distinct actions.
        num_actions: usize,
    },
    /// A real vector of `dim` components, embedded with a linear layer per context step.
    Continuous {
        /// Number of components.
        dim: usize,
        /// Lower bound of each component (metadata for callers; the model does not clamp).
        low: Vec<f32>,
        /// Upper bound of each component.
        high: Vec<f32>,
    },
    /// A vector of `num_actions` values in {0, 1}, any number set (DIAMOND's CS:GO
    /// keyboard-and-mouse actions); each context step's embedding is the sum of the rows of a
    /// `num_actions` x `cond / T` table over the set entries.
    MultiHot {
        /// Length of the vector.
        num_actions: usize,
        /// What each entry means, when the vector encodes a keyboard and a mouse (the app maps
        /// the real keyboard and mouse through it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keyboard_mouse: Option<crate::action::KeyboardMouse>,
    },
}

impl ActionSpace {
    /// Values per step: 1 for a discrete id, the vector's length otherwise.
    pub fn dim(&self) -> usize {
        match self {
            Self::Discrete { .. } => 1,
            Self::Continuous { dim, .. } => *dim,
            Self::MultiHot { num_actions, .. } => *num_actions,
        }
    }
}

/// Spatial action conditioning, a Dreamyard extension (DIAMOND conditions on actions only
/// through the global conditioning vector, which cannot say *where* in the frame something
/// happens).
///
/// For actions that are a position in the frame (push-t's agent target), the first two
/// components, mapped from the action box `[low, high]` onto the frame (component 0 to columns,
/// component 1 to rows), are drawn as a Gaussian blob with peak 1, one channel per context step
/// (oldest first), and fed to `conv_in` after the frames. The global action embedding stays.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionMap {
    /// Standard deviation of the blob, in pixels of the model's frame.
    pub sigma: f64,
}

/// Configuration of the inner model (noise/action conditioning + UNet), DIAMOND's
/// `InnerModelConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawInnerModelConfig")]
pub struct InnerModelConfig {
    /// Channels of one frame (3 for RGB).
    pub img_channels: usize,
    /// Number of context frames (and actions) the model is conditioned on.
    pub num_steps_conditioning: usize,
    /// Width of the conditioning vector fed to every AdaGroupNorm.
    pub cond_channels: usize,
    /// Number of down ResBlocks per UNet level (up levels get one more).
    pub depths: Vec<usize>,
    /// Channels per UNet level.
    pub channels: Vec<usize>,
    /// Whether each level's ResBlocks have self-attention (DIAMOND writes 0/1 in yaml).
    #[serde(serialize_with = "ser_bools")]
    pub attn_depths: Vec<bool>,
    /// The action space.
    pub action: ActionSpace,
    /// Spatial action conditioning (absent in DIAMOND's models, and then not written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_map: Option<ActionMap>,
    /// Whether the conditioning vector also embeds the noise level of the context frames
    /// (`noise_cond_emb`, DIAMOND's `csgo` branch); written only when set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub noise_cond: bool,
    /// An upsampler's network (DIAMOND's `is_upsampler`): `conv_in` also takes the
    /// bicubic-upsampled new low-resolution frame after the context frames, and there is no
    /// action embedding; written only when set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_upsampler: bool,
}

/// Serde form of [`InnerModelConfig`]: accepts DIAMOND's `num_actions` as well as `action`, and
/// 0/1 or booleans for `attn_depths`.
#[derive(Deserialize)]
struct RawInnerModelConfig {
    img_channels: usize,
    num_steps_conditioning: usize,
    cond_channels: usize,
    depths: Vec<usize>,
    channels: Vec<usize>,
    attn_depths: Vec<BoolOrInt>,
    #[serde(default)]
    action: Option<ActionSpace>,
    #[serde(default)]
    num_actions: Option<usize>,
    #[serde(default)]
    action_map: Option<ActionMap>,
    #[serde(default)]
    noise_cond: bool,
    #[serde(default)]
    is_upsampler: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BoolOrInt {
    Bool(bool),
    Int(u64),
}

fn ser_bools<S: Serializer>(v: &[bool], s: S) -> std::result::Result<S::Ok, S::Error> {
    // DIAMOND's yaml uses 0/1; writing the same keeps the files interchangeable.
    s.collect_seq(v.iter().map(|&b| u8::from(b)))
}

impl TryFrom<RawInnerModelConfig> for InnerModelConfig {
    type Error = String;

    fn try_from(raw: RawInnerModelConfig) -> std::result::Result<Self, String> {
        let action = match (raw.action, raw.num_actions) {
            (Some(a), None) => a,
            (None, Some(n)) => ActionSpace::Discrete { num_actions: n },
            (Some(a @ ActionSpace::Discrete { num_actions }), Some(n)) if num_actions == n => a,
            (Some(_), Some(_)) => {
                return Err("`action` and `num_actions` disagree; give only one".into());
            }
            (None, None) => return Err("needs `action` (or DIAMOND's `num_actions`)".into()),
        };
        let cfg = Self {
            img_channels: raw.img_channels,
            num_steps_conditioning: raw.num_steps_conditioning,
            cond_channels: raw.cond_channels,
            depths: raw.depths,
            channels: raw.channels,
            attn_depths: raw
                .attn_depths
                .into_iter()
                .map(|a| match a {
                    BoolOrInt::Bool(b) => b,
                    BoolOrInt::Int(i) => i != 0,
                })
                .collect(),
            action,
            action_map: raw.action_map,
            noise_cond: raw.noise_cond,
            is_upsampler: raw.is_upsampler,
        };
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }
}

impl InnerModelConfig {
    /// Checks the invariants DIAMOND asserts (and a few it leaves to a crash).
    pub fn validate(&self) -> Result<()> {
        let err =
            |field: &str, reason: String| Err(ModelError::config("inner_model", field, reason));
        if self.depths.is_empty()
            || self.depths.len() != self.channels.len()
            || self.depths.len() != self.attn_depths.len()
        {
            return err(
                "depths",
                format!(
                    "depths, channels and attn_depths must be non-empty and of equal length, found {}, {}, {}",
                    self.depths.len(),
                    self.channels.len(),
                    self.attn_depths.len()
                ),
            );
        }
        if self.num_steps_conditioning == 0
            || !self
                .cond_channels
                .is_multiple_of(self.num_steps_conditioning)
        {
            return err(
                "cond_channels",
                format!(
                    "must be a multiple of num_steps_conditioning ({}), found {}",
                    self.num_steps_conditioning, self.cond_channels
                ),
            );
        }
        if !self.cond_channels.is_multiple_of(2) {
            return err(
                "cond_channels",
                format!("must be even, found {}", self.cond_channels),
            );
        }
        if let Some(&c) = self.channels.iter().find(|&&c| c == 0) {
            return err("channels", format!("must be positive, found {c}"));
        }
        // Self-attention needs C divisible by its head count (the mid block always has it).
        for (i, &c) in self.channels.iter().enumerate() {
            let heads = crate::layers::attn_heads(c);
            if (self.attn_depths[i] || i + 1 == self.channels.len()) && !c.is_multiple_of(heads) {
                return err(
                    "channels",
                    format!("level {i}: {c} channels not divisible by {heads} attention heads"),
                );
            }
        }
        if let Some(map) = &self.action_map {
            if !(map.sigma.is_finite() && map.sigma > 0.0) {
                return err(
                    "action_map.sigma",
                    format!("must be a positive number of pixels, found {}", map.sigma),
                );
            }
            match &self.action {
                ActionSpace::Continuous { dim, low, high }
                    if *dim >= 2 && low.len() >= 2 && high.len() >= 2 =>
                {
                    if let Some(i) = (0..2).find(|&i| {
                        high[i].partial_cmp(&low[i]) != Some(std::cmp::Ordering::Greater)
                    }) {
                        return err(
                            "action_map",
                            format!(
                                "action component {i} must have high > low to map onto the frame, found [{}, {}]",
                                low[i], high[i]
                            ),
                        );
                    }
                }
                other => {
                    return err(
                        "action_map",
                        format!(
                            "needs continuous actions whose first two components are an (x, y) position, found {}",
                            match other {
                                ActionSpace::Discrete { num_actions } =>
                                    format!("{num_actions} discrete actions"),
                                ActionSpace::Continuous { dim, .. } =>
                                    format!("{dim}-component continuous actions"),
                                ActionSpace::MultiHot { num_actions, .. } =>
                                    format!("{num_actions}-value multi-hot actions"),
                            }
                        ),
                    );
                }
            }
        }
        if self.is_upsampler && self.action_map.is_some() {
            return err(
                "action_map",
                "an upsampler takes no action, so it cannot draw one".into(),
            );
        }
        match &self.action {
            ActionSpace::Discrete { num_actions: 0 }
            | ActionSpace::MultiHot { num_actions: 0, .. } => {
                err("action.num_actions", "must be positive".into())
            }
            ActionSpace::MultiHot {
                num_actions,
                keyboard_mouse: Some(km),
            } if km.len() != *num_actions => err(
                "action.keyboard_mouse",
                format!(
                    "describes {} values ({} keys, {} buttons, {} + {} mouse bins), the action has {num_actions}",
                    km.len(),
                    km.keys.len(),
                    km.buttons.len(),
                    km.mouse_x.len(),
                    km.mouse_y.len()
                ),
            ),
            ActionSpace::Continuous { dim, low, high }
                if *dim == 0 || low.len() != *dim || high.len() != *dim =>
            {
                err(
                    "action",
                    format!(
                        "continuous: dim must be positive and low/high of length dim ({dim}), found {} and {}",
                        low.len(),
                        high.len()
                    ),
                )
            }
            _ => Ok(()),
        }
    }

    /// Input channels of `conv_in`: the context frames, the noisy next frame and, with an
    /// [`ActionMap`], one action channel per context step.
    pub fn in_channels(&self) -> usize {
        let map = if self.action_map.is_some() {
            self.num_steps_conditioning
        } else {
            0
        };
        let frames = self.num_steps_conditioning + usize::from(self.is_upsampler) + 1;
        frames * self.img_channels + map
    }

    /// Width of one context step's action embedding (`cond_channels // num_steps_conditioning`).
    pub fn act_emb_dim(&self) -> usize {
        self.cond_channels / self.num_steps_conditioning
    }
}

/// DIAMOND's `DenoiserConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenoiserConfig {
    /// Standard deviation of the data (EDM's sigma_data).
    pub sigma_data: f64,
    /// Standard deviation of the per-channel offset noise added in training; enters the
    /// preconditioning.
    pub sigma_offset_noise: f64,
    /// The network.
    pub inner_model: InnerModelConfig,
    /// An upsampler's scale factor (DIAMOND's `upsampling_factor`; absent for a next-frame
    /// denoiser, and then not written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsampling_factor: Option<usize>,
}

/// DIAMOND's `DiffusionSamplerConfig` (EDM / Karras sampler).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// Number of denoising steps per generated frame.
    pub num_steps_denoising: usize,
    /// Smallest noise level of the schedule.
    #[serde(default = "default_sigma_min", deserialize_with = "de_f64")]
    pub sigma_min: f64,
    /// Largest noise level of the schedule.
    #[serde(default = "default_sigma_max", deserialize_with = "de_f64")]
    pub sigma_max: f64,
    /// Karras schedule exponent.
    #[serde(default = "default_rho", deserialize_with = "de_f64")]
    pub rho: f64,
    /// 1: Euler, 2: Heun.
    #[serde(default = "default_order")]
    pub order: u8,
    /// Amount of stochasticity (0: deterministic given the initial noise).
    #[serde(default, deserialize_with = "de_f64")]
    pub s_churn: f64,
    /// Churn applies only for sigma in [s_tmin, s_tmax].
    #[serde(default, deserialize_with = "de_f64")]
    pub s_tmin: f64,
    /// Upper bound of the churn range; may be infinite (written `"inf"` in JSON).
    #[serde(
        default = "default_s_tmax",
        deserialize_with = "de_f64",
        serialize_with = "ser_f64_inf"
    )]
    pub s_tmax: f64,
    /// Scale of the churn noise.
    #[serde(default = "default_s_noise", deserialize_with = "de_f64")]
    pub s_noise: f64,
    /// Noise added to the context frames at every step (DIAMOND's `csgo` branch; cumulative
    /// over the steps, and fed to the network as `c_noise_cond`); 0: none, and then not written.
    #[serde(default, deserialize_with = "de_f64", skip_serializing_if = "is_zero")]
    pub s_cond: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn default_sigma_min() -> f64 {
    2e-3
}
fn default_sigma_max() -> f64 {
    5.0
}
fn default_rho() -> f64 {
    7.0
}
fn default_order() -> u8 {
    1
}
fn default_s_tmax() -> f64 {
    f64::INFINITY
}
fn default_s_noise() -> f64 {
    1.0
}

impl SamplerConfig {
    /// Checks values that would make the sampler misbehave.
    pub fn validate(&self) -> Result<()> {
        let err = |field: &str, reason: String| {
            Err(ModelError::config("diffusion_sampler", field, reason))
        };
        if self.num_steps_denoising == 0 {
            return err("num_steps_denoising", "must be positive".into());
        }
        if !(self.sigma_min > 0.0 && self.sigma_max >= self.sigma_min && self.sigma_max.is_finite())
        {
            return err(
                "sigma_min",
                format!(
                    "need 0 < sigma_min <= sigma_max < inf, found {} and {}",
                    self.sigma_min, self.sigma_max
                ),
            );
        }
        if !(self.s_cond.is_finite() && self.s_cond >= 0.0) {
            return err(
                "s_cond",
                format!("must be a finite number >= 0, found {}", self.s_cond),
            );
        }
        if self.order != 1 && self.order != 2 {
            return err(
                "order",
                format!("must be 1 (Euler) or 2 (Heun), found {}", self.order),
            );
        }
        Ok(())
    }
}

/// Frame size a model was trained at (it runs at any size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameSize {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// The second stage of a two-stage model (DIAMOND's CS:GO): a diffusion upsampler that turns
/// each new low-resolution frame into a full-resolution one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpsamplerConfig {
    /// The upsampler's denoiser; `upsampling_factor` and `inner_model.is_upsampler` set.
    pub denoiser: DenoiserConfig,
    /// Its sampler.
    pub diffusion_sampler: SamplerConfig,
}

impl UpsamplerConfig {
    /// The scale factor (validated to be set).
    pub fn factor(&self) -> usize {
        self.denoiser.upsampling_factor.unwrap_or(1)
    }
}

/// Complete configuration of a world model: the schema of the native `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Denoiser and network (of the low-resolution stage, in a two-stage model).
    pub denoiser: DenoiserConfig,
    /// Sampler used by [`crate::WorldModel::step`].
    pub diffusion_sampler: SamplerConfig,
    /// The upsampling stage of a two-stage model (absent, and not written, otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsampler: Option<UpsamplerConfig>,
    /// Training frame size, if known (of the low-resolution stage in a two-stage model; the
    /// full-resolution frames are `upsampling_factor` times larger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<FrameSize>,
    /// Frames per second of the training data, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
}

impl ModelConfig {
    /// Validates every part.
    pub fn validate(&self) -> Result<()> {
        self.denoiser.inner_model.validate()?;
        self.diffusion_sampler.validate()?;
        check_denoiser("denoiser", &self.denoiser)?;
        if self.denoiser.inner_model.is_upsampler || self.denoiser.upsampling_factor.is_some() {
            return Err(ModelError::config(
                "denoiser",
                "upsampling_factor",
                "the first stage predicts the next frame; an upsampler goes under `upsampler`",
            ));
        }
        if let Some(up) = &self.upsampler {
            up.denoiser.inner_model.validate()?;
            up.diffusion_sampler.validate()?;
            check_denoiser("upsampler.denoiser", &up.denoiser)?;
            let err =
                |field: &str, reason: String| Err(ModelError::config("upsampler", field, reason));
            match up.denoiser.upsampling_factor {
                Some(f) if f >= 1 => {}
                other => {
                    return err(
                        "denoiser.upsampling_factor",
                        format!("must be a whole number >= 1, found {other:?}"),
                    );
                }
            }
            if !up.denoiser.inner_model.is_upsampler {
                return err(
                    "denoiser.inner_model.is_upsampler",
                    "must be set for the upsampling stage".into(),
                );
            }
            let (a, b) = (
                self.denoiser.inner_model.img_channels,
                up.denoiser.inner_model.img_channels,
            );
            if a != b {
                return err(
                    "denoiser.inner_model.img_channels",
                    format!("must match the first stage's {a}, found {b}"),
                );
            }
        }
        Ok(())
    }
}

fn check_denoiser(origin: &str, d: &DenoiserConfig) -> Result<()> {
    for (field, v) in [
        ("sigma_data", d.sigma_data),
        ("sigma_offset_noise", d.sigma_offset_noise),
    ] {
        let ok = v.is_finite() && (v > 0.0 || (field == "sigma_offset_noise" && v == 0.0));
        if !ok {
            return Err(ModelError::config(
                origin,
                field,
                format!(
                    "must be a finite number {}, found {v}",
                    if field == "sigma_data" { "> 0" } else { ">= 0" }
                ),
            ));
        }
    }
    Ok(())
}

/// Parses a float written as a number or a string: `"inf"`, `"-inf"`, `"2e-3"` (a string for
/// YAML 1.1 loaders) and DIAMOND's `${eval:'float("inf")'}`.
pub(crate) fn parse_float_str(s: &str) -> Option<f64> {
    let t = s.trim();
    let inner = t
        .strip_prefix("${eval:")
        .and_then(|r| r.strip_suffix('}'))
        .map(|r| r.trim().trim_matches(|c| c == '\'' || c == '"'))
        .map(|r| {
            r.strip_prefix("float(")
                .and_then(|x| x.strip_suffix(')'))
                .unwrap_or(r)
                .trim_matches(|c| c == '\'' || c == '"')
        })
        .unwrap_or(t);
    match inner.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | ".inf" => Some(f64::INFINITY),
        "-inf" | "-infinity" | "-.inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn de_f64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(f64),
        Str(String),
    }
    match NumOrStr::deserialize(d)? {
        NumOrStr::Num(x) => Ok(x),
        NumOrStr::Str(s) => parse_float_str(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a number: {s:?}"))),
    }
}

fn ser_f64_inf<S: Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    // JSON has no infinity.
    if v.is_infinite() {
        s.serialize_str(if *v > 0.0 { "inf" } else { "-inf" })
    } else {
        s.serialize_f64(*v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_strings() {
        assert_eq!(
            parse_float_str("${eval:'float(\"inf\")'}"),
            Some(f64::INFINITY)
        );
        assert_eq!(parse_float_str("inf"), Some(f64::INFINITY));
        assert_eq!(parse_float_str("2e-3"), Some(2e-3));
        assert_eq!(parse_float_str("abc"), None);
    }

    #[test]
    fn inner_model_accepts_num_actions_or_action() {
        let a: InnerModelConfig = serde_json::from_str(
            r#"{"img_channels":3,"num_steps_conditioning":4,"cond_channels":256,
            "depths":[2],"channels":[64],"attn_depths":[0],"num_actions":4}"#,
        )
        .unwrap();
        assert_eq!(a.action, ActionSpace::Discrete { num_actions: 4 });
        let b: InnerModelConfig = serde_json::from_str(
            r#"{"img_channels":3,"num_steps_conditioning":4,"cond_channels":256,
            "depths":[2],"channels":[64],"attn_depths":[true],
            "action":{"kind":"continuous","dim":2,"low":[-1,-1],"high":[1,1]}}"#,
        )
        .unwrap();
        assert!(matches!(b.action, ActionSpace::Continuous { dim: 2, .. }));
        assert_eq!(b.attn_depths, vec![true]);
        let round: InnerModelConfig =
            serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(round, b);
    }

    #[test]
    fn action_map_is_optional_and_needs_a_position_action() {
        let base = r#""img_channels":3,"num_steps_conditioning":4,"cond_channels":256,
            "depths":[2],"channels":[64],"attn_depths":[0]"#;
        let parse =
            |rest: &str| serde_json::from_str::<InnerModelConfig>(&format!("{{{base},{rest}}}"));
        // Absent: DIAMOND's layout, and nothing extra is written back.
        let plain = parse(r#""num_actions":4"#).unwrap();
        assert_eq!(plain.action_map, None);
        assert_eq!(plain.in_channels(), 15);
        assert!(
            !serde_json::to_string(&plain)
                .unwrap()
                .contains("action_map")
        );

        let pos = r#""action":{"kind":"continuous","dim":2,"low":[0,0],"high":[512,512]}"#;
        let mapped = parse(&format!(r#"{pos},"action_map":{{"sigma":1.5}}"#)).unwrap();
        assert_eq!(mapped.action_map, Some(ActionMap { sigma: 1.5 }));
        assert_eq!(mapped.in_channels(), 15 + 4);
        let round: InnerModelConfig =
            serde_json::from_str(&serde_json::to_string(&mapped).unwrap()).unwrap();
        assert_eq!(round, mapped);

        let err = |rest: &str| parse(rest).unwrap_err().to_string();
        let e = err(r#""num_actions":4,"action_map":{"sigma":1.5}"#);
        assert!(
            e.contains("action_map") && e.contains("4 discrete actions"),
            "{e}"
        );
        let e = err(
            r#""action":{"kind":"continuous","dim":1,"low":[0],"high":[1]},"action_map":{"sigma":1}"#,
        );
        assert!(e.contains("1-component continuous"), "{e}");
        let e = err(&format!(r#"{pos},"action_map":{{"sigma":0}}"#));
        assert!(e.contains("action_map.sigma"), "{e}");
        let e = err(
            r#""action":{"kind":"continuous","dim":2,"low":[0,5],"high":[1,5]},"action_map":{"sigma":1}"#,
        );
        assert!(e.contains("component 1 must have high > low"), "{e}");
        let e = err(&format!(r#"{pos},"action_map":{{"sigma":1,"radius":2}}"#));
        assert!(e.contains("radius"), "{e}");
    }
}
