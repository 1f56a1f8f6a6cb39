//! Dataset metadata that the reader and the writer share: what a recorded dataset holds
//! ([`DatasetSpec`], kept in `meta/dreamyard.json`, which LeRobot ignores) and where each
//! episode came from ([`EpisodeSource`], the `dreamyard/source` column of the episodes
//! metadata). The reader imports this module, never the writer.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::DatasetError;
use super::info::{DREAMYARD_PATH, Feature, Features};
use super::keys;
use crate::{ActionSpace, SceneSpec, StateLayout};

/// Version of `meta/dreamyard.json`. Format 2 added the state layout; format 1 files (no
/// layout: the full state in `observation.state`) are still read.
pub(super) const DREAMYARD_FORMAT: u32 = 2;

/// What a recorded dataset holds. Stored in `meta/dreamyard.json` (LeRobot ignores the file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetSpec {
    pub fps: f64,
    pub frame_width: u32,
    pub frame_height: u32,
    /// Names of the state a step carries (a scene's full state); empty: no state.
    pub state_names: Vec<String>,
    /// How the state is stored. `None`: all of it as `observation.state`. `Some`: as LeRobot
    /// stores a robot's observations, the robot's part as `observation.state` and the world's
    /// as `observation.environment_state`, and the full state (privileged, for `reset_to`) as
    /// [`keys::SCENE_STATE`], which LeRobot's policies do not take as an input.
    #[serde(default)]
    pub layout: Option<StateLayout>,
    /// Continuous: `action` is a float32 vector named after the dimensions. Discrete: `action`
    /// is an int64 scalar (LeRobot's shape `[1]` convention), the index into `names`.
    pub action_space: ActionSpace,
    /// Whether steps carry `next.reward` and `next.success` (ground truth does; a model's
    /// imagined episode may not). `next.done` is always written.
    pub rewards: bool,
    pub robot_type: Option<String>,
    /// Whether the camera is stored as MP4 video (LeRobot's default: AV1 through SVT-AV1,
    /// `yuv420p`, GOP 2, CRF 30) instead of PNG images.
    #[serde(default)]
    pub video: bool,
    /// The scene the data comes from: its name steps a live twin, its object colours
    /// segment frames.
    pub scene: Option<SceneSpec>,
    /// Cameras after `observation.image`, of its size and storage (the app's recordings keep
    /// the model's frames as `observation.image_model` beside the true ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_cameras: Vec<String>,
    /// Per-step values beyond state, action and rewards (the app's per-step metrics), after
    /// the rewards in column order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<ExtraFeature>,
}

/// A per-step feature of a [`DatasetSpec`] beyond what scenes record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtraFeature {
    pub key: String,
    pub kind: ExtraKind,
}

/// What an [`ExtraFeature`] holds per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraKind {
    /// A float32 vector with these names.
    Values { names: Vec<String> },
    /// A bool of shape `[1]` (a value other than 0 is true).
    Flag,
}

