//! The dataset side of an evaluation: episode selection, the model/dataset compatibility check,
//! area resizing to the model's frame size, an episode cache, and content hashes (model weights,
//! dataset fingerprint) for the report.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use dreamyard_model::WorldModelSpec;
use dreamyard_model::config::ActionSpace as ModelActionSpace;
use dreamyard_model::train::EpisodeData;
use dreamyard_scenes::dataset::Dataset;
use sha2::{Digest as _, Sha256};

use dreamyard_scenes::{Scene, SceneSource, SceneSpec, load_scene};

use crate::bridge;
use crate::metrics::{DEFAULT_TOLERANCE, Palette};
use crate::model_source::{ModelSource, hex};
use crate::objects::ObjectRules;

/// Parses an episode selection such as `0-9,12` (inclusive ranges and single indices) into
/// sorted, distinct episode indices, each of which must be in `available`.
pub fn parse_episodes(sel: &str, available: &[u64]) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for part in sel.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| -> anyhow::Result<u64> {
            s.trim().parse().with_context(|| {
                format!(
                    "--episodes `{sel}`: `{s}` is not an episode index (expected e.g. `0-9,12`)"
                )
            })
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let v = num(part)?;
                (v, v)
            }
        };
        if lo > hi {
            bail!("--episodes `{sel}`: range `{part}` runs backwards");
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        bail!("--episodes `{sel}` selects no episode");
    }
    if let Some(bad) = out.iter().find(|e| available.binary_search(e).is_err()) {
        bail!(
            "--episodes `{sel}`: the dataset has no episode {bad} ({} episodes, indices {}..={})",
            available.len(),
            available.first().copied().unwrap_or(0),
            available.last().copied().unwrap_or(0)
        );
    }
    Ok(out)
}

