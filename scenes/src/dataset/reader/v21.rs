//! The episode listing of a v2.1 dataset: `meta/episodes.jsonl` and `meta/tasks.jsonl`.

use std::path::Path;

use super::super::DatasetError;
use super::super::info::{
    INFO_PATH, Info, LEGACY_EPISODES_PATH, LEGACY_TASKS_PATH, TemplateValue, format_template, show,
};
use super::v3::{check_episode_list, tasks_by_index};
use super::{EpisodeInfo, EpisodeVideo};

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

pub(super) fn read_legacy(
    root: &Path,
    info: &Info,
) -> Result<(Vec<EpisodeInfo>, Vec<String>), DatasetError> {
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
    let video_keys = info.features.video_keys();
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
            videos.push(EpisodeVideo {
                key: (*k).to_owned(),
                file: format_template(
                    template,
                    &[
                        ("episode_chunk", TemplateValue::Int(chunk)),
                        ("video_key", TemplateValue::Str(k)),
                        ("episode_index", TemplateValue::Int(index)),
                    ],
                    &info_file,
                    "video_path",
                )?,
                from_timestamp: 0.0,
            });
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
