//! Action-conditioned world models for Dreamyard (see ARCHITECTURE.md).
//!
//! A DIAMOND-compatible diffusion world model in candle (CPU, f32): the UNet denoiser
//! ([`InnerModel`], [`Denoiser`]), the EDM sampler ([`DiffusionSampler`]) and rollouts over a
//! sliding context window ([`WorldModel`], [`RolloutState`]). Weights load from the native format
//! (`model.safetensors` + `config.json`) or from a DIAMOND `agent.pt` + yaml ([`Checkpoint`]).
//! Discrete actions follow DIAMOND; continuous actions use a linear embedding per context step.

pub mod action;
pub mod checkpoint;
pub mod config;
pub mod denoiser;
pub mod error;
pub mod inner_model;
pub mod kernels;
pub mod layers;
pub mod metrics;
pub mod pth;
pub mod resample;
pub mod sampler;
pub mod train;
pub mod world_model;

pub use action::{EncodedAction, KeyboardMouse, KeyboardMouseInput, MouseKey};
pub use checkpoint::{Checkpoint, convert_diamond_to_native};
pub use config::{
    ActionMap, ActionSpace, DenoiserConfig, FrameSize, InnerModelConfig, ModelConfig,
    SamplerConfig, UpsamplerConfig,
};
pub use denoiser::{Conditioners, DenoiseTrace, Denoiser};
pub use error::{ModelError, Result};
pub use inner_model::{InnerModel, InnerModelTrace};
pub use kernels::{KernelPath, kernel_path, with_kernel_path};
pub use sampler::{
    DiffusionSampler, GivenNoise, NoiseSource, SampleTrace, SeededNoise, build_sigmas,
};
pub use world_model::{
    RolloutState, StepFrames, UpsamplerStage, Upsampling, WorldModel, WorldModelSpec,
};

/// Re-export so callers build tensors with the same candle version.
pub use candle_core;
