//! LeRobot datasets: what the writer puts on disk (checked against LeRobot's v3.0 layout,
//! column types and metadata), reading it back (listing, random access, whole episodes,
//! streaming), appending, crash leftovers, handcrafted v2.1 and video datasets, and bad
//! input that must be a named error.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray as _, BinaryArray, Float32Array, Float32Builder, Int64Array,
    ListBuilder, RecordBatch, StringArray, StringBuilder, StructArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use dreamyard_scenes::dataset::{
    CodebaseVersion, Dataset, DatasetError, DatasetSpec, DatasetWriter, EpisodePlan, EpisodeSource,
    ExtraFeature, ExtraKind, Extras, ImageFormat, Step, encode_png, keys, record_scene_episode,
};
use dreamyard_scenes::policy::PolicyKind;
use dreamyard_scenes::{Action, ActionSpace, Frame, SceneSource, load_scene};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

const TASK: &str = "push the T onto the target";

/// Records `episodes` push-t episodes (heuristic, seeds 0..) at 32x32, at most `max_steps`
/// steps each.
fn record(dir: &Path, episodes: u64, max_steps: usize) -> DatasetWriter {
    let mut scene = load_scene(&SceneSource::parse("push-t"), Some((32, 32))).unwrap();
    let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
    let spec = DatasetSpec::from_scene(scene.spec());
    let mut w = match DatasetWriter::create(dir, spec.clone()) {
        Ok(w) => w,
        Err(DatasetError::Exists { .. }) => DatasetWriter::append(dir, &spec).unwrap(),
        Err(e) => panic!("{e}"),
    };
    while w.num_episodes() < episodes {
        let plan = EpisodePlan {
            policy_name: "heuristic",
            seed: w.num_episodes(),
            max_steps,
            task: TASK,
        };
        record_scene_episode(&mut w, scene.as_mut(), policy.as_mut(), &plan, |_| {}).unwrap();
    }
    w
}

/// The frames, states and actions the scene produces for `seed`, as recorded.
fn rerun(seed: u64, steps: usize) -> (Vec<Frame>, Vec<Vec<f64>>, Vec<Vec<f32>>) {
    let mut scene = load_scene(&SceneSource::parse("push-t"), Some((32, 32))).unwrap();
    let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
    policy.reset(seed);
    let mut obs = scene.reset(seed);
    let (mut frames, mut states, mut actions) = (vec![], vec![], vec![]);
    for _ in 0..steps {
        let a = policy.act(&obs);
        frames.push(obs.frame.clone());
        states.push(obs.state.clone());
        actions.push(a.to_vec());
        obs = scene.step(&a).unwrap();
    }
    (frames, states, actions)
}

