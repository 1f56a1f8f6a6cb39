use serde::{Deserialize, Serialize};

use crate::SceneError;
use crate::render::Frame;

/// An 8-bit sRGB colour.
pub type Rgb = [u8; 3];

/// The actions a scene (or a world model) accepts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionSpace {
    /// A box in R^n: one value per named dimension, each in `[low, high]`.
    Continuous {
        low: Vec<f32>,
        high: Vec<f32>,
        names: Vec<String>,
    },
    /// One of `names.len()` actions.
    Discrete { names: Vec<String> },
}

impl ActionSpace {
    /// Number of values in one action vector (1 for discrete: the index).
    pub fn dim(&self) -> usize {
        match self {
            Self::Continuous { names, .. } => names.len(),
            Self::Discrete { .. } => 1,
        }
    }

    /// Checks that `action` belongs to this space (dimension, kind, finite, index in range).
    /// Continuous values outside `[low, high]` are accepted: scenes clip them as gym does.
    pub fn check(&self, scene: &str, action: &Action) -> Result<(), SceneError> {
        let bad = |expected: String, found: String| SceneError::BadInput {
            scene: scene.to_owned(),
            what: "action",
            expected,
            found,
        };
        match (self, action) {
            (Self::Continuous { names, .. }, Action::Continuous(values)) => {
                if values.len() != names.len() {
                    return Err(bad(
                        format!("{} values ({})", names.len(), names.join(", ")),
                        format!("{} values", values.len()),
                    ));
                }
                if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                    return Err(bad("finite values".into(), v.to_string()));
                }
                Ok(())
            }
            (Self::Discrete { names }, Action::Discrete(index)) => {
                if (*index as usize) < names.len() {
                    Ok(())
                } else {
                    Err(bad(
                        format!("an index below {}", names.len()),
                        index.to_string(),
                    ))
                }
            }
            (Self::Continuous { names, .. }, Action::Discrete(_)) => Err(bad(
                format!("a continuous action of {} values", names.len()),
                "a discrete action".into(),
            )),
            (Self::Discrete { names }, Action::Continuous(_)) => Err(bad(
                format!("a discrete action (one of {})", names.len()),
                "a continuous action".into(),
            )),
        }
    }
}

/// One action: a continuous vector or a discrete index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Action {
    Continuous(Vec<f32>),
    Discrete(u32),
}

impl Action {
    /// The action as a float vector, as datasets store it (a discrete index becomes `[i]`).
    pub fn to_vec(&self) -> Vec<f32> {
        match self {
            Self::Continuous(v) => v.clone(),
            Self::Discrete(i) => vec![*i as f32],
        }
    }
}

/// A named object of a scene and the flat colours it is drawn with (fill first, then any
/// outline or inner tone), so evaluation can segment it from a frame, and what its physics
/// promises, so evaluation can check a model's frames against it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectSpec {
    pub name: String,
    pub colors: Vec<Rgb>,
    /// A rigid body seen whole (not through other objects): its drawn shape keeps its area and
    /// outline, so shape conservation applies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rigid: bool,
    /// Its shape has an orientation its mask's moments can read (push-t's T; not a disc).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oriented: bool,
    /// The farthest its centre can move in one control step, in pixels of the spec's frame,
    /// derived from the scene's dynamics (an upper bound, not a typical value); `None` where
    /// no bound is stated (static objects, or ones whose visible part other objects hide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_step_px: Option<f64>,
}

impl ObjectSpec {
    /// An object with colours only: no physics stated.
    pub fn new(name: impl Into<String>, colors: Vec<Rgb>) -> Self {
        Self {
            name: name.into(),
            colors,
            rigid: false,
            oriented: false,
            max_step_px: None,
        }
    }
}

/// Everything about a scene that other components need to know without running it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneSpec {
    pub name: String,
    pub action_space: ActionSpace,
    /// The full state (what `reset_to` takes), privileged: the robot's own state and the
    /// world's.
    pub state_names: Vec<String>,
    pub fps: f64,
    pub frame_width: u32,
    pub frame_height: u32,
    pub background: Rgb,
    pub objects: Vec<ObjectSpec>,
    /// What of the state a robot observes, as LeRobot datasets split it; `None`: no split
    /// (specs stored before the layout existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<StateLayout>,
    /// The task as datasets of this scene name it (LeRobot's `meta/tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// LeRobot's `robot_type` for datasets of this scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robot_type: Option<String>,
}

