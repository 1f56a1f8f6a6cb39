//! Reading whole (small) parquet tables and their columns: the metadata files of both
//! codebase versions and the data files' columns.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray as _, RecordBatch, RecordBatchReader as _};
use arrow::datatypes::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::super::DatasetError;
use super::super::columns::{is_integer, numeric_rows};

pub(super) fn column<'a>(
    path: &Path,
    batch: &'a RecordBatch,
    key: &str,
) -> Result<&'a ArrayRef, DatasetError> {
    batch.column_by_name(key).ok_or_else(|| {
        DatasetError::invalid(
            path,
            format!("column `{key}`"),
            "a column",
            "no such column",
        )
    })
}

pub(super) fn read_all(
    path: &Path,
    reader: ParquetRecordBatchReader,
) -> Result<RecordBatch, DatasetError> {
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| DatasetError::parquet(path, "reading rows", e))?;
    arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| DatasetError::parquet(path, "joining row batches", e))
}

/// Reads a whole (small) parquet file, optionally only the named top-level columns.
pub(super) fn read_parquet_file(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<RecordBatch, DatasetError> {
    let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| DatasetError::parquet(path, "footer and schema", e))?;
    if let Some(cols) = columns {
        let schema = builder.schema().clone();
        let roots: Vec<usize> = cols
            .iter()
            .filter_map(|c| schema.index_of(c).ok())
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    let reader = builder
        .build()
        .map_err(|e| DatasetError::parquet(path, "reading rows", e))?;
    read_all(path, reader)
}

pub(super) fn find_episode_row(
    path: &Path,
    batch: &RecordBatch,
    episode: u64,
) -> Result<usize, DatasetError> {
    let idx = numeric_rows(
        path,
        "episode_index",
        column(path, batch, "episode_index")?,
        1,
    )?;
    idx.iter()
        .position(|v| *v as u64 == episode)
        .ok_or_else(|| {
            DatasetError::invalid(
                path,
                "episode_index",
                format!("a row for episode {episode}"),
                "none",
            )
        })
}

/// Integers of a column (any integer type).
pub(super) fn int_column(
    path: &Path,
    batch: &RecordBatch,
    key: &str,
) -> Result<Vec<u64>, DatasetError> {
    let array = column(path, batch, key)?;
    if !is_integer(array.data_type()) {
        return Err(DatasetError::invalid(
            path,
            format!("column `{key}`"),
            "integers",
            array.data_type().to_string(),
        ));
    }
    let values = numeric_rows(path, key, array, 1)?;
    values
        .iter()
        .map(|v| {
            if *v >= 0.0 {
                Ok(*v as u64)
            } else {
                Err(DatasetError::invalid(
                    path,
                    format!("column `{key}`"),
                    "non-negative integers",
                    v.to_string(),
                ))
            }
        })
        .collect()
}

/// Finite numbers of a column (any numeric type).
pub(super) fn float_column(
    path: &Path,
    batch: &RecordBatch,
    key: &str,
) -> Result<Vec<f64>, DatasetError> {
    let values = numeric_rows(path, key, column(path, batch, key)?, 1)?;
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(DatasetError::invalid(
            path,
            format!("column `{key}`"),
            "finite numbers",
            bad.to_string(),
        ));
    }
    Ok(values)
}

pub(super) fn string_lists(
    path: &Path,
    batch: &RecordBatch,
    key: &str,
) -> Result<Vec<Vec<String>>, DatasetError> {
    let array = column(path, batch, key)?;
    let bad = || {
        DatasetError::invalid(
            path,
            format!("column `{key}`"),
            "lists of strings",
            array.data_type().to_string(),
        )
    };
    let mut out = Vec::with_capacity(array.len());
    for r in 0..array.len() {
        let item = match array.data_type() {
            DataType::List(_) => array.as_list::<i32>().value(r),
            DataType::LargeList(_) => array.as_list::<i64>().value(r),
            _ => return Err(bad()),
        };
        out.push(utf8_values(item.as_ref()).ok_or_else(bad)?);
    }
    Ok(out)
}

pub(super) fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut out = Vec::new();
    let Ok(chunks) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for chunk in chunks {
        let chunk = chunk.map_err(|e| DatasetError::io(dir, e))?.path();
        if !chunk.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&chunk).map_err(|e| DatasetError::io(&chunk, e))? {
            let f = f.map_err(|e| DatasetError::io(&chunk, e))?.path();
            if f.extension().is_some_and(|x| x == "parquet") {
                out.push(f);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The strings of a `Utf8` or `LargeUtf8` array (nulls as empty strings); `None` for another
/// type.
pub(super) fn utf8_values(array: &dyn Array) -> Option<Vec<String>> {
    let owned = |s: Option<&str>| s.unwrap_or_default().to_owned();
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().iter().map(owned).collect()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().iter().map(owned).collect()),
        _ => None,
    }
}