/// A dataset's fingerprint: SHA-256 over every file under `meta/` (`info.json`, the episode
/// metadata, tasks, stats, `dreamyard.json`), each as its relative path, its length and its
/// bytes, in sorted path order. The frame data itself is not read (it is large); the episode
/// metadata records where each episode's rows are, so a rewritten dataset changes it.
pub fn dataset_fingerprint(root: &Path) -> anyhow::Result<String> {
    let meta = root.join("meta");
    let mut files = Vec::new();
    let mut stack = vec![meta.clone()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("{}: cannot list", dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("{}: cannot list", dir.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    for path in &files {
        let rel = path.strip_prefix(root).unwrap_or(path);
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hex(&hasher.finalize()))
}

/// A dataset opened for evaluation against one model: frames come out at the model's size.
#[derive(Debug)]
pub struct EvalDataset {
    ds: Dataset,
    /// Frame size stored in the dataset (width, height).
    pub source_frame: (usize, usize),
    /// Frame size the model sees (width, height).
    pub frame: (usize, usize),
    /// The action space the dataset implies (as training reads it).
    pub action: ModelActionSpace,
    /// Object colours of the recorded scene, when the dataset has them.
    pub palette: Option<Palette>,
    /// What the recorded scene states about its objects' physics, at the evaluated frame size.
    pub rules: Option<ObjectRules>,
    /// The recorded scene, for counterfactual rollouts (see [`EvalDataset::enable_counterfactual`]).
    scene: Option<Box<dyn Scene>>,
    /// Per loaded episode: the scene state width and the states (`len x dim`).
    states: HashMap<u64, (usize, Vec<f32>)>,
    /// Lines for the report: resizing, action bounds that differ, ...
    pub notes: Vec<String>,
    /// The selected episodes and their lengths, in index order.
    pub episodes: Vec<(u64, usize)>,
    cache: HashMap<u64, EpisodeData>,
}

impl EvalDataset {
    /// Opens `root` for `spec`, checking that the two fit: RGB frames, the same action space,
    /// the same aspect ratio (a different frame size is resized with an area filter).
    /// `selection` is `--episodes` (all episodes when `None`); `model` names the model in errors.
    pub fn open(
        root: &Path,
        spec: &WorldModelSpec,
        model: &ModelSource,
        selection: Option<&str>,
    ) -> anyhow::Result<Self> {
        let ds = Dataset::open(root)?;
        let available: Vec<u64> = ds.episodes().iter().map(|e| e.index).collect();
        if available.is_empty() {
            bail!("{}: the dataset has no episodes", root.display());
        }
        let selected = match selection {
            Some(sel) => parse_episodes(sel, &available)?,
            None => available,
        };
        let episodes: Vec<(u64, usize)> = selected
            .iter()
            .map(|&e| Ok((e, ds.episode_info(e)?.length as usize)))
            .collect::<anyhow::Result<_>>()?;
        let first = episodes
            .iter()
            .find(|(_, len)| *len > 0)
            .map(|(e, _)| *e)
            .with_context(|| format!("{}: the selected episodes have no frames", root.display()))?;
        let ep = ds
            .episode(first)
            .with_context(|| format!("{}: episode {first}", root.display()))?;
        let Some(f0) = ep.frames.first() else {
            bail!("{}: episode {first} has no frames", root.display());
        };
        let source_frame = (f0.width as usize, f0.height as usize);
        let action = bridge::action_space_to_model(&bridge::dataset_action_space(
            &ds,
            ep.action_dim,
            [ep.actions.as_slice()],
        )?);
        let model_name = model.config.display().to_string();
        let data_name = root.display();
        let mut notes = Vec::new();

        if spec.img_channels != 3 {
            bail!(
                "model {model_name}: field `img_channels` is {}, but dataset {data_name} has RGB \
                 frames (3 channels)",
                spec.img_channels
            );
        }
        check_actions(&spec.action, &action, &model_name, &data_name.to_string())?;
        if let (
            ModelActionSpace::Continuous { low, high, .. },
            ModelActionSpace::Continuous {
                low: dl, high: dh, ..
            },
        ) = (&spec.action, &action)
            && (low != dl || high != dh)
            && ds.dreamyard().is_some()
        {
            notes.push(format!(
                "The model's action bounds (low {low:?}, high {high:?}) differ from the \
                 dataset's (low {dl:?}, high {dh:?}); actions are fed unscaled, as in training."
            ));
        }

        let frame = match spec.frame {
            Some(f) => (f.width, f.height),
            None => source_frame,
        };
        if frame != source_frame {
            let (sw, sh) = source_frame;
            let (mw, mh) = frame;
            if sw * mh != mw * sh {
                bail!(
                    "frame size mismatch: model {model_name} (field `frame`) takes {mw}x{mh} \
                     frames, dataset {data_name} has {sw}x{sh}; resizing would change the aspect \
                     ratio, so evaluate on a dataset with a {mw}:{mh} aspect ratio"
                );
            }
            notes.push(format!(
                "Dataset frames ({sw}x{sh}) were resized to the model's {mw}x{mh} with an area \
                 filter before evaluation; every metric is computed at {mw}x{mh}."
            ));
        }
        let stored_scene = ds.dreamyard().and_then(|m| m.spec.scene.clone());
        let palette = stored_scene
            .as_ref()
            .map(|scene| Palette::from_spec(scene, DEFAULT_TOLERANCE))
            .filter(Palette::has_objects);
        let rules = match &stored_scene {
            Some(spec) if palette.is_some() => {
                let stored = ObjectRules::from_spec(spec, frame.0);
                if stored.states_any() {
                    Some(stored)
                } else {
                    // Recorded before scenes stated their objects' physics: the built-in scene
                    // of the same name and objects states it.
                    let built_in = load_scene(&SceneSource::parse(&spec.name), None)
                        .ok()
                        .filter(|sc| same_objects(sc.spec(), spec));
                    match built_in {
                        Some(sc) => {
                            notes.push(format!(
                                "The dataset's scene spec predates object physics; rigidity, \
                                 headings and motion bounds are the built-in `{}` scene's.",
                                spec.name
                            ));
                            let mut with_frame = sc.spec().clone();
                            with_frame.frame_width = spec.frame_width;
                            Some(ObjectRules::from_spec(&with_frame, frame.0))
                        }
                        None => Some(stored),
                    }
                }
            }
            _ => None,
        };
        let mut out = Self {
            ds,
            source_frame,
            frame,
            action,
            palette,
            rules,
            scene: None,
            states: HashMap::new(),
            notes,
            episodes,
            cache: HashMap::new(),
        };
        let resized = out.resize(bridge::episode_data(&ep));
        out.cache.insert(first, resized);
        Ok(out)
    }

    /// The underlying dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.ds
    }

    /// Opens the scene the dataset was recorded from, so windows can be replayed in it from
    /// their stored states with other actions. The dataset must say which scene (Dreamyard's
    /// `meta/dreamyard.json`), that scene must be built in with the same actions, state and
    /// objects, and the episodes must store the scene state.
    pub fn enable_counterfactual(&mut self) -> anyhow::Result<()> {
        let root = self.ds.root().display().to_string();
        let Some(spec) = self.ds.dreamyard().and_then(|m| m.spec.scene.clone()) else {
            bail!(
                "--counterfactual: {root} does not say which scene it was recorded from (no \
                 `scene` in meta/dreamyard.json); counterfactual rollouts need the simulator \
                 the episodes came from"
            );
        };
        let (w, h) = self.source_frame;
        let scene = load_scene(&SceneSource::parse(&spec.name), Some((w as u32, h as u32)))
            .with_context(|| {
                format!(
                    "--counterfactual: {root} was recorded from scene `{}`, which is not built in",
                    spec.name
                )
            })?;
        if !same_objects(scene.spec(), &spec)
            || scene.spec().state_names != spec.state_names
            || scene.spec().action_space != spec.action_space
        {
            bail!(
                "--counterfactual: {root}'s scene `{}` (meta/dreamyard.json, field \
                 `spec.scene`) differs from the built-in scene of that name in its actions, \
                 state or objects; its episodes cannot be replayed here",
                spec.name
            );
        }
        self.scene = Some(scene);
        self.states.clear();
        self.cache.clear();
        Ok(())
    }

    /// Whether counterfactual rollouts are on.
    pub fn has_scene(&self) -> bool {
        self.scene.is_some()
    }

    /// The simulator's frames (at the evaluated size) from episode `episode`'s stored state at
    /// frame `t`, stepped with `actions` (`n x dim` recorded-action rows), one frame per action.
    pub fn simulate(
        &self,
        episode: u64,
        t: usize,
        actions: &[f32],
    ) -> anyhow::Result<Vec<Vec<u8>>> {
        let Some(proto) = &self.scene else {
            bail!("counterfactual rollouts are not enabled");
        };
        let (dim, states) = self
            .states
            .get(&episode)
            .with_context(|| format!("episode {episode} is not loaded"))?;
        let state: Vec<f64> = states
            .get(t * dim..(t + 1) * dim)
            .with_context(|| format!("episode {episode} has no state at frame {t}"))?
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let mut scene = proto.boxed_clone();
        scene.reset_to(&state).with_context(|| {
            format!("{}: episode {episode} frame {t}", self.ds.root().display())
        })?;
        let space = scene.spec().action_space.clone();
        let (sw, sh) = self.source_frame;
        let (dw, dh) = self.frame;
        bridge::actions_from_rows(actions, space.dim(), &space)
            .iter()
            .map(|a| {
                let obs = scene.step(a).with_context(|| {
                    format!("{}: episode {episode} replay", self.ds.root().display())
                })?;
                Ok(if (sw, sh) == (dw, dh) {
                    obs.frame.data
                } else {
                    bridge::resize_area(&obs.frame.data, sw, sh, dw, dh)
                })
            })
            .collect()
    }

    fn resize(&self, mut ep: EpisodeData) -> EpisodeData {
        if self.frame == self.source_frame {
            return ep;
        }
        let (sw, sh) = self.source_frame;
        let (dw, dh) = self.frame;
        let mut frames = Vec::with_capacity(ep.len * dw * dh * 3);
        for f in ep.frames_hwc.chunks_exact(sw * sh * 3) {
            frames.extend(bridge::resize_area(f, sw, sh, dw, dh));
        }
        ep.frames_hwc = frames;
        ep
    }

    /// Makes `episodes` resident (read and resized) and drops every other cached episode.
    pub fn load(&mut self, episodes: &[u64]) -> anyhow::Result<()> {
        self.cache.retain(|e, _| episodes.contains(e));
        self.states.retain(|e, _| episodes.contains(e));
        for &e in episodes {
            if self.cache.contains_key(&e) {
                continue;
            }
            let ep = self
                .ds
                .episode(e)
                .with_context(|| format!("{}: episode {e}", self.ds.root().display()))?;
            if let Some(f) = ep
                .frames
                .iter()
                .find(|f| (f.width as usize, f.height as usize) != self.source_frame)
            {
                bail!(
                    "{}: episode {e} has {}x{} frames, episode-wide frame size is {}x{}; \
                     evaluation needs one frame size",
                    self.ds.root().display(),
                    f.width,
                    f.height,
                    self.source_frame.0,
                    self.source_frame.1
                );
            }
            if self.scene.is_some() {
                if ep.scene_state_dim == 0 {
                    bail!(
                        "--counterfactual: {} episode {e} stores no scene state (feature \
                         `scene.state` or `observation.state`); windows cannot be replayed",
                        self.ds.root().display()
                    );
                }
                self.states
                    .insert(e, (ep.scene_state_dim, ep.scene_states.clone()));
            }
            let converted = self.resize(bridge::episode_data(&ep));
            self.cache.insert(e, converted);
        }
        Ok(())
    }

    /// Moves resident `episodes` (see [`EvalDataset::load`]) out of the cache, in order, so a
    /// batch can own them without copying frames; [`EvalDataset::put_back`] returns them.
    pub fn take(&mut self, episodes: &[u64]) -> anyhow::Result<Vec<EpisodeData>> {
        episodes
            .iter()
            .map(|e| {
                self.cache
                    .remove(e)
                    .with_context(|| format!("episode {e} is not loaded"))
            })
            .collect()
    }

    /// Returns episodes taken with [`EvalDataset::take`] to the cache.
    pub fn put_back(&mut self, episodes: &[u64], data: Vec<EpisodeData>) {
        self.cache.extend(episodes.iter().copied().zip(data));
    }
}

/// Whether two scene specs name the same objects in the same colours.
fn same_objects(a: &SceneSpec, b: &SceneSpec) -> bool {
    a.name == b.name
        && a.objects.len() == b.objects.len()
        && a.objects
            .iter()
            .zip(&b.objects)
            .all(|(x, y)| x.name == y.name && x.colors == y.colors)
}

/// The model's and the dataset's action spaces must agree in kind and size.
fn check_actions(
    model: &ModelActionSpace,
    data: &ModelActionSpace,
    model_name: &str,
    data_name: &str,
) -> anyhow::Result<()> {
    let describe = |a: &ModelActionSpace| match a {
        ModelActionSpace::Discrete { num_actions } => format!("{num_actions} discrete actions"),
        ModelActionSpace::Continuous { dim, .. } => format!("continuous actions of width {dim}"),
        ModelActionSpace::MultiHot { num_actions, .. } => {
            format!("multi-hot actions of width {num_actions}")
        }
    };
    // Datasets store a multi-hot vector as a float vector: the widths must agree.
    let width = |a: &ModelActionSpace| match a {
        ModelActionSpace::Discrete { .. } => None,
        other => Some(other.dim()),
    };
    let field = match (model, data) {
        (ModelActionSpace::MultiHot { .. }, _) | (_, ModelActionSpace::MultiHot { .. }) => {
            match (width(model), width(data)) {
                (Some(a), Some(b)) if a == b => return Ok(()),
                (Some(_), Some(_)) => "action.dim",
                _ => "action.kind",
            }
        }
        (
            ModelActionSpace::Discrete { num_actions: a },
            ModelActionSpace::Discrete { num_actions: b },
        ) if a != b => "action.num_actions",
        (
            ModelActionSpace::Continuous { dim: a, .. },
            ModelActionSpace::Continuous { dim: b, .. },
        ) if a != b => "action.dim",
        (ModelActionSpace::Discrete { .. }, ModelActionSpace::Continuous { .. })
        | (ModelActionSpace::Continuous { .. }, ModelActionSpace::Discrete { .. }) => "action.kind",
        _ => return Ok(()),
    };
    bail!(
        "action space mismatch: model {model_name} (field `{field}`) takes {}, dataset {data_name} \
         (feature `action`) has {}",
        describe(model),
        describe(data)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episode_selection_parses_ranges_and_rejects_unknown_indices() {
        let avail: Vec<u64> = (0..20).collect();
        assert_eq!(
            parse_episodes("0-3, 12,2", &avail).unwrap(),
            vec![0, 1, 2, 3, 12]
        );
        let err = parse_episodes("5-25", &avail).unwrap_err().to_string();
        assert!(err.contains("no episode 20"), "{err}");
        assert!(parse_episodes("3-1", &avail).is_err());
        assert!(parse_episodes("x", &avail).is_err());
    }
}
