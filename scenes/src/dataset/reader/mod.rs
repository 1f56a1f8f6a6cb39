//! Reading LeRobot v3.0 and v2.1 datasets: episode listing from the metadata alone, frame
//! `i` of episode `e` by reading one page of one file, whole episodes decoded to RGB8 with
//! their state and action arrays, and streaming iteration. The listing of each codebase
//! version has its own module (`v3`, `v21`); `table` reads parquet tables and columns.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, RecordBatch};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::file::metadata::PageIndexPolicy;

use super::codec::{self, ImageFormat};
use super::columns::{check_column, flatten_numbers, image_bytes, numeric_rows};
use super::info::{CodebaseVersion, Feature, INFO_PATH, Info};
use super::meta::{DreamyardMeta, EpisodeSource, read_dreamyard};
use super::stats::{FeatureStats, QUANTILES, StatsShape};
use super::video::{TOLERANCE_S, VideoError, VideoFile};
use super::{DatasetError, keys};
use crate::Frame;

mod table;
mod v21;
mod v3;

use table::{column, find_episode_row, float_column, read_all, read_parquet_file};
use v3::read_v3;
use v21::read_legacy;

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
    /// Per video feature: where its frames are.
    pub videos: Vec<EpisodeVideo>,
    /// The file holding its metadata row (v3.0), for its statistics.
    meta_file: Option<PathBuf>,
    pub source: Option<EpisodeSource>,
}

impl EpisodeInfo {
    /// The file holding its metadata row (v3.0), relative to the dataset root.
    pub(crate) fn meta_file(&self) -> Option<&Path> {
        self.meta_file.as_deref()
    }
}

/// Where one video feature's frames of one episode are.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeVideo {
    pub key: String,
    /// The MP4 file, relative to the dataset root.
    pub file: PathBuf,
    /// Time in the file of the episode's first frame (v3.0 `videos/<key>/from_timestamp`;
    /// 0 in v2.1, one file per episode): frame `t` is the one at `from_timestamp +
    /// timestamp[t]`.
    pub from_timestamp: f64,
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
    /// `len x state_dim`, row-major (empty without an `observation.state` feature): the
    /// robot's own state.
    pub states: Vec<f32>,
    pub scene_state_dim: usize,
    /// `len x scene_state_dim`: the full state of the scene that recorded the episode, what
    /// `reset_to` takes. From `scene.state`; in datasets Dreamyard wrote without a state
    /// layout (before it existed, or with no scene) the whole state is `observation.state`.
    /// Empty when the dataset has no such state (datasets of other tools).
    pub scene_states: Vec<f32>,
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

    /// The scene's full state at frame `t` (empty when the dataset has none).
    pub fn scene_state(&self, t: usize) -> &[f32] {
        &self.scene_states[t * self.scene_state_dim..(t + 1) * self.scene_state_dim]
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
    /// Frames decoded from video files (every frame of every episode of every video
    /// feature).
    pub video_frames_decoded: u64,
    /// Video files opened, by codec (`av1`, `h264`, ...).
    pub video_codecs: BTreeMap<String, u64>,
    /// Problems found in video files: each names the file, the feature, the episode and,
    /// where there is one, the timestamp. Validation goes on past them to report them all.
    pub problems: Vec<String>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Open video files, most recently used last.
#[derive(Default)]
struct VideoCache {
    files: Vec<VideoFile>,
    /// Per episode, the `timestamp` of every frame (checked against `episode_index` and
    /// `frame_index` when read), so a random video frame reads no parquet.
    timestamps: std::collections::HashMap<u64, Arc<Vec<f64>>>,
}

impl std::fmt::Debug for VideoCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VideoCache({} open)", self.files.len())
    }
}

/// How much decoder memory a dataset's open video files may hold. Opening a file (demuxer,
/// decoder) costs more than decoding a small frame, and Dreamyard writes one file per episode,
/// so random access over many episodes wants many open: as many as fit, at about ten frames
/// of memory each (reference frames and the frame being decoded), from 4 to 64.
const OPEN_VIDEO_BYTES: usize = 256 << 20;

/// How many files like `file` stay open.
fn open_videos(file: &VideoFile) -> usize {
    (OPEN_VIDEO_BYTES / (10 * file.frame_bytes()).max(1)).clamp(4, 64)
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
    videos: Mutex<VideoCache>,
}

