//! Keyboard-and-mouse actions (DIAMOND's CS:GO model): the keys and buttons a person holds and
//! the mouse movement since the last step, encoded through the model's
//! [`KeyboardMouse`] layout. No Bevy: the GUI's input systems feed it key names (pygame's, as
//! the layout uses), mouse deltas and gamepad values, and take one action per step.

use dreamyard_model::{EncodedAction, KeyboardMouse, KeyboardMouseInput};
use dreamyard_scenes::Action;

/// Horizontal / vertical mouse movement per second that a full right-stick deflection makes, in
/// the layout's units (pixels; DIAMOND's bins reach 1000 / 200 per step).
pub const STICK_MOUSE_PER_SEC: (f32, f32) = (600.0, 300.0);

/// Stick deflection beyond which the left stick holds a movement key.
pub const STICK_KEY_THRESHOLD: f32 = 0.5;

/// The gamepad mapping for a keyboard-and-mouse model: (gamepad input, key or button name).
pub const GAMEPAD_BUTTONS: [(&str, &str); 9] = [
    ("South (A)", "space"),
    ("East (B)", "left ctrl"),
    ("West (X)", "r"),
    ("left stick press", "left shift"),
    ("D-pad left", "1"),
    ("D-pad up", "2"),
    ("D-pad right", "3"),
    ("right trigger", "left click"),
    ("left trigger", "right click"),
];

/// What the person holds, for a keyboard-and-mouse action layout.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyboardMousePad {
    pub layout: KeyboardMouse,
    /// Keys held, in the order they were pressed (the layout's exclusive pairs keep the first).
    held: Vec<String>,
    /// Mouse buttons held.
    buttons: Vec<String>,
    /// Mouse movement since the last step (pixels, right and down positive).
    mouse: (f32, f32),
    /// What the last step took.
    last: Option<EncodedAction>,
    /// Movement keys the left stick holds now.
    stick_keys: Vec<&'static str>,
}

impl KeyboardMousePad {
    pub fn new(layout: KeyboardMouse) -> Self {
        Self {
            layout,
            held: Vec::new(),
            buttons: Vec::new(),
            mouse: (0.0, 0.0),
            last: None,
            stick_keys: Vec::new(),
        }
    }

    /// Whether `name` is a key or button of the layout.
    pub fn uses(&self, name: &str) -> bool {
        self.layout.knows_key(name) || self.layout.buttons.iter().any(|b| b == name)
    }

    /// A key or button goes down (ignored if the layout does not know it, or already held).
    pub fn press(&mut self, name: &str) {
        if self.layout.buttons.iter().any(|b| b == name) {
            if !self.buttons.iter().any(|b| b == name) {
                self.buttons.push(name.to_owned());
            }
        } else if self.layout.knows_key(name) && !self.held.iter().any(|k| k == name) {
            self.held.push(name.to_owned());
        }
    }

    /// A key or button comes up.
    pub fn release(&mut self, name: &str) {
        self.held.retain(|k| k != name);
        self.buttons.retain(|b| b != name);
    }

    /// Sets whether `name` is held (for inputs polled as a state, like a stick or a trigger).
    pub fn set(&mut self, name: &str, down: bool) {
        if down {
            self.press(name);
        } else {
            self.release(name);
        }
    }

    /// Releases everything (focus lost, the pointer released).
    pub fn release_all(&mut self) {
        self.held.clear();
        self.buttons.clear();
    }

    /// Adds mouse movement (pixels).
    pub fn add_mouse(&mut self, dx: f32, dy: f32) {
        if dx.is_finite() && dy.is_finite() {
            self.mouse.0 += dx;
            self.mouse.1 += dy;
        }
    }

    /// The input as it stands.
    pub fn input(&self) -> KeyboardMouseInput {
        KeyboardMouseInput {
            keys: self.held.clone(),
            buttons: self.buttons.clone(),
            mouse: self.mouse,
        }
    }

    /// What a step taken now would take.
    pub fn current(&self) -> EncodedAction {
        self.layout.encode(&self.input())
    }

    /// The action a step taken now takes.
    pub fn action(&self) -> Action {
        Action::Continuous(self.current().vector)
    }

    /// A step took the current action: the mouse movement starts again from zero (DIAMOND bins
    /// the movement of each step).
    pub fn stepped(&mut self) {
        self.last = Some(self.current());
        self.mouse = (0.0, 0.0);
    }

    /// What the last step took.
    pub fn last(&self) -> Option<&EncodedAction> {
        self.last.as_ref()
    }