fn json_file(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn parquet(path: &Path) -> (RecordBatch, Vec<(String, String)>) {
    let b = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    let kv = b
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let schema = b.schema().clone();
    let batches: Vec<_> = b.build().unwrap().map(Result::unwrap).collect();
    (
        arrow::compute::concat_batches(&schema, &batches).unwrap(),
        kv,
    )
}

#[test]
fn written_files_follow_lerobot_v3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    record(&dir, 2, 12);

    let info = json_file(&dir.join("meta/info.json"));
    assert_eq!(info["codebase_version"], "v3.0");
    assert_eq!(info["fps"], json!(10));
    assert_eq!(info["total_episodes"], 2);
    assert_eq!(info["total_frames"], 24);
    assert_eq!(info["total_tasks"], 1);
    assert_eq!(info["chunks_size"], 1000);
    assert_eq!(info["splits"], json!({"train": "0:2"}));
    assert_eq!(
        info["data_path"],
        "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    );
    assert_eq!(info["video_path"], Value::Null);
    let f = &info["features"];
    assert_eq!(
        f["observation.image"],
        json!({"dtype": "image", "shape": [32, 32, 3], "names": ["height", "width", "channels"]})
    );
    // LeRobot's pusht layout: the pointer's position is the robot's state, the block's
    // keypoints the environment's (as `pusht_keypoints`); the full state apart, for reset_to.
    assert_eq!(info["robot_type"], "unknown", "as lerobot/pusht");
    assert_eq!(
        f["observation.state"],
        json!({"dtype": "float32", "shape": [2], "names": ["agent_x", "agent_y"]})
    );
    assert_eq!(f["observation.environment_state"]["dtype"], "float32");
    assert_eq!(f["observation.environment_state"]["shape"], json!([16]));
    assert_eq!(
        f["observation.environment_state"]["names"][15],
        "keypoint7_y"
    );
    assert_eq!(
        f["scene.state"],
        json!({"dtype": "float32", "shape": [5],
               "names": ["agent_x", "agent_y", "block_x", "block_y", "block_angle"]})
    );
    assert_eq!(f["action"]["shape"], json!([2]));
    assert_eq!(
        f["next.reward"],
        json!({"dtype": "float32", "shape": [1], "names": null})
    );
    assert_eq!(f["next.success"]["dtype"], "bool");
    assert_eq!(f["next.done"]["dtype"], "bool");
    for k in ["frame_index", "episode_index", "index", "task_index"] {
        assert_eq!(
            f[k],
            json!({"dtype": "int64", "shape": [1], "names": null}),
            "{k}"
        );
    }
    assert_eq!(f["timestamp"]["dtype"], "float32");

    // Data: episodes packed into one file as LeRobot does, its column types and the
    // `datasets` metadata.
    assert!(!dir.join("data/chunk-000/file-001.parquet").exists());
    let (batch, kv) = parquet(&dir.join("data/chunk-000/file-000.parquet"));
    assert_eq!(batch.num_rows(), 24);
    let schema = batch.schema();
    let ty = |k: &str| schema.field_with_name(k).unwrap().data_type().clone();
    assert_eq!(
        ty("observation.image"),
        DataType::Struct(Fields::from(vec![
            Field::new("bytes", DataType::Binary, true),
            Field::new("path", DataType::Utf8, true),
        ]))
    );
    let floats =
        |n| DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), n);
    assert_eq!(ty("observation.state"), floats(2));
    assert_eq!(ty("observation.environment_state"), floats(16));
    assert_eq!(ty("scene.state"), floats(5));
    assert_eq!(ty("next.reward"), DataType::Float32);
    assert_eq!(ty("next.done"), DataType::Boolean);
    assert_eq!(ty("index"), DataType::Int64);
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let feature_order: Vec<_> = f.as_object().unwrap().keys().cloned().collect();
    let mut sorted_names = names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    sorted_names.sort();
    assert_eq!(sorted_names, feature_order, "one column per feature");
    let hf: Value =
        serde_json::from_str(&kv.iter().find(|(k, _)| k == "huggingface").unwrap().1).unwrap();
    let hf = &hf["info"]["features"];
    assert_eq!(hf["observation.image"], json!({"_type": "Image"}));
    assert_eq!(
        hf["observation.state"],
        json!({"feature": {"dtype": "float32", "_type": "Value"}, "length": 2, "_type": "List"})
    );
    assert_eq!(
        hf["next.success"],
        json!({"dtype": "bool", "_type": "Value"})
    );
    let index = batch
        .column_by_name("index")
        .unwrap()
        .as_primitive::<arrow::datatypes::Int64Type>();
    assert_eq!(
        index.value(12),
        12,
        "episode 1 starts after episode 0's 12 frames"
    );
    let img = batch
        .column_by_name("observation.image")
        .unwrap()
        .as_struct();
    let bytes = img.column_by_name("bytes").unwrap().as_binary::<i32>();
    assert!(bytes.value(3).starts_with(b"\x89PNG"));
    assert_eq!(
        img.column_by_name("path")
            .unwrap()
            .as_string::<i32>()
            .value(3),
        "frame-000003.png"
    );
    let done = batch.column_by_name("next.done").unwrap().as_boolean();
    assert!(!done.value(10) && done.value(11) && done.value(23));

    // Episodes metadata, packed too: LeRobot's columns and per-episode stats.
    assert!(
        !dir.join("meta/episodes/chunk-000/file-001.parquet")
            .exists()
    );
    let (ep, _) = parquet(&dir.join("meta/episodes/chunk-000/file-000.parquet"));
    assert_eq!(ep.num_rows(), 2);
    let int = |k: &str| {
        ep.column_by_name(k)
            .unwrap_or_else(|| panic!("{k}"))
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(1)
    };
    assert_eq!(int("episode_index"), 1);
    assert_eq!(int("length"), 12);
    assert_eq!((int("data/chunk_index"), int("data/file_index")), (0, 0));
    assert_eq!(
        (int("dataset_from_index"), int("dataset_to_index")),
        (12, 24)
    );
    assert_eq!(
        (
            int("meta/episodes/chunk_index"),
            int("meta/episodes/file_index")
        ),
        (0, 0)
    );
    let tasks = ep
        .column_by_name("tasks")
        .unwrap()
        .as_list::<i32>()
        .value(1);
    assert_eq!(tasks.as_string::<i32>().value(0), TASK);
    for stat in [
        "min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99",
    ] {
        for feat in [
            "observation.image",
            "observation.state",
            "observation.environment_state",
            "scene.state",
            "action",
            "next.reward",
            "index",
        ] {
            assert!(
                ep.column_by_name(&format!("stats/{feat}/{stat}")).is_some(),
                "{feat}/{stat}"
            );
        }
    }
    let img_mean = ep.column_by_name("stats/observation.image/mean").unwrap();
    assert_eq!(
        img_mean.data_type().to_string(),
        "List(List(List(Float64)))",
        "image stats are (3, 1, 1)"
    );
    let source: EpisodeSource = serde_json::from_str(
        ep.column_by_name("dreamyard/source")
            .unwrap()
            .as_string::<i32>()
            .value(1),
    )
    .unwrap();
    assert_eq!(
        source,
        EpisodeSource::Scene {
            scene: "push-t".into(),
            policy: "heuristic".into(),
            seed: 1
        }
    );

    // Tasks as pandas writes them, with the index restored by the `pandas` metadata.
    let (tasks, kv) = parquet(&dir.join("meta/tasks.parquet"));
    assert_eq!(
        tasks
            .column_by_name("task")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        TASK
    );
    let pandas: Value =
        serde_json::from_str(&kv.iter().find(|(k, _)| k == "pandas").unwrap().1).unwrap();
    assert_eq!(pandas["index_columns"], json!(["task"]));

    // Dataset stats: every feature, image stats per channel in [0, 1].
    let stats = json_file(&dir.join("meta/stats.json"));
    let img = &stats["observation.image"];
    assert_eq!(
        img["count"],
        json!([24]),
        "episodes under 100 frames: every frame sampled"
    );
    for c in 0..3 {
        let (lo, hi) = (
            img["min"][c][0][0].as_f64().unwrap(),
            img["max"][c][0][0].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&lo) && lo <= hi && hi <= 1.0);
    }
    assert_eq!(stats["index"]["min"], json!([0.0]));
    assert_eq!(stats["index"]["max"], json!([23.0]));
    assert_eq!(stats["index"]["count"], json!([24]));
    for (feat, dim) in [
        ("observation.state", 2),
        ("observation.environment_state", 16),
        ("scene.state", 5),
    ] {
        assert_eq!(stats[feat]["mean"].as_array().unwrap().len(), dim, "{feat}");
    }

    // The environment state is the block's keypoints at the recorded pose.
    let (first, _) = parquet(&dir.join("data/chunk-000/file-000.parquet"));
    let row = |key: &str, r: usize| -> Vec<f32> {
        let list = first.column_by_name(key).unwrap().as_fixed_size_list();
        list.value(r)
            .as_primitive::<arrow::datatypes::Float32Type>()
            .values()
            .to_vec()
    };
    let layout = load_scene(&SceneSource::parse("push-t"), Some((32, 32)))
        .unwrap()
        .spec()
        .layout
        .clone()
        .unwrap();
    for r in [0, 5, 23] {
        let full: Vec<f64> = row("scene.state", r)
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        assert_eq!(row("observation.state", r), row("scene.state", r)[..2]);
        let kp = layout.environment_state(&full);
        for (a, b) in row("observation.environment_state", r).iter().zip(&kp) {
            assert!((f64::from(*a) - b).abs() < 1e-3, "row {r}: {a} vs {b}");
        }
    }
}

