//! Recording imagined rollouts as datasets. The session drives a [`Recorder`]; the LeRobot v3
//! writer of the datasets crate implements it ([`DatasetRecorder`]), and [`MemoryRecorder`]
//! keeps episodes in memory for tests.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use dreamyard_scenes::dataset::{DatasetSpec, DatasetWriter, EpisodeSource, Step};
use dreamyard_scenes::{Action, ActionSpace, Frame};
use serde::Serialize;

/// What an episode's metadata says about where its frames came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpisodeMeta {
    /// Always true for the session's recordings: the frames are the model's.
    pub imagined: bool,
    /// The model that produced the frames (what the user opened).
    pub model: String,
    /// SHA-256 of that model's weights (empty when it has no weights file).
    pub model_sha256: String,
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
    /// Where the episodes go, when they go to disk (shown in the UI, which opens it).
    fn location(&self) -> Option<&Path> {
        None
    }
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

/// Records into a LeRobot v3.0 dataset with the datasets crate's crash-safe writer: each saved
/// episode is committed (data, metadata, stats, then `info.json`) before `save_episode` returns,
/// so a crash loses at most the episode in progress. The episodes' `dreamyard/source` says they
/// were imagined and by which model (its path and the SHA-256 of its weights); the task text
/// names the ground truth the session ran beside. An existing Dreamyard dataset with the same
/// frame size, fps and action space is appended to.
#[derive(Debug)]
pub struct DatasetRecorder {
    root: PathBuf,
    /// Store a new dataset's frames as AV1 video (LeRobot's default) instead of PNG images.
    video: bool,
    /// Created at the first frame, when the frame size is known.
    writer: Option<DatasetWriter>,
    current: Option<(EpisodeMeta, EpisodeSource)>,
}

impl DatasetRecorder {
    /// Records into `root`: a new dataset, or more episodes of an existing one.
    pub fn create(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            video: false,
            writer: None,
            current: None,
        }
    }

    /// Stores a new dataset's frames as MP4 video the way LeRobot's recorder does (AV1,
    /// frames of at least 64x64) instead of PNG images; an existing dataset keeps its own.
    pub fn with_video(mut self, video: bool) -> Self {
        self.video = video;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn writer_for(
        &mut self,
        frame: &Frame,
        meta: &EpisodeMeta,
    ) -> anyhow::Result<&mut DatasetWriter> {
        if self.writer.is_none() {
            let mut spec = DatasetSpec {
                fps: meta.fps,
                frame_width: frame.width,
                frame_height: frame.height,
                state_names: Vec::new(),
                layout: None,
                action_space: meta.action_space.clone(),
                rewards: false,
                robot_type: None,
                video: self.video,
                scene: None,
            };
            let writer = if self.root.join("meta").join("info.json").exists() {
                if let Ok(Some(stored)) = dreamyard_scenes::dataset::read_dreamyard(&self.root) {
                    spec.video = stored.spec.video;
                }
                DatasetWriter::append(&self.root, &spec)
            } else {
                DatasetWriter::create(&self.root, spec)
            }
            .with_context(|| format!("{}: cannot record into this dataset", self.root.display()))?;
            self.writer = Some(writer);
        }
        self.writer
            .as_mut()
            .context("the dataset writer is missing")
    }
}

impl Recorder for DatasetRecorder {
    fn begin_episode(&mut self, meta: &EpisodeMeta) -> anyhow::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.discard_episode();
        }
        let source = EpisodeSource::Model {
            model: meta.model.clone(),
            hash: meta.model_sha256.clone(),
        };
        self.current = Some((meta.clone(), source));
        Ok(())
    }

    fn push(&mut self, frame: &Frame, action: &Action) -> anyhow::Result<()> {
        let Some((meta, _)) = self.current.clone() else {
            anyhow::bail!("no episode in progress");
        };
        let writer = self.writer_for(frame, &meta)?;
        writer
            .add_frame(Step {
                frame,
                state: &[],
                action,
                reward: None,
                success: None,
            })
            .with_context(|| format!("{}: cannot add the frame", writer.root().display()))
    }

    fn save_episode(&mut self) -> anyhow::Result<usize> {
        let Some((meta, source)) = self.current.take() else {
            anyhow::bail!("no episode in progress");
        };
        let Some(writer) = self.writer.as_mut() else {
            anyhow::bail!("{}: the episode has no frames", self.root.display());
        };
        let task = match &meta.ground_truth {
            Some(gt) => format!("imagined rollout beside {gt}"),
            None => "imagined rollout (dream mode)".to_owned(),
        };
        let saved = writer
            .save_episode(&task, &source)
            .with_context(|| format!("{}: cannot save the episode", self.root.display()))?;
        usize::try_from(saved.episode_index).context("episode index")
    }

    fn discard_episode(&mut self) -> anyhow::Result<()> {
        self.current = None;
        if let Some(w) = self.writer.as_mut() {
            w.discard_episode();
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.discard_episode()?;
        self.writer = None;
        Ok(())
    }

    fn location(&self) -> Option<&Path> {
        Some(&self.root)
    }
}
