use std::path::PathBuf;

/// Everything that can go wrong reading or writing a dataset. Messages name the file (and,
/// where there is one, the field or column), what was expected and what was found.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: not valid JSON: {message}", file.display())]
    Json { file: PathBuf, message: String },

    #[error("{}: {}: expected {expected}, found {found}", file.display(), name_field(field))]
    Invalid {
        file: PathBuf,
        field: String,
        expected: String,
        found: String,
    },

    /// A parquet file that cannot be read: truncated, corrupt, or not parquet at all.
    #[error("{}: cannot read as parquet ({what}): {message}", file.display())]
    Parquet {
        file: PathBuf,
        what: String,
        message: String,
    },

    /// A stored image that cannot be decoded, or whose size is not the feature's shape.
    #[error(
        "{}: column `{feature}`, episode {episode}, frame {frame}: expected {expected}, found {found}",
        file.display()
    )]
    Image {
        file: PathBuf,
        feature: String,
        episode: u64,
        frame: u64,
        expected: String,
        found: String,
    },

    /// A video file that cannot be read, or holds no frame at a requested timestamp.
    #[error(
        "{}: feature `{feature}`, episode {episode}{}: {message}",
        file.display(),
        timestamp.map_or(String::new(), |t| format!(", timestamp {t:.4} s"))
    )]
    Video {
        file: PathBuf,
        feature: String,
        episode: u64,
        /// Seconds from the start of the episode (the `timestamp` column).
        timestamp: Option<f64>,
        message: String,
    },

    #[error("{what} {index} is out of range: {available}")]
    OutOfRange {
        what: &'static str,
        index: u64,
        available: String,
    },

    #[error("{}: already holds a dataset; append to it instead of creating a new one", dir.display())]
    Exists { dir: PathBuf },

    #[error("{}: {message}", dir.display())]
    NotEmpty { dir: PathBuf, message: String },

    /// Another process (or another writer in this one) is writing the dataset.
    #[error(
        "{}: another writer has this dataset open: {holder}; wait for it to finish (or stop \
         it) and try again",
        dir.display()
    )]
    Locked { dir: PathBuf, holder: String },

    /// The caller handed the writer something that does not fit the dataset's features.
    #[error("dataset {}: {what}: expected {expected}, found {found}", dir.display())]
    BadInput {
        dir: PathBuf,
        what: String,
        expected: String,
        found: String,
    },
}

/// `field `x`` for a plain field name; a phrase such as "column `x`, row 3" as it is.
fn name_field(field: &str) -> String {
    if field.contains(' ') || field.contains('`') {
        field.to_owned()
    } else {
        format!("field `{field}`")
    }
}

impl DatasetError {
    pub(crate) fn io(file: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            file: file.into(),
            source,
        }
    }

    pub(crate) fn invalid(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            file: file.into(),
            field: field.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(crate) fn parquet(
        file: impl Into<PathBuf>,
        what: impl Into<String>,
        err: impl std::fmt::Display,
    ) -> Self {
        Self::Parquet {
            file: file.into(),
            what: what.into(),
            message: err.to_string(),
        }
    }
}
