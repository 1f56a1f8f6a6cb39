//! What a dream starts from when there is no simulator (DIAMOND's CS:GO model): a DIAMOND spawn
//! folder (`low_res.npy` and `full_res.npy`: uint8 frames T x 3 x H x W; `act.npy`: the action
//! taken at each, T x 51; `next_act.npy`: recorded actions after them), or any folder of images
//! (PNG or JPEG, in name order). Both become a [`DreamSeed`] for the session.
//!
//! The `.npy` files are read with candle's NumPy reader.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use dreamyard_model::candle_core::{DType, Tensor};
use dreamyard_scenes::{Action, Frame};

use crate::session::DreamSeed;

/// A DIAMOND spawn: context frames at both resolutions and their actions.
#[derive(Clone, Debug, PartialEq)]
pub struct Spawn {
    /// First-stage (low-resolution) frames, oldest first.
    pub low: Vec<Frame>,
    /// Full-resolution frames, one per low-resolution frame.
    pub full: Vec<Frame>,
    /// The action taken at each frame (multi-hot, 0/1).
    pub actions: Vec<Vec<f32>>,
    /// Recorded actions after the last frame (`next_act.npy`; empty if absent).
    pub next_actions: Vec<Vec<f32>>,
}

/// Whether `dir` is a DIAMOND spawn folder.
pub fn is_spawn(dir: &Path) -> bool {
    dir.join("low_res.npy").is_file() && dir.join("full_res.npy").is_file()
}

/// The spawn folder `path` names: itself, or (DIAMOND's `csgo/spawn/`) its first numbered
/// subfolder that is one.
pub fn spawn_dir(path: &Path) -> Option<PathBuf> {
    if is_spawn(path) {
        return Some(path.to_path_buf());
    }
    let mut subs: Vec<PathBuf> = std::fs::read_dir(path)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_spawn(p))
        .collect();
    // Numeric names in numeric order (DIAMOND's spawns are 0, 1, ... 10, ...).
    subs.sort_by_key(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let num = name.as_deref().and_then(|n| n.parse::<u64>().ok());
        (num.is_none(), num, name)
    });
    subs.into_iter().next()
}

/// Whether `path` holds frames to dream from: a spawn (or a folder of spawns), or a folder of
/// PNG / JPEG images that holds no model (`model.safetensors`, `config.json`, `*.pt`).
pub fn is_seed_folder(path: &Path) -> bool {
    if spawn_dir(path).is_some() {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_ascii_lowercase())
        .collect();
    let model = names
        .iter()
        .any(|n| n == "model.safetensors" || n == "config.json" || n.ends_with(".pt"));
    let image = names
        .iter()
        .any(|n| n.ends_with(".png") || n.ends_with(".jpg") || n.ends_with(".jpeg"));
    image && !model
}

fn read_npy(path: &Path) -> anyhow::Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    check_npy_size(&bytes)
        .with_context(|| format!("{}: not a whole NumPy array", path.display()))?;
    Tensor::read_npy(path)
        .with_context(|| format!("{}: cannot read as a NumPy array", path.display()))
}

/// Checks that an `.npy` file holds as many bytes as its header's shape and dtype say, before
/// candle's reader allocates that many (found by fuzzing: a corrupt shape asked for 85 TB).
fn check_npy_size(bytes: &[u8]) -> anyhow::Result<()> {
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        bail!("expected the NumPy magic `\\x93NUMPY` and a version");
    }
    let (header_len, start) = match bytes[6] {
        1 => (
            usize::from(u16::from_le_bytes([bytes[8], bytes[9]])),
            10usize,
        ),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => bail!("expected format version 1, 2 or 3, found {v}"),
    };
    let Some(header) = bytes.get(start..start.saturating_add(header_len)) else {
        bail!(
            "the header says it is {header_len} bytes, the file has {}",
            bytes.len()
        );
    };
    let header = String::from_utf8_lossy(header);
    let field = |name: &str| -> Option<String> {
        let at = header.find(&format!("'{name}'"))? + name.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest.to_owned())
    };
    let descr = field("descr").context("the header has no `descr`")?;
    let item: usize = descr
        .trim_start_matches(['\'', '"'])
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .context("the header's `descr` names no item size")?;
    let shape = field("shape").context("the header has no `shape`")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .context("the header's `shape` is not a tuple")?;
    let mut count: usize = 1;
    for dim in inner.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let d: usize = dim
            .parse()
            .with_context(|| format!("the header's `shape` has {dim:?}, expected a size"))?;
        // An empty array holds no data to check its other sizes against; readers still make
        // a row per index (found by fuzzing: shape (805306368, 0) asked for 6 GB).
        if d > 1 << 16 && inner.split(',').any(|x| x.trim() == "0") {
            bail!("the header's `shape` ({inner}) is empty but {d} long");
        }
        count = count
            .checked_mul(d)
            .context("the header's `shape` overflows")?;
    }
    let needed = count
        .checked_mul(item)
        .context("the header's `shape` overflows")?;
    let have = bytes.len() - start - header_len;
    if needed > have {
        bail!(
            "the header says shape ({inner}) of {item}-byte items, {needed} bytes, the file has \
             {have} bytes of data"
        );
    }
    Ok(())
}