#[test]
fn reading_back_gives_what_the_scene_produced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    record(&dir, 3, 15);
    let ds = Dataset::open(&dir).unwrap();
    assert_eq!(ds.version(), CodebaseVersion::V3_0);
    assert_eq!(ds.tasks(), [TASK]);
    assert_eq!(ds.episodes().len(), 3);
    assert_eq!(
        ds.dreamyard().unwrap().spec.scene.as_ref().unwrap().name,
        "push-t"
    );
    for e in 0..3u64 {
        let info = &ds.episodes()[e as usize];
        assert_eq!((info.index, info.length, info.from_index), (e, 15, 15 * e));
        assert_eq!(info.tasks, [TASK]);
        let (frames, states, actions) = rerun(e, 15);
        let data = ds.episode(e).unwrap();
        assert_eq!(data.len(), 15);
        assert_eq!(
            data.frames, frames,
            "frames decode to what the scene rendered"
        );
        for t in 0..15 {
            let s: Vec<f32> = states[t].iter().map(|&v| v as f32).collect();
            assert_eq!(data.scene_state(t), s.as_slice(), "the full state");
            assert_eq!(data.state(t), &s[..2], "the pointer's position");
            assert_eq!(data.action(t), actions[t].as_slice());
            assert_eq!(data.timestamps[t], t as f32 / 10.0);
        }
        assert_eq!(
            data.done.as_ref().unwrap().iter().filter(|d| **d).count(),
            1
        );
        assert!(data.rewards.is_some() && data.success.is_some());
        // Random access and streaming agree with the whole episode.
        for i in [0u64, 7, 14] {
            assert_eq!(
                ds.frame("observation.image", e, i).unwrap(),
                frames[i as usize]
            );
            let stored = ds.frame_bytes("observation.image", e, i).unwrap();
            assert_eq!(stored.format, ImageFormat::Png);
            assert_eq!(stored.bytes, encode_png(&frames[i as usize]).unwrap());
        }
        let steps: Vec<_> = ds.iter_episode(e).unwrap().map(Result::unwrap).collect();
        assert_eq!(steps.len(), 15);
        for (t, s) in steps.iter().enumerate() {
            assert_eq!(s.frame_index, t as u64);
            assert_eq!(s.frame, frames[t]);
            assert_eq!(s.state.as_slice(), data.state(t));
            assert_eq!(s.action.as_slice(), data.action(t));
        }
    }
    let v = ds.validate().unwrap();
    assert_eq!((v.episodes, v.frames, v.images_decoded), (3, 45, 45));
    assert!(matches!(
        ds.frame("observation.image", 3, 0),
        Err(DatasetError::OutOfRange {
            what: "episode",
            ..
        })
    ));
    assert!(matches!(
        ds.frame("observation.image", 0, 15),
        Err(DatasetError::OutOfRange { what: "frame", .. })
    ));
}

#[test]
fn datasets_of_the_older_format_keep_the_full_state_in_observation_state() {
    // Format 1 of meta/dreamyard.json had no state layout: the whole scene state was
    // `observation.state`. Such a dataset still reads (its full state included, for
    // take-over); appending the new layout to it is refused with a reason.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("old");
    let mut scene = load_scene(&SceneSource::parse("push-t"), Some((32, 32))).unwrap();
    let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
    let mut spec = DatasetSpec::from_scene(scene.spec());
    spec.layout = None;
    let mut w = DatasetWriter::create(&dir, spec).unwrap();
    let plan = EpisodePlan {
        policy_name: "heuristic",
        seed: 0,
        max_steps: 8,
        task: TASK,
    };
    record_scene_episode(&mut w, scene.as_mut(), policy.as_mut(), &plan, |_| {}).unwrap();
    drop(w);
    let meta_file = dir.join("meta/dreamyard.json");
    let mut meta = json_file(&meta_file);
    meta["format"] = json!(1);
    for path in ["/spec", "/spec/scene"] {
        let m = meta.pointer_mut(path).unwrap().as_object_mut().unwrap();
        for k in ["layout", "task", "robot_type"] {
            m.remove(k);
        }
    }
    meta["spec"]["robot_type"] = json!("push-t");
    std::fs::write(&meta_file, meta.to_string()).unwrap();
    let info = json_file(&dir.join("meta/info.json"));
    assert_eq!(info["features"]["observation.state"]["shape"], json!([5]));
    assert!(info["features"].get("scene.state").is_none());

    let ds = Dataset::open(&dir).unwrap();
    let data = ds.episode(0).unwrap();
    let (_, states, _) = rerun(0, 8);
    for (t, s) in states.iter().enumerate() {
        let s: Vec<f32> = s.iter().map(|&v| v as f32).collect();
        assert_eq!(data.state(t), s.as_slice());
        assert_eq!(data.scene_state(t), s.as_slice());
    }
    let e = DatasetWriter::append(&dir, &DatasetSpec::from_scene(scene.spec()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dreamyard.json") && e.contains("format 1") && e.contains("new folder"),
        "{e}"
    );
}

#[test]
fn appending_keeps_finished_episodes_and_equals_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let once = tmp.path().join("once");
    let twice = tmp.path().join("twice");
    record(&once, 4, 10);
    record(&twice, 2, 10);
    let before = Dataset::open(&twice).unwrap().episode(1).unwrap();
    record(&twice, 4, 10);
    assert_eq!(Dataset::open(&twice).unwrap().episode(1).unwrap(), before);
    for rel in [
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
    ] {
        assert_eq!(
            std::fs::read(once.join(rel)).unwrap(),
            std::fs::read(twice.join(rel)).unwrap(),
            "{rel}: appending gives the same bytes as recording in one go"
        );
    }

    // Appending with another spec is refused and changes nothing.
    let other = load_scene(&SceneSource::parse("push-t"), Some((48, 48))).unwrap();
    let spec = DatasetSpec::from_scene(other.spec());
    let before = std::fs::read(twice.join("meta/info.json")).unwrap();
    let err = DatasetWriter::append(&twice, &spec)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dreamyard.json") && err.contains("48x48") && err.contains("32x32"),
        "{err}"
    );
    assert!(matches!(
        DatasetWriter::create(&twice, spec),
        Err(DatasetError::Exists { .. })
    ));
    assert_eq!(std::fs::read(twice.join("meta/info.json")).unwrap(), before);
}

