//! Opening files: rfd folder dialogs (on their own thread, so the frame loop never blocks),
//! drag-and-drop onto the window, and the recently used models and datasets, kept in
//! `$XDG_CONFIG_HOME/dreamyard/recent.json` (or `~/.config/...`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver};

use bevy::prelude::*;
use bevy::window::FileDragAndDrop;
use serde::{Deserialize, Serialize};

use super::AppSet;
use super::driver::AppCommands;
use crate::commands::Command;

pub(super) fn plugin(app: &mut App) {
    app.insert_resource(Recent::load())
        .init_resource::<Dialogs>()
        .add_systems(
            Update,
            (dropped_files, dialog_results).in_set(AppSet::Input),
        );
}

/// What a recent entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum RecentKind {
    Model,
    Dataset,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RecentEntry {
    pub kind: RecentKind,
    pub path: PathBuf,
}

/// Recently opened models and datasets, newest first.
#[derive(Resource, Debug, Default, Serialize, Deserialize)]
pub(super) struct Recent {
    pub entries: Vec<RecentEntry>,
    #[serde(skip)]
    file: Option<PathBuf>,
}

const MAX_RECENT: usize = 10;

fn config_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("dreamyard").join("recent.json"))
}

impl Recent {
    fn load() -> Self {
        let file = config_file();
        let mut recent: Self = file
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        recent.file = file;
        recent
    }

    /// Moves `path` to the front and saves the list (failures are logged, never fatal).
    pub fn push(&mut self, path: &Path, kind: RecentKind) {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        self.entries.retain(|e| e.path != path);
        self.entries.insert(0, RecentEntry { kind, path });
        self.entries.truncate(MAX_RECENT);
        if let Some(file) = &self.file
            && let Err(e) = save(file, self)
        {
            tracing::warn!("cannot save recent files to {}: {e:#}", file.display());
        }
    }
}

fn save(file: &Path, recent: &Recent) -> anyhow::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write then rename, so a crash never leaves a half-written list.
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(recent)?)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

/// Which dialog a result belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DialogKind {
    Model,
    Dataset,
    /// A saved session file (File > Save session writes them).
    Session,
    /// Frames to dream from: a DIAMOND spawn folder or a folder of images.
    Spawn,
}

/// Open dialogs run on threads and report here.
#[derive(Resource, Debug, Default)]
pub(super) struct Dialogs {
    pending: Option<(DialogKind, Mutex<Receiver<Option<PathBuf>>>)>,
    /// When the pending dialog was asked for: one that answers "nothing picked" almost at
    /// once never showed (no desktop portal, no zenity).
    opened_at: Option<std::time::Instant>,
}

/// A dialog that gives up sooner than this did not show: no person cancels that fast.
const DIALOG_FAILED_WITHIN: std::time::Duration = std::time::Duration::from_millis(250);

impl Dialogs {
    /// Opens a folder picker (a file picker for sessions) unless one is already open.
    pub fn open(&mut self, kind: DialogKind) {
        if self.pending.is_some() {
            return;
        }
        let (tx, rx) = mpsc::channel();
        let title = match kind {
            DialogKind::Model => "Open a world model (folder with model.safetensors)",
            DialogKind::Dataset => "Open a LeRobot dataset (folder with meta/)",
            DialogKind::Session => "Open a saved Dreamyard session (.json)",
            DialogKind::Spawn => "Dream from frames (a DIAMOND spawn folder or a folder of images)",
        };
        let spawned = std::thread::Builder::new()
            .name("dreamyard-dialog".into())
            .spawn(move || {
                let dialog = rfd::FileDialog::new().set_title(title);
                let picked = match kind {
                    DialogKind::Session => dialog.add_filter("session", &["json"]).pick_file(),
                    _ => dialog.pick_folder(),
                };
                let _ = tx.send(picked);
            });
        match spawned {
            Ok(_) => {
                self.pending = Some((kind, Mutex::new(rx)));
                self.opened_at = Some(std::time::Instant::now());
            }
            Err(e) => tracing::warn!("cannot open a file dialog: {e}"),
        }
    }

    pub fn is_open(&self) -> bool {
        self.pending.is_some()
    }
}

fn dialog_results(
    mut dialogs: ResMut<Dialogs>,
    mut queue: ResMut<AppCommands>,
    mut episodes: ResMut<super::episodes::Episodes>,
) {
    let Some((kind, rx)) = &dialogs.pending else {
        return;
    };
    let result = match rx.lock() {
        Ok(rx) => rx.try_recv(),
        Err(_) => Err(mpsc::TryRecvError::Disconnected),
    };
    let kind = *kind;
    match result {
        Ok(Some(path)) => {
            match kind {
                DialogKind::Model => queue.0.push(Command::OpenModel { path, config: None }),
                // Which episode? The picker asks.
                DialogKind::Dataset => queue.0.extend(episodes.ask_or_open(path)),
                DialogKind::Session => queue.0.push(Command::OpenSession(path)),
                DialogKind::Spawn => queue.0.push(Command::OpenSpawn(path)),
            }
            dialogs.pending = None;
        }
        Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
            if dialogs
                .opened_at
                .is_some_and(|t| t.elapsed() < DIALOG_FAILED_WITHIN)
            {
                queue.0.push(Command::DialogUnavailable);
            }
            dialogs.pending = None;
        }
        Err(mpsc::TryRecvError::Empty) => {}
    }
}

fn dropped_files(mut drops: MessageReader<FileDragAndDrop>, mut queue: ResMut<AppCommands>) {
    for drop in drops.read() {
        if let FileDragAndDrop::DroppedFile { path_buf, .. } = drop {
            queue.0.push(Command::OpenPath(path_buf.clone()));
        }
    }
}
