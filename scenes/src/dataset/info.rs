//! `meta/info.json`: the dataset's version, fps, features, totals and path templates, read
//! field by field so that every error names the field, and written in LeRobot's key order.

use std::path::{Path, PathBuf};

use serde::ser::{SerializeMap as _, SerializeStruct as _};
use serde_json::Value;

use super::DatasetError;

pub const INFO_PATH: &str = "meta/info.json";
pub const STATS_PATH: &str = "meta/stats.json";
pub const TASKS_PATH: &str = "meta/tasks.parquet";
pub const DREAMYARD_PATH: &str = "meta/dreamyard.json";
pub const LEGACY_EPISODES_PATH: &str = "meta/episodes.jsonl";
pub const LEGACY_TASKS_PATH: &str = "meta/tasks.jsonl";
pub const DEFAULT_DATA_PATH: &str = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
pub const EPISODES_META_PATH: &str =
    "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
/// LeRobot's defaults (`DEFAULT_CHUNK_SIZE`, `DEFAULT_*_FILE_SIZE_IN_MB`).
pub const DEFAULT_CHUNKS_SIZE: u64 = 1000;
pub const DEFAULT_VIDEO_PATH: &str =
    "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";
const DEFAULT_DATA_FILE_SIZE_IN_MB: u64 = 100;
const DEFAULT_VIDEO_FILE_SIZE_IN_MB: u64 = 200;

/// The LeRobot dataset layouts Dreamyard reads. v2.0 has v2.1's layout (its per-episode
/// stats live in `stats.json` only), so it is read the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodebaseVersion {
    V2_0,
    V2_1,
    V3_0,
}

impl CodebaseVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2_0 => "v2.0",
            Self::V2_1 => "v2.1",
            Self::V3_0 => "v3.0",
        }
    }

    /// One parquet file per episode, `episodes.jsonl`, `tasks.jsonl`.
    pub fn is_legacy(self) -> bool {
        !matches!(self, Self::V3_0)
    }
}

/// One entry of `features`: LeRobot's `{dtype, shape, names}` (plus `info` for videos).
#[derive(Clone, Debug, PartialEq)]
pub struct Feature {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// A list of names, a dict of lists (older datasets), or null.
    pub names: Value,
    pub info: Option<Value>,
}

impl Feature {
    pub fn is_visual(&self) -> bool {
        self.dtype == "image" || self.dtype == "video"
    }

    /// The names as a flat list of strings, when they are one (a dict holding exactly one
    /// list, as older datasets write `{"motors": [...]}`, counts too).
    pub fn name_list(&self) -> Option<Vec<String>> {
        let list = match &self.names {
            Value::Array(items) => items,
            Value::Object(map) if map.len() == 1 => match map.values().next() {
                Some(Value::Array(items)) => items,
                _ => return None,
            },
            _ => return None,
        };
        list.iter().map(|v| v.as_str().map(str::to_owned)).collect()
    }
}

impl serde::Serialize for Feature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Feature", 4)?;
        st.serialize_field("dtype", &self.dtype)?;
        st.serialize_field("shape", &self.shape)?;
        st.serialize_field("names", &self.names)?;
        if let Some(info) = &self.info {
            st.serialize_field("info", info)?;
        }
        st.end()
    }
}

/// Features in the order the file lists them (JSON maps here are otherwise sorted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Features(pub Vec<(String, Feature)>);

impl Features {
    /// Keys of the video features (`dtype: "video"`), in file order.
    pub fn video_keys(&self) -> Vec<&str> {
        self.iter()
            .filter(|(_, f)| f.dtype == "video")
            .map(|(k, _)| k)
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<&Feature> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, f)| f)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Feature)> {
        self.0.iter().map(|(k, f)| (k.as_str(), f))
    }
}

impl serde::Serialize for Features {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, f) in &self.0 {
            map.serialize_entry(k, f)?;
        }
        map.end()
    }
}

/// A JSON object's entries in file order.
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[derive(serde::Deserialize)]
struct FeaturesOnly {
    features: Option<Ordered>,
}