#[test]
fn leftovers_of_a_killed_writer_are_ignored_then_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    record(&dir, 3, 8);
    // Pretend a writer committing episode 3 was killed after renaming its data and metadata
    // files but before info.json, and another left a temporary file.
    let committed_info = std::fs::read(dir.join("meta/info.json")).unwrap();
    record(&dir, 4, 8);
    std::fs::write(dir.join("meta/info.json"), &committed_info).unwrap();
    std::fs::write(
        dir.join("data/chunk-000/file-004.parquet.dreamyard-tmp"),
        b"partial",
    )
    .unwrap();

    let ds = Dataset::open(&dir).unwrap();
    assert_eq!(ds.episodes().len(), 3);
    assert_eq!(ds.uncommitted_episodes(), 1);
    ds.validate().unwrap();

    let w = record(&dir, 5, 8);
    assert_eq!(w.num_episodes(), 5);
    assert!(
        !dir.join("data/chunk-000/file-004.parquet.dreamyard-tmp")
            .exists()
    );
    let ds = Dataset::open(&dir).unwrap();
    assert_eq!((ds.episodes().len(), ds.uncommitted_episodes()), (5, 0));
    ds.validate().unwrap();
    // The uncommitted episode's rows were cut from the packed files: what is left is what
    // recording in one go writes.
    let once = tmp.path().join("once");
    record(&once, 5, 8);
    for rel in [
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
    ] {
        assert_eq!(
            std::fs::read(once.join(rel)).unwrap(),
            std::fs::read(dir.join(rel)).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn model_frames_and_discrete_actions_go_through_the_generic_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imagined");
    let spec = DatasetSpec {
        fps: 15.0,
        frame_width: 8,
        frame_height: 6,
        state_names: vec![],
        layout: None,
        action_space: ActionSpace::Discrete {
            names: vec!["left".into(), "right".into(), "jump".into()],
        },
        rewards: false,
        robot_type: None,
        video: false,
        scene: None,
        extra_cameras: vec![],
        extras: vec![],
    };
    let mut w = DatasetWriter::create(&dir, spec).unwrap();
    let frame = |k: u8| Frame {
        width: 8,
        height: 6,
        data: vec![k; 8 * 6 * 3],
    };
    for k in 0..5u8 {
        w.add_frame(Step {
            frame: &frame(k * 40),
            state: &[],
            action: &Action::Discrete(u32::from(k % 3)),
            reward: None,
            success: None,
        })
        .unwrap();
    }
    // A wrong frame size is refused; the episode in progress is kept.
    let err = w
        .add_frame(Step {
            frame: &Frame {
                width: 9,
                height: 6,
                data: vec![0; 9 * 6 * 3],
            },
            state: &[],
            action: &Action::Discrete(0),
            reward: None,
            success: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("8x6"), "{err}");
    assert!(
        w.add_frame(Step {
            frame: &frame(0),
            state: &[],
            action: &Action::Discrete(3),
            reward: None,
            success: None
        })
        .is_err()
    );
    assert_eq!(w.pending_frames(), 5);
    let source = EpisodeSource::Model {
        model: "diamond-pusht".into(),
        hash: "abc123".into(),
        ground_truth: None,
        cameras: Default::default(),
    };
    w.save_episode("imagine pushing", &source).unwrap();

    let info = json_file(&dir.join("meta/info.json"));
    assert_eq!(info["fps"], json!(15));
    assert_eq!(
        info["features"]["action"],
        json!({"dtype": "int64", "shape": [1], "names": null})
    );
    assert!(info["features"].get("next.reward").is_none());
    assert!(info["features"].get("observation.state").is_none());
    let ds = Dataset::open(&dir).unwrap();
    assert_eq!(ds.episodes()[0].source.as_ref(), Some(&source));
    let data = ds.episode(0).unwrap();
    assert_eq!(data.actions, vec![0.0, 1.0, 2.0, 0.0, 1.0]);
    assert_eq!(data.action_dim, 1);
    assert_eq!(data.state_dim, 0);
    assert!(data.rewards.is_none());
    assert_eq!(data.frames[3], frame(120));
    ds.validate().unwrap();
}

/// The app's recordings: the true frame as `observation.image`, the model's as a second
/// camera, and per-step values (metrics, a flag) beside state and action, in PNG images and
/// in AV1 video; they read back by name, and a row missing one is refused.
#[test]
fn extra_cameras_and_values_are_written_and_read_back() {
    for video in [false, true] {
        let mut sim = load_scene(&SceneSource::parse("push-t"), Some((64, 64))).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("both");
        let mut spec = DatasetSpec::from_scene(sim.spec());
        spec.video = video;
        spec.extra_cameras = vec![keys::IMAGE_MODEL.into()];
        spec.extras = vec![
            ExtraFeature {
                key: keys::MODEL_METRICS.into(),
                kind: ExtraKind::Values {
                    names: vec!["psnr_db".into(), "ssim".into()],
                },
            },
            ExtraFeature {
                key: keys::MODEL_IMAGINED.into(),
                kind: ExtraKind::Flag,
            },
        ];
        let (w, h) = (spec.frame_width, spec.frame_height);
        let mut writer = DatasetWriter::create(&dir, spec.clone()).unwrap();
        let mut obs = sim.reset(3);
        let mut truths = Vec::new();
        let mut dreams = Vec::new();
        let mut states = Vec::new();
        for t in 0..6u8 {
            let action = Action::Continuous(vec![0.5, 0.5]);
            // The "model" frame: the true one darkened, so the two cameras differ.
            let dream = Frame {
                data: obs.frame.data.iter().map(|v| v / 2).collect(),
                ..obs.frame.clone()
            };
            let values = [20.0 + f64::from(t), 0.5, f64::from(t % 2)];
            writer
                .add_row(
                    Step {
                        frame: &obs.frame,
                        state: &obs.state,
                        action: &action,
                        reward: Some(0.0),
                        success: Some(false),
                    },
                    Extras {
                        frames: &[&dream],
                        values: &values,
                    },
                )
                .unwrap();
            truths.push(obs.frame.clone());
            dreams.push(dream);
            states.push(obs.state.clone());
            obs = sim.step(&action).unwrap();
        }
        // A row without the model's frame, or with too few values, is refused.
        let step = Step {
            frame: &obs.frame,
            state: &obs.state,
            action: &Action::Continuous(vec![0.5, 0.5]),
            reward: Some(0.0),
            success: Some(false),
        };
        let err = writer
            .add_row(
                step,
                Extras {
                    frames: &[],
                    values: &[1.0, 2.0, 0.0],
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains(keys::IMAGE_MODEL), "{err}");
        let err = writer
            .add_row(
                step,
                Extras {
                    frames: &[&obs.frame],
                    values: &[1.0],
                },
            )
            .unwrap_err();
        assert!(err.to_string().contains(keys::MODEL_METRICS), "{err}");
        assert_eq!(writer.pending_frames(), 6);
        let source = EpisodeSource::Model {
            model: "m".into(),
            hash: "h".into(),
            ground_truth: Some("push-t".into()),
            cameras: [
                (keys::IMAGE.to_owned(), "ground truth".to_owned()),
                (keys::IMAGE_MODEL.to_owned(), "model".to_owned()),
            ]
            .into(),
        };
        writer.save_episode("push", &source).unwrap();

        let info = json_file(&dir.join("meta/info.json"));
        let dtype = if video { "video" } else { "image" };
        assert_eq!(info["features"][keys::IMAGE_MODEL]["dtype"], json!(dtype));
        assert_eq!(
            info["features"][keys::IMAGE_MODEL]["shape"],
            json!([h, w, 3])
        );
        assert_eq!(
            info["features"][keys::MODEL_METRICS],
            json!({"dtype": "float32", "shape": [2], "names": ["psnr_db", "ssim"]})
        );
        assert_eq!(
            info["features"][keys::MODEL_IMAGINED]["dtype"],
            json!("bool")
        );
        let stats = json_file(&dir.join("meta/stats.json"));
        assert!(stats[keys::IMAGE_MODEL]["mean"].is_array(), "{stats}");
        assert_eq!(stats[keys::MODEL_METRICS]["max"], json!([25.0, 0.5]));

        let ds = Dataset::open(&dir).unwrap();
        assert_eq!(ds.default_camera(), Some(keys::IMAGE));
        assert_eq!(ds.episodes()[0].source.as_ref(), Some(&source));
        let data = ds.episode(0).unwrap();
        let close = |a: &Frame, b: &Frame| {
            let diff = a
                .data
                .iter()
                .zip(&b.data)
                .map(|(x, y)| x.abs_diff(*y) as f64);
            diff.sum::<f64>() / a.data.len() as f64
        };
        for t in 0..6 {
            let dream = ds.frame(keys::IMAGE_MODEL, 0, t as u64).unwrap();
            if video {
                // AV1 at CRF 30 is lossy: near, and nearer its own camera than the other.
                assert!(close(&data.frames[t], &truths[t]) < 4.0, "frame {t}");
                assert!(
                    close(&dream, &dreams[t]) < close(&dream, &truths[t]),
                    "frame {t}"
                );
            } else {
                assert_eq!(data.frames[t], truths[t], "frame {t}");
                assert_eq!(dream, dreams[t], "frame {t}");
            }
            let s: Vec<f32> = states[t].iter().map(|&v| v as f32).collect();
            assert_eq!(data.scene_state(t), &s[..], "state {t}");
        }
        let (dim, metrics) = ds.values(0, keys::MODEL_METRICS).unwrap();
        assert_eq!((dim, &metrics[..4]), (2, &[20.0, 0.5, 21.0, 0.5][..]));
        let (_, flags) = ds.values(0, keys::MODEL_IMAGINED).unwrap();
        assert_eq!(flags, [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert!(
            ds.values(0, keys::IMAGE_MODEL).is_err(),
            "a camera is not numeric"
        );
        let v = ds.validate().unwrap();
        assert!(v.is_valid(), "{:?}", v.problems);
        if video {
            assert_eq!(v.video_frames_decoded, 12, "both cameras");
        }
        // More episodes append with the same spec; another spec is refused.
        drop(writer);
        DatasetWriter::append(&dir, &spec).unwrap();
        let mut other = spec.clone();
        other.extras.pop();
        let err = DatasetWriter::append(&dir, &other).unwrap_err();
        assert!(err.to_string().contains(keys::MODEL_IMAGINED), "{err}");
    }
}

// ---- handcrafted datasets: LeRobot v2.1, v3.0 with several episodes per file, video ----

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let data = (0..w * h * 3)
        .map(|i| (i as u8).wrapping_mul(seed))
        .collect();
    encode_png(&Frame {
        width: w,
        height: h,
        data,
    })
    .unwrap()
}

fn image_column(images: &[Vec<u8>]) -> ArrayRef {
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    Arc::new(StructArray::new(
        fields,
        vec![
            Arc::new(BinaryArray::from_iter_values(images.iter())),
            Arc::new(StringArray::from(vec![None::<&str>; images.len()])),
        ],
        None,
    ))
}

/// `list<float>` as older `datasets` versions store a Sequence without a fixed length.
fn float_lists(rows: &[Vec<f32>]) -> ArrayRef {
    let mut b = ListBuilder::new(Float32Builder::new());
    for r in rows {
        b.values().append_slice(r);
        b.append(true);
    }
    Arc::new(b.finish())
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let fields: Vec<Field> = columns
        .iter()
        .map(|(k, a)| Field::new(*k, a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// The frame columns of `n` frames of episode `e` starting at global index `from`.
fn frame_columns(e: i64, n: usize, from: i64, w: u32, h: u32) -> Vec<(&'static str, ArrayRef)> {
    let images: Vec<_> = (0..n)
        .map(|i| png(w, h, (e * 10 + i as i64 + 1) as u8))
        .collect();
    vec![
        ("observation.image", image_column(&images)),
        (
            "observation.state",
            float_lists(&(0..n).map(|i| vec![i as f32, e as f32]).collect::<Vec<_>>()),
        ),
        (
            "action",
            float_lists(&(0..n).map(|i| vec![-(i as f32)]).collect::<Vec<_>>()),
        ),
        (
            "timestamp",
            Arc::new(Float32Array::from_iter_values(
                (0..n).map(|i| i as f32 / 30.0),
            )),
        ),
        (
            "frame_index",
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
        ),
        ("episode_index", Arc::new(Int64Array::from(vec![e; n]))),
        (
            "index",
            Arc::new(Int64Array::from_iter_values(from..from + n as i64)),
        ),
        ("task_index", Arc::new(Int64Array::from(vec![e % 2; n]))),
    ]
}

fn features_json(w: u32, h: u32, camera_dtype: &str) -> Value {
    json!({
        "observation.image": {"dtype": camera_dtype, "shape": [h, w, 3], "names": ["height", "width", "channel"]},
        "observation.state": {"dtype": "float32", "shape": [2], "names": {"motors": ["x", "y"]}},
        "action": {"dtype": "float32", "shape": [1], "names": ["push"]},
        "timestamp": {"dtype": "float32", "shape": [1], "names": null},
        "frame_index": {"dtype": "int64", "shape": [1], "names": null},
        "episode_index": {"dtype": "int64", "shape": [1], "names": null},
        "index": {"dtype": "int64", "shape": [1], "names": null},
        "task_index": {"dtype": "int64", "shape": [1], "names": null}
    })
}

/// A LeRobot v2.1 dataset: one parquet per episode, `episodes.jsonl`, `tasks.jsonl`.
fn write_v21(root: &Path, lengths: &[usize]) {
    std::fs::create_dir_all(root.join("meta")).unwrap();
    let info = json!({
        "codebase_version": "v2.1", "robot_type": "test", "fps": 30,
        "total_episodes": lengths.len(), "total_frames": lengths.iter().sum::<usize>(),
        "total_tasks": 2, "total_videos": 0, "total_chunks": 1, "chunks_size": 1000,
        "splits": {"train": format!("0:{}", lengths.len())},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": null,
        "features": features_json(6, 4, "image"),
    });
    std::fs::write(root.join("meta/info.json"), info.to_string()).unwrap();
    std::fs::write(
        root.join("meta/tasks.jsonl"),
        "{\"task_index\": 0, \"task\": \"stack\"}\n{\"task_index\": 1, \"task\": \"unstack\"}\n",
    )
    .unwrap();
    let mut eps = String::new();
    let mut from = 0;
    for (e, &n) in lengths.iter().enumerate() {
        let task = if e % 2 == 0 { "stack" } else { "unstack" };
        eps.push_str(&format!(
            "{{\"episode_index\": {e}, \"tasks\": [\"{task}\"], \"length\": {n}}}\n"
        ));
        write_parquet(
            &root.join(format!("data/chunk-000/episode_{e:06}.parquet")),
            frame_columns(e as i64, n, from, 6, 4),
        );
        from += n as i64;
    }
    std::fs::write(root.join("meta/episodes.jsonl"), eps).unwrap();
}

#[test]
fn reads_a_lerobot_v21_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    write_v21(tmp.path(), &[3, 5]);
    let ds = Dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.version(), CodebaseVersion::V2_1);
    assert_eq!(ds.tasks(), ["stack", "unstack"]);
    let eps = ds.episodes();
    assert_eq!((eps[0].length, eps[1].length, eps[1].from_index), (3, 5, 3));
    assert_eq!(eps[1].tasks, ["unstack"]);
    let f = ds.frame("observation.image", 1, 4).unwrap();
    assert_eq!((f.width, f.height), (6, 4));
    assert_eq!(encode_png(&f).unwrap(), png(6, 4, 15));
    let data = ds.episode(1).unwrap();
    assert_eq!(data.state(2), [2.0, 1.0]);
    assert_eq!(data.action(4), [-4.0]);
    assert_eq!(
        ds.info()
            .features
            .get("observation.state")
            .unwrap()
            .name_list()
            .unwrap(),
        ["x", "y"]
    );
    let v = ds.validate().unwrap();
    assert_eq!((v.episodes, v.frames, v.images_decoded), (2, 8, 8));
}

#[test]
fn reads_a_v30_dataset_with_several_episodes_per_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("meta")).unwrap();
    let info = json!({
        "codebase_version": "v3.0", "robot_type": null, "fps": 30,
        "total_episodes": 3, "total_frames": 9, "total_tasks": 2, "chunks_size": 1000,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": null, "splits": {"train": "0:3"},
        "features": features_json(6, 4, "image"),
    });
    std::fs::write(root.join("meta/info.json"), info.to_string()).unwrap();
    // Episodes 0 and 1 share file-000 (rows 0..2, 2..6); episode 2 is alone in file-001.
    let mut cols = frame_columns(0, 2, 0, 6, 4);
    let second = frame_columns(1, 4, 2, 6, 4);
    for (c, s) in cols.iter_mut().zip(second) {
        c.1 = arrow::compute::concat(&[c.1.as_ref(), s.1.as_ref()]).unwrap();
    }
    write_parquet(&root.join("data/chunk-000/file-000.parquet"), cols);
    write_parquet(
        &root.join("data/chunk-000/file-001.parquet"),
        frame_columns(2, 3, 6, 6, 4),
    );
    let mut tasks = ListBuilder::new(StringBuilder::new());
    for t in ["stack", "unstack", "stack"] {
        tasks.values().append_value(t);
        tasks.append(true);
    }
    let i = |v: [i64; 3]| -> ArrayRef { Arc::new(Int64Array::from(v.to_vec())) };
    write_parquet(
        &root.join("meta/episodes/chunk-000/file-000.parquet"),
        vec![
            ("episode_index", i([0, 1, 2])),
            ("tasks", Arc::new(tasks.finish())),
            ("length", i([2, 4, 3])),
            ("data/chunk_index", i([0, 0, 0])),
            ("data/file_index", i([0, 0, 1])),
            ("dataset_from_index", i([0, 2, 6])),
            ("dataset_to_index", i([2, 6, 9])),
        ],
    );
    write_parquet(
        &root.join("meta/tasks.parquet"),
        vec![
            ("task_index", Arc::new(Int64Array::from(vec![0, 1]))),
            (
                "__index_level_0__",
                Arc::new(StringArray::from(vec!["stack", "unstack"])),
            ),
        ],
    );
    let ds = Dataset::open(root).unwrap();
    assert_eq!(ds.tasks(), ["stack", "unstack"]);
    assert_eq!(ds.episodes()[1].first_row, 2);
    assert_eq!(
        encode_png(&ds.frame("observation.image", 1, 3).unwrap()).unwrap(),
        png(6, 4, 14)
    );
    assert_eq!(
        encode_png(&ds.frame("observation.image", 2, 0).unwrap()).unwrap(),
        png(6, 4, 21)
    );
    assert_eq!(ds.episode(1).unwrap().state(3), [3.0, 1.0]);
    ds.validate().unwrap();

    // Metadata pointing at the wrong rows is caught, not read as garbage.
    write_parquet(
        &root.join("data/chunk-000/file-000.parquet"),
        frame_columns(0, 6, 0, 6, 4),
    );
    let ds = Dataset::open(root).unwrap();
    let err = ds.frame("observation.image", 1, 0).unwrap_err().to_string();
    assert!(
        err.contains("file-000.parquet") && err.contains("episode_index"),
        "{err}"
    );
}

#[test]
fn a_video_feature_without_its_file_is_reported_not_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("meta")).unwrap();
    let info = json!({
        "codebase_version": "v3.0", "fps": 30, "total_episodes": 1, "total_frames": 3,
        "total_tasks": 1, "chunks_size": 1000,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": features_json(6, 4, "video"),
    });
    std::fs::write(root.join("meta/info.json"), info.to_string()).unwrap();
    let cols: Vec<_> = frame_columns(0, 3, 0, 6, 4).into_iter().skip(1).collect();
    write_parquet(&root.join("data/chunk-000/file-000.parquet"), cols);
    let mut tasks = ListBuilder::new(StringBuilder::new());
    tasks.values().append_value("stack");
    tasks.append(true);
    let one = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
    write_parquet(
        &root.join("meta/episodes/chunk-000/file-000.parquet"),
        vec![
            ("episode_index", one(0)),
            ("tasks", Arc::new(tasks.finish())),
            ("length", one(3)),
            ("data/chunk_index", one(0)),
            ("data/file_index", one(0)),
            ("dataset_from_index", one(0)),
            ("dataset_to_index", one(3)),
            ("videos/observation.image/chunk_index", one(0)),
            ("videos/observation.image/file_index", one(4)),
            (
                "videos/observation.image/from_timestamp",
                Arc::new(arrow::array::Float64Array::from(vec![0.0])),
            ),
        ],
    );
    write_parquet(
        &root.join("meta/tasks.parquet"),
        vec![
            ("task_index", one(0)),
            ("task", Arc::new(StringArray::from(vec!["stack"]))),
        ],
    );
    let ds = Dataset::open(root).unwrap();
    assert_eq!(ds.episodes()[0].length, 3);
    assert_eq!(ds.camera_keys(), ["observation.image"]);
    let err = ds.frame("observation.image", 0, 1).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DatasetError::Video { episode: 0, .. }));
    assert!(
        msg.contains("no such video file")
            && msg.contains("videos/observation.image/chunk-000/file-004.mp4"),
        "{msg}"
    );
    assert!(matches!(ds.episode(0), Err(DatasetError::Video { .. })));
    let v = ds.validate().unwrap();
    assert!(!v.is_valid());
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert_eq!(v.frames, 3);
}

