//! Ground-truth worlds for Dreamyard.
//!
//! A [`Scene`] is a deterministic, seeded simulation with a rendered RGB camera: `reset(seed)`,
//! `reset_to(state)` and `step(action)` return an [`Observation`]; its [`SceneSpec`] (action
//! space, state names, fps, frame size, object colours) is plain data that the app and the
//! world model use to build controls and check compatibility. Scene parameters live in TOML
//! files under `scenes/data/`; [`policy`] holds the scripted data-collection policies;
//! [`dataset`] records episodes as LeRobot datasets and reads them back.
//!
//! This crate knows nothing of Bevy, egui or candle.

pub mod arm_push;
mod config;
pub mod dataset;
mod error;
mod geometry;
mod physics;
pub mod policy;
pub mod policy_mix;

pub mod push_t;
mod registry;
mod render;
mod rollout;
mod spec;

pub use config::{FrameConfig, WallsConfig, WorldConfig};
pub use error::SceneError;
pub use registry::{BUILTIN_SCENES, SceneSource, builtin_toml, load_scene, load_scene_file};
pub use render::Frame;
pub use rollout::{RolloutDigest, run_policy};
pub use spec::{
    Action, ActionSpace, EnvironmentState, ObjectSpec, Observation, Rgb, SceneSpec, StateLayout,
};

/// A seeded, deterministic ground-truth world.
///
/// Same scene file, same seed and same actions give bit-identical frames and states, in one
/// process and across processes.
pub trait Scene: Send {
    /// What the scene looks like from outside: actions, state, fps, frame size, objects.
    fn spec(&self) -> &SceneSpec;

    /// Starts a new episode from the initial state drawn from `seed`.
    fn reset(&mut self, seed: u64) -> Observation;

    /// Starts from an explicit state vector (in the order of `spec().state_names`), at rest.
    fn reset_to(&mut self, state: &[f64]) -> Result<Observation, SceneError>;

    /// Advances one control step (1 / fps seconds) with `action`.
    fn step(&mut self, action: &Action) -> Result<Observation, SceneError>;

    /// The current observation, without stepping.
    fn observe(&self) -> Observation;

    /// A copy of this scene in its current state; stepping one does not affect the other.
    fn boxed_clone(&self) -> Box<dyn Scene>;

    /// One of the scene's scripted data-collection policies (call `reset` on it per episode).
    fn scripted_policy(&self, kind: policy::PolicyKind) -> Box<dyn policy::Policy>;
}

impl std::fmt::Debug for dyn Scene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scene")
            .field("name", &self.spec().name)
            .finish_non_exhaustive()
    }
}
