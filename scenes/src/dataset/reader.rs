//! Reading LeRobot v3.0 and v2.1 datasets: episode listing from the metadata alone, frame
//! `i` of episode `e` by reading one page of one file, whole episodes decoded to RGB8 with
//! their state and action arrays, and streaming iteration.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray as _, RecordBatch, RecordBatchReader as _};
use arrow::datatypes::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::file::metadata::PageIndexPolicy;

use super::codec::{self, ImageFormat};
use super::columns::{check_column, flatten_numbers, image_bytes, numeric_rows};
use super::info::{
    CodebaseVersion, Feature, INFO_PATH, Info, LEGACY_EPISODES_PATH, LEGACY_TASKS_PATH, TASKS_PATH,
    TemplateValue, format_template, show,
};
use super::stats::{FeatureStats, QUANTILES, StatsShape};
use super::writer::{DreamyardMeta, EpisodeSource, read_dreamyard};
use super::{DatasetError, keys};
use crate::Frame;

/// One episode as the metadata lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeInfo {
    pub index: u64,
    /// Number of frames.
    pub length: u64,
    pub tasks: Vec<String>,
    /// The parquet file holding its frames, relative to the dataset root.
    pub data_file: PathBuf,
    /// Row of its first frame within `data_file`.
    pub first_row: u64,
    /// Global index (`index` column) of its first frame.
    pub from_index: u64,
    /// Per video feature: its mp4 file relative to the root.
    pub videos: Vec<(String, PathBuf)>,
    /// The file holding its metadata row (v3.0), for its statistics.
    meta_file: Option<PathBuf>,
    pub source: Option<EpisodeSource>,
}

/// A stored camera image, undecoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredImage {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
}

/// A whole episode, decoded. Row `t` of every array belongs to frame `t`.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeData {
    pub index: u64,
    pub frames: Vec<Frame>,
    pub state_dim: usize,
    /// `len x state_dim`, row-major (empty without an `observation.state` feature).
    pub states: Vec<f32>,
    pub action_dim: usize,
    /// `len x action_dim`, row-major (a discrete action is its index as a float).
    pub actions: Vec<f32>,
    pub rewards: Option<Vec<f32>>,
    pub success: Option<Vec<bool>>,
    pub done: Option<Vec<bool>>,
    pub timestamps: Vec<f32>,
}

impl EpisodeData {
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    pub fn state(&self, t: usize) -> &[f32] {
        &self.states[t * self.state_dim..(t + 1) * self.state_dim]
    }

    pub fn action(&self, t: usize) -> &[f32] {
        &self.actions[t * self.action_dim..(t + 1) * self.action_dim]
    }
}

/// One step of an episode as [`Dataset::iter_episode`] yields it.
#[derive(Clone, Debug, PartialEq)]
pub struct StepData {
    pub frame_index: u64,
    pub frame: Frame,
    pub state: Vec<f32>,
    pub action: Vec<f32>,
}

/// What [`Dataset::validate`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validation {
    pub episodes: u64,
    pub frames: u64,
    pub images_decoded: u64,
    /// Video features whose frames could not be checked (decoding is not supported yet).
    pub unchecked_videos: Vec<String>,
}

/// An open LeRobot dataset (v3.0, v2.1 or v2.0).
#[derive(Debug)]
pub struct Dataset {
    root: PathBuf,
    info: Info,
    episodes: Vec<EpisodeInfo>,
    tasks: Vec<String>,
    dreamyard: Option<DreamyardMeta>,
    uncommitted: u64,
    threads: usize,
}