/// `T x 3 x H x W` uint8 frames.
fn frames_from(path: &Path) -> anyhow::Result<Vec<Frame>> {
    let t = read_npy(path)?;
    let dims = t.dims().to_vec();
    if dims.len() != 4 || dims[1] != 3 || t.dtype() != DType::U8 {
        bail!(
            "{}: expected uint8 frames of shape (T, 3, H, W), found {:?} {dims:?}",
            path.display(),
            t.dtype()
        );
    }
    let (n, h, w) = (dims[0], dims[2], dims[3]);
    if h == 0 || w == 0 {
        bail!(
            "{}: expected frames of at least 1x1 pixels, found {w}x{h}",
            path.display()
        );
    }
    let data: Vec<u8> = t.permute((0, 2, 3, 1))?.flatten_all()?.to_vec1()?;
    Ok((0..n)
        .map(|i| Frame {
            width: w as u32,
            height: h as u32,
            data: data[i * h * w * 3..(i + 1) * h * w * 3].to_vec(),
        })
        .collect())
}

/// `T x A` actions of any numeric dtype, as rows of floats that must be 0 or 1.
fn actions_from(path: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let t = read_npy(path)?;
    let t = match t.rank() {
        1 => t.unsqueeze(0)?,
        2 => t,
        _ => bail!(
            "{}: expected actions of shape (T, A), found {:?}",
            path.display(),
            t.dims()
        ),
    };
    let rows: Vec<Vec<f32>> = t.to_dtype(DType::F32)?.to_vec2()?;
    if let Some(v) = rows.iter().flatten().find(|&&v| v != 0.0 && v != 1.0) {
        bail!(
            "{}: expected multi-hot actions (0 or 1), found {v}",
            path.display()
        );
    }
    Ok(rows)
}

/// The actions in `path` if the file exists, else none.
fn optional_actions(path: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
    if path.is_file() {
        actions_from(path)
    } else {
        Ok(Vec::new())
    }
}

/// Reads a DIAMOND spawn folder.
pub fn read_spawn(dir: &Path) -> anyhow::Result<Spawn> {
    let low = frames_from(&dir.join("low_res.npy"))?;
    let full = frames_from(&dir.join("full_res.npy"))?;
    if low.len() != full.len() || low.is_empty() {
        bail!(
            "{}: low_res.npy has {} frames and full_res.npy {}; expected the same number, at \
             least one",
            dir.display(),
            low.len(),
            full.len()
        );
    }
    let (lw, lh, fw, fh) = (low[0].width, low[0].height, full[0].width, full[0].height);
    if fw % lw != 0 || fh % lh != 0 || fw / lw != fh / lh {
        bail!(
            "{}: full_res.npy frames ({fw}x{fh}) are not a whole multiple of low_res.npy's \
             ({lw}x{lh})",
            dir.display()
        );
    }
    let act = dir.join("act.npy");
    let actions = optional_actions(&act)?;
    if !actions.is_empty() && actions.len() != low.len() {
        bail!(
            "{}: {} actions for {} frames; expected one per frame",
            act.display(),
            actions.len(),
            low.len()
        );
    }
    let next_actions = optional_actions(&dir.join("next_act.npy"))?;
    Ok(Spawn {
        low,
        full,
        actions,
        next_actions,
    })
}

/// Image files of `dir` (PNG, JPEG), in name order, decoded to RGB8.
pub fn read_image_sequence(dir: &Path) -> anyhow::Result<Vec<Frame>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!(
            "{}: no DIAMOND spawn (low_res.npy, full_res.npy) and no PNG or JPEG images",
            dir.display()
        );
    }
    paths
        .iter()
        .map(|p| {
            let bytes =
                std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
            dreamyard_scenes::dataset::decode_image(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{}: expected {}, found {}",
                    p.display(),
                    e.expected,
                    e.found
                )
            })
        })
        .collect()
}