/// `meta/info.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    pub codebase_version: CodebaseVersion,
    pub fps: f64,
    pub features: Features,
    pub total_episodes: u64,
    pub total_frames: u64,
    pub total_tasks: u64,
    pub chunks_size: u64,
    pub data_path: String,
    pub video_path: Option<String>,
    pub robot_type: Option<String>,
}

/// A short rendering of a JSON value for error messages.
pub(crate) fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

pub(crate) fn read_json(file: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(file).map_err(|e| DatasetError::io(file, e))
}

impl Info {
    /// Reads `root/meta/info.json`.
    pub fn read(root: &Path) -> Result<Self, DatasetError> {
        let file = root.join(INFO_PATH);
        let text = read_json(&file)?;
        Self::parse(&file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Self, DatasetError> {
        let json_err = |e: serde_json::Error| DatasetError::Json {
            file: file.to_owned(),
            message: e.to_string(),
        };
        let v: Value = serde_json::from_str(text).map_err(json_err)?;
        let Value::Object(obj) = &v else {
            return Err(DatasetError::invalid(
                file,
                "(top level)",
                "a JSON object",
                show(&v),
            ));
        };
        let bad = |field: &str, expected: &str, found: &Value| {
            DatasetError::invalid(file, field, expected, show(found))
        };
        let missing = |field: &str, expected: &str| {
            DatasetError::invalid(file, field, expected, "nothing (the field is missing)")
        };
        let get =
            |field: &str, expected: &str| obj.get(field).ok_or_else(|| missing(field, expected));
        let uint = |field: &str| -> Result<u64, DatasetError> {
            let v = get(field, "a non-negative integer")?;
            v.as_u64()
                .ok_or_else(|| bad(field, "a non-negative integer", v))
        };
        let string = |field: &str| -> Result<String, DatasetError> {
            let v = get(field, "a string")?;
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(field, "a string", v))
        };

        let version = string("codebase_version")?;
        let codebase_version = match version.as_str() {
            "v3.0" => CodebaseVersion::V3_0,
            "v2.1" => CodebaseVersion::V2_1,
            "v2.0" => CodebaseVersion::V2_0,
            _ => {
                return Err(DatasetError::invalid(
                    file,
                    "codebase_version",
                    "\"v3.0\", \"v2.1\" or \"v2.0\"",
                    format!("\"{version}\""),
                ));
            }
        };
        let fps_v = get("fps", "a positive number")?;
        let fps = fps_v
            .as_f64()
            .filter(|f| f.is_finite() && *f > 0.0)
            .ok_or_else(|| bad("fps", "a positive number", fps_v))?;

        let ordered: FeaturesOnly =
            dreamyard_fieldpath::from_json_str(text).map_err(|e| DatasetError::Json {
                file: file.to_owned(),
                message: e.to_string(),
            })?;
        let Some(Ordered(raw_features)) = ordered.features else {
            return Err(match obj.get("features") {
                Some(v) => bad("features", "an object", v),
                None => missing("features", "an object"),
            });
        };
        let mut features = Vec::with_capacity(raw_features.len());
        for (key, fv) in raw_features {
            let field = |name: &str| format!("features.{key}.{name}");
            let Value::Object(f) = &fv else {
                return Err(bad(&format!("features.{key}"), "an object", &fv));
            };
            let dtype = match f.get("dtype") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => return Err(bad(&field("dtype"), "a string", other)),
                None => return Err(missing(&field("dtype"), "a string")),
            };
            let shape_expected = "a list of non-negative integers";
            let shape = match f.get("shape") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(&field("shape"), shape_expected, &fv["shape"]))?,
                Some(other) => return Err(bad(&field("shape"), shape_expected, other)),
                None => return Err(missing(&field("shape"), shape_expected)),
            };
            features.push((
                key,
                Feature {
                    dtype,
                    shape,
                    names: f.get("names").cloned().unwrap_or(Value::Null),
                    info: f.get("info").cloned(),
                },
            ));
        }

        let legacy = codebase_version.is_legacy();
        let video_path = match obj.get("video_path") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(bad("video_path", "a string or null", other)),
        };
        let robot_type = match obj.get("robot_type") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let info = Self {
            codebase_version,
            fps,
            features: Features(features),
            total_episodes: uint("total_episodes")?,
            total_frames: uint("total_frames")?,
            total_tasks: uint("total_tasks")?,
            chunks_size: match obj.get("chunks_size") {
                None if !legacy => DEFAULT_CHUNKS_SIZE,
                _ => uint("chunks_size")?,
            },
            data_path: string("data_path")?,
            video_path,
            robot_type,
        };
        if info.chunks_size == 0 {
            return Err(bad(
                "chunks_size",
                "a positive integer",
                &obj["chunks_size"],
            ));
        }
        for (key, f) in info.features.iter() {
            if f.dtype == "video" && info.video_path.is_none() {
                return Err(DatasetError::invalid(
                    file,
                    "video_path",
                    format!("a path template (feature `{key}` is a video)"),
                    "null",
                ));
            }
        }
        Ok(info)
    }

    /// Serialised as LeRobot's `DatasetInfo.to_dict()` writes it (4-space indent).
    pub fn to_json(&self) -> String {
        let splits = serde_json::json!({ "train": format!("0:{}", self.total_episodes) });
        let out = InfoOut {
            info: self,
            splits: &splits,
        };
        pretty(&out)
    }

    /// The first image or video feature: the camera Dreamyard shows.
    pub fn camera_keys(&self) -> Vec<&str> {
        self.features
            .iter()
            .filter(|(_, f)| f.is_visual())
            .map(|(k, _)| k)
            .collect()
    }
}