impl Dataset {
    /// Reads the metadata (`info.json`, tasks, episode list); no frame data is read.
    pub fn open(root: &Path) -> Result<Self, DatasetError> {
        if !root.is_dir() {
            return Err(DatasetError::io(
                root,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such dataset folder"),
            ));
        }
        let info = Info::read(root)?;
        let (episodes, tasks, uncommitted) = if info.codebase_version.is_legacy() {
            let (e, t) = read_legacy(root, &info)?;
            (e, t, 0)
        } else {
            read_v3(root, &info)?
        };
        let dreamyard = read_dreamyard(root)?;
        Ok(Self {
            root: root.to_owned(),
            info,
            episodes,
            tasks,
            dreamyard,
            uncommitted,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    pub fn version(&self) -> CodebaseVersion {
        self.info.codebase_version
    }

    pub fn fps(&self) -> f64 {
        self.info.fps
    }

    pub fn episodes(&self) -> &[EpisodeInfo] {
        &self.episodes
    }

    /// Task texts by `task_index`.
    pub fn tasks(&self) -> &[String] {
        &self.tasks
    }

    /// `meta/dreamyard.json`, for datasets Dreamyard recorded.
    pub fn dreamyard(&self) -> Option<&DreamyardMeta> {
        self.dreamyard.as_ref()
    }

    /// Episodes whose files exist but that `info.json` does not count (a writer was killed
    /// while committing them); they are ignored.
    pub fn uncommitted_episodes(&self) -> u64 {
        self.uncommitted
    }

    pub fn num_frames(&self) -> u64 {
        self.info.total_frames
    }

    /// Image and video features, in file order.
    pub fn camera_keys(&self) -> Vec<&str> {
        self.info.camera_keys()
    }

    /// The camera Dreamyard shows: `observation.image` if there is one, else the first
    /// image or video feature.
    pub fn default_camera(&self) -> Option<&str> {
        let cams = self.camera_keys();
        cams.iter()
            .find(|k| **k == keys::IMAGE)
            .or(cams.first())
            .copied()
    }

    pub fn episode_info(&self, episode: u64) -> Result<&EpisodeInfo, DatasetError> {
        self.episodes
            .get(episode as usize)
            .ok_or_else(|| DatasetError::OutOfRange {
                what: "episode",
                index: episode,
                available: format!("the dataset has {} episodes", self.episodes.len()),
            })
    }

    fn camera_feature(&self, camera: &str) -> Result<&Feature, DatasetError> {
        match self.info.features.get(camera) {
            Some(f) if f.is_visual() => Ok(f),
            _ => Err(DatasetError::invalid(
                self.root.join(INFO_PATH),
                format!("features.{camera}"),
                format!(
                    "an image or video feature (cameras: {})",
                    self.camera_keys().join(", ")
                ),
                "no such camera",
            )),
        }
    }

    fn video_error(&self, camera: &str, ep: &EpisodeInfo) -> DatasetError {
        let file = ep
            .videos
            .iter()
            .find(|(k, _)| k == camera)
            .map_or_else(|| PathBuf::from("videos"), |(_, p)| p.clone());
        DatasetError::VideoNotSupported {
            feature: camera.to_owned(),
            file: self.root.join(file),
        }
    }

    /// Opens an episode's data file and checks its columns against `info.json`.
    fn open_data(
        &self,
        ep: &EpisodeInfo,
    ) -> Result<(PathBuf, ParquetRecordBatchReaderBuilder<File>), DatasetError> {
        let path = self.root.join(&ep.data_file);
        let file = File::open(&path).map_err(|e| DatasetError::io(&path, e))?;
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
            .map_err(|e| DatasetError::parquet(&path, "footer and schema", e))?;
        let schema = builder.schema().clone();
        for (key, feature) in self.info.features.iter() {
            if feature.dtype == "video" {
                continue;
            }
            let found = schema.field_with_name(key).ok().map(|f| f.data_type());
            check_column(&path, key, feature, found)?;
        }
        let rows = builder.metadata().file_metadata().num_rows() as u64;
        if ep.first_row + ep.length > rows {
            return Err(DatasetError::invalid(
                &path,
                "number of rows",
                format!(
                    "at least {} (episode {} has {} frames from row {})",
                    ep.first_row + ep.length,
                    ep.index,
                    ep.length,
                    ep.first_row
                ),
                rows.to_string(),
            ));
        }
        Ok((path, builder))
    }

    /// A reader over rows `[first_row + start, first_row + start + count)` of the episode's
    /// file, with only `columns` (those present).
    fn rows(
        &self,
        ep: &EpisodeInfo,
        start: u64,
        count: u64,
        columns: &[&str],
        batch_size: usize,
    ) -> Result<(PathBuf, ParquetRecordBatchReader), DatasetError> {
        let (path, builder) = self.open_data(ep)?;
        let schema = builder.schema().clone();
        let roots: Vec<usize> = columns
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let skip = (ep.first_row + start) as usize;
        let mut selectors = Vec::new();
        if skip > 0 {
            selectors.push(RowSelector::skip(skip));
        }
        selectors.push(RowSelector::select(count as usize));
        let reader = builder
            .with_projection(mask)
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(batch_size)
            .build()
            .map_err(|e| DatasetError::parquet(&path, "selecting rows", e))?;
        Ok((path, reader))
    }

    /// The stored bytes of frame `index` of `episode` from `camera`, exactly as stored.
    pub fn frame_bytes(
        &self,
        camera: &str,
        episode: u64,
        index: u64,
    ) -> Result<StoredImage, DatasetError> {
        let ep = self.episode_info(episode)?;
        let feature = self.camera_feature(camera)?;
        if feature.dtype == "video" {
            return Err(self.video_error(camera, ep));
        }
        if index >= ep.length {
            return Err(DatasetError::OutOfRange {
                what: "frame",
                index,
                available: format!("episode {episode} has {} frames", ep.length),
            });
        }
        let (path, reader) = self.rows(
            ep,
            index,
            1,
            &[camera, keys::EPISODE_INDEX, keys::FRAME_INDEX],
            1,
        )?;
        let batch = read_all(&path, reader)?;
        self.check_rows(&path, ep, index, &batch)?;
        let array = column(&path, &batch, camera)?;
        let bytes = image_bytes(&path, camera, array, 0)?;
        let format = ImageFormat::sniff(bytes).ok_or_else(|| DatasetError::Image {
            file: path.clone(),
            feature: camera.to_owned(),
            episode,
            frame: index,
            expected: "PNG or JPEG bytes".into(),
            found: codec::describe_bytes(bytes),
        })?;
        Ok(StoredImage {
            bytes: bytes.to_vec(),
            format,
        })
    }

    /// Frame `index` of `episode` from `camera`, decoded to RGB8.
    pub fn frame(&self, camera: &str, episode: u64, index: u64) -> Result<Frame, DatasetError> {
        let stored = self.frame_bytes(camera, episode, index)?;
        let path = self.root.join(&self.episode_info(episode)?.data_file);
        self.decode_checked(&path, camera, episode, index, &stored.bytes)
    }

    fn decode_checked(
        &self,
        path: &Path,
        camera: &str,
        episode: u64,
        index: u64,
        bytes: &[u8],
    ) -> Result<Frame, DatasetError> {
        let image_err = |expected: String, found: String| DatasetError::Image {
            file: path.to_owned(),
            feature: camera.to_owned(),
            episode,
            frame: index,
            expected,
            found,
        };
        let frame = codec::decode(bytes).map_err(|e| image_err(e.expected, e.found))?;
        if let Some(f) = self.info.features.get(camera)
            && let [h, w, _] = f.shape.as_slice()
            && (frame.width as usize, frame.height as usize) != (*w, *h)
        {
            return Err(image_err(
                format!("a {w}x{h} image (shape {:?} in meta/info.json)", f.shape),
                format!("{}x{}", frame.width, frame.height),
            ));
        }
        Ok(frame)
    }

    /// Checks that the rows read belong to `ep` from frame `start` on (guards against
    /// metadata that points at the wrong rows).
    fn check_rows(
        &self,
        path: &Path,
        ep: &EpisodeInfo,
        start: u64,
        batch: &RecordBatch,
    ) -> Result<(), DatasetError> {
        for key in [keys::EPISODE_INDEX, keys::FRAME_INDEX] {
            let Ok(array) = column(path, batch, key) else {
                continue;
            };
            let values = numeric_rows(path, key, array, 1)?;
            for (r, v) in values.iter().enumerate() {
                let frame = start + r as u64;
                let expected = if key == keys::EPISODE_INDEX {
                    ep.index
                } else {
                    frame
                };
                if *v != expected as f64 {
                    return Err(DatasetError::invalid(
                        path,
                        format!("column `{key}`, row {}", ep.first_row + frame),
                        format!("{expected} (episode {}, frame {frame})", ep.index),
                        v.to_string(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Loads a whole episode: every frame of the default camera decoded to RGB8 (in
    /// parallel), and the state, action, reward, success, done and timestamp arrays.
    pub fn episode(&self, episode: u64) -> Result<EpisodeData, DatasetError> {
        let ep = self.episode_info(episode)?;
        let camera = self.default_camera().map(str::to_owned);
        if let Some(cam) = &camera
            && self.camera_feature(cam)?.dtype == "video"
        {
            return Err(self.video_error(cam, ep));
        }
        let mut columns = vec![
            keys::STATE,
            keys::ACTION,
            keys::REWARD,
            keys::SUCCESS,
            keys::DONE,
            keys::TIMESTAMP,
            keys::EPISODE_INDEX,
            keys::FRAME_INDEX,
        ];
        if let Some(cam) = &camera {
            columns.push(cam);
        }
        let (path, reader) = self.rows(ep, 0, ep.length, &columns, 1024)?;
        let batch = read_all(&path, reader)?;
        if batch.num_rows() as u64 != ep.length {
            return Err(DatasetError::invalid(
                &path,
                format!("rows of episode {episode}"),
                ep.length.to_string(),
                batch.num_rows().to_string(),
            ));
        }
        self.check_rows(&path, ep, 0, &batch)?;
        let (state_dim, states) = self.vector_column(&path, &batch, keys::STATE)?;
        let (action_dim, actions) = self.vector_column(&path, &batch, keys::ACTION)?;
        let rewards = match column(&path, &batch, keys::REWARD) {
            Ok(a) => Some(to_f32(numeric_rows(&path, keys::REWARD, a, 1)?)),
            Err(_) => None,
        };
        let flag = |key: &str| -> Result<Option<Vec<bool>>, DatasetError> {
            match column(&path, &batch, key) {
                Ok(a) => Ok(Some(
                    numeric_rows(&path, key, a, 1)?
                        .iter()
                        .map(|v| *v != 0.0)
                        .collect(),
                )),
                Err(_) => Ok(None),
            }
        };
        let timestamps = match column(&path, &batch, keys::TIMESTAMP) {
            Ok(a) => to_f32(numeric_rows(&path, keys::TIMESTAMP, a, 1)?),
            Err(_) => (0..ep.length)
                .map(|i| (i as f64 / self.info.fps) as f32)
                .collect(),
        };
        let frames = match &camera {
            Some(cam) => self.decode_column(&path, cam, ep, &batch)?,
            None => Vec::new(),
        };
        Ok(EpisodeData {
            index: episode,
            frames,
            state_dim,
            states,
            action_dim,
            actions,
            rewards,
            success: flag(keys::SUCCESS)?,
            done: flag(keys::DONE)?,
            timestamps,
        })
    }

    /// A numeric vector feature as `(dim, rows x dim values)`; `(0, [])` when absent.
    fn vector_column(
        &self,
        path: &Path,
        batch: &RecordBatch,
        key: &str,
    ) -> Result<(usize, Vec<f32>), DatasetError> {
        let Some(feature) = self.info.features.get(key) else {
            return Ok((0, Vec::new()));
        };
        let dim: usize = feature.shape.iter().product();
        let array = column(path, batch, key)?;
        Ok((dim, to_f32(numeric_rows(path, key, array, dim)?)))
    }

    fn decode_column(
        &self,
        path: &Path,
        camera: &str,
        ep: &EpisodeInfo,
        batch: &RecordBatch,
    ) -> Result<Vec<Frame>, DatasetError> {
        let array = column(path, batch, camera)?;
        let n = batch.num_rows();
        let threads = self.threads.min(n).max(1);
        let per = n.div_ceil(threads).max(1);
        let ranges: Vec<(usize, usize)> =
            (0..n).step_by(per).map(|s| (s, (s + per).min(n))).collect();
        let decode_range = |(s, e): (usize, usize)| -> Result<Vec<Frame>, DatasetError> {
            (s..e)
                .map(|r| {
                    let bytes = image_bytes(path, camera, array, r)?;
                    self.decode_checked(path, camera, ep.index, r as u64, bytes)
                })
                .collect()
        };
        if ranges.len() <= 1 {
            return ranges.into_iter().try_fold(Vec::new(), |mut acc, r| {
                acc.extend(decode_range(r)?);
                Ok(acc)
            });
        }
        let parts: Vec<Result<Vec<Frame>, DatasetError>> = std::thread::scope(|s| {
            let handles: Vec<_> = ranges
                .iter()
                .map(|&r| s.spawn(move || decode_range(r)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(DatasetError::parquet(
                            path,
                            "decoding",
                            "decoder thread panicked",
                        ))
                    })
                })
                .collect()
        });
        let mut frames = Vec::with_capacity(n);
        for p in parts {
            frames.extend(p?);
        }
        Ok(frames)
    }

    /// Streams an episode as (frame, state, action) steps, reading 32 rows at a time and
    /// decoding each frame when it is reached.
    pub fn iter_episode(&self, episode: u64) -> Result<EpisodeIter<'_>, DatasetError> {
        let ep = self.episode_info(episode)?;
        let camera = self
            .default_camera()
            .ok_or_else(|| {
                DatasetError::invalid(
                    self.root.join(INFO_PATH),
                    "features",
                    "an image feature to iterate frames",
                    "no camera",
                )
            })?
            .to_owned();
        if self.camera_feature(&camera)?.dtype == "video" {
            return Err(self.video_error(&camera, ep));
        }
        let (path, reader) =
            self.rows(ep, 0, ep.length, &[&camera, keys::STATE, keys::ACTION], 32)?;
        Ok(EpisodeIter {
            dataset: self,
            episode: ep.index,
            camera,
            path,
            reader,
            batch: None,
            row: 0,
            next_index: 0,
        })
    }

    /// Reads every episode in full: rows, indices, numeric columns and every image.
    pub fn validate(&self) -> Result<Validation, DatasetError> {
        let mut v = Validation::default();
        let mut expected_index = 0;
        for ep in &self.episodes {
            if ep.from_index != expected_index {
                return Err(DatasetError::invalid(
                    self.root.join(&ep.data_file),
                    format!("episode {} dataset_from_index", ep.index),
                    expected_index.to_string(),
                    ep.from_index.to_string(),
                ));
            }
            expected_index += ep.length;
            let cams: Vec<&str> = self.camera_keys();
            let mut columns: Vec<&str> = vec![
                keys::STATE,
                keys::ACTION,
                keys::REWARD,
                keys::SUCCESS,
                keys::DONE,
                keys::TIMESTAMP,
                keys::EPISODE_INDEX,
                keys::FRAME_INDEX,
                keys::INDEX,
            ];
            columns.extend(cams.iter().copied());
            let (path, reader) = self.rows(ep, 0, ep.length, &columns, 1024)?;
            let batch = read_all(&path, reader)?;
            if batch.num_rows() as u64 != ep.length {
                return Err(DatasetError::invalid(
                    &path,
                    format!("rows of episode {}", ep.index),
                    ep.length.to_string(),
                    batch.num_rows().to_string(),
                ));
            }
            self.check_rows(&path, ep, 0, &batch)?;
            if let Ok(a) = column(&path, &batch, keys::INDEX) {
                let idx = numeric_rows(&path, keys::INDEX, a, 1)?;
                for (r, i) in idx.iter().enumerate() {
                    if *i as u64 != ep.from_index + r as u64 {
                        return Err(DatasetError::invalid(
                            &path,
                            format!("column `index`, row {}", ep.first_row + r as u64),
                            (ep.from_index + r as u64).to_string(),
                            i.to_string(),
                        ));
                    }
                }
            }
            for (key, feature) in self.info.features.iter() {
                if feature.is_visual() || feature.dtype == "string" {
                    continue;
                }
                if let Ok(a) = column(&path, &batch, key)
                    && super::columns::value_type(&feature.dtype).is_some()
                    && feature.shape.len() == 1
                {
                    numeric_rows(&path, key, a, feature.shape[0])?;
                }
            }
            for cam in cams {
                let feature = self.camera_feature(cam)?;
                if feature.dtype == "video" {
                    if !v.unchecked_videos.iter().any(|k| k == cam) {
                        v.unchecked_videos.push(cam.to_owned());
                    }
                    continue;
                }
                v.images_decoded += self.decode_column(&path, cam, ep, &batch)?.len() as u64;
            }
            v.episodes += 1;
            v.frames += ep.length;
        }
        if expected_index != self.info.total_frames {
            return Err(DatasetError::invalid(
                self.root.join(INFO_PATH),
                "total_frames",
                format!("{expected_index} (the sum of the episode lengths)"),
                self.info.total_frames.to_string(),
            ));
        }
        Ok(v)
    }

    /// The statistics stored with an episode (v3.0 `stats/...` columns).
    pub fn episode_stats(
        &self,
        episode: u64,
    ) -> Result<BTreeMap<String, FeatureStats>, DatasetError> {
        let ep = self.episode_info(episode)?;
        let Some(meta) = &ep.meta_file else {
            return Ok(BTreeMap::new());
        };
        let path = self.root.join(meta);
        let batch = read_parquet_file(&path, None)?;
        let row = find_episode_row(&path, &batch, episode)?;
        let mut out = BTreeMap::new();
        for (key, feature) in self.info.features.iter() {
            let shape = if feature.is_visual() {
                StatsShape::Image
            } else {
                StatsShape::Vector
            };
            let get = |stat: &str| -> Option<Vec<f64>> {
                let a = batch.column_by_name(&format!("stats/{key}/{stat}"))?;
                flatten_numbers(&a.slice(row, 1))
            };
            let Some(count) = get("count").and_then(|c| c.first().copied()) else {
                continue;
            };
            let mut s = FeatureStats {
                shape,
                min: Vec::new(),
                max: Vec::new(),
                mean: Vec::new(),
                std: Vec::new(),
                count: count as u64,
                quantiles: Default::default(),
            };
            let mut complete = true;
            for stat in ["min", "max", "mean", "std"]
                .into_iter()
                .chain(QUANTILES.iter().map(|(_, k)| *k))
            {
                match (get(stat), s.values_mut(stat)) {
                    (Some(v), Some(slot)) => *slot = v,
                    _ => complete = false,
                }
            }
            if complete {
                out.insert(key.to_owned(), s);
            }
        }
        Ok(out)
    }
}

/// Streaming steps of one episode; see [`Dataset::iter_episode`].
#[derive(Debug)]
pub struct EpisodeIter<'a> {
    dataset: &'a Dataset,
    episode: u64,
    camera: String,
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    batch: Option<RecordBatch>,
    row: usize,
    next_index: u64,
}

impl EpisodeIter<'_> {
    fn step(&mut self) -> Result<Option<StepData>, DatasetError> {
        loop {
            if let Some(batch) = &self.batch
                && self.row < batch.num_rows()
            {
                break;
            }
            match self.reader.next() {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(DatasetError::parquet(&self.path, "reading rows", e));
                }
                Some(Ok(b)) => {
                    self.batch = Some(b);
                    self.row = 0;
                }
            }
        }
        let Some(batch) = &self.batch else {
            return Ok(None);
        };
        let r = self.row;
        let d = self.dataset;
        let path = &self.path;
        let bytes = image_bytes(path, &self.camera, column(path, batch, &self.camera)?, r)?;
        let frame = d.decode_checked(path, &self.camera, self.episode, self.next_index, bytes)?;
        let row = batch.slice(r, 1);
        let (_, state) = d.vector_column(path, &row, keys::STATE)?;
        let (_, action) = d.vector_column(path, &row, keys::ACTION)?;
        let step = StepData {
            frame_index: self.next_index,
            frame,
            state,
            action,
        };
        self.row += 1;
        self.next_index += 1;
        Ok(Some(step))
    }
}

impl Iterator for EpisodeIter<'_> {
    type Item = Result<StepData, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

fn to_f32(v: Vec<f64>) -> Vec<f32> {
    v.into_iter().map(|x| x as f32).collect()
}

fn column<'a>(
    path: &Path,
    batch: &'a RecordBatch,
    key: &str,
) -> Result<&'a ArrayRef, DatasetError> {
    batch.column_by_name(key).ok_or_else(|| {
        DatasetError::invalid(
            path,
            format!("column `{key}`"),
            "a column",
            "no such column",
        )
    })
}

fn read_all(path: &Path, reader: ParquetRecordBatchReader) -> Result<RecordBatch, DatasetError> {
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DatasetError::parquet(path, "reading rows", e))?;
    arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| DatasetError::parquet(path, "joining row batches", e))
}

/// Reads a whole (small) parquet file, optionally only the named top-level columns.
fn read_parquet_file(path: &Path, columns: Option<&[&str]>) -> Result<RecordBatch, DatasetError> {
    let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| DatasetError::parquet(path, "footer and schema", e))?;
    if let Some(cols) = columns {
        let schema = builder.schema().clone();
        let roots: Vec<usize> = cols
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    let reader = builder
        .build()
        .map_err(|e| DatasetError::parquet(path, "reading rows", e))?;
    read_all(path, reader)
}

fn find_episode_row(path: &Path, batch: &RecordBatch, episode: u64) -> Result<usize, DatasetError> {
    let idx = numeric_rows(
        path,
        "episode_index",
        column(path, batch, "episode_index")?,
        1,
    )?;
    idx.iter()
        .position(|v| *v as u64 == episode)
        .ok_or_else(|| {
            DatasetError::invalid(
                path,
                "episode_index",
                format!("a row for episode {episode}"),
                "none",
            )
        })
}

/// Integers of a column (any integer type).
fn int_column(path: &Path, batch: &RecordBatch, key: &str) -> Result<Vec<u64>, DatasetError> {
    let array = column(path, batch, key)?;
    if !matches!(
        array.data_type(),
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    ) {
        return Err(DatasetError::invalid(
            path,
            format!("column `{key}`"),
            "integers",
            array.data_type().to_string(),
        ));
    }
    let values = numeric_rows(path, key, array, 1)?;
    values
        .iter()
        .map(|v| {
            if *v >= 0.0 {
                Ok(*v as u64)
            } else {
                Err(DatasetError::invalid(
                    path,
                    format!("column `{key}`"),
                    "non-negative integers",
                    v.to_string(),
                ))
            }
        })
        .collect()
}

fn string_lists(
    path: &Path,
    batch: &RecordBatch,
    key: &str,
) -> Result<Vec<Vec<String>>, DatasetError> {
    let array = column(path, batch, key)?;
    let bad = || {
        DatasetError::invalid(
            path,
            format!("column `{key}`"),
            "lists of strings",
            array.data_type().to_string(),
        )
    };
    let mut out = Vec::with_capacity(array.len());
    for r in 0..array.len() {
        let item = match array.data_type() {
            DataType::List(_) => array.as_list::<i32>().value(r),
            DataType::LargeList(_) => array.as_list::<i64>().value(r),
            _ => return Err(bad()),
        };
        let strings = match item.data_type() {
            DataType::Utf8 => item
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or_default().to_owned())
                .collect(),
            DataType::LargeUtf8 => item
                .as_string::<i64>()
                .iter()
                .map(|s| s.unwrap_or_default().to_owned())
                .collect(),
            _ => return Err(bad()),
        };
        out.push(strings);
    }
    Ok(out)
}

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut out = Vec::new();
    let Ok(chunks) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for chunk in chunks {
        let chunk = chunk.map_err(|e| DatasetError::io(dir, e))?.path();
        if !chunk.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&chunk).map_err(|e| DatasetError::io(&chunk, e))? {
            let f = f.map_err(|e| DatasetError::io(&chunk, e))?.path();
            if f.extension().is_some_and(|x| x == "parquet") {
                out.push(f);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_tasks_parquet(root: &Path) -> Result<Vec<String>, DatasetError> {
    let path = root.join(TASKS_PATH);
    let batch = read_parquet_file(&path, None)?;
    let indices = int_column(&path, &batch, "task_index")?;
    // pandas stores the `task` index as a column named `task` (or `__index_level_0__` when
    // the index has no name).
    let text = ["task", "__index_level_0__"]
        .iter()
        .find_map(|k| batch.column_by_name(k))
        .or_else(|| {
            batch
                .columns()
                .iter()
                .find(|c| matches!(c.data_type(), DataType::Utf8 | DataType::LargeUtf8))
        })
        .ok_or_else(|| DatasetError::invalid(&path, "task", "a column of task strings", "none"))?;
    let strings: Vec<String> = match text.data_type() {
        DataType::Utf8 => text
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap_or_default().to_owned())
            .collect(),
        DataType::LargeUtf8 => text
            .as_string::<i64>()
            .iter()
            .map(|s| s.unwrap_or_default().to_owned())
            .collect(),
        other => {
            return Err(DatasetError::invalid(
                &path,
                "task",
                "strings",
                other.to_string(),
            ));
        }
    };
    tasks_by_index(&path, indices.into_iter().zip(strings))
}

fn tasks_by_index(
    path: &Path,
    pairs: impl Iterator<Item = (u64, String)>,
) -> Result<Vec<String>, DatasetError> {
    let mut pairs: Vec<(u64, String)> = pairs.collect();
    pairs.sort_by_key(|(i, _)| *i);
    for (expected, (i, _)) in pairs.iter().enumerate() {
        if *i != expected as u64 {
            return Err(DatasetError::invalid(
                path,
                "task_index",
                format!("indices 0..{} each once", pairs.len()),
                format!("index {i} at position {expected}"),
            ));
        }
    }
    Ok(pairs.into_iter().map(|(_, t)| t).collect())
}

type Listing = (Vec<EpisodeInfo>, Vec<String>, u64);

fn read_v3(root: &Path, info: &Info) -> Result<Listing, DatasetError> {
    let info_file = root.join(INFO_PATH);
    let tasks = if info.total_tasks > 0 || root.join(TASKS_PATH).exists() {
        read_tasks_parquet(root)?
    } else {
        Vec::new()
    };
    let video_keys: Vec<&str> = info
        .features
        .iter()
        .filter(|(_, f)| f.dtype == "video")
        .map(|(k, _)| k)
        .collect();
    let mut wanted: Vec<String> = [
        "episode_index",
        "tasks",
        "length",
        "data/chunk_index",
        "data/file_index",
        "dataset_from_index",
        "dataset_to_index",
        keys::DREAMYARD_SOURCE,
    ]
    .map(str::to_owned)
    .to_vec();
    for k in &video_keys {
        wanted.push(format!("videos/{k}/chunk_index"));
        wanted.push(format!("videos/{k}/file_index"));
    }
    let wanted_refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let mut episodes = Vec::new();
    let mut uncommitted = 0;
    for path in parquet_files(&root.join("meta/episodes"))? {
        let batch = read_parquet_file(&path, Some(&wanted_refs))?;
        let idx = int_column(&path, &batch, "episode_index")?;
        let lengths = int_column(&path, &batch, "length")?;
        let task_lists = string_lists(&path, &batch, "tasks")?;
        let chunk = int_column(&path, &batch, "data/chunk_index")?;
        let file = int_column(&path, &batch, "data/file_index")?;
        let from = int_column(&path, &batch, "dataset_from_index")?;
        let to = int_column(&path, &batch, "dataset_to_index")?;
        let sources = batch
            .column_by_name(keys::DREAMYARD_SOURCE)
            .and_then(|c| c.as_string_opt::<i32>().cloned());
        let mut videos = Vec::new();
        for k in &video_keys {
            let c = int_column(&path, &batch, &format!("videos/{k}/chunk_index"))?;
            let f = int_column(&path, &batch, &format!("videos/{k}/file_index"))?;
            videos.push((*k, c, f));
        }
        let rel_meta = path.strip_prefix(root).unwrap_or(&path).to_owned();
        for r in 0..batch.num_rows() {
            if idx[r] >= info.total_episodes {
                uncommitted += 1;
                continue;
            }
            if to[r] < from[r] || to[r] - from[r] != lengths[r] {
                return Err(DatasetError::invalid(
                    &path,
                    format!("episode {} dataset_to_index", idx[r]),
                    format!("dataset_from_index + length = {}", from[r] + lengths[r]),
                    to[r].to_string(),
                ));
            }
            let vals = [
                ("chunk_index", TemplateValue::Int(chunk[r])),
                ("file_index", TemplateValue::Int(file[r])),
            ];
            let data_file = format_template(&info.data_path, &vals, &info_file, "data_path")?;
            let mut ep_videos = Vec::new();
            for (k, c, f) in &videos {
                let template = info.video_path.as_deref().unwrap_or_default();
                let vals = [
                    ("video_key", TemplateValue::Str(k)),
                    ("chunk_index", TemplateValue::Int(c[r])),
                    ("file_index", TemplateValue::Int(f[r])),
                ];
                ep_videos.push((
                    (*k).to_owned(),
                    format_template(template, &vals, &info_file, "video_path")?,
                ));
            }
            let source = sources
                .as_ref()
                .filter(|s| !s.is_null(r))
                .and_then(|s| serde_json::from_str(s.value(r)).ok());
            episodes.push(EpisodeInfo {
                index: idx[r],
                length: lengths[r],
                tasks: task_lists[r].clone(),
                data_file,
                first_row: 0,
                from_index: from[r],
                videos: ep_videos,
                meta_file: Some(rel_meta.clone()),
                source,
            });
        }
    }
    episodes.sort_by_key(|e| e.index);
    check_episode_list(&root.join("meta/episodes"), info, &episodes)?;
    // A data file may hold several episodes (LeRobot's own writer): an episode's first row
    // is its offset from the first episode of its file.
    let mut file_start: BTreeMap<&Path, u64> = BTreeMap::new();
    for e in &episodes {
        let s = file_start.entry(&e.data_file).or_insert(e.from_index);
        *s = (*s).min(e.from_index);
    }
    let starts: Vec<u64> = episodes
        .iter()
        .map(|e| {
            file_start
                .get(e.data_file.as_path())
                .copied()
                .unwrap_or(e.from_index)
        })
        .collect();
    for (e, s) in episodes.iter_mut().zip(starts) {
        e.first_row = e.from_index - s;
    }
    Ok((episodes, tasks, uncommitted))
}

/// Episodes `0..total_episodes`, each once, lengths adding up to `total_frames`.
fn check_episode_list(
    file: &Path,
    info: &Info,
    episodes: &[EpisodeInfo],
) -> Result<(), DatasetError> {
    for (i, e) in episodes.iter().enumerate() {
        if e.index != i as u64 {
            return Err(DatasetError::invalid(
                file,
                "episode_index",
                format!("episodes 0..{} each once", info.total_episodes),
                format!("episode {} where {} should be", e.index, i),
            ));
        }
    }
    if episodes.len() as u64 != info.total_episodes {
        return Err(DatasetError::invalid(
            file,
            "episodes",
            format!(
                "{} episodes (meta/info.json total_episodes)",
                info.total_episodes
            ),
            format!("{} episodes", episodes.len()),
        ));
    }
    let frames: u64 = episodes.iter().map(|e| e.length).sum();
    if frames != info.total_frames {
        return Err(DatasetError::invalid(
            file,
            "length",
            format!(
                "lengths adding up to {} (meta/info.json total_frames)",
                info.total_frames
            ),
            frames.to_string(),
        ));
    }
    Ok(())
}

fn jsonl(path: &Path) -> Result<Vec<(usize, serde_json::Value)>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(line).map_err(|e| DatasetError::Json {
            file: path.to_owned(),
            message: format!("line {}: {e}", n + 1),
        })?;
        out.push((n + 1, v));
    }
    Ok(out)
}

