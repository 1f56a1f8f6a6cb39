//! Perturbed actions for counterfactuals: what the world and the model would have done under
//! other actions (`eval --counterfactual`, the app's Counterfactual).

use dreamyard_scenes::{Action, ActionSpace as SceneActionSpace};
use serde::{Deserialize, Serialize};

/// How a counterfactual's actions differ from the recorded ones (`eval --counterfactual`, the
/// app's Counterfactual): applied to every action, the same in the model and in the world.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Perturbation {
    /// Each component mirrored about the middle of its range: `low + high - a` (push-t: the
    /// target on the other side of the table). Discrete actions: the next action id.
    Mirror,
    /// Each component moved by this fraction of its range, reflected back at the bounds.
    /// Discrete actions: the next action id.
    Offset(f64),
}

impl Perturbation {
    /// A scene action perturbed within the scene's action space.
    pub fn apply_action(self, action: &Action, space: &SceneActionSpace) -> Action {
        match (action, space) {
            (Action::Discrete(id), SceneActionSpace::Discrete { names }) => {
                Action::Discrete((id + 1) % (names.len().max(1) as u32))
            }
            (Action::Continuous(v), SceneActionSpace::Continuous { low, high, .. }) => {
                Action::Continuous(self.apply(
                    v,
                    &dreamyard_model::config::ActionSpace::Continuous {
                        dim: v.len(),
                        low: low.clone(),
                        high: high.clone(),
                    },
                ))
            }
            (other, _) => other.clone(),
        }
    }

    /// A keyboard-and-mouse vector: the keys and buttons stay, the mouse movement is mirrored
    /// (its one-hot index reflected within each block: the bins are symmetric about 0) or
    /// shifted by `f` of the block's length (reflected at the ends).
    fn apply_keyboard_mouse(self, row: &[f32], km: &dreamyard_model::KeyboardMouse) -> Vec<f32> {
        let mut out = row.to_vec();
        for (off, n) in [
            (km.mouse_x_offset(), km.mouse_x.len()),
            (km.mouse_y_offset(), km.mouse_y.len()),
        ] {
            let Some(block) = out.get_mut(off..off + n) else {
                continue;
            };
            let Some(i) = block.iter().position(|&v| v > 0.5) else {
                continue;
            };
            let j = match self {
                Self::Mirror => n - 1 - i,
                Self::Offset(f) => {
                    let span = (n - 1) as f64;
                    if span <= 0.0 {
                        i
                    } else {
                        let x = (i as f64 + f * span).rem_euclid(2.0 * span);
                        (if x > span { 2.0 * span - x } else { x }).round() as usize
                    }
                }
            };
            block.iter_mut().for_each(|v| *v = 0.0);
            block[j.min(n - 1)] = 1.0;
        }
        out
    }

    /// Applies the perturbation to one recorded action row (`dim` floats; a discrete action is
    /// its id) of `space`.
    pub fn apply(self, row: &[f32], space: &dreamyard_model::config::ActionSpace) -> Vec<f32> {
        use dreamyard_model::config::ActionSpace as S;
        match space {
            S::MultiHot {
                keyboard_mouse: Some(km),
                ..
            } => self.apply_keyboard_mouse(row, km),
            // Without a layout there is no meaningful opposite of a set of flags.
            S::MultiHot { .. } => row.to_vec(),
            S::Discrete { num_actions } => row
                .iter()
                .map(|&id| ((id as usize + 1) % (*num_actions).max(1)) as f32)
                .collect(),
            S::Continuous { low, high, .. } => row
                .iter()
                .enumerate()
                .map(|(i, &a)| {
                    let (lo, hi) = (low.get(i).copied(), high.get(i).copied());
                    let (Some(lo), Some(hi)) = (lo, hi) else {
                        return a;
                    };
                    match self {
                        Self::Mirror => lo + hi - a,
                        Self::Offset(f) => {
                            let range = f64::from(hi - lo);
                            if range <= 0.0 {
                                return a;
                            }
                            // Reflect into [lo, hi]: fold the shifted value over a period of
                            // twice the range.
                            let x = (f64::from(a - lo) + f * range).rem_euclid(2.0 * range);
                            let x = if x > range { 2.0 * range - x } else { x };
                            (f64::from(lo) + x) as f32
                        }
                    }
                })
                .collect(),
        }
    }
}

impl std::fmt::Display for Perturbation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mirror => write!(f, "mirror"),
            Self::Offset(x) => write!(f, "offset:{x}"),
        }
    }
}

impl std::str::FromStr for Perturbation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}`: expected `mirror` or `offset:F` (F a fraction of each action's range, \
                 e.g. offset:0.25)"
            )
        };
        match s.trim() {
            "mirror" => Ok(Self::Mirror),
            other => {
                let f: f64 = other
                    .strip_prefix("offset:")
                    .ok_or_else(bad)?
                    .trim()
                    .parse()
                    .map_err(|_| bad())?;
                if !f.is_finite() || f == 0.0 {
                    return Err(bad());
                }
                Ok(Self::Offset(f))
            }
        }
    }
}

impl TryFrom<String> for Perturbation {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Perturbation> for String {
    fn from(p: Perturbation) -> Self {
        p.to_string()
    }
}
