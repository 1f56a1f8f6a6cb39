//! Recording rollouts as datasets. The session drives a [`Recorder`]; the LeRobot v3 writer of
//! the datasets crate implements it ([`DatasetRecorder`]), and [`MemoryRecorder`] keeps
//! episodes in memory for tests.
//!
//! Beside a ground truth a row holds the true frame as `observation.image` (what a policy or
//! a world model trains on), the model's frame as `observation.image_model`, the scene's state
//! as the scene's recordings store it, the action, and the model's per-step metrics; in dream
//! mode, with nothing true to store, the model's frame is `observation.image`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use dreamyard_scenes::dataset::{
    DatasetSpec, DatasetWriter, EpisodeSource, ExtraFeature, ExtraKind, Extras, Step, keys,
};
use dreamyard_scenes::{Action, ActionSpace, Frame, SceneSpec};
use serde::Serialize;

/// What the rows of a recording made beside a ground truth hold besides the model's frame and
/// the action (decided when the recording starts).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TruthColumns {
    /// The ground truth's scene, when known: the state's names and layout, the task text.
    /// Without it no state is stored.
    pub scene: Option<SceneSpec>,
    /// Names of the per-step metrics, in [`TruthRow::metrics`] order: `psnr_db`, `ssim`,
    /// then `iou.<object>` per scene object.
    pub metrics: Vec<String>,
}

/// The ground truth's part of a row.
#[derive(Clone, Copy, Debug)]
pub struct TruthRow<'a> {
    pub frame: &'a Frame,
    /// The scene's full state (when [`TruthColumns::scene`] is known).
    pub state: Option<&'a [f64]>,
    pub metrics: &'a [f64],
    /// Whether the model's frame was imagined (else the model was given the true frame as
    /// context and the two are the same).
    pub imagined: bool,
}

/// One row: the frame shown at step `t` and the action taken at it (LeRobot's convention).
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub model: &'a Frame,
    pub action: &'a Action,
    /// Present exactly when the recording has [`TruthColumns`].
    pub truth: Option<TruthRow<'a>>,
}

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
    /// Rows hold the ground truth too (a recording beside a scene or a replayed episode).
    pub truth: Option<TruthColumns>,
}

