//! Writing LeRobot v3.0 datasets, one episode at a time, crash-safe.
//!
//! Layout, as LeRobot packs it: episodes' rows go to `data/chunk-XXX/file-XXX.parquet` (one
//! row group, pages of 16 rows for random access) and their metadata rows to
//! `meta/episodes/chunk-XXX/file-XXX.parquet`, many episodes per file. A parquet file cannot
//! be appended to in place crash-safely (its footer, the index of everything, is at the end),
//! so saving an episode writes its file anew beside the old one, the old rows then the new,
//! and renames it over the old one. That costs a rewrite of the file per episode, so a file
//! takes episodes only until it reaches [`DATA_FILE_BYTES`] / [`META_FILE_BYTES`], then the
//! next file index starts (LeRobot's own limit, 100 MB, would rewrite up to 100 MB per save).
//! With video storage episode `e`'s frames go to
//! `videos/observation.image/chunk-{e/1000:03}/file-{e%1000:03}.mp4` (AV1 as LeRobot encodes
//! it): an MP4 cannot be appended to without rewriting and re-muxing all of it, so each
//! episode gets its own file; LeRobot's v3.0 metadata (`videos/<key>/file_index`,
//! `from_timestamp`) says where each episode is, so readers need no more.
//! `meta/tasks.parquet`, `meta/stats.json` and `meta/info.json` are replaced after every
//! episode. `info.json` is renamed last and is the commit record: readers only list the
//! episodes it counts, and [`DatasetWriter::append`] removes anything beyond them (rows of an
//! uncommitted episode at the end of a file included).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array as _, ArrayRef, BinaryArray, BooleanArray, FixedSizeListArray, Float32Array,
    Float64Builder, Int64Array, Int64Builder, ListBuilder, RecordBatch, StringArray, StringBuilder,
    StructArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde_json::json;

use super::columns::{arrow_type, hf_feature};
use super::files::{Staged, parquet_bytes, read_parquet, remove_temporaries};
use super::info::{
    CodebaseVersion, DEFAULT_CHUNKS_SIZE, DEFAULT_DATA_PATH, DEFAULT_VIDEO_PATH, DREAMYARD_PATH,
    EPISODES_META_PATH, Features, INFO_PATH, Info, STATS_PATH, TASKS_PATH, TemplateValue,
    format_template, pretty,
};
use super::lock::WriterLock;
use super::meta::{
    DREAMYARD_FORMAT, DatasetSpec, DreamyardMeta, EpisodeSource, ExtraKind, read_dreamyard,
};
use super::stats::{FeatureStats, STAT_KEYS, StatsShape};
use super::video::VideoEncoding;
use super::{DatasetError, codec, keys};
use crate::policy::Policy;
use crate::{Action, ActionSpace, Frame, Observation, Scene};

/// Rows per data page: frame `i` is read by decoding at most this many images' pages.
const PAGE_ROWS: usize = 16;
/// One step handed to the writer: the observation the action was taken in, the action, and
/// what the step returned.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    pub frame: &'a Frame,
    pub state: &'a [f64],
    pub action: &'a Action,
    /// Required when the spec has `rewards`, ignored otherwise.
    pub reward: Option<f64>,
    pub success: Option<bool>,
}

/// What a step gives beyond [`Step`] when the spec asks for it: a frame per extra camera and
/// the extras' values, in the spec's order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras<'a> {
    pub frames: &'a [&'a Frame],
    pub values: &'a [f64],
}

/// A data file takes episodes until it holds this many bytes (each save rewrites it whole).
pub const DATA_FILE_BYTES: u64 = 8 << 20;
/// An episode-metadata file takes episodes until it holds this many bytes.
pub const META_FILE_BYTES: u64 = 1 << 20;

/// The file being filled with episodes: its place and its size on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Filling {
    chunk: u64,
    file: u64,
    bytes: u64,
    /// Committed rows. A save whose renames failed partway may have left more in the file;
    /// the next save keeps only these.
    rows: u64,
}

/// Where the next episode's rows go after `at`: into it (`true`: appended) while it is under
/// `limit`, else into the next file index (LeRobot's numbering: a new chunk after
/// `chunks_size` files).
fn next_place(at: Option<Filling>, limit: u64, chunks_size: u64) -> (u64, u64, bool) {
    match at {
        None => (0, 0, false),
        Some(f) if f.bytes < limit => (f.chunk, f.file, true),
        Some(f) if f.file + 1 >= chunks_size => (f.chunk + 1, 0, false),
        Some(f) => (f.chunk, f.file + 1, false),
    }
}

/// Where an episode's rows went: the file's (chunk, file) numbers, its path and new bytes.
struct Packed {
    place: (u64, u64),
    path: PathBuf,
    bytes: Vec<u8>,
    /// Rows in the file with these.
    rows: u64,
}

/// The chunk and file numbers of a `.../chunk-XXX/file-YYY.ext` path.
fn place_of(path: &Path) -> Option<(u64, u64)> {
    let num = |s: &std::ffi::OsStr, prefix: &str| -> Option<u64> {
        let s = s.to_str()?;
        let s = s.strip_prefix(prefix)?;
        let s = s.split('.').next()?;
        s.parse().ok()
    };
    let file = num(path.file_name()?, "file-")?;
    let chunk = num(path.parent()?.file_name()?, "chunk-")?;
    Some((chunk, file))
}

/// The bytes of `path` with `batch`'s rows after the rows it holds (`append`), or of
/// `batch` alone. `None` when the file's columns are not `batch`'s (then the rows go to a
/// new file).
fn packed_bytes(
    path: &Path,
    append: Option<u64>,
    batch: &RecordBatch,
    props: WriterProperties,
) -> Result<Option<Vec<u8>>, DatasetError> {
    let Some(rows) = append else {
        return parquet_bytes(batch, props, path).map(Some);
    };
    let old = read_parquet(path)?;
    if (old.num_rows() as u64) < rows {
        return Err(DatasetError::invalid(
            path,
            "number of rows",
            format!("at least {rows} (the committed episodes' rows)"),
            old.num_rows().to_string(),
        ));
    }
    let old = old.slice(0, rows as usize);
    if old.schema().fields() != batch.schema().fields() {
        return Ok(None);
    }
    let err = |e: arrow::error::ArrowError| DatasetError::parquet(path, "appending rows", e);
    let old = RecordBatch::try_new(batch.schema(), old.columns().to_vec()).map_err(err)?;
    let both = arrow::compute::concat_batches(&batch.schema(), [&old, batch]).map_err(err)?;
    parquet_bytes(&both, props, path).map(Some)
}

