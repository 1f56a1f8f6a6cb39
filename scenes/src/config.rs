//! Loading and validating scene files: every error names the file and the field.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::SceneError;
use crate::spec::Rgb;

/// Parses a TOML scene file; unknown and missing fields are errors (serde's
/// `deny_unknown_fields`), reported with the file, line and key.
/// Parses a scene file with [`parse`], then checks it with `validate` (which names the field).
pub(crate) fn parse_checked<T: DeserializeOwned>(
    file: &Path,
    text: &str,
    validate: impl FnOnce(&T, &Path) -> Result<(), SceneError>,
) -> Result<T, SceneError> {
    let cfg: T = parse(file, text)?;
    validate(&cfg, file)?;
    Ok(cfg)
}

/// The largest length or coordinate a scene file may give, in pixels (the worlds are 512).
pub const MAX_EXTENT: f64 = 100_000.0;

pub(crate) fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, SceneError> {
    dreamyard_fieldpath::from_toml_str(text).map_err(|e| SceneError::Parse {
        file: file.to_owned(),
        // toml's own message shows the line; the path names the field whatever the section
        // layout (`[objects.block]`, inline tables, arrays of tables).
        message: if e.path.is_root() {
            e.inner.to_string().trim_end().to_owned()
        } else {
            format!("field `{}`: {}", e.path, e.inner.to_string().trim_end())
        },
    })
}

// Sections every scene file has.

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameConfig {
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldConfig {
    pub size: f64,
    pub sim_hz: f64,
    pub background: Rgb,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WallsConfig {
    pub radius: f64,
    pub color: Rgb,
    pub segments: Vec<[[f64; 2]; 2]>,
}

impl FrameConfig {
    /// Renders at `size` instead of the file's frame size, when given.
    pub(crate) fn override_size(
        &mut self,
        file: &Path,
        size: Option<(u32, u32)>,
    ) -> Result<(), SceneError> {
        if let Some((width, height)) = size {
            Check { file }.frame_size(width, height)?;
            (self.width, self.height) = (width, height);
        }
        Ok(())
    }
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

    /// A length or a distance in pixels: > 0 and at most [`MAX_EXTENT`] (the renderer and the
    /// physics engine overflow far beyond; found by fuzzing: a link 1.8e19 px long panicked
    /// in the rasteriser).
    pub fn extent(&self, field: &str, value: f64) -> Result<(), SceneError> {
        if value.is_finite() && value > 0.0 && value <= MAX_EXTENT {
            Ok(())
        } else {
            Err(self.fail(
                field,
                format!("a length in pixels > 0 and at most {MAX_EXTENT}"),
                value,
            ))
        }
    }

    /// A position in pixels: within [`MAX_EXTENT`] of the world's origin.
    pub fn coordinate(&self, field: &str, value: f64) -> Result<(), SceneError> {
        self.in_range(field, value, -MAX_EXTENT, MAX_EXTENT)
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

    /// The sections every scene file shares: fps, frame, world and walls.
    pub fn world(
        &self,
        fps: f64,
        frame: &FrameConfig,
        world: &WorldConfig,
        walls: &WallsConfig,
    ) -> Result<u32, SceneError> {
        let substeps = self.substeps(world.sim_hz, fps)?;
        self.frame_size(frame.width, frame.height)?;
        self.extent("world.size", world.size)?;
        self.in_range("walls.radius", walls.radius, 0.0, MAX_EXTENT)?;
        for (i, seg) in walls.segments.iter().enumerate() {
            for p in seg.iter().flatten() {
                self.coordinate(&format!("walls.segments[{i}]"), *p)?;
            }
        }
        Ok(substeps)
    }

    pub fn kind(&self, found: &str, expected: &str) -> Result<(), SceneError> {
        if found == expected {
            Ok(())
        } else {
            Err(self.fail("kind", format!("\"{expected}\""), format!("\"{found}\"")))
        }
    }
}