/// A sink for episodes of [`Row`]s. Row `t` holds the frame shown at step `t` and the action
/// taken at it (LeRobot's convention). Implementations make each saved episode durable before
/// `save_episode` returns, so a crash loses at most the episode in progress.
pub trait Recorder: Send + Sync {
    fn begin_episode(&mut self, meta: &EpisodeMeta) -> anyhow::Result<()>;
    fn push(&mut self, row: &Row<'_>) -> anyhow::Result<()>;
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
    /// The model's frames.
    pub frames: Vec<Frame>,
    pub actions: Vec<Action>,
    /// The ground truth's part of each row (recordings beside a truth).
    pub truth: Vec<MemoryTruth>,
}

/// [`TruthRow`], owned.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryTruth {
    pub frame: Frame,
    pub state: Option<Vec<f64>>,
    pub metrics: Vec<f64>,
    pub imagined: bool,
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
            truth: Vec::new(),
        });
        Ok(())
    }

    fn push(&mut self, row: &Row<'_>) -> anyhow::Result<()> {
        let Some(ep) = self.current.as_mut() else {
            anyhow::bail!("no episode in progress");
        };
        ep.frames.push(row.model.clone());
        ep.actions.push(row.action.clone());
        if let Some(t) = row.truth {
            ep.truth.push(MemoryTruth {
                frame: t.frame.clone(),
                state: t.state.map(<[f64]>::to_vec),
                metrics: t.metrics.to_vec(),
                imagined: t.imagined,
            });
        }
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
    fn push(&mut self, row: &Row<'_>) -> anyhow::Result<()> {
        lock(self).push(row)
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
            let mut spec = dataset_spec(meta, frame.width, frame.height);
            spec.video = self.video;
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

/// The dataset a recording with `meta` writes, for `width x height` frames: the model's
/// frames alone, or beside a ground truth the true frame first (`observation.image`), the
/// model's (`observation.image_model`), the scene's state as its recordings store it, and
/// the per-step metrics (`model.metrics`, `model.imagined`).
pub fn dataset_spec(meta: &EpisodeMeta, width: u32, height: u32) -> DatasetSpec {
    let scene = meta
        .truth
        .as_ref()
        .and_then(|t| t.scene.clone())
        .map(|mut s| {
            // The frames are stored at the model's size, as the app compares them.
            s.frame_width = width;
            s.frame_height = height;
            s
        });
    let mut spec = match scene {
        // The scene's state layout and robot type, as its own recordings store them.
        Some(scene) => DatasetSpec::from_scene(&scene),
        None => DatasetSpec {
            fps: meta.fps,
            frame_width: width,
            frame_height: height,
            state_names: Vec::new(),
            layout: None,
            action_space: meta.action_space.clone(),
            rewards: false,
            robot_type: None,
            video: false,
            scene: None,
            extra_cameras: Vec::new(),
            extras: Vec::new(),
        },
    };
    // The session's pace and actions; no rewards (the session does not see them).
    spec.fps = meta.fps;
    spec.action_space = meta.action_space.clone();
    spec.rewards = false;
    if let Some(truth) = &meta.truth {
        spec.extra_cameras = vec![keys::IMAGE_MODEL.to_owned()];
        spec.extras = vec![
            ExtraFeature {
                key: keys::MODEL_METRICS.to_owned(),
                kind: ExtraKind::Values {
                    names: truth.metrics.clone(),
                },
            },
            ExtraFeature {
                key: keys::MODEL_IMAGINED.to_owned(),
                kind: ExtraKind::Flag,
            },
        ];
    }
    spec
}

/// The episode's task text: the scene's own beside a scene that has one (as its recordings
/// name it, so policies see the task they know), else what the frames are.
fn task_text(meta: &EpisodeMeta) -> String {
    let scene_task = meta
        .truth
        .as_ref()
        .and_then(|t| t.scene.as_ref())
        .and_then(|s| s.task.clone());
    match (&meta.ground_truth, scene_task) {
        (_, Some(task)) => task,
        (Some(gt), None) if meta.truth.is_some() => format!("rollout beside {gt}"),
        (Some(gt), None) => format!("imagined rollout beside {gt}"),
        (None, None) => "imagined rollout (dream mode)".to_owned(),
    }
}

/// What the episode's `dreamyard/source` says: the model, the ground truth and what each
/// camera shows.
fn episode_source(meta: &EpisodeMeta) -> EpisodeSource {
    let mut cameras = BTreeMap::new();
    if meta.truth.is_some() {
        let gt = meta.ground_truth.as_deref().unwrap_or("unnamed");
        cameras.insert(keys::IMAGE.to_owned(), format!("ground truth ({gt})"));
        cameras.insert(keys::IMAGE_MODEL.to_owned(), "model".to_owned());
    } else {
        cameras.insert(keys::IMAGE.to_owned(), "model".to_owned());
    }
    EpisodeSource::Model {
        model: meta.model.clone(),
        hash: meta.model_sha256.clone(),
        ground_truth: meta.ground_truth.clone(),
        cameras,
    }
}

impl Recorder for DatasetRecorder {
    fn begin_episode(&mut self, meta: &EpisodeMeta) -> anyhow::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.discard_episode();
        } else if let Some(holder) = dreamyard_scenes::dataset::writer_of(&self.root)? {
            // Refused now rather than at the first frame, when the writer opens the dataset.
            return Err(dreamyard_scenes::dataset::DatasetError::Locked {
                dir: self.root.clone(),
                holder,
            })
            .with_context(|| format!("{}: cannot record into this dataset", self.root.display()));
        }
        self.current = Some((meta.clone(), episode_source(meta)));
        Ok(())
    }

    fn push(&mut self, row: &Row<'_>) -> anyhow::Result<()> {
        let Some((meta, _)) = self.current.clone() else {
            anyhow::bail!("no episode in progress");
        };
        let first = row.truth.map_or(row.model, |t| t.frame);
        let writer = self.writer_for(first, &meta)?;
        let root = writer.root().display().to_string();
        let added = match (&meta.truth, row.truth) {
            (None, _) => writer.add_frame(Step {
                frame: row.model,
                state: &[],
                action: row.action,
                reward: None,
                success: None,
            }),
            (Some(_), None) => {
                anyhow::bail!("{root}: the row has no ground truth, which this recording stores")
            }
            (Some(_), Some(t)) => {
                let state = if writer.spec().state_names.is_empty() {
                    &[][..]
                } else {
                    t.state.with_context(|| {
                        format!("{root}: the row has no scene state, which this recording stores")
                    })?
                };
                let mut values = t.metrics.to_vec();
                values.push(if t.imagined { 1.0 } else { 0.0 });
                writer.add_row(
                    Step {
                        frame: t.frame,
                        state,
                        action: row.action,
                        reward: None,
                        success: None,
                    },
                    Extras {
                        frames: &[row.model],
                        values: &values,
                    },
                )
            }
        };
        added.with_context(|| format!("{root}: cannot add the frame"))
    }

    fn save_episode(&mut self) -> anyhow::Result<usize> {
        // The episode stays in progress until it is saved: after a failed save (a full disk)
        // its rows are still buffered, so saving again once there is room, or discarding it,
        // both work.
        let Some((meta, source)) = self.current.clone() else {
            anyhow::bail!("no episode in progress");
        };
        let Some(writer) = self.writer.as_mut() else {
            anyhow::bail!("{}: the episode has no frames", self.root.display());
        };
        let saved = writer
            .save_episode(&task_text(&meta), &source)
            .with_context(|| format!("{}: cannot save the episode", self.root.display()))?;
        self.current = None;
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