/// What `save_episode` committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedEpisode {
    pub episode_index: u64,
    pub length: u64,
}

#[derive(Debug, Default)]
struct Pending {
    frames: Vec<Frame>,
    /// Per extra camera, its frames.
    extra_frames: Vec<Vec<Frame>>,
    /// The extras' values, row after row.
    extras: Vec<f64>,
    /// Full states, row after row (kept at f64 until split: keypoints are computed from them).
    states: Vec<f64>,
    actions: Vec<f32>,
    discrete: Vec<i64>,
    rewards: Vec<f32>,
    success: Vec<bool>,
}

/// Appends episodes to a LeRobot v3.0 dataset. Steps are buffered in memory; nothing of an
/// episode is visible until [`save_episode`](Self::save_episode) commits it.
#[derive(Debug)]
pub struct DatasetWriter {
    root: PathBuf,
    spec: DatasetSpec,
    info: Info,
    tasks: Vec<String>,
    stats: BTreeMap<String, FeatureStats>,
    pending: Pending,
    /// The data and episode-metadata files being filled.
    data_at: Option<Filling>,
    meta_at: Option<Filling>,
    durable: bool,
    threads: usize,
    /// Held while the writer lives; declared last so it is released after everything else.
    _lock: WriterLock,
}

impl DatasetWriter {
    /// Starts a new dataset in `root`, which must not exist or be an empty folder.
    pub fn create(root: &Path, spec: DatasetSpec) -> Result<Self, DatasetError> {
        if root.join(INFO_PATH).exists() {
            return Err(DatasetError::Exists {
                dir: root.to_owned(),
            });
        }
        if has_foreign_files(root)? {
            return Err(DatasetError::NotEmpty {
                dir: root.to_owned(),
                message: "the folder is not empty and holds no dataset; refusing to write \
                          into it"
                    .into(),
            });
        }
        check_spec(root, &spec)?;
        let lock = WriterLock::acquire(root)?;
        // Another writer may have created it between the check above and the lock.
        if root.join(INFO_PATH).exists() {
            return Err(DatasetError::Exists {
                dir: root.to_owned(),
            });
        }
        remove_temporaries(&root.join("meta"))?;
        let info = Info {
            codebase_version: CodebaseVersion::V3_0,
            fps: spec.fps,
            features: spec.features(),
            total_episodes: 0,
            total_frames: 0,
            total_tasks: 0,
            chunks_size: DEFAULT_CHUNKS_SIZE,
            data_path: DEFAULT_DATA_PATH.into(),
            video_path: spec.video.then(|| DEFAULT_VIDEO_PATH.to_owned()),
            robot_type: spec.robot_type.clone(),
        };
        let meta = DreamyardMeta {
            format: DREAMYARD_FORMAT,
            spec: spec.clone(),
        };
        let mut staged = Staged::new(true);
        staged.write(root.join(DREAMYARD_PATH), pretty(&meta).as_bytes())?;
        staged.write(root.join(INFO_PATH), info.to_json().as_bytes())?;
        staged.commit()?;
        Ok(Self::new(
            root,
            spec,
            info,
            Vec::new(),
            BTreeMap::new(),
            lock,
        ))
    }

    /// Opens a dataset written by Dreamyard to add episodes. The stored spec must equal
    /// `spec`. Leftovers of a killed writer (temporary files, an episode whose files were
    /// renamed but that `info.json` does not count) are removed; committed episodes are
    /// not touched.
    pub fn append(root: &Path, spec: &DatasetSpec) -> Result<Self, DatasetError> {
        // Read once to know it is a dataset (no lock file is made in a folder that is not),
        // then again under the lock: a writer that held it may have committed more.
        Info::read(root)?;
        let lock = WriterLock::acquire(root)?;
        let info = Info::read(root)?;
        let info_file = root.join(INFO_PATH);
        if info.codebase_version != CodebaseVersion::V3_0 {
            return Err(DatasetError::invalid(
                info_file,
                "codebase_version",
                "\"v3.0\" to append episodes",
                format!("\"{}\"", info.codebase_version.as_str()),
            ));
        }
        let meta = read_dreamyard(root)?.ok_or_else(|| {
            DatasetError::invalid(
                root.join(DREAMYARD_PATH),
                "(file)",
                "a dataset recorded by Dreamyard to append to",
                "no such file",
            )
        })?;
        let meta_file = root.join(DREAMYARD_PATH);
        if &meta.spec != spec {
            let (expected, mut found) = (describe_spec(spec), describe_spec(&meta.spec));
            if expected == found {
                found.push_str(", other scene details (task, objects, ...) differ");
            }
            if meta.format < DREAMYARD_FORMAT {
                found.push_str(&format!(
                    " (written by an older Dreamyard, format {}: record into a new folder)",
                    meta.format
                ));
            }
            return Err(DatasetError::invalid(meta_file, "spec", expected, found));
        }
        if info.features != spec.features() {
            return Err(DatasetError::invalid(
                info_file,
                "features",
                "the features Dreamyard writes for meta/dreamyard.json's spec",
                "other features",
            ));
        }
        remove_temporaries(&root.join("data"))?;
        remove_temporaries(&root.join("meta"))?;
        remove_temporaries(&root.join("videos"))?;
        let (data_at, meta_at) = remove_uncommitted(root, &info)?;
        let dataset = super::Dataset::open(root)?;
        let tasks = dataset.tasks().to_vec();
        let mut stats = BTreeMap::new();
        for ep in dataset.all_episode_stats()? {
            fold_stats(&mut stats, &ep);
        }
        let mut writer = Self::new(root, meta.spec, info, tasks, stats, lock);
        writer.data_at = data_at;
        writer.meta_at = meta_at;
        Ok(writer)
    }

    fn new(
        root: &Path,
        spec: DatasetSpec,
        info: Info,
        tasks: Vec<String>,
        stats: BTreeMap<String, FeatureStats>,
        lock: WriterLock,
    ) -> Self {
        Self {
            root: root.to_owned(),
            spec,
            info,
            tasks,
            stats,
            pending: Pending::default(),
            data_at: None,
            meta_at: None,
            durable: true,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            _lock: lock,
        }
    }