/// How a scene's full state splits into what LeRobot datasets store as observations: the
/// robot's own state (`observation.state`, e.g. the pointer's position) and what it senses of
/// the world (`observation.environment_state`, e.g. the T block's keypoints), as gym-pusht's
/// `environment_state_agent_pos` observation does. The full state is privileged (a real robot
/// does not know the block's pose exactly); datasets keep it apart, for `reset_to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateLayout {
    /// Indices into the full state of the robot's own state, in order.
    pub robot: Vec<usize>,
    pub environment: EnvironmentState,
}

/// What `observation.environment_state` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvironmentState {
    /// These entries of the full state, in order.
    Entries { indices: Vec<usize> },
    /// Points fixed to a rigid body whose pose (x, y, angle in radians) is at `pose` in the
    /// full state, in world coordinates: `[x0, y0, x1, y1, ...]` with point `i` at
    /// `(x, y) + R(angle) points[i]` (gym-pusht's `get_keypoints`).
    Keypoints {
        pose: [usize; 3],
        points: Vec<[f64; 2]>,
    },
}

impl StateLayout {
    /// The robot's own state out of the full `state`.
    pub fn robot_state(&self, state: &[f64]) -> Vec<f64> {
        self.robot.iter().map(|&i| state[i]).collect()
    }

    /// The environment state out of the full `state`.
    pub fn environment_state(&self, state: &[f64]) -> Vec<f64> {
        match &self.environment {
            EnvironmentState::Entries { indices } => indices.iter().map(|&i| state[i]).collect(),
            EnvironmentState::Keypoints { pose, points } => {
                let (x, y, a) = (state[pose[0]], state[pose[1]], state[pose[2]]);
                let (sin, cos) = a.sin_cos();
                points
                    .iter()
                    .flat_map(|[px, py]| [x + cos * px - sin * py, y + sin * px + cos * py])
                    .collect()
            }
        }
    }

    /// Names of the robot's state values, from the full state's `names`.
    pub fn robot_names(&self, names: &[String]) -> Vec<String> {
        self.robot.iter().map(|&i| names[i].clone()).collect()
    }

    /// Names of the environment state values.
    pub fn environment_names(&self, names: &[String]) -> Vec<String> {
        match &self.environment {
            EnvironmentState::Entries { indices } => {
                indices.iter().map(|&i| names[i].clone()).collect()
            }
            EnvironmentState::Keypoints { points, .. } => (0..points.len())
                .flat_map(|i| [format!("keypoint{i}_x"), format!("keypoint{i}_y")])
                .collect(),
        }
    }

    /// An index at or beyond `state_len`, if the layout has one (a layout read from a file).
    pub fn bad_index(&self, state_len: usize) -> Option<usize> {
        let env: &[usize] = match &self.environment {
            EnvironmentState::Entries { indices } => indices,
            EnvironmentState::Keypoints { pose, .. } => pose,
        };
        self.robot
            .iter()
            .chain(env)
            .copied()
            .find(|&i| i >= state_len)
    }
}

impl SceneSpec {
    /// The object called `name`, if the scene has one.
    pub fn object(&self, name: &str) -> Option<&ObjectSpec> {
        self.objects.iter().find(|o| o.name == name)
    }

    pub(crate) fn check_state(&self, state: &[f64]) -> Result<(), SceneError> {
        let bad = |expected: String, found: String| SceneError::BadInput {
            scene: self.name.clone(),
            what: "state",
            expected,
            found,
        };
        if state.len() != self.state_names.len() {
            return Err(bad(
                format!(
                    "{} values ({})",
                    self.state_names.len(),
                    self.state_names.join(", ")
                ),
                format!("{} values", state.len()),
            ));
        }
        if let Some((i, v)) = state.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(bad(
                format!("a finite `{}`", self.state_names[i]),
                v.to_string(),
            ));
        }
        Ok(())
    }
}

/// What a scene returns after a reset or a step.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The camera image, RGB8, `frame_height x frame_width x 3`.
    pub frame: Frame,
    /// The state vector, in the order of `SceneSpec::state_names`.
    pub state: Vec<f64>,
    pub reward: f64,
    pub success: bool,
}
