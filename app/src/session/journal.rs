//! What the user did to a session, in order, and the small file a session is saved as.
//!
//! Scenes are deterministic and the model's sampling noise is seeded per step (from the
//! session's seed and the step's index), so the ground truth and model a session was opened
//! with, plus its events, regenerate every frame of every branch exactly: a saved session
//! stores no frames. Opening one replays its events as the model allows, step after step.

use std::path::{Path, PathBuf};

use dreamyard_scenes::Action;
use serde::{Deserialize, Serialize};

use super::truth::TruthSource;

/// One thing the user did, as the session carried it out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A reset to the episode of `seed` (the branches before it can be undone).
    Reset {
        seed: u64,
    },
    /// One step with the user's `action` (a replay takes its recorded action instead), the
    /// model's noise seeded from `seed`, re-anchoring every `anchor_every` imagined steps.
    Step {
        action: Action,
        seed: u64,
        anchor_every: usize,
        /// Taken this many times in a row (held input while playing makes long runs).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        repeat: u32,
    },
    /// A new branch from step `step` of the active one.
    Fork {
        step: usize,
    },
    Switch {
        branch: u32,
    },
    Delete {
        branch: u32,
    },
    /// The last reset or deletion taken back.
    Undo,
    /// A replay left for live control.
    TakeOver,
    /// The model's context set to the last real frames.
    Resync,
    /// The model alone from here, without ground truth.
    Dream,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// Version of the session file.
pub const SESSION_FORMAT: u32 = 1;

/// The model a session ran, as it was opened, and the SHA-256 of its weights (a different
/// file under the same path is noticed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    pub weights_sha256: String,
}

/// A saved session: where its ground truth and model came from, the settings, and the events
/// since they were opened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    /// Always "dreamyard-session" (what the file is, for a reader that meets it alone).
    pub kind: String,
    pub format: u32,
    /// `None`: the model ran alone from the start (dream mode).
    pub truth: Option<TruthSource>,
    pub model: Option<ModelRef>,
    /// Steps per second while playing, and the PSNR below which a step counts as diverged.
    pub steps_per_sec: f64,
    pub divergence_psnr_db: f64,
    /// The seed of the first episode after the ground truth and model were opened (later
    /// resets name theirs), and the re-anchoring period.
    pub seed: u64,
    pub anchor_every: usize,
    pub events: Vec<Event>,
}

pub const SESSION_KIND: &str = "dreamyard-session";

impl SessionFile {
    /// Reads and checks a session file; errors name the file and what is wrong.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("{}: cannot read the session file: {e}", path.display())
        })?;
        let file: Self = dreamyard_fieldpath::from_json_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a Dreamyard session file (expected the JSON that File > Save session \
                 writes): {e}",
                path.display()
            )
        })?;
        anyhow::ensure!(
            file.kind == SESSION_KIND,
            "{}: field `kind`: expected \"{SESSION_KIND}\", found {:?}",
            path.display(),
            file.kind
        );
        anyhow::ensure!(
            file.format == SESSION_FORMAT,
            "{}: field `format`: expected {SESSION_FORMAT}, found {} (written by another \
             Dreamyard version)",
            path.display(),
            file.format
        );
        Ok(file)
    }

    /// Writes the file whole under a temporary name and renames it into place.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("{}: cannot create the folder: {e}", dir.display()))?;
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| anyhow::anyhow!("{}: cannot write the session: {e}", path.display()))
    }
}
