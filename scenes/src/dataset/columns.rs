//! Arrow types for LeRobot features, the `huggingface` schema metadata the `datasets`
//! library reads, checks of a parquet schema against `info.json`, and reading numeric
//! columns whatever list or scalar type they were stored with.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray as _, BinaryArray, LargeBinaryArray};
use arrow::datatypes::{DataType, Field, Float64Type};
use serde_json::{Value, json};

use super::DatasetError;
use super::info::Feature;

/// The element type of `datasets.Value(dtype)` for a LeRobot dtype, if it is numeric or bool.
pub fn value_type(dtype: &str) -> Option<DataType> {
    Some(match dtype {
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "float16" => DataType::Float16,
        "int64" => DataType::Int64,
        "int32" => DataType::Int32,
        "int16" => DataType::Int16,
        "int8" => DataType::Int8,
        "uint64" => DataType::UInt64,
        "uint32" => DataType::UInt32,
        "uint16" => DataType::UInt16,
        "uint8" => DataType::UInt8,
        "bool" => DataType::Boolean,
        "string" => DataType::Utf8,
        _ => return None,
    })
}

/// `datasets.Image()`'s storage: `struct<bytes: binary, path: string>`.
pub fn image_type() -> DataType {
    DataType::Struct(
        vec![
            Field::new("bytes", DataType::Binary, true),
            Field::new("path", DataType::Utf8, true),
        ]
        .into(),
    )
}

/// The arrow type LeRobot (through `get_hf_features_from_features`) stores a 0- or 1-D
/// feature with: a scalar for shape `[1]`, a fixed-size list otherwise.
pub fn arrow_type(feature: &Feature) -> Option<DataType> {
    if feature.dtype == "image" {
        return Some(image_type());
    }
    let item = value_type(&feature.dtype)?;
    match feature.shape.as_slice() {
        [1] => Some(item),
        [n] => Some(DataType::FixedSizeList(
            Arc::new(Field::new("item", item, true)),
            i32::try_from(*n).ok()?,
        )),
        _ => None,
    }
}

/// The `datasets` feature JSON (`Features.to_dict()`) for a 0- or 1-D feature.
pub fn hf_feature(feature: &Feature) -> Value {
    if feature.dtype == "image" {
        return json!({"_type": "Image"});
    }
    let value = json!({"dtype": feature.dtype, "_type": "Value"});
    match feature.shape.as_slice() {
        [1] => value,
        [n] => json!({"feature": value, "length": n, "_type": "List"}),
        _ => Value::Null,
    }
}

/// Whether an arrow type is one of the integer types (signed or unsigned, any width).
pub fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// What kind of numbers an arrow type holds, for comparing with a LeRobot dtype.
fn kind_of(t: &DataType) -> &'static str {
    match t {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "float",
        t if is_integer(t) => "int",
        DataType::Boolean => "bool",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        _ => "other",
    }
}

fn dtype_kind(dtype: &str) -> &'static str {
    value_type(dtype).map_or("other", |t| kind_of(&t))
}

fn list_item(t: &DataType) -> Option<(&DataType, Option<i32>)> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            Some((f.data_type(), None))
        }
        DataType::FixedSizeList(f, n) => Some((f.data_type(), Some(*n))),
        _ => None,
    }
}

/// Checks that a parquet column can hold `feature` as LeRobot stores it; the error names the
/// file, the column, the feature's dtype and shape and the column's arrow type.
pub fn check_column(
    file: &Path,
    key: &str,
    feature: &Feature,
    found: Option<&DataType>,
) -> Result<(), DatasetError> {
    let expected = if feature.dtype == "image" {
        "struct<bytes: binary, path: string> (dtype image)".to_owned()
    } else {
        format!("{} values of shape {:?}", feature.dtype, feature.shape)
    };
    let field = format!("column `{key}`");
    let Some(found) = found else {
        return Err(DatasetError::invalid(
            file,
            field,
            format!("{expected} as meta/info.json declares"),
            "no such column",
        ));
    };
    let mismatch =
        || DatasetError::invalid(file, field.clone(), expected.clone(), found.to_string());
    if feature.dtype == "image" {
        let DataType::Struct(fields) = found else {
            return Err(mismatch());
        };
        let bytes_ok = fields.iter().any(|f| {
            f.name() == "bytes"
                && matches!(
                    f.data_type(),
                    DataType::Binary | DataType::LargeBinary | DataType::BinaryView
                )
        });
        return if bytes_ok { Ok(()) } else { Err(mismatch()) };
    }
    let want = dtype_kind(&feature.dtype);
    if want == "other" {
        // A dtype Dreamyard does not interpret (e.g. an Array2D); it is not read.
        return Ok(());
    }
    let elements: usize = feature.shape.iter().product();
    match list_item(found) {
        Some((item, fixed)) => {
            let len_ok = fixed.is_none_or(|n| n as usize == elements);
            if kind_of(item) == want && len_ok {
                Ok(())
            } else {
                Err(mismatch())
            }
        }
        None if elements == 1 && kind_of(found) == want => Ok(()),
        None => Err(mismatch()),
    }
}

