//! Loading and validating scene files: every error names the file and the field.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::SceneError;

/// Parses a TOML scene file; unknown and missing fields are errors (serde's
/// `deny_unknown_fields`), reported with the file, line and key.
pub(crate) fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, SceneError> {
    toml::from_str(text).map_err(|e| SceneError::Parse {
        file: file.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Range and consistency checks on parsed values, collecting the file for the error.
pub(crate) struct Check<'a> {
    pub file: &'a Path,
}

impl Check<'_> {
    fn fail(
        &self,
        field: &str,
        expected: impl Into<String>,
        found: impl std::fmt::Display,
    ) -> SceneError {
        SceneError::Invalid {
            file: PathBuf::from(self.file),
            field: field.to_owned(),
            expected: expected.into(),
            found: found.to_string(),
        }
    }

    pub fn positive(&self, field: &str, value: f64) -> Result<(), SceneError> {
        if value.is_finite() && value > 0.0 {
            Ok(())
        } else {
            Err(self.fail(field, "a finite number > 0", value))
        }
    }

    pub fn non_negative(&self, field: &str, value: f64) -> Result<(), SceneError> {
        if value.is_finite() && value >= 0.0 {
            Ok(())
        } else {
            Err(self.fail(field, "a finite number >= 0", value))
        }
    }

    pub fn finite(&self, field: &str, value: f64) -> Result<(), SceneError> {
        if value.is_finite() {
            Ok(())
        } else {
            Err(self.fail(field, "a finite number", value))
        }
    }

    pub fn in_range(&self, field: &str, value: f64, low: f64, high: f64) -> Result<(), SceneError> {
        if value.is_finite() && (low..=high).contains(&value) {
            Ok(())
        } else {
            Err(self.fail(field, format!("a number in [{low}, {high}]"), value))
        }
    }

    /// `[low, high]` with low < high (ranges used for sampling and limits).
    pub fn interval(&self, field: &str, range: [f64; 2]) -> Result<(), SceneError> {
        if range.iter().all(|v| v.is_finite()) && range[0] < range[1] {
            Ok(())
        } else {
            Err(self.fail(
                field,
                "[low, high] with low < high",
                format!("[{}, {}]", range[0], range[1]),
            ))
        }
    }

    pub fn frame_size(&self, width: u32, height: u32) -> Result<(), SceneError> {
        for (field, v) in [("frame.width", width), ("frame.height", height)] {
            if !(8..=4096).contains(&v) {
                return Err(self.fail(field, "a size in pixels in [8, 4096]", v));
            }
        }
        Ok(())
    }

    /// Physics substeps per control step must be a whole number.
    pub fn substeps(&self, sim_hz: f64, fps: f64) -> Result<u32, SceneError> {
        self.positive("fps", fps)?;
        self.positive("world.sim_hz", sim_hz)?;
        let ratio = sim_hz / fps;
        let n = ratio.round();
        if (ratio - n).abs() > 1e-9 || !(1.0..=10_000.0).contains(&n) {
            return Err(self.fail(
                "world.sim_hz",
                format!("a whole multiple of fps ({fps})"),
                sim_hz,
            ));
        }
        Ok(n as u32)
    }

    pub fn kind(&self, found: &str, expected: &str) -> Result<(), SceneError> {
        if found == expected {
            Ok(())
        } else {
            Err(self.fail("kind", format!("\"{expected}\""), format!("\"{found}\"")))
        }
    }
}
