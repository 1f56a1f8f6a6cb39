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

    /// Holds `action` (clamped to the box; a discrete one by index) if it is of this space's
    /// kind and size; returns whether it was taken.
    pub fn set_action(&mut self, action: &Action) -> bool {
        match (&self.space, action) {
            (ActionSpace::Continuous { low, high, .. }, Action::Continuous(v))
                if v.len() == self.values.len() =>
            {
                for (i, x) in v.iter().enumerate() {
                    self.values[i] = x.clamp(low[i].min(high[i]), high[i].max(low[i]));
                }
                true
            }
            (ActionSpace::Discrete { .. }, Action::Discrete(i)) => self.choose(*i as usize),
            _ => false,
        }
    }

    /// Where `action`'s first two dimensions point in a frame (as [`Self::uv`]).
    pub fn uv_of(&self, action: &Action) -> Option<[f32; 2]> {
        let mut pad = self.clone();
        pad.set_action(action).then(|| pad.uv()).flatten()
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

/// A key press moves a continuous dimension by this fraction of its range (8 units of
/// push-t's 512)...
pub const NUDGE_FRACTION: f32 = 1.0 / 64.0;
/// ...a key held longer than this starts moving it continuously...
pub const HOLD_DELAY_SECS: f32 = 0.3;
/// ...from this speed (fraction of the range per second)...
pub const HOLD_START_RATE: f32 = 0.1;
/// ...up to this one, reached after [`HOLD_RAMP_SECS`] more.
pub const HOLD_TOP_RATE: f32 = 0.8;
pub const HOLD_RAMP_SECS: f32 = 1.5;

/// Keyboard steering of continuous dimensions: a press nudges by a small fixed step (precise
/// placement), holding the key moves on and accelerates (crossing the scene quickly).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeySteer {
    /// Per dimension: the direction held and for how long (seconds).
    held: Vec<(f32, f32)>,
}

impl KeySteer {
    /// Updates `pad` for keys held now: `dirs[i]` is -1, 0 or 1 for dimension `i`, `dt_secs`
    /// the time since the last call. Returns whether the pad moved.
    pub fn update(&mut self, pad: &mut ActionPad, dirs: &[f32], dt_secs: f32) -> bool {
        if self.held.len() < dirs.len() {
            self.held.resize(dirs.len(), (0.0, 0.0));
        }
        let mut moved = false;
        for (i, &dir) in dirs.iter().enumerate() {
            let dir = dir.signum() * f32::from(u8::from(dir != 0.0));
            let (held_dir, secs) = &mut self.held[i];
            let Some((lo, hi)) = pad.range(i) else {
                continue;
            };
            let span = hi - lo;
            let delta = if dir == 0.0 {
                *secs = 0.0;
                *held_dir = 0.0;
                continue;
            } else if dir != *held_dir {
                // A fresh press (or the other way): one nudge.
                *held_dir = dir;
                *secs = 0.0;
                dir * NUDGE_FRACTION * span
            } else {
                *secs += dt_secs;
                let over = *secs - HOLD_DELAY_SECS;
                if over <= 0.0 {
                    continue;
                }
                let t = (over / HOLD_RAMP_SECS).min(1.0);
                let rate = HOLD_START_RATE + t * (HOLD_TOP_RATE - HOLD_START_RATE);
                dir * rate * span * dt_secs.min(over)
            };
            if let Some(v) = pad.values.get_mut(i) {
                let before = *v;
                *v = (*v + delta).clamp(lo, hi);
                moved |= *v != before;
            }
        }
        moved
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
    fn a_key_press_nudges_and_a_held_key_accelerates() {
        let mut pad = ActionPad::new(push_t());
        let mut keys = KeySteer::default();
        let frame = 1.0 / 60.0;
        // A tap: one step of 8 units, however long the frame.
        assert!(keys.update(&mut pad, &[1.0, 0.0], frame));
        assert_eq!(pad.values, vec![264.0, 256.0]);
        assert!(!keys.update(&mut pad, &[0.0, 0.0], frame));
        // Two taps up: two steps.
        keys.update(&mut pad, &[0.0, -1.0], frame);
        keys.update(&mut pad, &[0.0, 0.0], frame);
        keys.update(&mut pad, &[0.0, -1.0], frame);
        assert_eq!(pad.values, vec![264.0, 240.0]);
        // Held: still until the delay, then moving, faster and faster (from the bottom edge).
        pad.set_from_uv([0.5, 1.0]);
        let mut held = |secs: f32, pad: &mut ActionPad| {
            let before = pad.values[1];
            let mut t = 0.0;
            while t < secs {
                keys.update(pad, &[0.0, -1.0], frame);
                t += frame;
            }
            before - pad.values[1]
        };
        assert_eq!(
            held(0.25, &mut pad),
            0.0,
            "no auto-repeat before the hold delay"
        );
        let slow = held(0.25, &mut pad);
        let _ = held(1.0, &mut pad);
        let fast = held(0.25, &mut pad);
        assert!(slow > 0.0 && fast > 4.0 * slow, "{slow} then {fast}");
        assert!(fast <= HOLD_TOP_RATE * 512.0 * 0.26);
        // Clamped to the box.
        held(5.0, &mut pad);
        assert_eq!(pad.values[1], 0.0);
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
    fn a_pad_takes_an_action_and_says_where_it_points() {
        let mut pad = ActionPad::new(push_t());
        assert!(pad.set_action(&Action::Continuous(vec![128.0, 384.0])));
        assert_eq!(pad.action(), Action::Continuous(vec![128.0, 384.0]));
        assert_eq!(pad.uv(), Some([0.25, 0.75]));
        // Outside the box: clamped; another kind or size: refused, nothing changes.
        assert!(pad.set_action(&Action::Continuous(vec![-5.0, 900.0])));
        assert_eq!(pad.action(), Action::Continuous(vec![0.0, 512.0]));
        assert!(!pad.set_action(&Action::Continuous(vec![1.0])));
        assert!(!pad.set_action(&Action::Discrete(1)));
        assert_eq!(pad.action(), Action::Continuous(vec![0.0, 512.0]));
        // Where another action points, the pad unmoved.
        assert_eq!(
            pad.uv_of(&Action::Continuous(vec![256.0, 0.0])),
            Some([0.5, 0.0])
        );
        assert_eq!(pad.uv(), Some([0.0, 1.0]));
        let mut discrete = ActionPad::new(ActionSpace::Discrete {
            names: vec!["a".into(), "b".into()],
        });
        assert!(discrete.set_action(&Action::Discrete(1)));
        assert_eq!(discrete.action(), Action::Discrete(1));
        assert!(!discrete.set_action(&Action::Discrete(2)));
    }

    #[test]
    fn deadzone_rescales() {
        assert_eq!(deadzone(0.1, 0.15), 0.0);
        assert_eq!(deadzone(-1.0, 0.15), -1.0);
        assert!((deadzone(0.575, 0.15) - 0.5).abs() < 1e-6);
        assert_eq!(deadzone(f32::NAN, 0.15), 0.0);
    }
}
