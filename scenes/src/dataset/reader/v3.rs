//! The episode listing of a v3.0 dataset: `meta/tasks.parquet` and the episodes metadata
//! files under `meta/episodes/` (several episodes per file), checked against `info.json`.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray as _};
use arrow::datatypes::DataType;

use super::super::DatasetError;
use super::super::info::{INFO_PATH, Info, TASKS_PATH, TemplateValue, format_template};
use super::super::keys;
use super::table::{
    float_column, int_column, parquet_files, read_parquet_file, string_lists, utf8_values,
};
use super::{EpisodeInfo, EpisodeVideo};

pub(super) fn read_tasks_parquet(root: &Path) -> Result<Vec<String>, DatasetError> {
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
    let strings = utf8_values(text.as_ref()).ok_or_else(|| {
        DatasetError::invalid(&path, "task", "strings", text.data_type().to_string())
    })?;
    tasks_by_index(&path, indices.into_iter().zip(strings))
}

pub(super) fn tasks_by_index(
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

pub(super) type Listing = (Vec<EpisodeInfo>, Vec<String>, u64);

pub(super) fn read_v3(root: &Path, info: &Info) -> Result<Listing, DatasetError> {
    let info_file = root.join(INFO_PATH);
    let tasks = if info.total_tasks > 0 || root.join(TASKS_PATH).exists() {
        read_tasks_parquet(root)?
    } else {
        Vec::new()
    };
    let video_keys = info.features.video_keys();
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
        wanted.push(format!("videos/{k}/from_timestamp"));
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
            let t = float_column(&path, &batch, &format!("videos/{k}/from_timestamp"))?;
            videos.push((*k, c, f, t));
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
            for (k, c, f, t) in &videos {
                let template = info.video_path.as_deref().unwrap_or_default();
                let vals = [
                    ("video_key", TemplateValue::Str(k)),
                    ("chunk_index", TemplateValue::Int(c[r])),
                    ("file_index", TemplateValue::Int(f[r])),
                ];
                ep_videos.push(EpisodeVideo {
                    key: (*k).to_owned(),
                    file: format_template(template, &vals, &info_file, "video_path")?,
                    from_timestamp: t[r],
                });
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
pub(super) fn check_episode_list(
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
