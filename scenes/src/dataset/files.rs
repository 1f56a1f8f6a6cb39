//! Crash-safe file replacement: every file of an episode is written in full under a
//! temporary name (which no LeRobot glob matches), then all are renamed into place in a
//! fixed order ending with `meta/info.json`, the commit record.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::DatasetError;

/// Suffix of files being written; `append` removes any left by a killed writer.
pub const TMP_SUFFIX: &str = ".dreamyard-tmp";

/// Files written under temporary names, renamed by [`Staged::commit`]; dropped
/// uncommitted, they are removed.
#[derive(Debug, Default)]
pub struct Staged {
    files: Vec<(PathBuf, PathBuf)>,
    durable: bool,
}

impl Staged {
    pub fn new(durable: bool) -> Self {
        Self {
            files: Vec::new(),
            durable,
        }
    }

    /// The temporary name beside `dest` (its folder created), registered to be renamed into
    /// place, before anything is written, so that a failed write is cleaned up too.
    fn stage(&mut self, dest: PathBuf) -> Result<PathBuf, DatasetError> {
        let Some(parent) = dest.parent() else {
            return Err(DatasetError::io(
                dest,
                std::io::Error::other("no parent folder"),
            ));
        };
        std::fs::create_dir_all(parent).map_err(|e| DatasetError::io(parent, e))?;
        let mut name = dest.as_os_str().to_owned();
        name.push(TMP_SUFFIX);
        let tmp = PathBuf::from(name);
        self.files.push((tmp.clone(), dest));
        Ok(tmp)
    }

    /// Writes `bytes` to a temporary file beside `dest`.
    pub fn write(&mut self, dest: PathBuf, bytes: &[u8]) -> Result<(), DatasetError> {
        let tmp = self.stage(dest)?;
        let mut f = File::create(&tmp).map_err(|e| DatasetError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| DatasetError::io(&tmp, e))?;
        if self.durable {
            f.sync_all().map_err(|e| DatasetError::io(&tmp, e))?;
        }
        Ok(())
    }

    /// Has `write` make a temporary file beside `dest` (e.g. an encoder writing an MP4), to
    /// be renamed into place with the rest. An error from `write` names `dest`.
    pub fn write_with(
        &mut self,
        dest: &Path,
        write: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<(), DatasetError> {
        let tmp = self.stage(dest.to_owned())?;
        write(&tmp).map_err(|m| DatasetError::io(dest, std::io::Error::other(m)))?;
        if self.durable {
            let f = File::open(&tmp).map_err(|e| DatasetError::io(&tmp, e))?;
            f.sync_all().map_err(|e| DatasetError::io(&tmp, e))?;
        }
        Ok(())
    }

    /// Renames every staged file into place, in the order they were staged.
    pub fn commit(mut self) -> Result<(), DatasetError> {
        let files = std::mem::take(&mut self.files);
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (i, (tmp, dest)) in files.iter().enumerate() {
            if let Err(e) = std::fs::rename(tmp, dest) {
                for (rest, _) in &files[i..] {
                    let _ = std::fs::remove_file(rest);
                }
                return Err(DatasetError::io(dest, e));
            }
            if let Some(d) = dest.parent()
                && !dirs.iter().any(|x| x == d)
            {
                dirs.push(d.to_owned());
            }
        }
        if self.durable {
            // Make the renames themselves durable (power loss; a killed process needs none).
            for d in dirs {
                if let Ok(f) = File::open(&d) {
                    let _ = f.sync_all();
                }
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Serialises one record batch as a parquet file in memory.
/// Every row of a parquet file, as one batch.
pub fn read_parquet(file: &Path) -> Result<RecordBatch, DatasetError> {
    let err = |what: &str, e: parquet::errors::ParquetError| DatasetError::Parquet {
        file: file.to_owned(),
        what: what.into(),
        message: e.to_string(),
    };
    let f = File::open(file).map_err(|e| DatasetError::io(file, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| err("footer and schema", e))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| err("reading rows", e))?;
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DatasetError::Parquet {
            file: file.to_owned(),
            what: "reading rows".into(),
            message: e.to_string(),
        })?;
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| DatasetError::Parquet {
        file: file.to_owned(),
        what: "reading rows".into(),
        message: e.to_string(),
    })
}

pub fn parquet_bytes(
    batch: &RecordBatch,
    props: WriterProperties,
    file: &Path,
) -> Result<Vec<u8>, DatasetError> {
    let mut buf = Vec::new();
    let err = |e: parquet::errors::ParquetError| DatasetError::Parquet {
        file: file.to_owned(),
        what: "writing".into(),
        message: e.to_string(),
    };
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(err)?;
    w.write(batch).map_err(err)?;
    w.close().map_err(err)?;
    Ok(buf)
}

/// Removes temporary files left by a killed writer under `dir` (recursively).
pub fn remove_temporaries(dir: &Path) -> Result<usize, DatasetError> {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    for entry in entries {
        let entry = entry.map_err(|e| DatasetError::io(dir, e))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| DatasetError::io(&path, e))?;
        if ty.is_dir() {
            removed += remove_temporaries(&path)?;
        } else if path.to_string_lossy().ends_with(TMP_SUFFIX) {
            std::fs::remove_file(&path).map_err(|e| DatasetError::io(&path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}
