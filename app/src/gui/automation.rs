//! Automation for scripted runs (`--screenshot-after N [--screenshot PATH] [--exit]`): once the
//! model and ground truth are open, take N steps with synthetic input (a circle traced by the
//! 2-D target, or cycling discrete actions), let the panels catch up, save a screenshot of the
//! window, and optionally quit. `scripts/screenshot.sh` runs it under Xvfb.

use std::f32::consts::TAU;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::render::view::window::screenshot::{Screenshot, save_to_disk};

use super::driver::SessionRes;
use super::input::{ControlState, InputSource};
use super::{AppSet, LaunchArgs};

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Update, drive.after(AppSet::Drive).before(AppSet::Present));
}

/// Gives up waiting for the model after this long and takes the screenshot anyway.
const PATIENCE: Duration = Duration::from_secs(300);
/// Frames to wait after the last step so textures, the error pass and egui have caught up.
const SETTLE_FRAMES: u32 = 20;

#[derive(Debug, Default)]
enum Phase {
    #[default]
    Waiting,
    Stepping {
        taken: usize,
    },
    Settling {
        frames: u32,
    },
    Shooting {
        since: Option<Instant>,
    },
    Done,
}

#[derive(Debug)]
struct Progress {
    phase: Phase,
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            phase: Phase::Waiting,
            started: Instant::now(),
        }
    }
}

fn drive(
    mut commands: Commands,
    args: Res<LaunchArgs>,
    session: Option<ResMut<SessionRes>>,
    mut control: ResMut<ControlState>,
    mut progress: Local<Progress>,
    mut exit: MessageWriter<AppExit>,
) {
    let Some(target_steps) = args.0.screenshot_after else {
        return;
    };
    let Some(mut session) = session else {
        return;
    };
    let timed_out = progress.started.elapsed() > PATIENCE;
    let path = args.0.screenshot.clone();
    progress.phase = match std::mem::take(&mut progress.phase) {
        Phase::Waiting => {
            let ready = session.model_loading().is_none()
                && !session.active_branch().steps.is_empty()
                && control.pad.is_some();
            if ready {
                Phase::Stepping { taken: 0 }
            } else if timed_out {
                Phase::Settling { frames: 0 }
            } else {
                Phase::Waiting
            }
        }
        Phase::Stepping { taken } if taken >= target_steps || timed_out => {
            if !session.is_pending() || timed_out {
                Phase::Settling { frames: 0 }
            } else {
                Phase::Stepping { taken }
            }
        }
        Phase::Stepping { taken } => {
            if session.is_pending() {
                Phase::Stepping { taken }
            } else {
                synthetic_input(&mut control, taken, target_steps);
                let stepped = control
                    .action
                    .clone()
                    .map(|a| session.step(&a).is_ok())
                    .unwrap_or(false);
                if stepped {
                    Phase::Stepping { taken: taken + 1 }
                } else {
                    // Nothing more to step (e.g. the episode ended): show what there is.
                    Phase::Settling { frames: 0 }
                }
            }
        }
        Phase::Settling { frames } if frames >= SETTLE_FRAMES => {
            commands
                .spawn(Screenshot::primary_window())
                .observe(save_to_disk(path.clone()));
            Phase::Shooting { since: None }
        }
        Phase::Settling { frames } => Phase::Settling { frames: frames + 1 },
        Phase::Shooting { since } => {
            let since = since.unwrap_or_else(Instant::now);
            // The capture is written a few frames later, on another thread.
            let written = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
            if written && since.elapsed() > Duration::from_millis(500) {
                tracing::info!("screenshot saved to {}", path.display());
                if args.0.exit {
                    exit.write(AppExit::Success);
                }
                Phase::Done
            } else if since.elapsed() > Duration::from_secs(30) {
                tracing::error!("the screenshot was not written to {}", path.display());
                if args.0.exit {
                    exit.write(AppExit::error());
                }
                Phase::Done
            } else {
                Phase::Shooting { since: Some(since) }
            }
        }
        Phase::Done => Phase::Done,
    };
}

/// Step `k` of `n` of the synthetic input: the 2-D target circles the frame's centre; discrete
/// actions cycle.
fn synthetic_input(control: &mut ControlState, k: usize, n: usize) {
    let Some(pad) = control.pad.as_mut() else {
        return;
    };
    if pad.is_planar() {
        let t = k as f32 / n.max(1) as f32 * TAU;
        pad.set_from_uv([0.5 + 0.3 * t.cos(), 0.5 + 0.3 * t.sin()]);
    } else {
        let count = match &pad.space {
            dreamyard_scenes::ActionSpace::Discrete { names } => names.len().max(1),
            dreamyard_scenes::ActionSpace::Continuous { .. } => 1,
        };
        pad.choose(k % count);
    }
    control.refresh(InputSource::Synthetic);
}