    /// Whether files are flushed to disk (fsync) before they are renamed into place. On by
    /// default; without it a killed process still loses nothing committed, a power cut may.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// Threads used to PNG-encode an episode's frames (default: all cores).
    pub fn set_encode_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn spec(&self) -> &DatasetSpec {
        &self.spec
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Committed episodes.
    pub fn num_episodes(&self) -> u64 {
        self.info.total_episodes
    }

    pub fn num_frames(&self) -> u64 {
        self.info.total_frames
    }

    /// Steps buffered for the episode in progress.
    pub fn pending_frames(&self) -> usize {
        self.pending.frames.len()
    }

    /// Buffers one step of the episode in progress.
    pub fn add_frame(&mut self, step: Step<'_>) -> Result<(), DatasetError> {
        self.add_row(step, Extras::default())
    }

    /// Buffers one step of the episode in progress with its extra cameras' frames and extra
    /// values (see [`DatasetSpec::extra_cameras`] and [`DatasetSpec::extras`]).
    pub fn add_row(&mut self, step: Step<'_>, extras: Extras<'_>) -> Result<(), DatasetError> {
        let bad = |what: &str, expected: String, found: String| DatasetError::BadInput {
            dir: self.root.clone(),
            what: what.into(),
            expected,
            found,
        };
        let s = &self.spec;
        let wrong_size = |f: &Frame| {
            f.width != s.frame_width
                || f.height != s.frame_height
                || f.data.len() != 3 * s.frame_width as usize * s.frame_height as usize
        };
        let cameras = std::iter::once((keys::IMAGE, step.frame)).chain(
            s.extra_cameras
                .iter()
                .map(String::as_str)
                .zip(extras.frames.iter().copied()),
        );
        for (key, frame) in cameras {
            if wrong_size(frame) {
                return Err(bad(
                    &format!("frame of {key}"),
                    format!("{}x{} RGB8", s.frame_width, s.frame_height),
                    format!(
                        "{}x{} with {} bytes",
                        frame.width,
                        frame.height,
                        frame.data.len()
                    ),
                ));
            }
        }
        if extras.frames.len() != s.extra_cameras.len() {
            return Err(bad(
                "extra cameras",
                format!("a frame for each of [{}]", s.extra_cameras.join(", ")),
                format!("{} frames", extras.frames.len()),
            ));
        }
        if extras.values.len() != s.extras_len() {
            return Err(bad(
                "extra values",
                format!(
                    "{} values for [{}]",
                    s.extras_len(),
                    s.extras
                        .iter()
                        .map(|e| e.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!("{} values", extras.values.len()),
            ));
        }
        if step.state.len() != s.state_names.len() {
            return Err(bad(
                "state",
                format!("{} values", s.state_names.len()),
                format!("{} values", step.state.len()),
            ));
        }
        match (&s.action_space, step.action) {
            (ActionSpace::Continuous { names, .. }, Action::Continuous(v))
                if v.len() == names.len() => {}
            (ActionSpace::Discrete { names }, Action::Discrete(i))
                if (*i as usize) < names.len() => {}
            (space, a) => {
                return Err(bad(
                    "action",
                    match space {
                        ActionSpace::Continuous { names, .. } => {
                            format!("a continuous action of {} values", names.len())
                        }
                        ActionSpace::Discrete { names } => {
                            format!("a discrete action below {}", names.len())
                        }
                    },
                    format!("{a:?}"),
                ));
            }
        }
        let (reward, success) = match (s.rewards, step.reward, step.success) {
            (true, Some(r), Some(ok)) => (r, ok),
            (true, _, _) => {
                return Err(bad(
                    "reward",
                    "a reward and a success flag (the dataset has next.reward)".into(),
                    "none".into(),
                ));
            }
            (false, _, _) => (0.0, false),
        };
        let p = &mut self.pending;
        p.frames.push(step.frame.clone());
        p.extra_frames.resize_with(s.extra_cameras.len(), Vec::new);
        for (cam, frame) in p.extra_frames.iter_mut().zip(extras.frames) {
            cam.push((*frame).clone());
        }
        p.extras.extend_from_slice(extras.values);
        p.states.extend_from_slice(step.state);
        match step.action {
            Action::Continuous(v) => p.actions.extend(v),
            Action::Discrete(i) => p.discrete.push(i64::from(*i)),
        }
        if s.rewards {
            p.rewards.push(reward as f32);
            p.success.push(success);
        }
        Ok(())
    }

    /// Drops the episode in progress.
    pub fn discard_episode(&mut self) {
        self.pending = Pending::default();
    }

    /// Commits the buffered steps as one episode with `task`. On error nothing committed is
    /// touched and the steps stay buffered.
    pub fn save_episode(
        &mut self,
        task: &str,
        source: &EpisodeSource,
    ) -> Result<SavedEpisode, DatasetError> {
        let n = self.pending.frames.len();
        if n == 0 || task.is_empty() {
            return Err(DatasetError::BadInput {
                dir: self.root.clone(),
                what: "episode".into(),
                expected: "at least one step and a non-empty task".into(),
                found: format!("{n} steps, task \"{task}\""),
            });
        }
        let episode = self.info.total_episodes;
        let from = self.info.total_frames;
        let task_index = match self.tasks.iter().position(|t| t == task) {
            Some(i) => i,
            None => self.tasks.len(),
        };
        let new_task = task_index == self.tasks.len();

        let cameras = self.cameras();
        let pngs = if self.spec.video {
            Vec::new()
        } else {
            cameras
                .iter()
                .map(|(_, frames)| self.encode_frames(frames))
                .collect::<Result<Vec<_>, _>>()?
        };
        let columns = self.data_columns(&pngs, episode, from, task_index as i64)?;
        let ep_stats = self.episode_stats(&columns);

        let chunks = self.info.chunks_size;
        let info_file = self.root.join(INFO_PATH);
        let mut videos = Vec::new();
        if let Some(template) = self.info.video_path.as_ref().filter(|_| self.spec.video) {
            for (key, frames) in &cameras {
                let rel = format_template(
                    template,
                    &[
                        ("video_key", TemplateValue::Str(key)),
                        ("chunk_index", TemplateValue::Int(episode / chunks)),
                        ("file_index", TemplateValue::Int(episode % chunks)),
                    ],
                    &info_file,
                    "video_path",
                )?;
                videos.push((*key, rel, *frames));
            }
        }
        let video_place = (episode / chunks, episode % chunks);
        let duration = n as f64 / self.spec.fps;
        let video_keys: Vec<&str> = videos.iter().map(|(k, _, _)| *k).collect();

        let batch = self.data_batch(columns)?;
        let hf = batch.schema().metadata().get("huggingface").cloned();
        let camera_keys: Vec<String> = cameras.iter().map(|(k, _)| (*k).to_owned()).collect();
        let Packed {
            place: data_place,
            path: data_path,
            bytes: data_bytes,
            rows: data_rows,
        } = self.pack(
            (&self.info.data_path, "data_path"),
            self.data_at,
            DATA_FILE_BYTES,
            |_| Ok(batch.clone()),
            || data_props(hf.as_ref(), &camera_keys),
        )?;
        // The metadata row names its own file.
        let Packed {
            place: meta_place,
            path: meta_path,
            bytes: meta_bytes,
            rows: meta_rows,
        } = self.pack(
            (EPISODES_META_PATH, "episodes path"),
            self.meta_at,
            META_FILE_BYTES,
            |place| {
                episode_batch(
                    episode,
                    task,
                    n as u64,
                    data_place,
                    place,
                    from,
                    (!video_keys.is_empty()).then_some((&video_keys[..], video_place, duration)),
                    &ep_stats,
                    &self.info.features,
                    source,
                )
            },
            meta_props,
        )?;

        let mut tasks = self.tasks.clone();
        if new_task {
            tasks.push(task.to_owned());
        }
        let mut stats = self.stats.clone();
        fold_stats(&mut stats, &ep_stats);
        let mut info = self.info.clone();
        info.total_episodes += 1;
        info.total_frames += n as u64;
        info.total_tasks = tasks.len() as u64;

        let mut staged = Staged::new(self.durable);
        for (_, rel, frames) in &videos {
            let fps = self.spec.fps;
            staged.write_with(&self.root.join(rel), |tmp| {
                VideoEncoding::default().encode(frames, fps, tmp)
            })?;
        }
        staged.write(data_path, &data_bytes)?;
        staged.write(meta_path, &meta_bytes)?;
        let filled = |(chunk, file): (u64, u64), bytes: &[u8], rows: u64| Filling {
            chunk,
            file,
            bytes: bytes.len() as u64,
            rows,
        };
        let data_at = filled(data_place, &data_bytes, data_rows);
        let meta_at = filled(meta_place, &meta_bytes, meta_rows);
        if new_task {
            let tasks_path = self.root.join(TASKS_PATH);
            let bytes = tasks_parquet(&tasks, &tasks_path)?;
            staged.write(tasks_path, &bytes)?;
        }
        staged.write(self.root.join(STATS_PATH), stats_json(&stats).as_bytes())?;
        staged.write(self.root.join(INFO_PATH), info.to_json().as_bytes())?;
        staged.commit()?;

        self.info = info;
        self.tasks = tasks;
        self.stats = stats;
        self.data_at = Some(data_at);
        self.meta_at = Some(meta_at);
        self.pending = Pending::default();
        Ok(SavedEpisode {
            episode_index: episode,
            length: n as u64,
        })
    }

    /// Places an episode's rows (`rows(place)`) in the file being filled (`at`, after its
    /// rows) or a new one: the place, the file and its new bytes.
    fn pack(
        &self,
        (template, field): (&str, &str),
        at: Option<Filling>,
        limit: u64,
        rows: impl Fn((u64, u64)) -> Result<RecordBatch, DatasetError>,
        props: impl Fn() -> WriterProperties,
    ) -> Result<Packed, DatasetError> {
        let info_file = self.root.join(INFO_PATH);
        let path_of = |chunk: u64, file: u64| -> Result<PathBuf, DatasetError> {
            let rel = format_template(
                template,
                &[
                    ("chunk_index", TemplateValue::Int(chunk)),
                    ("file_index", TemplateValue::Int(file)),
                ],
                &info_file,
                field,
            )?;
            Ok(self.root.join(rel))
        };
        let chunks = self.info.chunks_size;
        let (chunk, file, append) = next_place(at, limit, chunks);
        let path = path_of(chunk, file)?;
        let batch = rows((chunk, file))?;
        let before = at.filter(|_| append).map(|f| f.rows);
        if let Some(bytes) = packed_bytes(&path, before, &batch, props())? {
            return Ok(Packed {
                place: (chunk, file),
                path,
                bytes,
                rows: before.unwrap_or(0) + batch.num_rows() as u64,
            });
        }
        // The file's columns are not these rows' (written by another version): a new file.
        let full = at.map(|f| Filling {
            bytes: u64::MAX,
            ..f
        });
        let (chunk, file, _) = next_place(full, limit, chunks);
        let path = path_of(chunk, file)?;
        let batch = rows((chunk, file))?;
        let bytes = parquet_bytes(&batch, props(), &path)?;
        Ok(Packed {
            place: (chunk, file),
            path,
            bytes,
            rows: batch.num_rows() as u64,
        })
    }

    /// The cameras' keys and buffered frames, `observation.image` first.
    fn cameras(&self) -> Vec<(&str, &[Frame])> {
        let p = &self.pending;
        let mut out = vec![(keys::IMAGE, p.frames.as_slice())];
        for (i, key) in self.spec.extra_cameras.iter().enumerate() {
            out.push((
                key.as_str(),
                p.extra_frames.get(i).map_or(&[][..], Vec::as_slice),
            ));
        }
        out
    }

    /// PNG-encodes `frames` on `threads` threads, in order.
    fn encode_frames(&self, frames: &[Frame]) -> Result<Vec<Vec<u8>>, DatasetError> {
        let threads = self.threads.min(frames.len()).max(1);
        let per = frames.len().div_ceil(threads);
        let fail = |e: image::ImageError| DatasetError::BadInput {
            dir: self.root.clone(),
            what: "frame".into(),
            expected: "an RGB8 frame PNG can encode".into(),
            found: e.to_string(),
        };
        if threads == 1 {
            return frames
                .iter()
                .map(|f| codec::encode_png(f).map_err(fail))
                .collect();
        }
        let parts: Vec<Result<Vec<Vec<u8>>, image::ImageError>> = std::thread::scope(|s| {
            let handles: Vec<_> = frames
                .chunks(per)
                .map(|chunk| s.spawn(move || chunk.iter().map(codec::encode_png).collect()))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(image::ImageError::IoError(std::io::Error::other(
                            "PNG encoder thread panicked",
                        )))
                    })
                })
                .collect()
        });
        let mut out = Vec::with_capacity(frames.len());
        for part in parts {
            out.extend(part.map_err(fail)?);
        }
        Ok(out)
    }

    /// The episode's columns in feature order.
    fn data_columns(
        &self,
        pngs: &[Vec<Vec<u8>>],
        episode: u64,
        from: u64,
        task_index: i64,
    ) -> Result<Vec<(String, ArrayRef)>, DatasetError> {
        let p = &self.pending;
        let n = p.frames.len();
        let mut out: Vec<(String, ArrayRef)> = Vec::new();
        for ((key, _), pngs) in self.cameras().iter().zip(pngs) {
            let bytes = BinaryArray::from_iter_values(pngs.iter());
            let paths = StringArray::from_iter_values((0..n).map(|i| format!("frame-{i:06}.png")));
            let image = StructArray::new(
                match super::columns::image_type() {
                    DataType::Struct(f) => f,
                    _ => return Err(self.internal("image type")),
                },
                vec![Arc::new(bytes), Arc::new(paths)],
                None,
            );
            out.push(((*key).into(), Arc::new(image)));
        }
        let fixed = |values: &[f32], dim: usize| -> Result<ArrayRef, DatasetError> {
            let field = Arc::new(Field::new("item", DataType::Float32, true));
            FixedSizeListArray::try_new(
                field,
                dim as i32,
                Arc::new(Float32Array::from(values.to_vec())),
                None,
            )
            .map(|a| Arc::new(a) as ArrayRef)
            .map_err(|e| self.internal(&e.to_string()))
        };
        let dim = self.spec.state_names.len();
        match &self.spec.layout {
            _ if dim == 0 => {}
            None => out.push((keys::STATE.into(), fixed(&to_f32(&p.states), dim)?)),
            Some(layout) => {
                let (mut robot, mut env) = (Vec::new(), Vec::new());
                for state in p.states.chunks_exact(dim) {
                    robot.extend(layout.robot_state(state));
                    env.extend(layout.environment_state(state));
                }
                let env_dim = env.len() / n.max(1);
                out.push((
                    keys::STATE.into(),
                    fixed(&to_f32(&robot), layout.robot.len())?,
                ));
                out.push((
                    keys::ENVIRONMENT_STATE.into(),
                    fixed(&to_f32(&env), env_dim)?,
                ));
                out.push((keys::SCENE_STATE.into(), fixed(&to_f32(&p.states), dim)?));
            }
        }
        match &self.spec.action_space {
            ActionSpace::Continuous { names, .. } => {
                out.push((keys::ACTION.into(), fixed(&p.actions, names.len())?));
            }
            ActionSpace::Discrete { .. } => {
                out.push((
                    keys::ACTION.into(),
                    Arc::new(Int64Array::from(p.discrete.clone())),
                ));
            }
        }
        if self.spec.rewards {
            out.push((
                keys::REWARD.into(),
                Arc::new(Float32Array::from(p.rewards.clone())),
            ));
            out.push((
                keys::SUCCESS.into(),
                Arc::new(BooleanArray::from(p.success.clone())),
            ));
        }
        let width = self.spec.extras_len();
        let mut at = 0;
        for extra in &self.spec.extras {
            let len = extra.len();
            let column = |row: &[f64]| row[at..at + len].to_vec();
            let values: Vec<f64> = p
                .extras
                .chunks_exact(width.max(1))
                .flat_map(column)
                .collect();
            out.push((
                extra.key.clone(),
                match &extra.kind {
                    ExtraKind::Values { .. } => fixed(&to_f32(&values), len)?,
                    ExtraKind::Flag => Arc::new(BooleanArray::from_iter(
                        values.iter().map(|&v| Some(v != 0.0)),
                    )),
                },
            ));
            at += len;
        }
        out.push((
            keys::DONE.into(),
            Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i + 1 == n)))),
        ));
        let fps = self.spec.fps;
        out.push((
            keys::TIMESTAMP.into(),
            Arc::new(Float32Array::from_iter_values(
                (0..n).map(|i| (i as f64 / fps) as f32),
            )),
        ));
        let ints = |f: &dyn Fn(usize) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values((0..n).map(f)))
        };
        out.push((keys::FRAME_INDEX.into(), ints(&|i| i as i64)));
        out.push((keys::EPISODE_INDEX.into(), ints(&|_| episode as i64)));
        out.push((keys::INDEX.into(), ints(&|i| from as i64 + i as i64)));
        out.push((keys::TASK_INDEX.into(), ints(&|_| task_index)));
        Ok(out)
    }

    fn data_batch(&self, columns: Vec<(String, ArrayRef)>) -> Result<RecordBatch, DatasetError> {
        let mut fields = Vec::with_capacity(columns.len());
        let mut hf = serde_json::Map::new();
        for (key, array) in &columns {
            let feature = self
                .info
                .features
                .get(key)
                .ok_or_else(|| self.internal(&format!("no feature {key}")))?;
            if arrow_type(feature).as_ref() != Some(array.data_type()) {
                return Err(self.internal(&format!("column {key} type")));
            }
            fields.push(Field::new(key, array.data_type().clone(), true));
            hf.insert(key.clone(), hf_feature(feature));
        }
        let metadata = [(
            "huggingface".to_owned(),
            json!({"info": {"features": hf}}).to_string(),
        )];
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect())
            .map_err(|e| self.internal(&e.to_string()))
    }

    /// `compute_episode_stats` over the episode's columns.
    fn episode_stats(&self, columns: &[(String, ArrayRef)]) -> BTreeMap<String, FeatureStats> {
        let mut out = BTreeMap::new();
        let cameras = self.cameras();
        for (key, frames) in &cameras {
            let frames: Vec<&[u8]> = frames.iter().map(|f| f.data.as_slice()).collect();
            out.insert(
                (*key).to_owned(),
                FeatureStats::of_images(
                    &frames,
                    self.spec.frame_width as usize,
                    self.spec.frame_height as usize,
                ),
            );
        }
        for (key, array) in columns
            .iter()
            .filter(|(k, _)| !cameras.iter().any(|(c, _)| c == k))
        {
            let dim = match array.data_type() {
                DataType::FixedSizeList(_, d) => *d as usize,
                _ => 1,
            };
            if let Some(values) = super::columns::flatten_numbers(array) {
                out.insert(key.clone(), FeatureStats::of_vectors(&values, dim));
            }
        }
        out
    }

    fn internal(&self, what: &str) -> DatasetError {
        DatasetError::BadInput {
            dir: self.root.clone(),
            what: "internal column layout".into(),
            expected: "columns matching the features".into(),
            found: what.into(),
        }
    }
}

