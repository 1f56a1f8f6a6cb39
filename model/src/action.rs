//! Keyboard-and-mouse actions as a multi-hot vector, the layout of DIAMOND's CS:GO model
//! (`src/csgo/action_processing.py`, `encode_csgo_action`): keys pressed (one value each),
//! mouse buttons, then the mouse movement of the step as two one-hot blocks over bins.
//!
//! The layout is data in the model's config ([`crate::ActionSpace::MultiHot`]), so any
//! multi-hot keyboard-and-mouse model is driven the same way; [`KeyboardMouse::csgo`] is
//! DIAMOND's.

use serde::{Deserialize, Serialize};

/// A key that moves the mouse by a fixed amount instead of setting a value of its own
/// (DIAMOND's arrow keys: `left` sets the horizontal movement to -60).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MouseKey {
    /// Key name.
    pub key: String,
    /// The horizontal movement it sets, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f32>,
    /// The vertical movement it sets, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<f32>,
}

/// What each value of a keyboard-and-mouse action vector means:
/// `[keys.., buttons.., one-hot over mouse_x.., one-hot over mouse_y..]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyboardMouse {
    /// Keys with a value each, in vector order (names as pygame writes them: `w`, `space`,
    /// `left ctrl`, `1`).
    pub keys: Vec<String>,
    /// Mouse buttons with a value each, after the keys (`left click`, `right click`).
    pub buttons: Vec<String>,
    /// Bins of the horizontal mouse movement per step (increasing); the movement is clipped to
    /// the first and last and snapped to the nearest (on a tie, the first in order).
    pub mouse_x: Vec<f32>,
    /// Bins of the vertical mouse movement per step, likewise.
    pub mouse_y: Vec<f32>,
    /// Pairs of keys that cannot be held together: of a pair, the key that comes later in the
    /// pressed order is dropped.
    #[serde(default)]
    pub exclusive: Vec<[String; 2]>,
    /// Keys that set the mouse movement, applied after binning (and so overriding the mouse).
    #[serde(default)]
    pub mouse_keys: Vec<MouseKey>,
}

/// One step of keyboard-and-mouse input, before encoding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyboardMouseInput {
    /// Keys held, in the order they were pressed.
    pub keys: Vec<String>,
    /// Buttons held.
    pub buttons: Vec<String>,
    /// Mouse movement over the step (pixels; right and down are positive).
    pub mouse: (f32, f32),
}

/// An encoded step: which keys were kept and the binned movement, besides the vector.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedAction {
    /// The multi-hot vector.
    pub vector: Vec<f32>,
    /// The keys that count (known, not dropped by an exclusive pair), in pressed order.
    pub kept_keys: Vec<String>,
    /// The mouse movement after clipping, binning and the mouse keys.
    pub mouse: (f32, f32),
}

impl KeyboardMouse {
    /// DIAMOND's CS:GO layout (51 values).
    pub fn csgo() -> Self {
        let s = |v: &[&str]| v.iter().map(|k| (*k).to_string()).collect::<Vec<_>>();
        let pair = |a: &str, b: &str| [a.to_string(), b.to_string()];
        Self {
            keys: s(&[
                "w",
                "a",
                "s",
                "d",
                "space",
                "left ctrl",
                "left shift",
                "1",
                "2",
                "3",
                "r",
            ]),
            buttons: s(&["left click", "right click"]),
            mouse_x: vec![
                -1000.0, -500.0, -300.0, -200.0, -100.0, -60.0, -30.0, -20.0, -10.0, -4.0, -2.0,
                0.0, 2.0, 4.0, 10.0, 20.0, 30.0, 60.0, 100.0, 200.0, 300.0, 500.0, 1000.0,
            ],
            mouse_y: vec![
                -200.0, -100.0, -50.0, -20.0, -10.0, -4.0, -2.0, 0.0, 2.0, 4.0, 10.0, 20.0, 50.0,
                100.0, 200.0,
            ],
            exclusive: vec![
                pair("w", "s"),
                pair("a", "d"),
                pair("1", "2"),
                pair("1", "3"),
                pair("2", "3"),
                pair("up", "down"),
                pair("left", "right"),
            ],
            mouse_keys: vec![
                MouseKey {
                    key: "left".into(),
                    x: Some(-60.0),
                    y: None,
                },
                MouseKey {
                    key: "right".into(),
                    x: Some(60.0),
                    y: None,
                },
                MouseKey {
                    key: "up".into(),
                    x: None,
                    y: Some(-50.0),
                },
                MouseKey {
                    key: "down".into(),
                    x: None,
                    y: Some(50.0),
                },
            ],
        }
    }

    /// Length of the vector.
    pub fn len(&self) -> usize {
        self.keys.len() + self.buttons.len() + self.mouse_x.len() + self.mouse_y.len()
    }

