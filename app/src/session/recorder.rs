//! Recording imagined rollouts as datasets. The session drives a [`Recorder`]; the LeRobot v3
//! writer of the datasets crate implements it (wired where the app builds recorders), and
//! [`MemoryRecorder`] keeps episodes in memory for tests.

use dreamyard_scenes::{Action, ActionSpace, Frame};
use serde::Serialize;

/// What an episode's metadata says about where its frames came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpisodeMeta {
    /// Always true for the session's recordings: the frames are the model's.
    pub imagined: bool,
    /// The model that produced the frames (its directory).
    pub model: String,
    /// The ground truth the session ran beside, if any (scene or episode name).
    pub ground_truth: Option<String>,
    pub fps: f64,
    pub action_space: ActionSpace,
    /// Seed of the session's episode and of the sampling noise.
    pub seed: u64,
}

/// A sink for episodes of (frame, action) rows. Row `t` holds the frame shown at step `t` and
/// the action taken at it (LeRobot's convention). Implementations make each saved episode
/// durable before `save_episode` returns, so a crash loses at most the episode in progress.
pub trait Recorder: Send + Sync {
    fn begin_episode(&mut self, meta: &EpisodeMeta) -> anyhow::Result<()>;
    fn push(&mut self, frame: &Frame, action: &Action) -> anyhow::Result<()>;
    /// Finishes the episode in progress; returns its index in the dataset.
    fn save_episode(&mut self) -> anyhow::Result<usize>;
    /// Drops the episode in progress.
    fn discard_episode(&mut self) -> anyhow::Result<()>;
    /// Closes the dataset (after saving or discarding).
    fn finish(&mut self) -> anyhow::Result<()>;
}

impl std::fmt::Debug for dyn Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

/// A saved in-memory episode.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryEpisode {
    pub meta: EpisodeMeta,
    pub frames: Vec<Frame>,
    pub actions: Vec<Action>,
}

/// Keeps episodes in memory (tests, previews).
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    pub saved: Vec<MemoryEpisode>,
    pub current: Option<MemoryEpisode>,
    pub finished: bool,
}

impl Recorder for MemoryRecorder {
    fn begin_episode(&mut self, meta: &EpisodeMeta) -> anyhow::Result<()> {
        self.current = Some(MemoryEpisode {
            meta: meta.clone(),
            frames: Vec::new(),
            actions: Vec::new(),
        });
        Ok(())
    }

    fn push(&mut self, frame: &Frame, action: &Action) -> anyhow::Result<()> {
        let Some(ep) = self.current.as_mut() else {
            anyhow::bail!("no episode in progress");
        };
        ep.frames.push(frame.clone());
        ep.actions.push(action.clone());
        Ok(())
    }

    fn save_episode(&mut self) -> anyhow::Result<usize> {
        let Some(ep) = self.current.take() else {
            anyhow::bail!("no episode in progress");
        };
        self.saved.push(ep);
        Ok(self.saved.len() - 1)
    }

    fn discard_episode(&mut self) -> anyhow::Result<()> {
        self.current = None;
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.finished = true;
        Ok(())
    }
}

/// A recorder shared with the code that created it (tests read what was recorded).
impl<R: Recorder> Recorder for std::sync::Arc<std::sync::Mutex<R>> {
    fn begin_episode(&mut self, meta: &EpisodeMeta) -> anyhow::Result<()> {
        lock(self).begin_episode(meta)
    }
    fn push(&mut self, frame: &Frame, action: &Action) -> anyhow::Result<()> {
        lock(self).push(frame, action)
    }
    fn save_episode(&mut self) -> anyhow::Result<usize> {
        lock(self).save_episode()
    }
    fn discard_episode(&mut self) -> anyhow::Result<()> {
        lock(self).discard_episode()
    }
    fn finish(&mut self) -> anyhow::Result<()> {
        lock(self).finish()
    }
}

fn lock<R>(m: &std::sync::Mutex<R>) -> std::sync::MutexGuard<'_, R> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A stopgap on-disk recorder until the LeRobot v3 writer is wired in: one folder per episode
/// with `frames/NNNNNN.png`, `actions.jsonl` (one JSON array per row) and `meta.json`. An
/// episode is written under `episode_NNNNNN.partial/` and renamed when saved, so a crash leaves
/// every saved episode complete and the one in progress recognisably partial.
#[derive(Debug)]
pub struct FolderRecorder {
    root: std::path::PathBuf,
    next_index: usize,
    current: Option<FolderEpisode>,
}

#[derive(Debug)]
struct FolderEpisode {
    dir: std::path::PathBuf,
    actions: std::io::BufWriter<std::fs::File>,
    rows: usize,
}

impl FolderRecorder {
    /// Records into `root` (created if needed), numbering after the episodes already there.
    pub fn create(root: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        std::fs::create_dir_all(root)
            .with_context(|| format!("{}: cannot create the recording folder", root.display()))?;
        let next_index = std::fs::read_dir(root)?
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("episode_") && !name.ends_with(".partial")
            })
            .count();
        Ok(Self {
            root: root.to_path_buf(),
            next_index,
            current: None,
        })
    }

    fn final_dir(&self) -> std::path::PathBuf {
        self.root.join(format!("episode_{:06}", self.next_index))
    }
}

impl Recorder for FolderRecorder {
    fn begin_episode(&mut self, meta: &EpisodeMeta) -> anyhow::Result<()> {
        let dir = self
            .root
            .join(format!("episode_{:06}.partial", self.next_index));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(dir.join("frames"))?;
        std::fs::write(dir.join("meta.json"), serde_json::to_string_pretty(meta)?)?;
        let actions = std::io::BufWriter::new(std::fs::File::create(dir.join("actions.jsonl"))?);
        self.current = Some(FolderEpisode {
            dir,
            actions,
            rows: 0,
        });
        Ok(())
    }

    fn push(&mut self, frame: &Frame, action: &Action) -> anyhow::Result<()> {
        use std::io::Write as _;
        let Some(ep) = self.current.as_mut() else {
            anyhow::bail!("no episode in progress");
        };
        let path = ep.dir.join("frames").join(format!("{:06}.png", ep.rows));
        crate::image_io::write_png(&path, frame)?;
        writeln!(ep.actions, "{}", serde_json::to_string(&action.to_vec())?)?;
        ep.rows += 1;
        Ok(())
    }

    fn save_episode(&mut self) -> anyhow::Result<usize> {
        use std::io::Write as _;
        let Some(mut ep) = self.current.take() else {
            anyhow::bail!("no episode in progress");
        };
        ep.actions.flush()?;
        ep.actions.get_ref().sync_all()?;
        std::fs::rename(&ep.dir, self.final_dir())?;
        self.next_index += 1;
        Ok(self.next_index - 1)
    }

    fn discard_episode(&mut self) -> anyhow::Result<()> {
        if let Some(ep) = self.current.take() {
            drop(ep.actions);
            std::fs::remove_dir_all(&ep.dir)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.discard_episode()
    }
}