impl ExtraFeature {
    /// How many values a step gives for it.
    pub fn len(&self) -> usize {
        match &self.kind {
            ExtraKind::Values { names } => names.len(),
            ExtraKind::Flag => 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl DatasetSpec {
    /// Ground truth recorded from `scene`.
    pub fn from_scene(scene: &SceneSpec) -> Self {
        Self {
            fps: scene.fps,
            frame_width: scene.frame_width,
            frame_height: scene.frame_height,
            state_names: scene.state_names.clone(),
            layout: scene.layout.clone(),
            action_space: scene.action_space.clone(),
            rewards: true,
            robot_type: Some(
                scene
                    .robot_type
                    .clone()
                    .unwrap_or_else(|| scene.name.clone()),
            ),
            video: false,
            scene: Some(scene.clone()),
            extra_cameras: Vec::new(),
            extras: Vec::new(),
        }
    }

    /// Values a step gives for [`extras`](Self::extras), all of them together.
    pub fn extras_len(&self) -> usize {
        self.extras.iter().map(ExtraFeature::len).sum()
    }

    /// The LeRobot features, in column order: camera, state (the robot's, the environment's,
    /// the full state), action, rewards, then LeRobot's `DEFAULT_FEATURES`.
    pub fn features(&self) -> Features {
        let f = |dtype: &str, shape: Vec<usize>, names: serde_json::Value| Feature {
            dtype: dtype.into(),
            shape,
            names,
            info: None,
        };
        let mut camera = f(
            if self.video { "video" } else { "image" },
            vec![self.frame_height as usize, self.frame_width as usize, 3],
            json!(["height", "width", "channels"]),
        );
        if self.video {
            camera.info = Some(super::video::VideoEncoding::default().info_json(
                self.frame_width,
                self.frame_height,
                self.fps,
            ));
        }
        let mut out = vec![(keys::IMAGE.to_owned(), camera.clone())];
        for key in &self.extra_cameras {
            out.push((key.clone(), camera.clone()));
        }
        let vector = |names: Vec<String>| f("float32", vec![names.len()], json!(names));
        match &self.layout {
            _ if self.state_names.is_empty() => {}
            None => out.push((keys::STATE.to_owned(), vector(self.state_names.clone()))),
            Some(layout) => {
                out.push((
                    keys::STATE.to_owned(),
                    vector(layout.robot_names(&self.state_names)),
                ));
                out.push((
                    keys::ENVIRONMENT_STATE.to_owned(),
                    vector(layout.environment_names(&self.state_names)),
                ));
                out.push((
                    keys::SCENE_STATE.to_owned(),
                    vector(self.state_names.clone()),
                ));
            }
        }
        out.push((
            keys::ACTION.to_owned(),
            match &self.action_space {
                ActionSpace::Continuous { names, .. } => {
                    f("float32", vec![names.len()], json!(names))
                }
                ActionSpace::Discrete { .. } => f("int64", vec![1], serde_json::Value::Null),
            },
        ));
        if self.rewards {
            out.push((
                keys::REWARD.to_owned(),
                f("float32", vec![1], serde_json::Value::Null),
            ));
            out.push((
                keys::SUCCESS.to_owned(),
                f("bool", vec![1], serde_json::Value::Null),
            ));
        }
        for extra in &self.extras {
            out.push((
                extra.key.clone(),
                match &extra.kind {
                    ExtraKind::Values { names } => vector(names.clone()),
                    ExtraKind::Flag => f("bool", vec![1], serde_json::Value::Null),
                },
            ));
        }
        out.push((
            keys::DONE.to_owned(),
            f("bool", vec![1], serde_json::Value::Null),
        ));
        for (k, dtype) in [
            (keys::TIMESTAMP, "float32"),
            (keys::FRAME_INDEX, "int64"),
            (keys::EPISODE_INDEX, "int64"),
            (keys::INDEX, "int64"),
            (keys::TASK_INDEX, "int64"),
        ] {
            out.push((k.to_owned(), f(dtype, vec![1], serde_json::Value::Null)));
        }
        Features(out)
    }
}

/// `meta/dreamyard.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DreamyardMeta {
    pub format: u32,
    pub spec: DatasetSpec,
}

/// Where an episode came from; stored per episode in the `dreamyard/source` column of the
/// episodes metadata (LeRobot ignores extra columns there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum EpisodeSource {
    /// Ground truth: a scene stepped by a policy (`heuristic`, `random-walk`, `teleop`, ...).
    Scene {
        scene: String,
        policy: String,
        seed: u64,
    },
    /// Imagined by a world model: `model` is its path, `hash` the SHA-256 of its weights.
    /// A recording made beside a ground truth names it and says what each camera shows
    /// (`observation.image`: `"ground truth"`, `observation.image_model`: `"model"`).
    Model {
        model: String,
        hash: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ground_truth: Option<String>,
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        cameras: std::collections::BTreeMap<String, String>,
    },
}

/// Reads `meta/dreamyard.json` if the dataset has one.
pub fn read_dreamyard(root: &Path) -> Result<Option<DreamyardMeta>, DatasetError> {
    let file = root.join(DREAMYARD_PATH);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DatasetError::io(file, e)),
    };
    let meta: DreamyardMeta =
        dreamyard_fieldpath::from_json_str(&text).map_err(|e| DatasetError::Json {
            file: file.clone(),
            message: e.to_string(),
        })?;
    if !(1..=DREAMYARD_FORMAT).contains(&meta.format) {
        return Err(DatasetError::invalid(
            file,
            "format",
            format!("1 to {DREAMYARD_FORMAT}"),
            meta.format.to_string(),
        ));
    }
    let len = meta.spec.state_names.len();
    if let Some(i) = meta.spec.layout.as_ref().and_then(|l| l.bad_index(len)) {
        return Err(DatasetError::invalid(
            file,
            "spec.layout",
            format!("state indices below {len} (the length of spec.state_names)"),
            format!("index {i}"),
        ));
    }
    Ok(Some(meta))
}