// ---- bad input: a named error, never a crash, nothing written lost ----

fn open_err(root: &Path) -> String {
    Dataset::open(root).unwrap_err().to_string()
}

#[test]
fn missing_or_unknown_metadata_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let e = open_err(root);
    assert!(
        e.contains("meta/info.json") && e.contains("No such file"),
        "{e}"
    );

    write_v21(root, &[2]);
    let info_path = root.join("meta/info.json");
    let mut info = json_file(&info_path);
    info["codebase_version"] = json!("v1.6");
    std::fs::write(&info_path, info.to_string()).unwrap();
    let e = open_err(root);
    assert!(
        e.contains("codebase_version") && e.contains("v1.6") && e.contains("v3.0"),
        "{e}"
    );

    info["codebase_version"] = json!("v2.1");
    info["total_episodes"] = json!(3);
    std::fs::write(&info_path, info.to_string()).unwrap();
    let e = open_err(root);
    assert!(
        e.contains("episodes.jsonl") && e.contains("3 episodes") && e.contains("found 1"),
        "{e}"
    );

    info["total_episodes"] = json!(1);
    std::fs::write(&info_path, info.to_string()).unwrap();
    std::fs::write(
        root.join("meta/episodes.jsonl"),
        "{\"episode_index\": 0, \"length\": \"two\"}\n",
    )
    .unwrap();
    let e = open_err(root);
    assert!(
        e.contains("episodes.jsonl") && e.contains("line 1") && e.contains("length"),
        "{e}"
    );
}

