//! What a model path means: the one place that turns what a user names (a folder, a file, a
//! `--config`) into the files of a world model, loads them onto a device and computes the
//! weights' identity. Every command (`predict`, `convert`, `eval`, `bench model`) and the app
//! (command line, File > Open, drag and drop) go through [`ModelSource::resolve`], so they open
//! the same set of models with the same error messages and report the same hash.
//!
//! The formats, tried in this order:
//! - a native directory: `model.safetensors` + `config.json`;
//! - a DIAMOND directory: one `*.pt` checkpoint (`agent.pt` preferred) and its yaml
//!   (`config.yaml` preferred, or the only `*.yaml` / `*.yml`), or `--config` naming the yaml;
//! - a `*.safetensors` file with `--config` or `config.json` beside it;
//! - a DIAMOND `agent.pt` (`.pt`, `.pth`, `.ckpt`) with `--config` naming its yaml;
//! - a config file named alone (`config.json`, a DIAMOND yaml): the model in its folder.

use std::fmt;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use dreamyard_model::candle_core::{DType, Device};
use dreamyard_model::checkpoint::{NATIVE_CONFIG, NATIVE_WEIGHTS};
use dreamyard_model::{Checkpoint, WorldModel};
use sha2::{Digest as _, Sha256};

/// How a model's files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// Dreamyard's own: safetensors weights + a JSON config.
    Native,
    /// DIAMOND's published checkpoints: a pickled `agent.pt` + DIAMOND's composed yaml.
    Diamond,
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Diamond => "DIAMOND",
        })
    }
}

/// The files of one world model, resolved but not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    pub format: ModelFormat,
    /// The weights file (`model.safetensors`, a DIAMOND `agent.pt`, ...).
    pub weights: PathBuf,
    /// The config file (`config.json`, DIAMOND's yaml).
    pub config: PathBuf,
    /// What the user named, for labels and messages.
    pub named: PathBuf,
}

const DIAMOND_WEIGHTS: [&str; 3] = ["pt", "pth", "ckpt"];
const YAML: [&str; 2] = ["yaml", "yml"];

fn extension(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// The files in `dir` whose extension is one of `exts`, sorted by name.
fn files_with(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && exts.contains(&extension(p).as_str()))
        .collect();
    found.sort();
    found
}