/// Reads a numeric column (scalars or lists of numbers) as `rows x dim` f64 values,
/// checking that every row has `dim` values.
pub fn numeric_rows(
    file: &Path,
    key: &str,
    array: &ArrayRef,
    dim: usize,
) -> Result<Vec<f64>, DatasetError> {
    let field = format!("column `{key}`");
    let to_f64 = |a: &ArrayRef| -> Result<Vec<f64>, DatasetError> {
        let cast = arrow::compute::cast(a, &DataType::Float64)
            .map_err(|e| DatasetError::invalid(file, field.clone(), "numbers", e.to_string()))?;
        let values = cast.as_primitive::<Float64Type>();
        if values.null_count() > 0 {
            return Err(DatasetError::invalid(
                file,
                field.clone(),
                "a value in every row",
                format!("{} nulls", values.null_count()),
            ));
        }
        Ok(values.values().to_vec())
    };
    let wrong_len = |row: usize, n: usize| {
        DatasetError::invalid(
            file,
            field.clone(),
            format!("{dim} values per row"),
            format!("{n} values in row {row}"),
        )
    };
    match array.data_type() {
        DataType::FixedSizeList(_, n) => {
            let list = array.as_fixed_size_list();
            if *n as usize != dim {
                return Err(wrong_len(0, *n as usize));
            }
            let offset = list.offset() * dim;
            let values = to_f64(list.values())?;
            values
                .get(offset..offset + list.len() * dim)
                .map(<[f64]>::to_vec)
                .ok_or_else(|| wrong_len(0, 0))
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let mut out = Vec::with_capacity(array.len() * dim);
            for row in 0..array.len() {
                let item = match array.data_type() {
                    DataType::List(_) => array.as_list::<i32>().value(row),
                    _ => array.as_list::<i64>().value(row),
                };
                if item.len() != dim || array.is_null(row) {
                    return Err(wrong_len(row, item.len()));
                }
                out.extend(to_f64(&item)?);
            }
            Ok(out)
        }
        _ if dim == 1 => to_f64(array),
        other => Err(DatasetError::invalid(
            file,
            field,
            format!("{dim} numbers per row"),
            other.to_string(),
        )),
    }
}

/// The `bytes` of an image struct column at `row`.
pub fn image_bytes<'a>(
    file: &Path,
    key: &str,
    array: &'a ArrayRef,
    row: usize,
) -> Result<&'a [u8], DatasetError> {
    let field = format!("column `{key}`");
    let bad = |found: String| {
        DatasetError::invalid(
            file,
            field.clone(),
            "struct<bytes: binary, path: string> with the image bytes",
            found,
        )
    };
    let Some(s) = array.as_struct_opt() else {
        return Err(bad(array.data_type().to_string()));
    };
    let Some(bytes) = s.column_by_name("bytes") else {
        return Err(bad(array.data_type().to_string()));
    };
    if bytes.is_null(row) {
        let path = s
            .column_by_name("path")
            .and_then(|p| p.as_string_opt::<i32>())
            .filter(|p| !p.is_null(row))
            .map(|p| p.value(row).to_owned());
        return Err(bad(match path {
            Some(p) => format!("no embedded bytes in row {row}, only the path `{p}`"),
            None => format!("a null image in row {row}"),
        }));
    }
    if let Some(b) = bytes.as_any().downcast_ref::<BinaryArray>() {
        return Ok(b.value(row));
    }
    if let Some(b) = bytes.as_any().downcast_ref::<LargeBinaryArray>() {
        return Ok(b.value(row));
    }
    if let Some(b) = bytes.as_binary_view_opt() {
        return Ok(b.value(row));
    }
    Err(bad(array.data_type().to_string()))
}

/// All numbers of a (possibly nested) list-of-numbers array, flattened row by row.
pub fn flatten_numbers(array: &ArrayRef) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    let nested = |value: ArrayRef, out: &mut Vec<f64>| -> Option<()> {
        out.extend(flatten_numbers(&value)?);
        Some(())
    };
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            for i in 0..list.len() {
                nested(list.value(i), &mut out)?;
            }
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            for i in 0..list.len() {
                nested(list.value(i), &mut out)?;
            }
        }
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list();
            for i in 0..list.len() {
                nested(list.value(i), &mut out)?;
            }
        }
        _ => {
            let cast = arrow::compute::cast(array, &DataType::Float64).ok()?;
            out.extend(
                cast.as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.unwrap_or(f64::NAN)),
            );
        }
    }
    Some(out)
}