    /// Whether the layout has no values at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` means anything here (a value of its own or a mouse key).
    pub fn knows_key(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key) || self.mouse_keys.iter().any(|m| m.key == key)
    }

    /// Index of the first value of the horizontal mouse block.
    pub fn mouse_x_offset(&self) -> usize {
        self.keys.len() + self.buttons.len()
    }

    /// Index of the first value of the vertical mouse block.
    pub fn mouse_y_offset(&self) -> usize {
        self.mouse_x_offset() + self.mouse_x.len()
    }

    /// Encodes one step as DIAMOND's `CSGOAction` + `encode_csgo_action`: unknown keys are
    /// dropped, then (in pressed order) any key completing an exclusive pair with a kept key;
    /// the movement is clipped to the bins' range and snapped to the nearest bin (ties: the
    /// first bin); mouse keys then override it. Exactly one value of each mouse block is set.
    pub fn encode(&self, input: &KeyboardMouseInput) -> EncodedAction {
        let mut kept: Vec<String> = Vec::new();
        for k in &input.keys {
            if !self.knows_key(k) || kept.contains(k) {
                continue;
            }
            let clashes = self.exclusive.iter().any(|[a, b]| {
                (a == k && kept.iter().any(|x| x == b)) || (b == k && kept.iter().any(|x| x == a))
            });
            if !clashes {
                kept.push(k.clone());
            }
        }
        let mut x = snap(&self.mouse_x, input.mouse.0);
        let mut y = snap(&self.mouse_y, input.mouse.1);
        for m in &self.mouse_keys {
            if kept.contains(&m.key) {
                if let Some(v) = m.x {
                    x = v;
                }
                if let Some(v) = m.y {
                    y = v;
                }
            }
        }
        let mut vector = vec![0.0f32; self.len()];
        for (i, k) in self.keys.iter().enumerate() {
            if kept.contains(k) {
                vector[i] = 1.0;
            }
        }
        for (i, b) in self.buttons.iter().enumerate() {
            if input.buttons.contains(b) {
                vector[self.keys.len() + i] = 1.0;
            }
        }
        if let Some(i) = nearest(&self.mouse_x, x) {
            vector[self.mouse_x_offset() + i] = 1.0;
        }
        if let Some(i) = nearest(&self.mouse_y, y) {
            vector[self.mouse_y_offset() + i] = 1.0;
        }
        EncodedAction {
            vector,
            kept_keys: kept,
            mouse: (x, y),
        }
    }

    /// Reads a vector back: the keys and buttons set and the binned mouse movement (the first
    /// set bin of each block; 0 where none is set).
    pub fn decode(&self, vector: &[f32]) -> KeyboardMouseInput {
        let on = |i: usize| vector.get(i).is_some_and(|&v| v > 0.5);
        let keys = (0..self.keys.len())
            .filter(|&i| on(i))
            .map(|i| self.keys[i].clone())
            .collect();
        let buttons = (0..self.buttons.len())
            .filter(|&i| on(self.keys.len() + i))
            .map(|i| self.buttons[i].clone())
            .collect();
        let block = |bins: &[f32], off: usize| {
            (0..bins.len())
                .find(|&i| on(off + i))
                .map_or(0.0, |i| bins[i])
        };
        KeyboardMouseInput {
            keys,
            buttons,
            mouse: (
                block(&self.mouse_x, self.mouse_x_offset()),
                block(&self.mouse_y, self.mouse_y_offset()),
            ),
        }
    }
}

/// Index of the bin nearest `v` (first on a tie), `None` for no bins.
fn nearest(bins: &[f32], v: f32) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &b) in bins.iter().enumerate() {
        let d = (b - v).abs();
        if best.is_none_or(|(_, bd)| d < bd) {
            best = Some((i, d));
        }
    }
    best.map(|(i, _)| i)
}

/// `v` clipped to the bins' range and snapped to the nearest bin (0 for no bins; NaN as 0).
fn snap(bins: &[f32], v: f32) -> f32 {
    let v = if v.is_nan() { 0.0 } else { v };
    let (lo, hi) = bins
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &b| {
            (l.min(b), h.max(b))
        });
    if bins.is_empty() {
        return 0.0;
    }
    let v = v.clamp(lo, hi);
    nearest(bins, v).map_or(0.0, |i| bins[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(keys: &[&str], mouse: (f32, f32), buttons: &[&str]) -> KeyboardMouseInput {
        KeyboardMouseInput {
            keys: keys.iter().map(|k| (*k).to_string()).collect(),
            buttons: buttons.iter().map(|k| (*k).to_string()).collect(),
            mouse,
        }
    }

    fn active(v: &[f32]) -> Vec<usize> {
        (0..v.len()).filter(|&i| v[i] == 1.0).collect()
    }

    #[test]
    fn csgo_layout_encodes_as_diamond() {
        let km = KeyboardMouse::csgo();
        assert_eq!(km.len(), 51);
        let e = km.encode(&input(&[], (0.0, 0.0), &[]));
        assert_eq!(active(&e.vector), [24, 43]);
        let e = km.encode(&input(&["w", "s", "unknown"], (7.0, -3.0), &["left click"]));
        assert_eq!(e.kept_keys, ["w"]);
        assert_eq!(e.mouse, (4.0, -4.0));
        let e = km.encode(&input(&["left", "down"], (300.0, -100.0), &[]));
        assert_eq!(e.mouse, (-60.0, 50.0));
        assert_eq!(active(&e.vector), [18, 48]);
        let e = km.encode(&input(&[], (f32::NAN, 1e9), &[]));
        assert_eq!(e.mouse, (0.0, 200.0));
        let back = km.decode(
            &km.encode(&input(&["d", "r"], (-30.0, 10.0), &["right click"]))
                .vector,
        );
        assert_eq!(back, input(&["d", "r"], (-30.0, 10.0), &["right click"]));
    }
}