/// `preferred` in `dir` if it is there, else the only file with one of `exts`.
fn pick(dir: &Path, preferred: &str, exts: &[&str]) -> Option<PathBuf> {
    let p = dir.join(preferred);
    if p.is_file() {
        return Some(p);
    }
    match files_with(dir, exts).as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

impl ModelSource {
    /// Resolves what the user named (`model`, with an optional `--config`) to a model's files.
    /// Checks that they exist; reading them is [`load`](Self::load)'s work.
    pub fn resolve(model: &Path, config: Option<&Path>) -> anyhow::Result<Self> {
        if !model.exists() {
            bail!(
                "{}: no such model file or directory (a model is a folder with {NATIVE_WEIGHTS} \
                 + {NATIVE_CONFIG}, or a DIAMOND agent.pt + its yaml)",
                model.display()
            );
        }
        if let Some(c) = config
            && !c.is_file()
        {
            bail!("--config {}: no such file", c.display());
        }
        let source = if model.is_dir() {
            Self::in_dir(model, config)?
        } else {
            Self::from_file(model, config)?
        };
        for (what, path) in [("weights", &source.weights), ("config", &source.config)] {
            if !path.is_file() {
                bail!(
                    "{}: the {} model's {what} file {} is missing",
                    model.display(),
                    source.format,
                    path.display()
                );
            }
        }
        Ok(source)
    }

    fn in_dir(dir: &Path, config: Option<&Path>) -> anyhow::Result<Self> {
        let named = dir.to_path_buf();
        let native = dir.join(NATIVE_WEIGHTS);
        if native.is_file() {
            if let Some(c) = config {
                bail!(
                    "{} is a native model directory (it has its own {NATIVE_CONFIG}); drop \
                     --config {} (--config is for a DIAMOND agent.pt's yaml or a lone \
                     .safetensors)",
                    dir.display(),
                    c.display()
                );
            }
            return Ok(Self {
                format: ModelFormat::Native,
                weights: native,
                config: dir.join(NATIVE_CONFIG),
                named,
            });
        }
        if let Some(weights) = pick(dir, "agent.pt", &DIAMOND_WEIGHTS) {
            let yaml = match config {
                Some(c) => Some(c.to_path_buf()),
                None => pick(dir, "config.yaml", &YAML),
            };
            let Some(config) = yaml else {
                bail!(
                    "{}: DIAMOND checkpoint {} has no yaml beside it (expected config.yaml or \
                     exactly one *.yaml); name it with --config",
                    dir.display(),
                    weights.display()
                );
            };
            return Ok(Self {
                format: ModelFormat::Diamond,
                weights,
                config,
                named,
            });
        }
        if dir.join(NATIVE_CONFIG).is_file() {
            bail!(
                "{}: has {NATIVE_CONFIG} but no {NATIVE_WEIGHTS} (a native model needs both)",
                dir.display()
            );
        }
        bail!(
            "{}: not a model: expected {NATIVE_WEIGHTS} + {NATIVE_CONFIG} (native) or a DIAMOND \
             agent.pt + its yaml",
            dir.display()
        )
    }

    fn from_file(file: &Path, config: Option<&Path>) -> anyhow::Result<Self> {
        let named = file.to_path_buf();
        let folder = file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let ext = extension(file);
        match ext.as_str() {
            "safetensors" => {
                let cfg = match config {
                    Some(c) => c.to_path_buf(),
                    None => file.with_file_name(NATIVE_CONFIG),
                };
                if extension(&cfg) != "json" {
                    bail!(
                        "{}: a safetensors model needs a JSON config (the native {NATIVE_CONFIG}), \
                         got {}",
                        file.display(),
                        cfg.display()
                    );
                }
                Ok(Self {
                    format: ModelFormat::Native,
                    weights: file.to_path_buf(),
                    config: cfg,
                    named,
                })
            }
            e if DIAMOND_WEIGHTS.contains(&e) => {
                let Some(yaml) = config else {
                    bail!(
                        "{}: a DIAMOND checkpoint needs --config with its yaml (config/agent + \
                         sampler), or open the folder that holds both",
                        file.display()
                    );
                };
                Ok(Self {
                    format: ModelFormat::Diamond,
                    weights: file.to_path_buf(),
                    config: yaml.to_path_buf(),
                    named,
                })
            }
            "json" if file.file_name().is_some_and(|n| n == NATIVE_CONFIG) && config.is_none() => {
                let mut s = Self::in_dir(&folder, None)?;
                s.named = named;
                Ok(s)
            }
            e if YAML.contains(&e) && config.is_none() => {
                let Some(weights) = pick(&folder, "agent.pt", &DIAMOND_WEIGHTS) else {
                    bail!(
                        "{}: a DIAMOND yaml, but no checkpoint beside it (expected agent.pt or \
                         exactly one *.pt)",
                        file.display()
                    );
                };
                Ok(Self {
                    format: ModelFormat::Diamond,
                    weights,
                    config: file.to_path_buf(),
                    named,
                })
            }
            other => bail!(
                "{}: unknown model file type `.{other}`; expected a native directory, \
                 .safetensors (+ {NATIVE_CONFIG}) or a DIAMOND .pt (+ yaml)",
                file.display()
            ),
        }
    }

    /// Reads the config and the weights (strict checks; errors name the file and tensor).
    pub fn load(&self) -> anyhow::Result<Checkpoint> {
        Ok(match self.format {
            ModelFormat::Native => Checkpoint::from_native_files(&self.config, &self.weights)?,
            ModelFormat::Diamond => Checkpoint::from_diamond(&self.weights, &self.config)?,
        })
    }

    /// Reads the model and builds it on `device` (f32).
    pub fn build(&self, device: &Device) -> anyhow::Result<WorldModel> {
        self.build_with(device, DType::F32)
    }

    /// Reads the model and builds it on `device`, the network computing in `dtype` (`--dtype`).
    pub fn build_with(&self, device: &Device, dtype: DType) -> anyhow::Result<WorldModel> {
        Ok(self.load()?.build_with(device, dtype)?)
    }

    /// SHA-256 (hex) of the weights file: the model's identity in recordings and reports.
    pub fn weights_sha256(&self) -> anyhow::Result<String> {
        sha256_file(&self.weights)
    }

    /// SHA-256 (hex) of the config file.
    pub fn config_sha256(&self) -> anyhow::Result<String> {
        sha256_file(&self.config)
    }

    /// What the user named, as text (labels, recording metadata).
    pub fn label(&self) -> String {
        self.named.display().to_string()
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Bytes as lower-case hex (digests).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn directories_resolve_by_what_they_hold() {
        let d = tempfile::tempdir().unwrap();
        let native = d.path().join("native");
        std::fs::create_dir(&native).unwrap();
        touch(&native.join(NATIVE_WEIGHTS));
        touch(&native.join(NATIVE_CONFIG));
        let s = ModelSource::resolve(&native, None).unwrap();
        assert_eq!(s.format, ModelFormat::Native);
        assert_eq!(s.weights, native.join(NATIVE_WEIGHTS));
        // A config file named alone means its folder.
        let s2 = ModelSource::resolve(&native.join(NATIVE_CONFIG), None).unwrap();
        assert_eq!((s2.weights, s2.config), (s.weights, s.config));
        let err = ModelSource::resolve(&native, Some(&native.join(NATIVE_CONFIG))).unwrap_err();
        assert!(err.to_string().contains("drop --config"), "{err}");

        let diamond = d.path().join("diamond");
        std::fs::create_dir(&diamond).unwrap();
        touch(&diamond.join("agent.pt"));
        let err = ModelSource::resolve(&diamond, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no yaml") && err.contains("--config"), "{err}");
        touch(&diamond.join("trainer.yaml"));
        let s = ModelSource::resolve(&diamond, None).unwrap();
        assert_eq!(s.format, ModelFormat::Diamond);
        assert_eq!(s.config, diamond.join("trainer.yaml"));
        // Two yamls: config.yaml wins; without it, the choice is the user's.
        touch(&diamond.join("other.yaml"));
        assert!(ModelSource::resolve(&diamond, None).is_err());
        touch(&diamond.join("config.yaml"));
        assert_eq!(
            ModelSource::resolve(&diamond, None).unwrap().config,
            diamond.join("config.yaml")
        );
        // The yaml named alone finds its checkpoint.
        let s = ModelSource::resolve(&diamond.join("other.yaml"), None).unwrap();
        assert_eq!(s.weights, diamond.join("agent.pt"));
        assert_eq!(s.config, diamond.join("other.yaml"));

        let half = d.path().join("half");
        std::fs::create_dir(&half).unwrap();
        touch(&half.join(NATIVE_CONFIG));
        let err = ModelSource::resolve(&half, None).unwrap_err().to_string();
        assert!(err.contains(NATIVE_WEIGHTS), "{err}");
        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let err = ModelSource::resolve(&empty, None).unwrap_err().to_string();
        assert!(err.contains("not a model"), "{err}");
    }

    #[test]
    fn files_need_their_config() {
        let d = tempfile::tempdir().unwrap();
        let pt = d.path().join("agent.pt");
        touch(&pt);
        let err = ModelSource::resolve(&pt, None).unwrap_err().to_string();
        assert!(err.contains("--config"), "{err}");
        let yaml = d.path().join("c.yaml");
        touch(&yaml);
        let s = ModelSource::resolve(&pt, Some(&yaml)).unwrap();
        assert_eq!((s.format, s.config), (ModelFormat::Diamond, yaml.clone()));
        let err = ModelSource::resolve(&pt, Some(&d.path().join("none.yaml"))).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");

        let st = d.path().join("w.safetensors");
        touch(&st);
        let err = ModelSource::resolve(&st, None).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("missing"),
            "{err}"
        );
        let err = ModelSource::resolve(&st, Some(&yaml))
            .unwrap_err()
            .to_string();
        assert!(err.contains("JSON config"), "{err}");

        let other = d.path().join("model.onnx");
        touch(&other);
        let err = ModelSource::resolve(&other, None).unwrap_err().to_string();
        assert!(err.contains("unknown model file type `.onnx`"), "{err}");
        let err = ModelSource::resolve(&d.path().join("gone"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no such model file or directory"), "{err}");
    }

    #[test]
    fn model_hash_is_the_sha256_of_the_weights() {
        // Moved from the recorder's tests: the hash recordings and reports carry.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.safetensors"), b"abc").unwrap();
        touch(&dir.path().join(NATIVE_CONFIG));
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let hash = |p: &Path| ModelSource::resolve(p, None)?.weights_sha256();
        assert_eq!(hash(dir.path()).unwrap(), want);
        let file = dir.path().join("model.safetensors");
        assert_eq!(hash(&file).unwrap(), want);
        assert!(hash(&dir.path().join("missing")).is_err());
    }
}
