//! Recorded datasets in LeRobot's format.
//!
//! Dreamyard writes LeRobot v3.0 (`meta/info.json`, `meta/tasks.parquet`,
//! `meta/episodes/chunk-XXX/file-XXX.parquet`, `meta/stats.json`,
//! `data/chunk-XXX/file-XXX.parquet`) with camera frames as PNG in `datasets.Image` struct
//! columns, and reads v3.0 and v2.1 (one parquet per episode, `episodes.jsonl`,
//! `tasks.jsonl`). [`DatasetWriter`] takes generic steps (an RGB8 frame, state, action,
//! reward, success), so ground truth and a model's imagined episodes are written alike; it
//! commits one episode at a time so that a killed process loses at most the episode in
//! progress. [`Dataset`] lists episodes from the metadata alone, reads frame `i` of episode
//! `e` by reading one page of one file, and loads or streams whole episodes. Video features
//! (MP4: AV1, H.264, HEVC) are decoded through FFmpeg's libraries (`video`), frames chosen
//! by timestamp as LeRobot chooses them.

mod codec;
mod columns;
mod error;
mod files;
mod info;
mod lock;
mod meta;
mod reader;
mod stats;
mod video;
mod writer;

pub use codec::{ImageFormat, decode as decode_image, encode_png};
pub use error::DatasetError;
pub use info::{CodebaseVersion, Feature, Features, Info};
pub use lock::{LOCK_PATH, WriterLock, writer_of};
pub use meta::{
    DatasetSpec, DreamyardMeta, EpisodeSource, ExtraFeature, ExtraKind, read_dreamyard,
};
pub use reader::{
    Dataset, EpisodeData, EpisodeInfo, EpisodeIter, EpisodeVideo, StepData, StoredImage, Validation,
};
pub use stats::{FeatureStats, StatsShape};
pub use video::TOLERANCE_S as VIDEO_TOLERANCE_S;
pub use writer::{DatasetWriter, EpisodePlan, Extras, SavedEpisode, Step, record_scene_episode};

/// Column names Dreamyard writes (LeRobot's conventions).
pub mod keys {
    pub const IMAGE: &str = "observation.image";
    /// The app's recordings: the model's frame beside the true one in `observation.image`.
    pub const IMAGE_MODEL: &str = "observation.image_model";
    /// The app's recordings: per-step metrics of the model's frame against the true one.
    pub const MODEL_METRICS: &str = "model.metrics";
    /// The app's recordings: whether the model's frame was imagined (else it was given the
    /// true frame as context).
    pub const MODEL_IMAGINED: &str = "model.imagined";
    /// The robot's own state (LeRobot's convention; gym-pusht's `agent_pos`).
    pub const STATE: &str = "observation.state";
    /// What the robot senses of the world (gym-pusht's `environment_state`).
    pub const ENVIRONMENT_STATE: &str = "observation.environment_state";
    /// A scene's full state, privileged (the T block's exact pose): what `reset_to` takes.
    /// Not under `observation.`, so LeRobot does not make it a policy input.
    pub const SCENE_STATE: &str = "scene.state";
    pub const ACTION: &str = "action";
    pub const REWARD: &str = "next.reward";
    pub const SUCCESS: &str = "next.success";
    pub const DONE: &str = "next.done";
    pub const TIMESTAMP: &str = "timestamp";
    pub const FRAME_INDEX: &str = "frame_index";
    pub const EPISODE_INDEX: &str = "episode_index";
    pub const INDEX: &str = "index";
    pub const TASK_INDEX: &str = "task_index";
    /// Episodes-metadata column with the episode's [`super::EpisodeSource`] as JSON.
    pub const DREAMYARD_SOURCE: &str = "dreamyard/source";
}

/// Recording a scene episode fails in the scene or in the dataset.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Scene(#[from] crate::SceneError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
}
