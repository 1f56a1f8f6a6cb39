//! Error type of the model crate.
//!
//! Loader errors name the tensor or config field involved and, for shape problems, the
//! expected and the found shape, so a wrong checkpoint can be diagnosed from the message alone.

use std::path::PathBuf;

/// Errors raised while loading, building or running a world model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed inside candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A weights file could not be parsed (truncated, not a checkpoint, bad header).
    #[error("{path}: cannot read weights: {reason}")]
    Weights {
        /// The file involved.
        path: PathBuf,
        /// What went wrong, from the underlying reader.
        reason: String,
    },

    /// A config file could not be parsed or has an invalid value.
    #[error("config {origin}: field `{field}`: {reason}")]
    Config {
        /// The file (or other origin) of the config.
        origin: String,
        /// Dotted path of the offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The model needs a tensor that the weights do not have.
    #[error("missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        /// Full state-dict key.
        name: String,
        /// Shape the model expects.
        expected: Vec<usize>,
    },

    /// A tensor is present but its shape is not the one the config implies.
    #[error("tensor `{name}`: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// Full state-dict key.
        name: String,
        /// Shape the model expects.
        expected: Vec<usize>,
        /// Shape stored in the file.
        found: Vec<usize>,
    },

    /// The weights have tensors the model does not use (strict loading, like PyTorch's
    /// `load_state_dict`).
    #[error("unexpected tensor(s) in weights: {names:?}")]
    UnexpectedTensors {
        /// The unused keys (sorted).
        names: Vec<String>,
    },

    /// A tensor has a dtype that cannot be converted to the model's dtype.
    #[error("tensor `{name}`: unsupported dtype {found:?}")]
    UnsupportedDType {
        /// Full state-dict key.
        name: String,
        /// The dtype found.
        found: candle_core::DType,
    },

    /// An input given to the model does not fit its spec.
    #[error("invalid input `{what}`: expected {expected}, found {found}")]
    InvalidInput {
        /// Which argument.
        what: &'static str,
        /// What was expected.
        expected: String,
        /// What was given.
        found: String,
    },

    /// A supplied noise tensor was missing or of the wrong shape.
    #[error("noise: {0}")]
    Noise(String),
}

/// Result alias of the model crate.
pub type Result<T> = std::result::Result<T, ModelError>;

impl ModelError {
    /// Bad input data: `what` was given, `expected` was wanted, `found` came.
    pub fn input(
        what: &'static str,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Self::InvalidInput {
            what,
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(crate) fn config(
        origin: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Config {
            origin: origin.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}