    /// Left stick (x right, y down, each in [-1, 1]) as the movement keys w / a / s / d. Only
    /// changes of the stick press or release keys, so keys held on a keyboard stay held.
    pub fn set_move_stick(&mut self, x: f32, y: f32) {
        let t = STICK_KEY_THRESHOLD;
        let now: Vec<&'static str> = [("a", x < -t), ("d", x > t), ("w", y < -t), ("s", y > t)]
            .into_iter()
            .filter_map(|(k, on)| on.then_some(k))
            .collect();
        for k in std::mem::take(&mut self.stick_keys) {
            if !now.contains(&k) {
                self.release(k);
            }
        }
        for &k in &now {
            self.press(k);
        }
        self.stick_keys = now;
    }

    /// Right stick (x right, y down, each in [-1, 1]) held for `dt_secs` as mouse movement.
    pub fn add_look_stick(&mut self, x: f32, y: f32, dt_secs: f32) {
        let dz = crate::controls::DEFAULT_DEADZONE;
        let (x, y) = (
            crate::controls::deadzone(x, dz),
            crate::controls::deadzone(y, dz),
        );
        self.add_mouse(
            x * STICK_MOUSE_PER_SEC.0 * dt_secs,
            y * STICK_MOUSE_PER_SEC.1 * dt_secs,
        );
    }
}

/// A vector of `layout` in words: the keys and buttons set, then the mouse movement
/// (`w + left click · mouse +60 -20`).
pub fn describe(layout: &KeyboardMouse, vector: &[f32]) -> String {
    let input = layout.decode(vector);
    let mut held: Vec<String> = input.keys;
    held.extend(input.buttons);
    let keys = if held.is_empty() {
        "no keys".to_owned()
    } else {
        held.join(" + ")
    };
    format!("{keys} · mouse {:+} {:+}", input.mouse.0, input.mouse.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(a: &EncodedAction) -> Vec<usize> {
        (0..a.vector.len())
            .filter(|&i| a.vector[i] == 1.0)
            .collect()
    }

    #[test]
    fn held_keys_clicks_and_mouse_become_diamonds_vector_per_step() {
        let mut pad = KeyboardMousePad::new(KeyboardMouse::csgo());
        assert_eq!(active(&pad.current()), [24, 43]);
        pad.press("w");
        pad.press("s"); // exclusive with w: dropped while w is held
        pad.press("left click");
        pad.press("f"); // not in the layout
        pad.add_mouse(40.0, -9.0);
        pad.add_mouse(25.0, -12.0); // 65, -21 over the step: bins 60 and -20
        assert_eq!(pad.current().kept_keys, ["w"]);
        assert_eq!(active(&pad.current()), [0, 11, 30, 39]);
        let Action::Continuous(v) = pad.action() else {
            panic!("a vector")
        };
        assert_eq!(v.len(), 51);
        assert_eq!(describe(&pad.layout, &v), "w + left click · mouse +60 -20");
        pad.stepped();
        assert_eq!(pad.last().map(|a| a.mouse), Some((60.0, -20.0)));
        // The next step's mouse starts from zero; held keys stay; s counts once w is up.
        assert_eq!(pad.current().mouse, (0.0, 0.0));
        pad.release("w");
        assert_eq!(pad.current().kept_keys, ["s"]);
        // Arrow keys set the view movement, whatever the mouse did.
        pad.press("left");
        pad.add_mouse(500.0, 0.0);
        assert_eq!(pad.current().mouse, (-60.0, 0.0));
        pad.release_all();
        assert!(pad.current().kept_keys.is_empty());
    }

    #[test]
    fn a_gamepad_moves_and_looks() {
        let mut pad = KeyboardMousePad::new(KeyboardMouse::csgo());
        pad.set_move_stick(-0.9, 0.1);
        assert_eq!(pad.current().kept_keys, ["a"]);
        pad.set_move_stick(0.0, -0.8);
        assert_eq!(pad.current().kept_keys, ["w"]);
        // An idle stick leaves a key held on the keyboard alone.
        pad.set_move_stick(0.0, 0.0);
        pad.press("d");
        pad.set_move_stick(0.0, 0.0);
        assert_eq!(pad.current().kept_keys, ["d"]);
        // Full right for a tenth of a second: 60 px, a bin of its own.
        pad.add_look_stick(1.0, 0.0, 0.1);
        assert_eq!(pad.current().mouse, (60.0, 0.0));
        for (_, name) in GAMEPAD_BUTTONS {
            assert!(pad.uses(name), "{name}");
        }
    }
}
