//! Turning user input into actions of an action space, without Bevy: a held continuous action
//! moved by rate inputs (keys, sticks) or set directly (mouse on a frame, pads, sliders), and a
//! discrete action chosen by index. Gamepad and keyboard mappings are data, shown in the UI.

use dreamyard_scenes::{Action, ActionSpace};

/// Stick values below this magnitude are treated as zero.
pub const DEFAULT_DEADZONE: f32 = 0.15;

/// The action the user is holding, for one action space.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionPad {
    pub space: ActionSpace,
    /// Continuous values (one per dimension), or `[index]` for discrete spaces.
    pub values: Vec<f32>,
    /// Fraction of a dimension's range a full rate input moves per second.
    pub rate_per_sec: f32,
    pub deadzone: f32,
}

impl ActionPad {
    /// A pad at the centre of a continuous box, or at the first discrete action.
    pub fn new(space: ActionSpace) -> Self {
        let values = match &space {
            ActionSpace::Continuous { low, high, .. } => {
                low.iter().zip(high).map(|(l, h)| 0.5 * (l + h)).collect()
            }
            ActionSpace::Discrete { .. } => vec![0.0],
        };
        Self {
            space,
            values,
            rate_per_sec: 0.6,
            deadzone: DEFAULT_DEADZONE,
        }
    }

    /// The held action.
    pub fn action(&self) -> Action {
        match &self.space {
            ActionSpace::Continuous { .. } => Action::Continuous(self.values.clone()),
            ActionSpace::Discrete { .. } => {
                Action::Discrete(self.values.first().copied().unwrap_or(0.0) as u32)
            }
        }
    }

    /// Range of continuous dimension `i`.
    pub fn range(&self, i: usize) -> Option<(f32, f32)> {
        match &self.space {
            ActionSpace::Continuous { low, high, .. } => Some((*low.get(i)?, *high.get(i)?)),
            ActionSpace::Discrete { .. } => None,
        }
    }

    /// Moves continuous dimensions by `rates` (each in [-1, 1], deadzone applied) for `dt_secs`.
    pub fn apply_rates(&mut self, rates: &[f32], dt_secs: f32) {
        for (i, &r) in rates.iter().enumerate() {
            let r = deadzone(r, self.deadzone);
            let (Some((lo, hi)), Some(v)) = (self.range(i), self.values.get_mut(i)) else {
                continue;
            };
            *v = (*v + r * (hi - lo) * self.rate_per_sec * dt_secs).clamp(lo, hi);
        }
    }

    /// Sets the first two continuous dimensions from a point in a frame, `uv` in [0, 1]²
    /// (left-to-right, top-to-bottom), as PushT's mouse teleoperation does: the action is the
    /// target position in the scene's units.
    pub fn set_from_uv(&mut self, uv: [f32; 2]) {
        for (i, t) in uv.iter().enumerate() {
            if let (Some((lo, hi)), Some(v)) = (self.range(i), self.values.get_mut(i)) {
                *v = lo + t.clamp(0.0, 1.0) * (hi - lo);
            }
        }
    }

    /// Where the first two dimensions point in a frame, `uv` in [0, 1]².
    pub fn uv(&self) -> Option<[f32; 2]> {
        let (lx, hx) = self.range(0)?;
        let (ly, hy) = self.range(1)?;
        let f = |v: f32, lo: f32, hi: f32| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
        Some([
            f(*self.values.first()?, lx, hx),
            f(*self.values.get(1)?, ly, hy),
        ])
    }

    /// Chooses discrete action `index` if it exists.
    pub fn choose(&mut self, index: usize) -> bool {
        match &self.space {
            ActionSpace::Discrete { names } if index < names.len() => {
                self.values = vec![index as f32];
                true
            }
            _ => false,
        }
    }

    /// Whether the pad has the 2-D target the mouse and arrows drive.
    pub fn is_planar(&self) -> bool {
        matches!(&self.space, ActionSpace::Continuous { names, .. } if names.len() >= 2)
    }
}