#[test]
fn data_that_does_not_match_the_features_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_v21(root, &[4]);
    let data = root.join("data/chunk-000/episode_000000.parquet");
    let info_path = root.join("meta/info.json");
    let original = std::fs::read(&info_path).unwrap();

    // Features that don't match the parquet schema.
    let mut info = json_file(&info_path);
    info["features"]["observation.state"]["shape"] = json!([7]);
    std::fs::write(&info_path, info.to_string()).unwrap();
    let ds = Dataset::open(root).unwrap();
    let e = ds.episode(0).unwrap_err().to_string();
    assert!(
        e.contains("episode_000000.parquet: column `observation.state`")
            && e.contains("expected 7 values per row, found 2"),
        "{e}"
    );
    info["features"]["extra.sensor"] = json!({"dtype": "float32", "shape": [3], "names": null});
    info["features"]["observation.state"]["shape"] = json!([2]);
    std::fs::write(&info_path, info.to_string()).unwrap();
    let e = Dataset::open(root)
        .unwrap()
        .frame("observation.image", 0, 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("extra.sensor") && e.contains("no such column"),
        "{e}"
    );

    // Wrong image shape.
    std::fs::write(&info_path, &original).unwrap();
    let mut info = json_file(&info_path);
    info["features"]["observation.image"]["shape"] = json!([8, 8, 3]);
    std::fs::write(&info_path, info.to_string()).unwrap();
    let e = Dataset::open(root)
        .unwrap()
        .frame("observation.image", 0, 2)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("frame 2") && e.contains("8x8") && e.contains("6x4"),
        "{e}"
    );
    std::fs::write(&info_path, &original).unwrap();

    // Images that are neither PNG nor JPEG.
    let mut cols = frame_columns(0, 4, 0, 6, 4);
    cols[0].1 = image_column(&vec![b"GIF89a not a png".to_vec(); 4]);
    write_parquet(&data, cols);
    let ds = Dataset::open(root).unwrap();
    let e = ds.frame("observation.image", 0, 1).unwrap_err().to_string();
    assert!(
        e.contains("episode_000000.parquet") && e.contains("PNG or JPEG") && e.contains("47 49 46"),
        "{e}"
    );
    assert!(ds.validate().is_err());

    // Truncated and corrupt parquet.
    write_parquet(&data, frame_columns(0, 4, 0, 6, 4));
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
    let e = Dataset::open(root)
        .unwrap()
        .episode(0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("episode_000000.parquet") && e.contains("cannot read as parquet"),
        "{e}"
    );
    let mut corrupt = bytes.clone();
    for b in corrupt.iter_mut().skip(8).take(bytes.len() / 2) {
        *b ^= 0x5a;
    }
    std::fs::write(&data, &corrupt).unwrap();
    let e = Dataset::open(root)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("episode_000000.parquet"), "{e}");
}

