//! Training the denoiser with candle autograd (DIAMOND's EDM objective), with exact resume.
//!
//! [`TrainConfig`] is `train.toml`; [`TrainData`] holds the episodes in memory (the app fills it
//! from a dataset); [`Trainer`] runs, validates, checkpoints and exports. No Bevy, no file formats
//! beyond the checkpoint's own, so training runs on a bare GPU machine.

pub mod config;
pub mod data;
pub mod init;
pub mod optim;
pub mod trainer;

pub use config::{LrSchedule, ModelSection, SigmaDistribution, TrainConfig, TrainingSection};
pub use data::{Batch, EpisodeData, TrainData, WindowSampler, WindowStart};
pub use trainer::{
    CHECKPOINT_DIR, METRICS_FILE, Split, StepStats, TrainEvent, Trainer, Validation, WindowStream,
    checkpoint_step, has_checkpoint,
};