/// `v` with magnitudes below `dz` zeroed and the rest rescaled to start at 0.
pub fn deadzone(v: f32, dz: f32) -> f32 {
    let a = v.abs();
    if a <= dz || !v.is_finite() {
        0.0
    } else {
        v.signum() * ((a - dz) / (1.0 - dz).max(f32::EPSILON)).min(1.0)
    }
}

/// The gamepad mapping shown in the UI: (input, what it does).
pub fn gamepad_mapping(space: &ActionSpace) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    match space {
        ActionSpace::Continuous { names, .. } => {
            let sticks = [
                "left stick x",
                "left stick y",
                "right stick x",
                "right stick y",
            ];
            for (stick, name) in sticks.iter().zip(names) {
                rows.push(((*stick).to_owned(), format!("moves {name}")));
            }
        }
        ActionSpace::Discrete { names } => {
            for (button, name) in DISCRETE_BUTTONS.iter().zip(names) {
                rows.push(((*button).to_owned(), format!("action {name}")));
            }
        }
    }
    rows.push(("Start".into(), "play / pause".into()));
    rows.push(("Select".into(), "reset".into()));
    rows
}

/// Gamepad buttons for discrete actions 0, 1, 2, ... (names as in the mapping table).
pub const DISCRETE_BUTTONS: [&str; 8] = [
    "South (A)",
    "East (B)",
    "West (X)",
    "North (Y)",
    "D-pad up",
    "D-pad down",
    "D-pad left",
    "D-pad right",
];

/// The keyboard mapping shown in the UI.
pub const KEYS: [(&str, &str); 11] = [
    ("Enter", "reset"),
    (".  / Space", "pause / play"),
    ("e", "single step"),
    ("← ↑ → ↓ / WASD", "move the 2-D target"),
    ("0-9", "discrete action"),
    ("mouse on a frame", "target position (push-t)"),
    ("f", "fork at the shown step"),
    ("t", "take over (replay)"),
    ("→ / n", "save episode (recording)"),
    ("← / r", "discard and re-record"),
    ("Esc / q", "stop recording"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn push_t() -> ActionSpace {
        ActionSpace::Continuous {
            low: vec![0.0, 0.0],
            high: vec![512.0, 512.0],
            names: vec!["x".into(), "y".into()],
        }
    }

    #[test]
    fn continuous_pad_moves_by_rate_and_follows_the_mouse() {
        let mut pad = ActionPad::new(push_t());
        assert_eq!(pad.action(), Action::Continuous(vec![256.0, 256.0]));
        pad.apply_rates(&[1.0, -0.1], 0.5);
        // Full rate for half a second: 0.6 * 512 * 0.5; the small y input is in the deadzone.
        assert!((pad.values[0] - (256.0 + 153.6)).abs() < 1e-3);
        assert_eq!(pad.values[1], 256.0);
        pad.apply_rates(&[1.0, 0.0], 10.0);
        assert_eq!(pad.values[0], 512.0, "clamped to the box");
        pad.set_from_uv([0.25, 1.5]);
        assert_eq!(pad.values, vec![128.0, 512.0]);
        assert_eq!(pad.uv(), Some([0.25, 1.0]));
        assert!(pad.is_planar());
        assert!(!pad.choose(0));
    }

    #[test]
    fn discrete_pad_and_mappings() {
        let space = ActionSpace::Discrete {
            names: vec!["noop".into(), "left".into(), "right".into()],
        };
        let mut pad = ActionPad::new(space.clone());
        assert_eq!(pad.action(), Action::Discrete(0));
        assert!(pad.choose(2));
        assert!(!pad.choose(3));
        assert_eq!(pad.action(), Action::Discrete(2));
        assert!(pad.uv().is_none());
        let map = gamepad_mapping(&space);
        assert_eq!(map[1], ("East (B)".into(), "action left".into()));
        assert_eq!(gamepad_mapping(&push_t())[0].1, "moves x");
    }

    #[test]
    fn deadzone_rescales() {
        assert_eq!(deadzone(0.1, 0.15), 0.0);
        assert_eq!(deadzone(-1.0, 0.15), -1.0);
        assert!((deadzone(0.575, 0.15) - 0.5).abs() < 1e-6);
        assert_eq!(deadzone(f32::NAN, 0.15), 0.0);
    }
}