/// Whether `root` holds anything but what an interrupted `create` leaves (`meta/`,
/// `meta/dreamyard.json`, temporary files).
fn has_foreign_files(root: &Path) -> Result<bool, DatasetError> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(false);
    };
    for entry in entries {
        let path = entry.map_err(|e| DatasetError::io(root, e))?.path();
        let rel = path.strip_prefix(root).unwrap_or(&path);
        if rel == Path::new("meta") && path.is_dir() {
            if has_foreign_files_in_meta(&path)? {
                return Ok(true);
            }
        } else {
            return Ok(true);
        }
    }
    Ok(false)
}

fn has_foreign_files_in_meta(meta: &Path) -> Result<bool, DatasetError> {
    for entry in std::fs::read_dir(meta).map_err(|e| DatasetError::io(meta, e))? {
        let path = entry.map_err(|e| DatasetError::io(meta, e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let ours = name.is_some_and(|n| {
            n == "dreamyard.json" || n == "dreamyard.lock" || n.ends_with(super::files::TMP_SUFFIX)
        });
        if !ours || path.is_dir() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

fn check_spec(root: &Path, spec: &DatasetSpec) -> Result<(), DatasetError> {
    let bad = |what: &str, expected: &str, found: String| DatasetError::BadInput {
        dir: root.to_owned(),
        what: what.into(),
        expected: expected.into(),
        found,
    };
    if !(spec.fps.is_finite() && spec.fps > 0.0) {
        return Err(bad("fps", "a positive number", spec.fps.to_string()));
    }
    if spec.frame_width == 0 || spec.frame_height == 0 {
        return Err(bad(
            "frame size",
            "non-zero width and height",
            format!("{}x{}", spec.frame_width, spec.frame_height),
        ));
    }
    if spec.video {
        VideoEncoding::default()
            .check_size(spec.frame_width, spec.frame_height)
            .map_err(|found| {
                bad(
                    "frame size for video storage",
                    "even sides of at least 64 pixels (or image storage)",
                    found,
                )
            })?;
    }
    if let ActionSpace::Continuous { names, .. } = &spec.action_space
        && names.is_empty()
    {
        return Err(bad("action space", "at least one dimension", "none".into()));
    }
    let features = spec.features();
    let mut seen = std::collections::BTreeSet::new();
    if let Some((key, _)) = features.iter().find(|(k, _)| !seen.insert(*k)) {
        return Err(bad(
            "feature names",
            "each feature once (extra cameras and values need names of their own)",
            format!("{key} twice"),
        ));
    }
    if let Some(e) = spec.extras.iter().find(|e| e.is_empty()) {
        return Err(bad(
            "extra values",
            "at least one value per feature",
            format!("{} with none", e.key),
        ));
    }
    let len = spec.state_names.len();
    if let Some(i) = spec.layout.as_ref().and_then(|l| l.bad_index(len)) {
        return Err(bad(
            "state layout",
            "indices into the state vector",
            format!("index {i} of a state of {len} values"),
        ));
    }
    Ok(())
}

fn describe_spec(spec: &DatasetSpec) -> String {
    format!(
        "scene {}, {}x{} frames at {} fps stored as {}, {}, {} action values",
        spec.scene.as_ref().map_or("(none)", |s| s.name.as_str()),
        spec.frame_width,
        spec.frame_height,
        spec.fps,
        if spec.video {
            "AV1 video"
        } else {
            "PNG images"
        },
        match &spec.layout {
            None => format!(
                "{} state values as observation.state",
                spec.state_names.len()
            ),
            Some(l) => format!(
                "{} state values split into observation.state ({}) and \
                 observation.environment_state",
                spec.state_names.len(),
                l.robot.len()
            ),
        },
        spec.action_space.dim()
    ) + &if spec.extra_cameras.is_empty() && spec.extras.is_empty() {
        String::new()
    } else {
        format!(
            ", also {}",
            spec.extra_cameras
                .iter()
                .chain(spec.extras.iter().map(|e| &e.key))
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Removes what a writer killed between its renames left of an episode that `info.json`
/// does not count: its MP4s, its rows at the end of the data and episode-metadata files being
/// filled, and any file it started. Returns those two files as the next episode finds them.
fn remove_uncommitted(
    root: &Path,
    info: &Info,
) -> Result<(Option<Filling>, Option<Filling>), DatasetError> {
    let info_file = root.join(INFO_PATH);
    let chunks = info.chunks_size;
    // MP4s are numbered by episode.
    if let Some(template) = &info.video_path {
        let mut e = info.total_episodes;
        loop {
            let mut found = false;
            for key in info.features.video_keys() {
                let vals = [
                    ("video_key", TemplateValue::Str(key)),
                    ("chunk_index", TemplateValue::Int(e / chunks)),
                    ("file_index", TemplateValue::Int(e % chunks)),
                ];
                let path = root.join(format_template(template, &vals, &info_file, "video_path")?);
                if path.exists() {
                    std::fs::remove_file(&path).map_err(|err| DatasetError::io(&path, err))?;
                    found = true;
                }
            }
            if !found {
                break;
            }
            e += 1;
        }
    }
    // The reader lists committed episodes only.
    let dataset = super::Dataset::open(root)?;
    let episodes = dataset.episodes();
    let filling = |rel: &Path, keep: u64, props: &dyn Fn(&RecordBatch) -> WriterProperties| {
        let path = root.join(rel);
        let (chunk, file) = place_of(rel).ok_or_else(|| {
            DatasetError::invalid(
                &path,
                "(file name)",
                "chunk-XXX/file-XXX, as Dreamyard writes",
                rel.display().to_string(),
            )
        })?;
        let bytes = truncate_rows(&path, keep, props)?;
        Ok::<_, DatasetError>(Filling {
            chunk,
            file,
            bytes,
            rows: keep,
        })
    };
    let data_at = match episodes.last() {
        Some(ep) => {
            let cameras: Vec<String> = info.camera_keys().into_iter().map(Into::into).collect();
            Some(filling(&ep.data_file, ep.first_row + ep.length, &|b| {
                data_props(b.schema().metadata().get("huggingface"), &cameras)
            })?)
        }
        None => None,
    };
    remove_files_after(root, (&info.data_path, "data_path"), data_at, chunks)?;
    let meta_at = match episodes.last().and_then(|ep| ep.meta_file()) {
        Some(rel) => {
            let keep = episodes
                .iter()
                .filter(|e| e.meta_file() == Some(rel))
                .count() as u64;
            Some(filling(rel, keep, &|_| meta_props())?)
        }
        None => None,
    };
    remove_files_after(root, (EPISODES_META_PATH, "episodes path"), meta_at, chunks)?;
    // A task the uncommitted episode added (tasks are only ever appended).
    let committed = info.total_tasks as usize;
    let tasks_path = root.join(TASKS_PATH);
    if dataset.tasks().len() > committed {
        if committed == 0 {
            std::fs::remove_file(&tasks_path).map_err(|e| DatasetError::io(&tasks_path, e))?;
        } else {
            let bytes = tasks_parquet(&dataset.tasks()[..committed], &tasks_path)?;
            let mut staged = Staged::new(true);
            staged.write(tasks_path, &bytes)?;
            staged.commit()?;
        }
    }
    Ok((data_at, meta_at))
}

/// Keeps the first `keep` rows of the parquet file at `path` (renaming a new file over it
/// when it holds more); its size in bytes.
fn truncate_rows(
    path: &Path,
    keep: u64,
    props: &dyn Fn(&RecordBatch) -> WriterProperties,
) -> Result<u64, DatasetError> {
    let batch = read_parquet(path)?;
    if batch.num_rows() as u64 > keep {
        let kept = batch.slice(0, keep as usize);
        let bytes = parquet_bytes(&kept, props(&kept), path)?;
        let mut staged = Staged::new(true);
        staged.write(path.to_owned(), &bytes)?;
        staged.commit()?;
        return Ok(bytes.len() as u64);
    }
    let meta = std::fs::metadata(path).map_err(|e| DatasetError::io(path, e))?;
    Ok(meta.len())
}

/// Deletes the files after `at` in `template`'s numbering (from the first when `at` is
/// `None`) as far as they go: files an uncommitted episode started.
fn remove_files_after(
    root: &Path,
    (template, field): (&str, &str),
    at: Option<Filling>,
    chunks: u64,
) -> Result<(), DatasetError> {
    let info_file = root.join(INFO_PATH);
    let full = |f: Filling| Filling {
        bytes: u64::MAX,
        ..f
    };
    let (mut chunk, mut file, _) = next_place(at.map(full), 0, chunks);
    loop {
        let vals = [
            ("chunk_index", TemplateValue::Int(chunk)),
            ("file_index", TemplateValue::Int(file)),
        ];
        let path = root.join(format_template(template, &vals, &info_file, field)?);
        if !path.exists() {
            return Ok(());
        }
        std::fs::remove_file(&path).map_err(|err| DatasetError::io(&path, err))?;
        (chunk, file, _) = next_place(
            Some(Filling {
                chunk,
                file,
                bytes: u64::MAX,
                rows: 0,
            }),
            0,
            chunks,
        );
    }
}

pub(crate) fn fold_stats(
    total: &mut BTreeMap<String, FeatureStats>,
    episode: &BTreeMap<String, FeatureStats>,
) {
    for (key, s) in episode {
        let merged = match total.get(key) {
            Some(t) => FeatureStats::aggregate(&[t, s]),
            None => Some(s.clone()),
        };
        if let Some(m) = merged {
            total.insert(key.clone(), m);
        }
    }
}

fn stats_json(stats: &BTreeMap<String, FeatureStats>) -> String {
    let map: serde_json::Map<String, serde_json::Value> = stats
        .iter()
        .map(|(k, s)| (k.clone(), s.to_json()))
        .collect();
    pretty(&serde_json::Value::Object(map))
}

fn base_props() -> parquet::file::properties::WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("dreamyard {}", env!("CARGO_PKG_VERSION")))
}

fn data_props(huggingface: Option<&String>, cameras: &[String]) -> WriterProperties {
    let mut props = base_props()
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(PAGE_ROWS);
    for camera in cameras {
        let bytes = ColumnPath::new(vec![camera.clone(), "bytes".to_owned()]);
        let path = ColumnPath::new(vec![camera.clone(), "path".to_owned()]);
        props = props
            // PNG is deflated already.
            .set_column_compression(bytes.clone(), Compression::UNCOMPRESSED)
            .set_column_dictionary_enabled(bytes.clone(), false)
            .set_column_statistics_enabled(bytes, EnabledStatistics::None)
            .set_column_dictionary_enabled(path, false);
    }
    props
        // pyarrow writes schema metadata as file key-values too; `datasets` reads it there.
        .set_key_value_metadata(
            huggingface.map(|hf| vec![KeyValue::new("huggingface".into(), hf.clone())]),
        )
        .build()
}

fn meta_props() -> WriterProperties {
    base_props().build()
}

/// The episode's row of `meta/episodes/...`: LeRobot's columns in its order, the
/// per-episode stats as `stats/{feature}/{stat}`, and `dreamyard/source`.
#[allow(clippy::too_many_arguments)]
fn episode_batch(
    episode: u64,
    task: &str,
    length: u64,
    (chunk, file): (u64, u64),
    (meta_chunk, meta_file): (u64, u64),
    from: u64,
    video: Option<(&[&str], (u64, u64), f64)>,
    stats: &BTreeMap<String, FeatureStats>,
    features: &Features,
    source: &EpisodeSource,
) -> Result<RecordBatch, DatasetError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    let int = |name: &str, v: u64, fields: &mut Vec<Field>, columns: &mut Vec<ArrayRef>| {
        fields.push(Field::new(name, DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from(vec![v as i64])));
    };
    int("episode_index", episode, &mut fields, &mut columns);
    let mut tasks = ListBuilder::new(StringBuilder::new());
    tasks.values().append_value(task);
    tasks.append(true);
    let tasks = tasks.finish();
    fields.push(Field::new("tasks", tasks.data_type().clone(), true));
    columns.push(Arc::new(tasks));
    int("length", length, &mut fields, &mut columns);
    int("data/chunk_index", chunk, &mut fields, &mut columns);
    int("data/file_index", file, &mut fields, &mut columns);
    int("dataset_from_index", from, &mut fields, &mut columns);
    int("dataset_to_index", from + length, &mut fields, &mut columns);
    for (key, (video_chunk, video_file), duration) in video
        .into_iter()
        .flat_map(|(keys, place, d)| keys.iter().map(move |k| (*k, place, d)))
    {
        // Each episode has its own file, from its start.
        int(
            &format!("videos/{key}/chunk_index"),
            video_chunk,
            &mut fields,
            &mut columns,
        );
        int(
            &format!("videos/{key}/file_index"),
            video_file,
            &mut fields,
            &mut columns,
        );
        for (stat, v) in [("from_timestamp", 0.0), ("to_timestamp", duration)] {
            fields.push(Field::new(
                format!("videos/{key}/{stat}"),
                DataType::Float64,
                true,
            ));
            columns.push(Arc::new(arrow::array::Float64Array::from(vec![v])));
        }
    }
    for (key, _) in features.iter() {
        let Some(s) = stats.get(key) else { continue };
        for stat in STAT_KEYS {
            let name = format!("stats/{key}/{stat}");
            let array: ArrayRef = if stat == "count" {
                let mut b = ListBuilder::new(Int64Builder::new());
                b.values().append_value(s.count as i64);
                b.append(true);
                Arc::new(b.finish())
            } else {
                let values = s.values(stat).unwrap_or(&[]);
                match s.shape {
                    StatsShape::Vector => {
                        let mut b = ListBuilder::new(Float64Builder::new());
                        b.values().append_slice(values);
                        b.append(true);
                        Arc::new(b.finish())
                    }
                    StatsShape::Image => {
                        let mut b = ListBuilder::new(ListBuilder::new(ListBuilder::new(
                            Float64Builder::new(),
                        )));
                        for &v in values {
                            let mid = b.values();
                            mid.values().values().append_value(v);
                            mid.values().append(true);
                            mid.append(true);
                        }
                        b.append(true);
                        Arc::new(b.finish())
                    }
                }
            };
            fields.push(Field::new(name, array.data_type().clone(), true));
            columns.push(array);
        }
    }
    int(
        "meta/episodes/chunk_index",
        meta_chunk,
        &mut fields,
        &mut columns,
    );
    int(
        "meta/episodes/file_index",
        meta_file,
        &mut fields,
        &mut columns,
    );
    fields.push(Field::new(keys::DREAMYARD_SOURCE, DataType::Utf8, true));
    let source_json = serde_json::to_string(source).unwrap_or_default();
    columns.push(Arc::new(StringArray::from(vec![source_json])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| {
        DatasetError::parquet(
            format!("meta/episodes (episode {episode})"),
            "building the row",
            e,
        )
    })
}

/// `meta/tasks.parquet` as pandas writes LeRobot's tasks DataFrame: a `task_index` column
/// and the `task` index, with the `pandas` metadata that restores the index on read.
fn tasks_parquet(tasks: &[String], file: &Path) -> Result<Vec<u8>, DatasetError> {
    let pandas = json!({
        "index_columns": ["task"],
        "column_indexes": [{"name": null, "field_name": null, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": null},
            {"name": "task", "field_name": "task", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": null}
        ],
        "creator": {"library": "pyarrow", "version": "21.0.0"},
        "pandas_version": "2.2.3"
    })
    .to_string();
    let schema = Schema::new_with_metadata(
        vec![
            Field::new("task_index", DataType::Int64, true),
            Field::new("task", DataType::Utf8, true),
        ],
        [("pandas".to_owned(), pandas.clone())],
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..tasks.len() as i64)),
            Arc::new(StringArray::from_iter_values(tasks)),
        ],
    )
    .map_err(|e| DatasetError::parquet(file, "building the tasks table", e))?;
    let props = base_props()
        .set_key_value_metadata(Some(vec![KeyValue::new("pandas".into(), pandas)]))
        .build();
    parquet_bytes(&batch, props, file)
}

/// What one recorded episode runs: the policy (by name, for the episode's source), the seed
/// of scene and policy, a step limit and the task text.
#[derive(Clone, Debug)]
pub struct EpisodePlan<'a> {
    pub policy_name: &'a str,
    pub seed: u64,
    pub max_steps: usize,
    pub task: &'a str,
}

/// Runs `policy` in `scene` for at most `plan.max_steps` steps (the episode ends on success)
/// and commits it. Row `t` holds observation `t`, the action taken in it, and the reward and
/// success that action produced; the final observation is not stored, as in LeRobot's gym
/// datasets. `on_step` sees the number of steps so far.
pub fn record_scene_episode(
    writer: &mut DatasetWriter,
    scene: &mut dyn Scene,
    policy: &mut dyn Policy,
    plan: &EpisodePlan<'_>,
    mut on_step: impl FnMut(usize),
) -> Result<SavedEpisode, super::RecordError> {
    policy.reset(plan.seed);
    let mut obs: Observation = scene.reset(plan.seed);
    writer.discard_episode();
    for t in 0..plan.max_steps.max(1) {
        let action = policy.act(&obs);
        let next = scene.step(&action)?;
        writer.add_frame(Step {
            frame: &obs.frame,
            state: &obs.state,
            action: &action,
            reward: Some(next.reward),
            success: Some(next.success),
        })?;
        on_step(t + 1);
        obs = next;
        if obs.success {
            break;
        }
    }
    let source = EpisodeSource::Scene {
        scene: scene.spec().name.clone(),
        policy: plan.policy_name.to_owned(),
        seed: plan.seed,
    };
    Ok(writer.save_episode(plan.task, &source)?)
}
