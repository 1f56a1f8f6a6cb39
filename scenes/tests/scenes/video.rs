//! Video features: LeRobot-written MP4 datasets (`tests/fixtures/lerobot-video`, made by
//! `scripts/lerobot_video_fixture.py`: v3.0 by lerobot 0.6 in AV1, H.264 and HEVC, v2.1 by
//! lerobot 0.3 in AV1) read with the pixels LeRobot's own decoder returns, through every
//! reader entry point, and bad video input reported as named errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, RecordBatch};
use dreamyard_scenes::Frame;
use dreamyard_scenes::dataset::{Dataset, DatasetError, decode_image};

const CAMERA: &str = "observation.image";
/// Fixture folders: three v3.0 datasets (one per codec, episodes sharing one MP4) and a v2.1
/// one (an MP4 per episode).
const DATASETS: [&str; 4] = ["av1", "h264", "hevc", "v21-av1"];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lerobot-video")
}

/// The frames LeRobot decoded for episode `e` (stored as one vertical strip).
fn lerobot_frames(codec: &str, e: u64) -> Vec<Frame> {
    let path = fixture().join(format!("{codec}-decoded/episode-{e}.png"));
    let strip = decode_image(&std::fs::read(&path).unwrap()).unwrap();
    let (w, h) = (strip.width, strip.width);
    let row = (w * 3) as usize;
    (0..strip.height / h)
        .map(|i| Frame {
            width: w,
            height: h,
            data: strip.data[(i * h) as usize * row..((i + 1) * h) as usize * row].to_vec(),
        })
        .collect()
}

/// (mean absolute difference, largest difference) over all channels of all frames.
fn difference(a: &[Frame], b: &[Frame]) -> (f64, u8) {
    assert_eq!(a.len(), b.len());
    let (mut sum, mut n, mut max) = (0u64, 0u64, 0u8);
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.width, x.height), (y.width, y.height));
        for (p, q) in x.data.iter().zip(&y.data) {
            let d = p.abs_diff(*q);
            sum += u64::from(d);
            n += 1;
            max = max.max(d);
        }
    }
    (sum as f64 / n as f64, max)
}

#[test]
fn lerobot_written_video_datasets_read_with_lerobots_pixels() {
    for codec in DATASETS {
        let ds = Dataset::open(&fixture().join(codec)).unwrap();
        assert_eq!(ds.episodes().len(), 3, "{codec}");
        let (first, last) = (&ds.episodes()[0], &ds.episodes()[2]);
        if ds.version().is_legacy() {
            // v2.1: an MP4 per episode.
            assert_ne!(last.video_file(CAMERA), first.video_file(CAMERA));
            assert_eq!(last.videos[0].from_timestamp, 0.0);
        } else {
            // v3.0: all three episodes share one MP4, each from its own `from_timestamp`.
            assert_eq!(last.video_file(CAMERA), first.video_file(CAMERA));
            assert!(last.videos[0].from_timestamp > 2.0);
        }
        for e in 0..3 {
            let ours = ds.episode(e).unwrap();
            let theirs = lerobot_frames(codec, e);
            assert_eq!(ours.frames.len(), theirs.len(), "{codec} episode {e}");
            let (mean, max) = difference(&ours.frames, &theirs);
            eprintln!("{codec} episode {e}: mean |diff| {mean:.4}, max {max}");
            assert!(
                mean <= 0.5 && max <= 8,
                "{codec} episode {e}: mean |diff| {mean}, max {max}"
            );
        }
    }
}

#[test]
fn random_access_streaming_and_whole_episodes_agree() {
    for codec in DATASETS {
        let ds = Dataset::open(&fixture().join(codec)).unwrap();
        let whole: Vec<Vec<Frame>> = (0..3).map(|e| ds.episode(e).unwrap().frames).collect();
        // Backwards and across episodes: every request seeks or decodes on.
        for (e, i) in [
            (2, 11),
            (0, 0),
            (1, 5),
            (1, 4),
            (2, 0),
            (0, 11),
            (1, 11),
            (0, 6),
        ] {
            let f = ds.frame(CAMERA, e, i).unwrap();
            assert_eq!(
                f, whole[e as usize][i as usize],
                "{codec} episode {e} frame {i}"
            );
        }
        let streamed: Vec<Frame> = ds
            .iter_episode(1)
            .unwrap()
            .map(|s| s.unwrap().frame)
            .collect();
        assert_eq!(streamed, whole[1], "{codec}");
        let v = ds.validate().unwrap();
        assert!(v.is_valid(), "{codec}: {:?}", v.problems);
        assert_eq!(v.video_frames_decoded, 36);
        let name = codec.trim_start_matches("v21-");
        assert_eq!(v.video_codecs.get(name), Some(&3), "{:?}", v.video_codecs);
    }
}