struct InfoOut<'a> {
    info: &'a Info,
    splits: &'a Value,
}

impl serde::Serialize for InfoOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.info;
        let mut st = s.serialize_struct("DatasetInfo", 13)?;
        st.serialize_field("codebase_version", i.codebase_version.as_str())?;
        // LeRobot's fps is an int; a fractional rate is written as a float.
        if i.fps.fract() == 0.0 && i.fps < 1e9 {
            st.serialize_field("fps", &(i.fps as u64))?;
        } else {
            st.serialize_field("fps", &i.fps)?;
        }
        st.serialize_field("features", &i.features)?;
        st.serialize_field("total_episodes", &i.total_episodes)?;
        st.serialize_field("total_frames", &i.total_frames)?;
        st.serialize_field("total_tasks", &i.total_tasks)?;
        st.serialize_field("chunks_size", &i.chunks_size)?;
        st.serialize_field("data_files_size_in_mb", &DEFAULT_DATA_FILE_SIZE_IN_MB)?;
        st.serialize_field("video_files_size_in_mb", &DEFAULT_VIDEO_FILE_SIZE_IN_MB)?;
        st.serialize_field("data_path", &i.data_path)?;
        st.serialize_field("video_path", &i.video_path)?;
        st.serialize_field("robot_type", &i.robot_type)?;
        st.serialize_field("splits", self.splits)?;
        st.end()
    }
}

/// JSON with Python's `json.dump(indent=4)` layout.
pub(crate) fn pretty(value: &impl serde::Serialize) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serialising plain data into a Vec cannot fail.
    if value.serialize(&mut ser).is_err() {
        return String::from("{}");
    }
    buf.push(b'\n');
    String::from_utf8(buf).unwrap_or_default()
}