impl Dataset {
    /// Reads the metadata (`info.json`, tasks, episode list); no frame data is read.
    fn open_unguarded(root: &Path) -> Result<Self, DatasetError> {
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
            videos: Mutex::default(),
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

    fn episode_video<'e>(
        &self,
        camera: &str,
        ep: &'e EpisodeInfo,
    ) -> Result<&'e EpisodeVideo, DatasetError> {
        ep.videos.iter().find(|v| v.key == camera).ok_or_else(|| {
            DatasetError::invalid(
                self.root.join(INFO_PATH),
                format!("features.{camera}"),
                format!("a video file for episode {}", ep.index),
                "none listed",
            )
        })
    }

    /// Frames of `camera` (a video feature) of `ep` at episode timestamps `timestamps`
    /// (seconds, ascending), decoded to RGB8 and checked against the feature's shape.
    fn video_frames(
        &self,
        camera: &str,
        ep: &EpisodeInfo,
        timestamps: &[f64],
    ) -> Result<Vec<Frame>, DatasetError> {
        Ok(self.video_frames_and_codec(camera, ep, timestamps)?.0)
    }

    /// [`Self::video_frames`], with the name of the file's codec and where the file says
    /// its video stream ends (seconds, episode time).
    fn video_frames_and_codec(
        &self,
        camera: &str,
        ep: &EpisodeInfo,
        timestamps: &[f64],
    ) -> Result<(Vec<Frame>, String, Option<f64>), DatasetError> {
        let video = self.episode_video(camera, ep)?;
        let path = self.root.join(&video.file);
        let err = |e: VideoError| DatasetError::Video {
            file: path.clone(),
            feature: camera.to_owned(),
            episode: ep.index,
            timestamp: e.timestamp.map(|t| t - video.from_timestamp),
            message: e.message,
        };
        let in_file: Vec<f64> = timestamps
            .iter()
            .map(|t| video.from_timestamp + t)
            .collect();
        let mut file = self.take_video(&path).map_err(err)?;
        let codec = file.codec().to_owned();
        let end = file.declared_end().map(|t| t - video.from_timestamp);
        let frames = file.frames_at(&in_file, TOLERANCE_S);
        self.return_video(file);
        let frames = frames.map_err(err)?;
        if let Some((w, h)) = self.info.features.get(camera).and_then(frame_size)
            && let Some((t, f)) = timestamps
                .iter()
                .zip(&frames)
                .find(|(_, f)| (f.width as usize, f.height as usize) != (w, h))
        {
            return Err(DatasetError::Video {
                file: path.clone(),
                feature: camera.to_owned(),
                episode: ep.index,
                timestamp: Some(*t),
                message: format!(
                    "expected {w}x{h} frames (the feature's shape in meta/info.json), \
                     found {}x{}",
                    f.width, f.height
                ),
            });
        }
        Ok((frames, codec, end))
    }

    /// The open [`VideoFile`] for `path` (taken out of the cache), or a newly opened one.
    fn take_video(&self, path: &Path) -> Result<VideoFile, VideoError> {
        if let Ok(mut cache) = self.videos.lock()
            && let Some(i) = cache.files.iter().position(|f| f.path() == path)
        {
            return Ok(cache.files.remove(i));
        }
        VideoFile::open(path)
    }

    /// Every frame's `timestamp` of `ep`, read once.
    fn episode_timestamps(&self, ep: &EpisodeInfo) -> Result<Arc<Vec<f64>>, DatasetError> {
        if let Ok(cache) = self.videos.lock()
            && let Some(t) = cache.timestamps.get(&ep.index)
        {
            return Ok(t.clone());
        }
        let (path, reader) = self.rows(
            ep,
            0,
            ep.length,
            &[keys::TIMESTAMP, keys::EPISODE_INDEX, keys::FRAME_INDEX],
            4096,
        )?;
        let batch = read_all(&path, reader)?;
        self.check_rows(&path, ep, 0, &batch)?;
        let t = Arc::new(self.timestamps_of(&path, &batch, 0)?);
        if t.len() as u64 != ep.length {
            return Err(DatasetError::invalid(
                &path,
                format!("rows of episode {}", ep.index),
                ep.length.to_string(),
                t.len().to_string(),
            ));
        }
        if let Ok(mut cache) = self.videos.lock() {
            cache.timestamps.insert(ep.index, t.clone());
        }
        Ok(t)
    }

    fn return_video(&self, file: VideoFile) {
        if let Ok(mut cache) = self.videos.lock() {
            let keep = open_videos(&file);
            cache.files.push(file);
            while cache.files.len() > keep {
                cache.files.remove(0);
            }
        }
    }

    /// The `timestamp` column of rows `[start, start + n)` of an episode (LeRobot picks
    /// video frames by it), or `index / fps` where there is no such column.
    fn timestamps_of(
        &self,
        path: &Path,
        batch: &RecordBatch,
        start: u64,
    ) -> Result<Vec<f64>, DatasetError> {
        if batch.column_by_name(keys::TIMESTAMP).is_some() {
            float_column(path, batch, keys::TIMESTAMP)
        } else {
            Ok((0..batch.num_rows() as u64)
                .map(|i| (start + i) as f64 / self.info.fps)
                .collect())
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
    fn frame_bytes_unguarded(
        &self,
        camera: &str,
        episode: u64,
        index: u64,
    ) -> Result<StoredImage, DatasetError> {
        let ep = self.episode_info(episode)?;
        let feature = self.camera_feature(camera)?;
        if feature.dtype == "video" {
            return Err(DatasetError::invalid(
                self.root.join(INFO_PATH),
                format!("features.{camera}"),
                "an image feature (frames stored one by one)",
                format!(
                    "a video feature (episode {episode} is in {}); decode its frames with \
                     `frame`",
                    self.episode_video(camera, ep)?.file.display()
                ),
            ));
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
    fn frame_unguarded(
        &self,
        camera: &str,
        episode: u64,
        index: u64,
    ) -> Result<Frame, DatasetError> {
        if self.camera_feature(camera)?.dtype == "video" {
            let ep = self.episode_info(episode)?;
            if index >= ep.length {
                return Err(DatasetError::OutOfRange {
                    what: "frame",
                    index,
                    available: format!("episode {episode} has {} frames", ep.length),
                });
            }
            let all = self.episode_timestamps(ep)?;
            let t = all[index as usize];
            return self.video_frames(camera, ep, &[t])?.pop().ok_or_else(|| {
                DatasetError::parquet(self.root.join(&ep.data_file), "reading rows", "no row")
            });
        }
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
            && let Some((w, h)) = frame_size(f)
            && (frame.width as usize, frame.height as usize) != (w, h)
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
    fn episode_unguarded(&self, episode: u64) -> Result<EpisodeData, DatasetError> {
        let ep = self.episode_info(episode)?;
        let camera = self.default_camera().map(str::to_owned);
        let video = match &camera {
            Some(cam) => self.camera_feature(cam)?.dtype == "video",
            None => false,
        };
        let mut columns = vec![
            keys::STATE,
            keys::SCENE_STATE,
            keys::ACTION,
            keys::REWARD,
            keys::SUCCESS,
            keys::DONE,
            keys::TIMESTAMP,
            keys::EPISODE_INDEX,
            keys::FRAME_INDEX,
        ];
        if let Some(cam) = &camera
            && !video
        {
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
        let (scene_state_dim, scene_states) =
            match self.vector_column(&path, &batch, keys::SCENE_STATE)? {
                (0, _)
                    if self
                        .dreamyard
                        .as_ref()
                        .is_some_and(|m| m.spec.layout.is_none()) =>
                {
                    (state_dim, states.clone())
                }
                found => found,
            };
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
            Some(cam) if video => {
                let t = self.timestamps_of(&path, &batch, 0)?;
                self.video_frames(cam, ep, &t)?
            }
            Some(cam) => self.decode_column(&path, cam, ep, &batch)?,
            None => Vec::new(),
        };
        Ok(EpisodeData {
            index: episode,
            frames,
            state_dim,
            states,
            scene_state_dim,
            scene_states,
            action_dim,
            actions,
            rewards,
            success: flag(keys::SUCCESS)?,
            done: flag(keys::DONE)?,
            timestamps,
        })
    }

    /// A numeric feature of one episode (a vector, a scalar or a flag as 0/1) as `(dim, len x
    /// dim values)`, row-major; an error naming the feature when the dataset has none.
    fn values_unguarded(&self, episode: u64, key: &str) -> Result<(usize, Vec<f32>), DatasetError> {
        let ep = self.episode_info(episode)?;
        if self.info.features.get(key).is_none_or(Feature::is_visual) {
            return Err(DatasetError::invalid(
                self.root.join(INFO_PATH),
                format!("features.{key}"),
                "a numeric feature",
                "no such feature",
            ));
        }
        let (path, reader) = self.rows(ep, 0, ep.length, &[key], 1024)?;
        let batch = read_all(&path, reader)?;
        self.vector_column(&path, &batch, key)
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
        let video = self.camera_feature(&camera)?.dtype == "video";
        let columns = if video {
            [keys::TIMESTAMP, keys::STATE, keys::ACTION]
        } else {
            [camera.as_str(), keys::STATE, keys::ACTION]
        };
        let (path, reader) = self.rows(ep, 0, ep.length, &columns, 32)?;
        Ok(EpisodeIter {
            dataset: self,
            episode: ep.index,
            camera,
            video,
            video_frames: std::collections::VecDeque::new(),
            path,
            reader,
            batch: None,
            row: 0,
            next_index: 0,
        })
    }

    /// Reads every episode in full: rows, indices, numeric columns and every image.
    fn validate_unguarded(&self) -> Result<Validation, DatasetError> {
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
            columns.extend(cams.iter().copied().filter(|c| {
                self.info
                    .features
                    .get(c)
                    .is_some_and(|f| f.dtype != "video")
            }));
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
                    let t = self.timestamps_of(&path, &batch, 0)?;
                    match self.video_frames_and_codec(cam, ep, &t) {
                        Ok((frames, codec, end)) => {
                            v.video_frames_decoded += frames.len() as u64;
                            *v.video_codecs.entry(codec).or_default() += 1;
                            // FFmpeg 5 decodes frames past the stream's declared end;
                            // newer ones (PyAV's, so LeRobot's) drop them.
                            if let (Some(end), Some(&last)) = (end, t.last())
                                && end <= last + TOLERANCE_S
                            {
                                let video = self.episode_video(cam, ep)?;
                                v.problems.push(
                                    DatasetError::Video {
                                        file: self.root.join(&video.file),
                                        feature: cam.to_owned(),
                                        episode: ep.index,
                                        timestamp: Some(last),
                                        message: format!(
                                            "the video stream is declared to end at {end:.4} s \
                                             (episode time), not after this frame: decoders \
                                             that honour the MP4's edit list (PyAV, so \
                                             LeRobot's) do not return it"
                                        ),
                                    }
                                    .to_string(),
                                );
                            }
                        }
                        Err(e) => v.problems.push(e.to_string()),
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
    fn episode_stats_unguarded(
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
        Ok(self.stats_of_row(&batch, row))
    }

    /// Every episode's stored statistics, in episode order, reading each metadata file once
    /// (many episodes share one).
    fn all_episode_stats_unguarded(
        &self,
    ) -> Result<Vec<BTreeMap<String, FeatureStats>>, DatasetError> {
        let mut out = vec![BTreeMap::new(); self.episodes.len()];
        let mut files: BTreeMap<&Path, Vec<usize>> = BTreeMap::new();
        for (i, ep) in self.episodes.iter().enumerate() {
            if let Some(meta) = &ep.meta_file {
                files.entry(meta.as_path()).or_default().push(i);
            }
        }
        for (meta, eps) in files {
            let path = self.root.join(meta);
            let batch = read_parquet_file(&path, None)?;
            for i in eps {
                let row = find_episode_row(&path, &batch, self.episodes[i].index)?;
                out[i] = self.stats_of_row(&batch, row);
            }
        }
        Ok(out)
    }

    /// The `stats/<feature>/<stat>` columns of one row of an episode-metadata file.
    fn stats_of_row(&self, batch: &RecordBatch, row: usize) -> BTreeMap<String, FeatureStats> {
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
        out
    }
}

/// Streaming steps of one episode; see [`Dataset::iter_episode`].
#[derive(Debug)]
pub struct EpisodeIter<'a> {
    dataset: &'a Dataset,
    episode: u64,
    camera: String,
    /// The camera is a video feature: each batch's frames are decoded when it is read.
    video: bool,
    video_frames: std::collections::VecDeque<Frame>,
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    batch: Option<RecordBatch>,
    row: usize,
    next_index: u64,
}

/// The entry points, each turning a panic of the parquet / arrow reader on corrupt data into
/// an error (found by fuzzing: a corrupt footer panicked in parquet's metadata decoder).
impl Dataset {
    /// Opens a dataset from its metadata alone.
    pub fn open(root: &Path) -> Result<Self, DatasetError> {
        guarded(root, || Self::open_unguarded(root))
    }

    /// The stored bytes of frame `index` of `episode` from `camera`, exactly as stored.
    pub fn frame_bytes(
        &self,
        camera: &str,
        episode: u64,
        index: u64,
    ) -> Result<StoredImage, DatasetError> {
        guarded(&self.root, || {
            self.frame_bytes_unguarded(camera, episode, index)
        })
    }

    /// Frame `index` of `episode` from `camera`, decoded to RGB8.
    pub fn frame(&self, camera: &str, episode: u64, index: u64) -> Result<Frame, DatasetError> {
        guarded(&self.root, || self.frame_unguarded(camera, episode, index))
    }

    /// A whole episode: frames decoded, states and actions.
    pub fn episode(&self, episode: u64) -> Result<EpisodeData, DatasetError> {
        guarded(&self.root, || self.episode_unguarded(episode))
    }

    /// A numeric feature of an episode: its width and the values row by row.
    pub fn values(&self, episode: u64, key: &str) -> Result<(usize, Vec<f32>), DatasetError> {
        guarded(&self.root, || self.values_unguarded(episode, key))
    }

    /// Reads and checks every row and frame.
    pub fn validate(&self) -> Result<Validation, DatasetError> {
        guarded(&self.root, || self.validate_unguarded())
    }

    /// An episode's statistics as its metadata row stores them.
    pub fn episode_stats(
        &self,
        episode: u64,
    ) -> Result<BTreeMap<String, FeatureStats>, DatasetError> {
        guarded(&self.root, || self.episode_stats_unguarded(episode))
    }

    /// Every episode's statistics (each metadata file read once).
    pub fn all_episode_stats(&self) -> Result<Vec<BTreeMap<String, FeatureStats>>, DatasetError> {
        guarded(&self.root, || self.all_episode_stats_unguarded())
    }
}

impl EpisodeIter<'_> {
    fn step(&mut self) -> Result<Option<StepData>, DatasetError> {
        let root = self.dataset.root.clone();
        guarded(&root, || self.step_unguarded())
    }

    fn step_unguarded(&mut self) -> Result<Option<StepData>, DatasetError> {
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
                    if self.video {
                        let d = self.dataset;
                        let ep = d.episode_info(self.episode)?;
                        let t = d.timestamps_of(&self.path, &b, self.next_index)?;
                        self.video_frames = d.video_frames(&self.camera, ep, &t)?.into();
                    }
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
        let frame = if self.video {
            self.video_frames.pop_front().ok_or_else(|| {
                DatasetError::parquet(path, "reading rows", "fewer frames decoded than rows")
            })?
        } else {
            let bytes = image_bytes(path, &self.camera, column(path, batch, &self.camera)?, r)?;
            d.decode_checked(path, &self.camera, self.episode, self.next_index, bytes)?
        };
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

impl EpisodeInfo {
    /// The mp4 file a video feature's frames of this episode are in.
    pub fn video_file(&self, camera: &str) -> Option<&Path> {
        self.videos
            .iter()
            .find(|v| v.key == camera)
            .map(|v| v.file.as_path())
    }
}

/// A camera feature's frame size `(width, height)` from its shape: `[h, w, c]`, or `[c, h,
/// w]` where the names say the channels come first (older datasets).
fn frame_size(feature: &Feature) -> Option<(usize, usize)> {
    let channels_first = feature
        .name_list()
        .and_then(|n| n.first().map(|f| f.starts_with("channel")))
        .unwrap_or(false);
    match (feature.shape.as_slice(), channels_first) {
        ([_, h, w], true) | ([h, w, _], false) => Some((*w, *h)),
        _ => None,
    }
}

/// Runs `f`, a read of the dataset in `root`; a panic inside it (the parquet and arrow readers
/// panic on some corrupt files instead of returning an error) becomes a
/// [`DatasetError::Parquet`] naming the dataset.
fn guarded<T>(root: &Path, f: impl FnOnce() -> Result<T, DatasetError>) -> Result<T, DatasetError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "no message".to_owned());
        Err(DatasetError::Parquet {
            file: root.to_owned(),
            what: "a corrupt file made the reader fail".into(),
            message,
        })
    })
}