/// A copy of the `codec` fixture to break.
fn copy_fixture(codec: &str, to: &Path) -> PathBuf {
    let src = fixture().join(codec);
    let dst = to.join(codec);
    for entry in walk(&src) {
        let rel = entry.strip_prefix(&src).unwrap();
        std::fs::create_dir_all(dst.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&entry, dst.join(rel)).unwrap();
    }
    dst
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

const MP4: &str = "videos/observation.image/chunk-000/file-000.mp4";

#[test]
fn a_truncated_video_is_reported_with_file_episode_and_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    let root = copy_fixture("av1", tmp.path());
    let mp4 = root.join(MP4);
    let bytes = std::fs::read(&mp4).unwrap();
    // LeRobot writes the index (moov) first: cutting the end loses the last frames' data.
    std::fs::write(&mp4, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let ds = Dataset::open(&root).unwrap();
    assert_eq!(ds.episode(0).unwrap().frames.len(), 12);
    let err = ds.episode(2).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            &err,
            DatasetError::Video {
                episode: 2,
                timestamp: Some(_),
                ..
            }
        ) && msg.contains("file-000.mp4")
            && msg.contains("episode 2"),
        "{msg}"
    );
    let v = ds.validate().unwrap();
    assert!(!v.is_valid());
    assert!(
        v.problems.iter().any(|p| p.contains("episode 2")),
        "{:?}",
        v.problems
    );
}

#[test]
fn missing_unreadable_and_misplaced_videos_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // No video file at all.
    let root = copy_fixture("h264", &tmp.path().join("missing"));
    std::fs::remove_file(root.join(MP4)).unwrap();
    let ds = Dataset::open(&root).unwrap();
    let msg = ds.frame(CAMERA, 1, 3).unwrap_err().to_string();
    assert!(
        msg.contains("file-000.mp4") && msg.contains("no such video file"),
        "{msg}"
    );
    let v = ds.validate().unwrap();
    assert_eq!(v.problems.len(), 3, "{:?}", v.problems);

    // Not a video: bytes no demuxer takes.
    let root = copy_fixture("h264", &tmp.path().join("garbage"));
    std::fs::write(root.join(MP4), b"this is not an mp4 file at all").unwrap();
    let msg = Dataset::open(&root)
        .unwrap()
        .episode(0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("file-000.mp4") && msg.contains("cannot open as a video container"),
        "{msg}"
    );

    // Timestamps between frames: LeRobot's tolerance (1e-4 s) refuses them, and so do we.
    let root = copy_fixture("hevc", &tmp.path().join("shifted"));
    shift_timestamps(&root.join("data/chunk-000/file-000.parquet"), 0.05);
    let ds = Dataset::open(&root).unwrap();
    let err = ds.frame(CAMERA, 1, 4).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, DatasetError::Video { episode: 1, .. })
            && msg.contains("timestamp 0.4500 s")
            && msg.contains("no frame within"),
        "{msg}"
    );
    assert_eq!(ds.validate().unwrap().problems.len(), 3);
}

/// Adds `dt` seconds to every `timestamp` of a data file.
fn shift_timestamps(path: &Path, dt: f32) {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    let i = schema.index_of("timestamp").unwrap();
    let shifted: Vec<RecordBatch> = batches
        .iter()
        .map(|b| {
            let t = b.column(i).as_any().downcast_ref::<Float32Array>().unwrap();
            let mut cols: Vec<ArrayRef> = b.columns().to_vec();
            cols[i] = Arc::new(Float32Array::from_iter_values(
                t.values().iter().map(|v| v + dt),
            ));
            RecordBatch::try_new(schema.clone(), cols).unwrap()
        })
        .collect();
    let out = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), None).unwrap();
    for b in &shifted {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}