/// Fills a LeRobot path template (`str.format` with `{name}` and `{name:03d}` fields).
pub fn format_template(
    template: &str,
    values: &[(&str, TemplateValue<'_>)],
    file: &Path,
    field: &str,
) -> Result<PathBuf, DatasetError> {
    let bad = |found: String| {
        DatasetError::invalid(
            file,
            field,
            format!(
                "a path template using only {{{}}}",
                values
                    .iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join("}, {")
            ),
            found,
        )
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(bad(format!("\"{template}\" (unclosed brace)")));
        };
        let spec = &after[..close];
        let (name, format) = match spec.split_once(':') {
            Some((n, f)) => (n, Some(f)),
            None => (spec, None),
        };
        let Some((_, value)) = values.iter().find(|(k, _)| *k == name) else {
            return Err(bad(format!("\"{template}\" (field {{{name}}})")));
        };
        match (value, format) {
            (TemplateValue::Int(n), None) => out.push_str(&n.to_string()),
            (TemplateValue::Int(n), Some(f)) => {
                let width = f
                    .strip_suffix('d')
                    .and_then(|w| w.strip_prefix('0'))
                    .and_then(|w| w.parse::<usize>().ok())
                    // A u64 has at most 20 digits; wider is no path (and beyond u16 makes
                    // Rust's formatter panic: found by fuzzing).
                    .filter(|w| *w <= 20)
                    .ok_or_else(|| bad(format!("\"{template}\" (format `{f}`)")))?;
                out.push_str(&format!("{n:0width$}"));
            }
            (TemplateValue::Str(s), None) => out.push_str(s),
            (TemplateValue::Str(_), Some(f)) => {
                return Err(bad(format!("\"{template}\" (format `{f}` on a string)")));
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    let path = PathBuf::from(&out);
    if path.is_absolute() || path.components().any(|c| c.as_os_str() == "..") {
        return Err(bad(format!("\"{template}\" (leaves the dataset folder)")));
    }
    Ok(path)
}

#[derive(Clone, Copy, Debug)]
pub enum TemplateValue<'a> {
    Int(u64),
    Str(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_format_like_python() {
        let p = format_template(
            "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            &[
                ("video_key", TemplateValue::Str("observation.images.top")),
                ("chunk_index", TemplateValue::Int(2)),
                ("file_index", TemplateValue::Int(17)),
            ],
            Path::new("info.json"),
            "video_path",
        )
        .unwrap();
        assert_eq!(
            p,
            PathBuf::from("videos/observation.images.top/chunk-002/file-017.mp4")
        );
        let legacy = format_template(
            "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            &[
                ("episode_chunk", TemplateValue::Int(0)),
                ("episode_index", TemplateValue::Int(42)),
            ],
            Path::new("info.json"),
            "data_path",
        )
        .unwrap();
        assert_eq!(
            legacy,
            PathBuf::from("data/chunk-000/episode_000042.parquet")
        );
        let err = format_template(
            "data/{nope}.parquet",
            &[("chunk_index", TemplateValue::Int(0))],
            Path::new("meta/info.json"),
            "data_path",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("meta/info.json") && err.contains("data_path") && err.contains("{nope}"),
            "{err}"
        );
    }

    #[test]
    fn info_round_trips_and_keeps_feature_order() {
        let text = r#"{"codebase_version": "v3.0", "fps": 10,
            "features": {"z": {"dtype": "float32", "shape": [2], "names": ["a", "b"]},
                         "a": {"dtype": "image", "shape": [4, 4, 3], "names": null}},
            "total_episodes": 1, "total_frames": 3, "total_tasks": 1,
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"}"#;
        let info = Info::parse(Path::new("info.json"), text).unwrap();
        let keys: Vec<_> = info.features.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["z", "a"]);
        assert_eq!(info.chunks_size, DEFAULT_CHUNKS_SIZE);
        let again = Info::parse(Path::new("info.json"), &info.to_json()).unwrap();
        assert_eq!(again, info);
        assert!(info.to_json().contains("\"fps\": 10,"));
    }

    #[test]
    fn bad_fields_are_named() {
        let err = |text: &str| {
            Info::parse(Path::new("x/meta/info.json"), text)
                .unwrap_err()
                .to_string()
        };
        let e = err(r#"{"codebase_version": "v1.6", "fps": 10}"#);
        assert!(
            e.contains("x/meta/info.json") && e.contains("codebase_version") && e.contains("v1.6"),
            "{e}"
        );
        let e = err(r#"{"codebase_version": "v3.0", "fps": -1}"#);
        assert!(e.contains("`fps`") && e.contains("positive"), "{e}");
        let e = err(
            r#"{"codebase_version": "v3.0", "fps": 10, "features": {"s": {"dtype": "float32", "shape": [-2]}}}"#,
        );
        assert!(e.contains("features.s.shape"), "{e}");
        let e = err(r#"{"codebase_version": "v3.0", "fps": 10, "features": {}}"#);
        assert!(e.contains("total_episodes") && e.contains("missing"), "{e}");
        let e = err("{\"codebase_version\": ");
        assert!(e.contains("not valid JSON"), "{e}");
    }
}
