//! Integration tests of the scenes crate, one module per area, in one test binary: the
//! scenes' physics and policies, scene files, determinism (in and across processes) and
//! LeRobot datasets, image and video.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod arm_push;
mod common;
mod dataset;
mod determinism;
mod push_t;
mod scene_files;
mod video;