/// The dream seed `path` names (a spawn, a folder of spawns, or a folder of images), for a
/// model whose actions have `action_dim` values.
pub fn read_seed(path: &Path, action_dim: usize) -> anyhow::Result<DreamSeed> {
    if let Some(dir) = spawn_dir(path) {
        let spawn = read_spawn(&dir)?;
        if let Some(row) = spawn.actions.first()
            && row.len() != action_dim
        {
            bail!(
                "{}: actions of {} values; the model takes {action_dim}",
                dir.join("act.npy").display(),
                row.len()
            );
        }
        let n = spawn.full.len();
        return Ok(DreamSeed {
            frames: spawn.full.into_iter().map(Arc::new).collect(),
            low: Some(spawn.low.into_iter().map(Arc::new).collect()),
            // The action taken after each frame but the last (the next step's replaces it).
            actions: spawn
                .actions
                .into_iter()
                .take(n.saturating_sub(1))
                .map(Action::Continuous)
                .collect(),
        });
    }
    Ok(DreamSeed {
        frames: read_image_sequence(path)?
            .into_iter()
            .map(Arc::new)
            .collect(),
        low: None,
        actions: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_spawn(dir: &Path, t: usize, act_values: &[f32]) {
        let dev = dreamyard_model::candle_core::Device::Cpu;
        let low: Vec<u8> = (0..t * 3 * 2 * 3).map(|i| (i % 251) as u8).collect();
        Tensor::from_vec(low, (t, 3, 2, 3), &dev)
            .unwrap()
            .write_npy(dir.join("low_res.npy"))
            .unwrap();
        let full: Vec<u8> = (0..t * 3 * 10 * 15).map(|i| (i % 13) as u8).collect();
        Tensor::from_vec(full, (t, 3, 10, 15), &dev)
            .unwrap()
            .write_npy(dir.join("full_res.npy"))
            .unwrap();
        Tensor::from_vec(act_values.to_vec(), (t, act_values.len() / t), &dev)
            .unwrap()
            .to_dtype(DType::I64)
            .unwrap()
            .write_npy(dir.join("act.npy"))
            .unwrap();
    }

    #[test]
    fn a_spawn_folder_becomes_a_two_stage_seed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("0");
        std::fs::create_dir(&dir).unwrap();
        write_spawn(&dir, 4, &[0., 1., 1., 0., 0., 0., 1., 1.]);
        // The spawn folder's parent finds it, as DIAMOND's `csgo/spawn/`.
        assert_eq!(spawn_dir(root.path()), Some(dir.clone()));
        let spawn = read_spawn(&dir).unwrap();
        assert_eq!(
            (spawn.low.len(), spawn.full[0].width, spawn.full[0].height),
            (4, 15, 10)
        );
        // CHW in the file, HWC in a frame: pixel (0, 1) of channel 2 of frame 0.
        assert_eq!(spawn.low[0].pixel(1, 0)[2], (2 * 6 + 1) as u8);
        let seed = read_seed(root.path(), 2).unwrap();
        assert_eq!(seed.frames.len(), 4);
        assert_eq!(seed.low.as_ref().map(Vec::len), Some(4));
        assert_eq!(
            seed.actions,
            vec![
                Action::Continuous(vec![0., 1.]),
                Action::Continuous(vec![1., 0.]),
                Action::Continuous(vec![0., 0.]),
            ]
        );
        // The model's action width is checked.
        let e = read_seed(root.path(), 51).unwrap_err().to_string();
        assert!(e.contains("act.npy") && e.contains("51"), "{e}");
    }

    #[test]
    fn bad_spawns_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        write_spawn(dir.path(), 2, &[0., 2.]);
        let e = format!("{:#}", read_spawn(dir.path()).unwrap_err());
        assert!(e.contains("act.npy") && e.contains("0 or 1"), "{e}");
        std::fs::write(dir.path().join("full_res.npy"), b"not numpy").unwrap();
        let e = format!("{:#}", read_spawn(dir.path()).unwrap_err());
        assert!(e.contains("full_res.npy"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = format!("{:#}", read_seed(empty.path(), 51).unwrap_err());
        assert!(e.contains("no PNG or JPEG"), "{e}");
    }
}
