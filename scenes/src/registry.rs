//! Built-in scenes and scene files.

use std::path::{Path, PathBuf};

use crate::arm_push::{ArmPush, ArmPushConfig};
use crate::push_t::{PushT, PushTConfig};
use crate::{Scene, SceneError};

/// Names of the scenes shipped with Dreamyard, each with its file under `scenes/data/`.
pub const BUILTIN_SCENES: &[&str] = &["push-t", "arm-push"];

/// The shipped TOML of a built-in scene.
pub fn builtin_toml(name: &str) -> Option<&'static str> {
    match name {
        "push-t" => Some(include_str!("../data/push-t.toml")),
        "arm-push" => Some(include_str!("../data/arm-push.toml")),
        _ => None,
    }
}

/// Where a scene comes from: a built-in name or a scene file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SceneSource {
    Builtin(String),
    File(PathBuf),
}

impl SceneSource {
    /// A built-in name if `s` is one, else a path.
    pub fn parse(s: &str) -> Self {
        if builtin_toml(s).is_some() {
            Self::Builtin(s.to_owned())
        } else {
            Self::File(PathBuf::from(s))
        }
    }
}

#[derive(serde::Deserialize)]
struct KindOnly {
    kind: String,
}

/// Loads a built-in scene by name, optionally rendering at another frame size.
pub fn load_scene(
    source: &SceneSource,
    frame_size: Option<(u32, u32)>,
) -> Result<Box<dyn Scene>, SceneError> {
    match source {
        SceneSource::Builtin(name) => {
            let text = builtin_toml(name).ok_or_else(|| SceneError::UnknownScene {
                name: name.clone(),
                known: BUILTIN_SCENES.join(", "),
            })?;
            let file = PathBuf::from(format!("scenes/data/{name}.toml"));
            from_text(&file, text, frame_size)
        }
        SceneSource::File(path) => load_scene_file(path, frame_size),
    }
}

/// Loads a scene file; its `kind` field picks the implementation.
pub fn load_scene_file(
    path: &Path,
    frame_size: Option<(u32, u32)>,
) -> Result<Box<dyn Scene>, SceneError> {
    let text = std::fs::read_to_string(path).map_err(|source| SceneError::Io {
        file: path.to_owned(),
        source,
    })?;
    from_text(path, &text, frame_size)
}

fn from_text(
    file: &Path,
    text: &str,
    frame_size: Option<(u32, u32)>,
) -> Result<Box<dyn Scene>, SceneError> {
    // Read `kind` first so that the error for a wrong field names the right schema. Serde
    // ignores the other fields here.
    let KindOnly { kind } = crate::config::parse(file, text)?;
    let scene: Box<dyn Scene> = match kind.as_str() {
        "push-t" => {
            let mut cfg = PushTConfig::from_toml(file, text)?;
            cfg.frame.override_size(file, frame_size)?;
            Box::new(PushT::new(cfg))
        }
        "arm-push" => {
            let mut cfg = ArmPushConfig::from_toml(file, text)?;
            cfg.frame.override_size(file, frame_size)?;
            Box::new(ArmPush::new(cfg))
        }
        other => {
            return Err(SceneError::Invalid {
                file: file.to_owned(),
                field: "kind".into(),
                expected: "one of \"push-t\", \"arm-push\"".into(),
                found: format!("\"{other}\""),
            });
        }
    };
    Ok(scene)
}
