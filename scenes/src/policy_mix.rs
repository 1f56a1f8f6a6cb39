//! Policy mixtures: episodes made of segments, each run by one scripted policy picked by weight.
//! The built-in `user-like` mixture (`scenes/data/user-like.toml`) is how people drive the app;
//! live training and the user-like test sets are made with it.

use std::path::Path;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::policy::{Policy, PolicyKind};
use crate::spec::{Action, Observation};
use crate::{Scene, SceneError};

/// The shipped mixture's file.
pub const USER_LIKE_TOML: &str = include_str!("../data/user-like.toml");

/// A mixture of scripted policies: which ones, how often, and for how long at a time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PolicyMix {
    /// Each component with its weight (positive), in the file's order.
    pub weights: Vec<(PolicyKind, f64)>,
    /// Steps per segment, drawn uniformly from `[min, max]`.
    pub segment_steps: [u32; 2],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MixFile {
    segment_steps: [u32; 2],
    weights: toml::Table,
}

impl PolicyMix {
    /// The built-in `user-like` mixture.
    pub fn user_like() -> Self {
        Self::from_toml(Path::new("scenes/data/user-like.toml"), USER_LIKE_TOML)
            .expect("the shipped user-like.toml parses (tested)")
    }

    /// Reads a mixture file.
    pub fn from_file(path: &Path) -> Result<Self, SceneError> {
        let text = std::fs::read_to_string(path).map_err(|source| SceneError::Io {
            file: path.to_owned(),
            source,
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses a mixture; `file` names it in errors.
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, SceneError> {
        let raw: MixFile = crate::config::parse(file, text)?;
        let bad = |field: String, expected: &str, found: String| SceneError::Invalid {
            file: file.to_owned(),
            field,
            expected: expected.to_owned(),
            found,
        };
        let [lo, hi] = raw.segment_steps;
        if lo == 0 || lo > hi {
            return Err(bad(
                "segment_steps".into(),
                "[min, max] with 1 <= min <= max",
                format!("[{lo}, {hi}]"),
            ));
        }
        let mut weights = Vec::new();
        for (name, value) in &raw.weights {
            let field = format!("weights.{name}");
            let kind = PolicyKind::parse(name)
                .filter(|k| *k != PolicyKind::UserLike)
                .ok_or_else(|| {
                    let names: Vec<_> = PolicyKind::ALL
                        .iter()
                        .filter(|k| **k != PolicyKind::UserLike)
                        .map(|k| k.name())
                        .collect();
                    bad(
                        field.clone(),
                        &format!("a policy name ({})", names.join(", ")),
                        format!("`{name}`"),
                    )
                })?;
            let w = value
                .as_float()
                .or_else(|| value.as_integer().map(|i| i as f64))
                .ok_or_else(|| bad(field.clone(), "a number", value.to_string()))?;
            if !(w.is_finite() && w >= 0.0) {
                return Err(bad(field, "a weight >= 0", w.to_string()));
            }
            if w > 0.0 {
                weights.push((kind, w));
            }
        }
        if weights.is_empty() {
            return Err(bad(
                "weights".into(),
                "at least one policy with a positive weight",
                "none".into(),
            ));
        }
        Ok(Self {
            weights,
            segment_steps: [lo, hi],
        })
    }

    /// The mixture as a policy in `scene` (components are `scene`'s scripted policies).
    pub fn policy(&self, scene: &dyn Scene) -> Box<dyn Policy> {
        Box::new(Mixture::new(self, scene))
    }
}

impl Serialize for PolicyKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A [`PolicyMix`] running: segment by segment, each component reset at its segment's start
/// (so it starts from the scene as it is).
struct Mixture {
    components: Vec<(PolicyKind, f64, Box<dyn Policy>)>,
    segment_steps: [u32; 2],
    rng: ChaCha8Rng,
    seed: u64,
    current: usize,
    left: u32,
    segments: u64,
}

impl Mixture {
    fn new(mix: &PolicyMix, scene: &dyn Scene) -> Self {
        let components = mix
            .weights
            .iter()
            .map(|&(kind, w)| (kind, w, scene.scripted_policy(kind)))
            .collect();
        Self {
            components,
            segment_steps: mix.segment_steps,
            rng: ChaCha8Rng::seed_from_u64(0),
            seed: 0,
            current: 0,
            left: 0,
            segments: 0,
        }
    }

    fn pick(&mut self) -> usize {
        let total: f64 = self.components.iter().map(|c| c.1).sum();
        let mut x = self.rng.random::<f64>() * total;
        for (i, c) in self.components.iter().enumerate() {
            if x < c.1 {
                return i;
            }
            x -= c.1;
        }
        self.components.len() - 1
    }
}

impl Policy for Mixture {
    fn reset(&mut self, seed: u64) {
        self.seed = seed;
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006d_6978_7475_7265);
        self.left = 0;
        self.segments = 0;
    }

    fn act(&mut self, obs: &Observation) -> Action {
        if self.left == 0 {
            self.current = self.pick();
            let [lo, hi] = self.segment_steps;
            self.left = self.rng.random_range(lo..=hi);
            self.segments += 1;
            let seed = self
                .seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(self.segments);
            self.components[self.current].2.reset(seed);
        }
        self.left -= 1;
        self.components[self.current].2.act(obs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SceneSource, load_scene};

    #[test]
    fn the_shipped_mixture_parses_and_bad_files_name_the_field() {
        let mix = PolicyMix::user_like();
        assert_eq!(mix.segment_steps, [8, 40]);
        assert_eq!(mix.weights.len(), 5);
        let f = Path::new("mix.toml");
        let err = |text: &str| PolicyMix::from_toml(f, text).unwrap_err().to_string();
        let e = err("segment_steps = [8, 4]\n[weights]\nhold = 1\n");
        assert!(e.contains("mix.toml") && e.contains("segment_steps"), "{e}");
        let e = err("segment_steps = [1, 4]\n[weights]\nteleport = 1\n");
        assert!(e.contains("weights.teleport") && e.contains("jump"), "{e}");
        let e = err("segment_steps = [1, 4]\n[weights]\nhold = -1\n");
        assert!(e.contains("weights.hold") && e.contains(">= 0"), "{e}");
        let e = err("segment_steps = [1, 4]\n[weights]\nhold = \"a lot\"\n");
        assert!(e.contains("weights.hold") && e.contains("a number"), "{e}");
        let e = err("segment_steps = [1, 4]\n[weights]\nuser-like = 1\n");
        assert!(e.contains("weights.user-like"), "{e}");
        let e = err("segment_steps = [1, 4]\n[weights]\nhold = 0\n");
        assert!(e.contains("positive weight"), "{e}");
        let e = err("segments = [1, 4]\n[weights]\nhold = 1\n");
        assert!(e.contains("mix.toml") && e.contains("segments"), "{e}");
    }

    /// Runs `policy` in push-t for `steps` steps and returns the actions.
    fn actions(policy: &mut dyn Policy, seed: u64, steps: usize) -> Vec<Vec<f32>> {
        let mut scene = load_scene(&SceneSource::Builtin("push-t".into()), Some((32, 32))).unwrap();
        let mut out = Vec::new();
        crate::run_policy(scene.as_mut(), policy, seed, steps, false, |a, _| {
            if let Some(Action::Continuous(v)) = a {
                out.push(v.clone());
            }
        })
        .unwrap();
        out
    }

    #[test]
    fn mixtures_are_deterministic_and_use_every_component_by_weight() {
        let scene = load_scene(&SceneSource::Builtin("push-t".into()), Some((32, 32))).unwrap();
        let mix = PolicyMix::user_like();
        let a = actions(mix.policy(scene.as_ref()).as_mut(), 7, 300);
        let b = actions(mix.policy(scene.as_ref()).as_mut(), 7, 300);
        assert_eq!(a, b);
        assert_ne!(a, actions(mix.policy(scene.as_ref()).as_mut(), 8, 300));

        // Segment choice follows the weights: a 3:1 mix of hold and jump, segments of one step.
        let mix = PolicyMix::from_toml(
            Path::new("t.toml"),
            "segment_steps = [1, 1]\n[weights]\nhold = 3\njump = 1\n",
        )
        .unwrap();
        let mut m = Mixture::new(&mix, scene.as_ref());
        m.reset(1);
        let mut counts = [0usize; 2];
        for _ in 0..4000 {
            m.left = 0;
            counts[m.pick()] += 1;
        }
        let hold_share = counts[0] as f64 / 4000.0;
        assert!((hold_share - 0.75).abs() < 0.03, "{counts:?}");
    }

    #[test]
    fn jumps_hold_and_circles_do_what_they_say() {
        let scene = load_scene(&SceneSource::Builtin("push-t".into()), Some((32, 32))).unwrap();
        let size = 512.0;
        // Hold: the agent's own position, every step.
        let held = actions(scene.scripted_policy(PolicyKind::Hold).as_mut(), 3, 20);
        assert!(held.windows(2).all(|w| w[0] == w[1]));
        // Jump: piecewise constant, 3-12 steps a piece, some pieces far apart.
        let jumps = actions(scene.scripted_policy(PolicyKind::Jump).as_mut(), 3, 200);
        let mut runs = vec![1usize];
        let mut far = 0;
        for w in jumps.windows(2) {
            if w[0] == w[1] {
                *runs.last_mut().unwrap() += 1;
            } else {
                runs.push(1);
                let d = ((w[0][0] - w[1][0]).powi(2) + (w[0][1] - w[1][1]).powi(2)).sqrt();
                far += usize::from(d > size / 3.0);
            }
        }
        runs.pop();
        assert!(runs.iter().all(|&r| (3..=12).contains(&r)), "{runs:?}");
        assert!(far >= runs.len() / 4, "{far} of {}", runs.len());
        assert!(jumps.iter().flatten().all(|&v| (0.0..=size).contains(&v)));
        // Circle: equal steps turning by equal angles (a regular polygon), not clipped.
        let circle = actions(scene.scripted_policy(PolicyKind::Circle).as_mut(), 3, 100);
        let steps: Vec<[f32; 2]> = circle
            .windows(2)
            .map(|w| [w[1][0] - w[0][0], w[1][1] - w[0][1]])
            .collect();
        let len = |v: &[f32; 2]| (v[0] * v[0] + v[1] * v[1]).sqrt();
        let turn = |a: &[f32; 2], b: &[f32; 2]| {
            (a[0] * b[1] - a[1] * b[0]).atan2(a[0] * b[0] + a[1] * b[1])
        };
        let l0 = len(&steps[0]);
        assert!(l0 > 1.0);
        assert!(
            steps.iter().all(|s| (len(s) - l0).abs() < 1e-2 * l0),
            "{steps:?}"
        );
        let t0 = turn(&steps[0], &steps[1]);
        assert!(t0.abs() > 0.05);
        assert!(
            steps
                .windows(2)
                .all(|w| (turn(&w[0], &w[1]) - t0).abs() < 1e-2),
            "{t0}"
        );
    }
}