fn read_legacy(root: &Path, info: &Info) -> Result<(Vec<EpisodeInfo>, Vec<String>), DatasetError> {
    let info_file = root.join(INFO_PATH);
    let tasks_path = root.join(LEGACY_TASKS_PATH);
    let mut pairs = Vec::new();
    for (line, v) in jsonl(&tasks_path)? {
        let (Some(i), Some(t)) = (v["task_index"].as_u64(), v["task"].as_str()) else {
            return Err(DatasetError::invalid(
                &tasks_path,
                format!("line {line}"),
                "{\"task_index\": int, \"task\": string}",
                show(&v),
            ));
        };
        pairs.push((i, t.to_owned()));
    }
    let tasks = tasks_by_index(&tasks_path, pairs.into_iter())?;
    let ep_path = root.join(LEGACY_EPISODES_PATH);
    let video_keys: Vec<&str> = info
        .features
        .iter()
        .filter(|(_, f)| f.dtype == "video")
        .map(|(k, _)| k)
        .collect();
    let mut episodes = Vec::new();
    for (line, v) in jsonl(&ep_path)? {
        let bad = |field: &str, expected: &str| {
            DatasetError::invalid(
                &ep_path,
                format!("line {line}: {field}"),
                expected,
                show(&v[field]),
            )
        };
        let index = v["episode_index"]
            .as_u64()
            .ok_or_else(|| bad("episode_index", "a non-negative integer"))?;
        let length = v["length"]
            .as_u64()
            .ok_or_else(|| bad("length", "a non-negative integer"))?;
        let ep_tasks = v["tasks"]
            .as_array()
            .and_then(|a| a.iter().map(|t| t.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| bad("tasks", "a list of strings"))?;
        let chunk = index / info.chunks_size;
        let data_file = format_template(
            &info.data_path,
            &[
                ("episode_chunk", TemplateValue::Int(chunk)),
                ("episode_index", TemplateValue::Int(index)),
            ],
            &info_file,
            "data_path",
        )?;
        let mut videos = Vec::new();
        for k in &video_keys {
            let template = info.video_path.as_deref().unwrap_or_default();
            videos.push((
                (*k).to_owned(),
                format_template(
                    template,
                    &[
                        ("episode_chunk", TemplateValue::Int(chunk)),
                        ("video_key", TemplateValue::Str(k)),
                        ("episode_index", TemplateValue::Int(index)),
                    ],
                    &info_file,
                    "video_path",
                )?,
            ));
        }
        episodes.push(EpisodeInfo {
            index,
            length,
            tasks: ep_tasks,
            data_file,
            first_row: 0,
            from_index: 0,
            videos,
            meta_file: None,
            source: None,
        });
    }
    episodes.sort_by_key(|e| e.index);
    check_episode_list(&ep_path, info, &episodes)?;
    let mut from = 0;
    for e in &mut episodes {
        e.from_index = from;
        from += e.length;
    }
    Ok((episodes, tasks))
}

impl EpisodeInfo {
    /// The mp4 file a video feature's frames of this episode are in.
    pub fn video_file(&self, camera: &str) -> Option<&Path> {
        self.videos
            .iter()
            .find(|(k, _)| k == camera)
            .map(|(_, p)| p.as_path())
    }
}
