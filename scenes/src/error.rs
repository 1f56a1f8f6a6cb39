use std::path::PathBuf;

/// Everything that can go wrong loading or driving a scene. Messages name the file and the
/// field, what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    #[error("{}: cannot read scene file: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// TOML syntax errors, missing or unknown fields, wrong types (the message carries the
    /// line, the key and what serde expected).
    #[error("{}: {message}", file.display())]
    Parse { file: PathBuf, message: String },

    #[error("{}: field `{field}`: expected {expected}, found {found}", file.display())]
    Invalid {
        file: PathBuf,
        field: String,
        expected: String,
        found: String,
    },

    #[error("unknown scene `{name}`; built-in scenes are: {known}")]
    UnknownScene { name: String, known: String },

    #[error("scene `{scene}`: {what}: expected {expected}, found {found}")]
    BadInput {
        scene: String,
        what: &'static str,
        expected: String,
        found: String,
    },
}