#[test]
fn writing_into_a_folder_with_other_files_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let scene = load_scene(&SceneSource::parse("push-t"), None).unwrap();
    let err = DatasetWriter::create(tmp.path(), DatasetSpec::from_scene(scene.spec())).unwrap_err();
    assert!(matches!(err, DatasetError::NotEmpty { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_save_whose_renames_failed_partway_can_be_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    let mut w = record(&dir, 2, 8);
    // stats.json cannot be replaced (a non-empty folder stands in its way): the episode's data
    // and metadata files are renamed, stats.json and info.json are not.
    let stats = dir.join("meta/stats.json");
    let saved = std::fs::read(&stats).unwrap();
    std::fs::remove_file(&stats).unwrap();
    std::fs::create_dir(&stats).unwrap();
    std::fs::write(stats.join("x"), b"x").unwrap();
    let mut scene = load_scene(&SceneSource::parse("push-t"), Some((32, 32))).unwrap();
    let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
    let plan = EpisodePlan {
        policy_name: "heuristic",
        seed: 2,
        max_steps: 8,
        task: TASK,
    };
    assert!(record_scene_episode(&mut w, scene.as_mut(), policy.as_mut(), &plan, |_| {}).is_err());
    std::fs::remove_dir_all(&stats).unwrap();
    std::fs::write(&stats, saved).unwrap();
    assert_eq!(Dataset::open(&dir).unwrap().episodes().len(), 2);

    // The retry keeps only the committed rows of the files it appends to.
    record_scene_episode(&mut w, scene.as_mut(), policy.as_mut(), &plan, |_| {}).unwrap();
    let ds = Dataset::open(&dir).unwrap();
    assert_eq!((ds.episodes().len(), ds.uncommitted_episodes()), (3, 0));
    ds.validate().unwrap();
    let once = tmp.path().join("once");
    record(&once, 3, 8);
    for rel in [
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/info.json",
    ] {
        assert_eq!(
            std::fs::read(once.join(rel)).unwrap(),
            std::fs::read(dir.join(rel)).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn a_task_only_an_uncommitted_episode_used_is_dropped_on_append() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ds");
    let mut w = record(&dir, 2, 8);
    let committed_info = std::fs::read(dir.join("meta/info.json")).unwrap();
    let mut scene = load_scene(&SceneSource::parse("push-t"), Some((32, 32))).unwrap();
    let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
    let plan = EpisodePlan {
        policy_name: "heuristic",
        seed: 2,
        max_steps: 8,
        task: "another task",
    };
    record_scene_episode(&mut w, scene.as_mut(), policy.as_mut(), &plan, |_| {}).unwrap();
    drop(w);
    // As if killed before info.json was renamed.
    std::fs::write(dir.join("meta/info.json"), committed_info).unwrap();
    assert_eq!(
        Dataset::open(&dir).unwrap().tasks().len(),
        2,
        "a leftover task"
    );

    record(&dir, 3, 8);
    let once = tmp.path().join("once");
    record(&once, 3, 8);
    assert_eq!(Dataset::open(&dir).unwrap().tasks(), [TASK.to_owned()]);
    assert_eq!(
        std::fs::read(once.join("meta/tasks.parquet")).unwrap(),
        std::fs::read(dir.join("meta/tasks.parquet")).unwrap()
    );
}
