//! PyTorch zip checkpoints (`torch.save`), read through candle's pickle reader after checks
//! that no length in the file asks for more memory than the file holds.
//!
//! candle's reader trusts two kinds of length: a pickle string's length prefix (it allocates
//! the string before reading it) and a tensor's shape (it allocates the tensor before reading
//! its storage). A corrupt or hostile file could make either ask for gigabytes; fuzzing found
//! both (up to 4 GiB from a 781-byte file). [`open`] walks the pickle's opcodes, checking every
//! length-prefixed argument against the bytes that follow, and [`checked_get`] checks a
//! tensor's bytes against its storage entry before reading it.

use std::io::Read as _;
use std::path::Path;

use candle_core::Tensor;
use candle_core::pickle::PthTensors;

use crate::error::{ModelError, Result};

fn bad(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Weights {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Opens a PyTorch zip checkpoint after checking its pickle (see the module docs).
pub fn open(path: &Path) -> Result<PthTensors> {
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file_len = file.metadata().map_or(u64::MAX, |m| m.len());
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(path, format!("not a PyTorch zip checkpoint: {e}")))?;
    let pickles: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| n.ends_with("data.pkl"))
        .collect();
    for name in pickles {
        let entry = zip
            .by_name(&name)
            .map_err(|e| bad(path, format!("{name}: {e}")))?;
        let mut bytes = Vec::new();
        // At most the file's length: a stored entry cannot hold more, a compressed one is read
        // only so far (and then rejected as cut short).
        entry
            .take(file_len.saturating_mul(16))
            .read_to_end(&mut bytes)
            .map_err(|e| bad(path, format!("{name}: {e}")))?;
        check_pickle(&bytes).map_err(|reason| bad(path, format!("{name}: {reason}")))?;
    }
    PthTensors::new(path, None).map_err(|e| bad(path, e.to_string()))
}

/// Reads tensor `name` after checking that its storage entry holds the bytes its shape says.
pub fn checked_get(path: &Path, pth: &PthTensors, name: &str) -> Result<Tensor> {
    let info = pth
        .tensor_infos()
        .get(name)
        .ok_or_else(|| bad(path, format!("tensor `{name}` is not in the checkpoint")))?;
    let needed = info
        .layout
        .shape()
        .elem_count()
        .checked_add(info.layout.start_offset())
        .and_then(|n| n.checked_mul(info.dtype.size_in_bytes()))
        .ok_or_else(|| bad(path, format!("tensor `{name}`: its shape overflows")))?;
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| bad(path, e.to_string()))?;
    let stored = zip
        .by_name(&info.path)
        .map_err(|e| bad(path, format!("tensor `{name}`: storage {}: {e}", info.path)))?
        .size();
    if needed as u64 > stored {
        return Err(bad(
            path,
            format!(
                "tensor `{name}`: shape {:?} of {:?} needs {needed} bytes, its storage {} holds \
                 {stored}",
                info.layout.dims(),
                info.dtype,
                info.path
            ),
        ));
    }
    pth.get(name)
        .map_err(|e| bad(path, format!("tensor `{name}`: {e}")))?
        .ok_or_else(|| bad(path, format!("tensor `{name}` listed but not readable")))
}

/// Walks pickle opcodes (protocols 0-5) to the STOP, checking that every argument, and every
/// length-prefixed string or bytes, lies within `bytes`. Opcodes are not interpreted; one this
/// walker does not know ends the check (candle's reader rejects those itself).
fn check_pickle(bytes: &[u8]) -> std::result::Result<(), String> {
    let mut at = 0usize;
    let take = |at: &mut usize, n: u64, what: &str| -> std::result::Result<(), String> {
        let left = (bytes.len() - *at) as u64;
        if n > left {
            return Err(format!(
                "{what} at byte {} says {n} bytes follow, {left} do",
                *at
            ));
        }
        *at += n as usize;
        Ok(())
    };
    let le = |b: &[u8]| {
        b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    };
    let line = |at: &mut usize| -> std::result::Result<(), String> {
        match bytes[*at..].iter().position(|&b| b == b'\n') {
            Some(n) => {
                *at += n + 1;
                Ok(())
            }
            None => Err(format!("a text argument at byte {} has no end", *at)),
        }
    };
    while at < bytes.len() {
        let op = bytes[at];
        at += 1;
        match op {
            b'.' => return Ok(()),
            // One-byte, two-byte, four-byte and eight-byte fixed arguments.
            b'K' | b'q' | b'h' | 0x80 | 0x82 => take(&mut at, 1, "an opcode argument")?,
            b'M' | 0x83 => take(&mut at, 2, "an opcode argument")?,
            b'J' | b'r' | b'j' | 0x84 => take(&mut at, 4, "an opcode argument")?,
            b'G' | 0x95 => take(&mut at, 8, "an opcode argument")?,
            // Length-prefixed: 1-, 4- and 8-byte lengths.
            b'U' | 0x8c | b'C' | 0x8a => {
                take(&mut at, 1, "a length")?;
                let n = le(&bytes[at - 1..at]);
                take(&mut at, n, "a string")?;
            }
            b'T' | b'X' | b'B' | 0x8b => {
                take(&mut at, 4, "a length")?;
                let n = le(&bytes[at - 4..at]);
                take(&mut at, n, "a string")?;
            }
            0x8d | 0x8e | 0x96 => {
                take(&mut at, 8, "a length")?;
                let n = le(&bytes[at - 8..at]);
                take(&mut at, n, "a string")?;
            }
            // Newline-terminated text arguments (two lines for GLOBAL and INST).
            b'I' | b'L' | b'F' | b'S' | b'V' | b'p' | b'g' | b'P' => line(&mut at)?,
            b'c' | b'i' => {
                line(&mut at)?;
                line(&mut at)?;
            }
            // Opcodes without arguments.
            b'(' | b'0' | b'1' | b'2' | b'N' | 0x88 | 0x89 | b't' | 0x85 | 0x86 | 0x87 | b')'
            | b']' | b'a' | b'e' | b'l' | b'}' | b'd' | b's' | b'u' | b'b' | b'R' | 0x81 | 0x92
            | b'o' | b'Q' | 0x93 | 0x94 | 0x8f | 0x90 | 0x91 | 0x97 | 0x98 => {}
            _ => return Ok(()),
        }
    }
    Err("the pickle ends without a STOP".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickle_lengths_beyond_the_data_are_refused() {
        // PROTO 2, BINUNICODE "ab", STOP.
        assert_eq!(check_pickle(b"\x80\x02X\x02\x00\x00\x00ab."), Ok(()));
        let huge = b"\x80\x02X\xff\xff\xff\xffab.";
        let err = check_pickle(huge).unwrap_err();
        assert!(err.contains("4294967295 bytes follow, 3 do"), "{err}");
        assert!(check_pickle(b"\x80\x02\x8e\x00\x00\x00\x00\x00\x00\x00\x01.").is_err());
        assert!(check_pickle(b"\x80\x02cmodule\nname").is_err());
        assert!(check_pickle(b"\x80\x02N").is_err(), "no STOP");
    }
}
