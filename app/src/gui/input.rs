//! Input: keyboard shortcuts (DIAMOND's Enter / `.` / `e`, LeRobot's recording keys), the held
//! action from arrows/WASD, digits and gamepads (bevy_gilrs). The mouse target is set by the
//! frame panels (see `ui::views`).

use bevy::input::gamepad::{Gamepad, GamepadButton};
use bevy::input::mouse::AccumulatedMouseMotion;
use bevy::prelude::*;
use bevy::window::{CursorGrabMode, CursorOptions, PrimaryWindow};
use bevy_egui::input::EguiWantsInput;
use dreamyard_scenes::Action;

use super::AppSet;
use super::driver::{AppCommands, SessionRes};
use crate::commands::Command;
use crate::controls::{ActionPad, KeySteer};
use crate::keyboard_mouse::KeyboardMousePad;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<ControlState>().add_systems(
        Update,
        (sync_action_space, keyboard, pointer, gamepads)
            .chain()
            .in_set(AppSet::Input),
    );
}

/// Which input last changed the action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum InputSource {
    #[default]
    None,
    Keyboard,
    Mouse,
    Gamepad,
    Widget,
    Synthetic,
}

/// The held action and where it came from.
#[derive(Resource, Debug, Default)]
pub(super) struct ControlState {
    pub pad: Option<ActionPad>,
    /// The action the next step takes (the pad's, when there is one).
    pub action: Option<Action>,
    pub source: InputSource,
    pub gamepad: Option<String>,
    /// Arrow/WASD steering: a press nudges, a held key accelerates.
    pub keys: KeySteer,
    /// The last take-over whose recorded action the pad started from.
    pub takeover_seen: Option<u64>,
    /// A keyboard-and-mouse model's input (DIAMOND's CS:GO): it makes the action, not `pad`.
    pub keyboard_mouse: Option<KeyboardMousePad>,
    /// Whether the pointer is locked to the window, its movement driving the mouse of a
    /// keyboard-and-mouse model (while playing; Esc or pausing releases it).
    pub pointer_locked: bool,
    /// Set by the model panel when clicked: lock the pointer (and play).
    pub lock_requested: bool,
    /// The left press that took the pointer, until it is released: not a shot.
    swallow_click: bool,
}

impl ControlState {
    pub fn refresh(&mut self, source: InputSource) {
        self.action = match &self.keyboard_mouse {
            Some(km) => Some(km.action()),
            None => self.pad.as_ref().map(ActionPad::action),
        };
        self.source = source;
    }

    /// A step took the current action: a keyboard-and-mouse model's mouse movement restarts.
    pub fn stepped(&mut self) {
        if let Some(km) = self.keyboard_mouse.as_mut() {
            km.stepped();
            self.action = Some(km.action());
        }
    }
}

/// pygame's name of a key (what DIAMOND's keyboard-and-mouse layouts use), for the keys a
/// layout may name.
pub(super) fn pygame_name(key: KeyCode) -> Option<&'static str> {
    use KeyCode as K;
    Some(match key {
        K::KeyA => "a",
        K::KeyB => "b",
        K::KeyC => "c",
        K::KeyD => "d",
        K::KeyE => "e",
        K::KeyF => "f",
        K::KeyG => "g",
        K::KeyH => "h",
        K::KeyI => "i",
        K::KeyJ => "j",
        K::KeyK => "k",
        K::KeyL => "l",
        K::KeyM => "m",
        K::KeyN => "n",
        K::KeyO => "o",
        K::KeyP => "p",
        K::KeyQ => "q",
        K::KeyR => "r",
        K::KeyS => "s",
        K::KeyT => "t",
        K::KeyU => "u",
        K::KeyV => "v",
        K::KeyW => "w",
        K::KeyX => "x",
        K::KeyY => "y",
        K::KeyZ => "z",
        K::Digit0 => "0",
        K::Digit1 => "1",
        K::Digit2 => "2",
        K::Digit3 => "3",
        K::Digit4 => "4",
        K::Digit5 => "5",
        K::Digit6 => "6",
        K::Digit7 => "7",
        K::Digit8 => "8",
        K::Digit9 => "9",
        K::Space => "space",
        K::ControlLeft => "left ctrl",
        K::ControlRight => "right ctrl",
        K::ShiftLeft => "left shift",
        K::ShiftRight => "right shift",
        K::AltLeft => "left alt",
        K::AltRight => "right alt",
        K::Tab => "tab",
        K::ArrowUp => "up",
        K::ArrowDown => "down",
        K::ArrowLeft => "left",
        K::ArrowRight => "right",
        _ => return None,
    })
}

fn sync_action_space(session: Option<Res<SessionRes>>, mut control: ResMut<ControlState>) {
    let Some(session) = session else {
        return;
    };
    let space = session.action_space().cloned();
    let layout = session.model_info().and_then(|m| m.keyboard_mouse.as_ref());
    let layout_changed = control.keyboard_mouse.as_ref().map(|k| &k.layout) != layout;
    if control.pad.as_ref().map(|p| &p.space) != space.as_ref() || layout_changed {
        control.pad = space.map(ActionPad::new);
        control.keyboard_mouse = layout.cloned().map(KeyboardMousePad::new);
        control.refresh(InputSource::None);
    }
    // A take-over from a replay: the controls start from the recorded action there.
    if let Some((n, action)) = session.takeover_action()
        && control.takeover_seen != Some(n)
    {
        control.takeover_seen = Some(n);
        if let Some(pad) = control.pad.as_mut()
            && pad.set_action(action)
        {
            control.refresh(InputSource::None);
        }
    }
}

const DIGITS: [KeyCode; 10] = [
    KeyCode::Digit0,
    KeyCode::Digit1,
    KeyCode::Digit2,
    KeyCode::Digit3,
    KeyCode::Digit4,
    KeyCode::Digit5,
    KeyCode::Digit6,
    KeyCode::Digit7,
    KeyCode::Digit8,
    KeyCode::Digit9,
];

fn keyboard(
    keys: Res<ButtonInput<KeyCode>>,
    time: Res<Time>,
    wants: Res<EguiWantsInput>,
    session: Option<Res<SessionRes>>,
    mut control: ResMut<ControlState>,
    mut queue: ResMut<AppCommands>,
) {
    let Some(session) = session else {
        return;
    };
    let queue = &mut queue.0;
    if wants.wants_any_keyboard_input() {
        return;
    }
    let recording = session.recording().is_some();
    // A keyboard-and-mouse model takes its keys; shortcuts on those keys give way.
    let taken_keys: Vec<KeyCode> = match &control.keyboard_mouse {
        Some(km) => keys
            .get_just_pressed()
            .copied()
            .filter(|k| pygame_name(*k).is_some_and(|n| km.uses(n)))
            .collect(),
        None => Vec::new(),
    };
    let taken = |k: KeyCode| taken_keys.contains(&k);
    let pressed = |k: KeyCode| keys.just_pressed(k) && !taken(k);
    if keys.just_pressed(KeyCode::Escape) && control.pointer_locked {
        // Esc gives the pointer back (and pauses: the mouse no longer steers).
        control.pointer_locked = false;
        queue.push(Command::SetPlaying(false));
        if let Some(km) = control.keyboard_mouse.as_mut() {
            km.release_all();
        }
        control.refresh(InputSource::Keyboard);
        return;
    }
    if keys.just_pressed(KeyCode::Enter) {
        queue.push(Command::Reset);
    }
    let ctrl = keys.any_pressed([
        KeyCode::ControlLeft,
        KeyCode::ControlRight,
        KeyCode::SuperLeft,
        KeyCode::SuperRight,
    ]);
    if ctrl && pressed(KeyCode::KeyZ) {
        queue.push(Command::Undo);
    }
    if pressed(KeyCode::Period) || pressed(KeyCode::Space) {
        queue.push(Command::SetPlaying(!session.transport.playing));
    }
    if pressed(KeyCode::KeyE)
        && let Some(action) = control.action.clone()
    {
        queue.push(Command::Step(action));
        control.stepped();
    }
    if pressed(KeyCode::KeyF)
        && let Some(step) = session.view_step()
        && session.active_branch().head().is_some_and(|h| step <= h)
    {
        queue.push(Command::Fork(step));
    }
    if pressed(KeyCode::KeyT) {
        queue.push(Command::TakeOver);
    }
    if recording {
        // LeRobot's keys, and Backspace to discard where ← and r are a model's.
        if [KeyCode::ArrowRight, KeyCode::KeyN]
            .into_iter()
            .any(pressed)
        {
            queue.push(Command::SaveEpisode);
        } else if [KeyCode::ArrowLeft, KeyCode::KeyR, KeyCode::Backspace]
            .into_iter()
            .any(pressed)
        {
            queue.push(Command::DiscardEpisode);
        } else if [KeyCode::Escape, KeyCode::KeyQ].into_iter().any(pressed) {
            queue.push(Command::StopRecording);
        }
    }

    if let Some(km) = control.keyboard_mouse.as_mut() {
        let mut changed = false;
        for k in keys.get_just_pressed() {
            if let Some(name) = pygame_name(*k).filter(|n| km.uses(n)) {
                km.press(name);
                changed = true;
            }
        }
        for k in keys.get_just_released() {
            if let Some(name) = pygame_name(*k).filter(|n| km.uses(n)) {
                km.release(name);
                changed = true;
            }
        }
        if changed {
            control.refresh(InputSource::Keyboard);
        }
        return;
    }

    let ControlState {
        pad, keys: steer, ..
    } = &mut *control;
    let Some(pad) = pad.as_mut() else {
        return;
    };
    let axis = |neg: &[KeyCode], pos: &[KeyCode]| {
        f32::from(u8::from(keys.any_pressed(pos.iter().copied())))
            - f32::from(u8::from(keys.any_pressed(neg.iter().copied())))
    };
    // While recording, ← and → are LeRobot's episode keys; WASD still steers.
    let (left, right): (&[KeyCode], &[KeyCode]) = if recording {
        (&[KeyCode::KeyA], &[KeyCode::KeyD])
    } else {
        (
            &[KeyCode::ArrowLeft, KeyCode::KeyA],
            &[KeyCode::ArrowRight, KeyCode::KeyD],
        )
    };
    let rates = [
        axis(left, right),
        axis(
            &[KeyCode::ArrowUp, KeyCode::KeyW],
            &[KeyCode::ArrowDown, KeyCode::KeyS],
        ),
    ];
    let mut changed = false;
    if pad.is_planar() {
        changed = steer.update(pad, &rates, time.delta_secs());
    }
    for (i, key) in DIGITS.iter().enumerate() {
        if keys.just_pressed(*key) && pad.choose(i) {
            changed = true;
        }
    }
    if changed {
        control.refresh(InputSource::Keyboard);
    }
}

/// Pointer lock for a keyboard-and-mouse model: the model panel asks for it (a click there also
/// plays); while locked and playing, the mouse's movement and buttons are the model's; pausing
/// or Esc gives the pointer back.
fn pointer(
    motion: Res<AccumulatedMouseMotion>,
    buttons: Res<ButtonInput<MouseButton>>,
    session: Option<Res<SessionRes>>,
    mut windows: Query<(&mut CursorOptions, &mut Window), With<PrimaryWindow>>,
    mut control: ResMut<ControlState>,
    mut queue: ResMut<AppCommands>,
) {
    let Some(session) = session else {
        return;
    };
    let playing = session.transport.playing;
    let want = std::mem::take(&mut control.lock_requested);
    let was_locked = control.pointer_locked;
    if control.keyboard_mouse.is_none() {
        control.pointer_locked = false;
    } else if want && !control.pointer_locked {
        control.pointer_locked = true;
        control.swallow_click = true;
        if !playing {
            queue.0.push(Command::SetPlaying(true));
        }
    } else if control.pointer_locked && !playing && !want && !queue.0.is_empty() {
        // A pause queued this frame: keep the lock until it applies.
    } else if control.pointer_locked && !playing {
        control.pointer_locked = false;
        if let Some(km) = control.keyboard_mouse.as_mut() {
            km.release_all();
        }
        control.refresh(InputSource::None);
    }
    let locked = control.pointer_locked;
    // Where raw motion is missing (X11 confines rather than locks; synthetic input sends no
    // raw events), the cursor's offset from the window centre is the motion, and the cursor
    // goes back to the centre.
    let mut fallback = Vec2::ZERO;
    for (mut cursor, mut window) in &mut windows {
        let mode = if locked {
            CursorGrabMode::Locked
        } else {
            CursorGrabMode::None
        };
        if cursor.grab_mode != mode {
            cursor.grab_mode = mode;
            cursor.visible = !locked;
        }
        if locked {
            let centre = Vec2::new(window.width(), window.height()) / 2.0;
            if let Some(pos) = window.cursor_position() {
                fallback += pos - centre;
                if (pos - centre).length_squared() > 0.25 {
                    window.set_cursor_position(Some(centre));
                }
            }
        }
    }
    if !locked {
        return;
    }
    let Some(km) = control.keyboard_mouse.as_mut() else {
        return;
    };
    let delta = if !was_locked {
        // The click that took the pointer is not a movement.
        Vec2::ZERO
    } else if motion.delta != Vec2::ZERO {
        motion.delta
    } else {
        fallback
    };
    km.add_mouse(delta.x, delta.y);
    // The click that took the pointer is not a shot: buttons count from the next press.
    if !buttons.pressed(MouseButton::Left) {
        control.swallow_click = false;
    }
    let swallow = control.swallow_click;
    let Some(km) = control.keyboard_mouse.as_mut() else {
        return;
    };
    km.set("left click", buttons.pressed(MouseButton::Left) && !swallow);
    km.set("right click", buttons.pressed(MouseButton::Right));
    control.refresh(InputSource::Mouse);
}

const DISCRETE_BUTTONS: [GamepadButton; 8] = [
    GamepadButton::South,
    GamepadButton::East,
    GamepadButton::West,
    GamepadButton::North,
    GamepadButton::DPadUp,
    GamepadButton::DPadDown,
    GamepadButton::DPadLeft,
    GamepadButton::DPadRight,
];

fn gamepads(
    pads: Query<(&Gamepad, Option<&Name>)>,
    time: Res<Time>,
    session: Option<Res<SessionRes>>,
    mut control: ResMut<ControlState>,
    mut queue: ResMut<AppCommands>,
) {
    let Some(session) = session else {
        return;
    };
    let Some((gamepad, name)) = pads.iter().next() else {
        control.gamepad = None;
        return;
    };
    control.gamepad = Some(name.map_or_else(|| "gamepad".to_owned(), |n| n.to_string()));
    if gamepad.just_pressed(GamepadButton::Start) {
        queue
            .0
            .push(Command::SetPlaying(!session.transport.playing));
    }
    if gamepad.just_pressed(GamepadButton::Select) {
        queue.0.push(Command::Reset);
    }
    if let Some(km) = control.keyboard_mouse.as_mut() {
        // A keyboard-and-mouse model: left stick walks, right stick looks, buttons are keys.
        let (l, r) = (gamepad.left_stick(), gamepad.right_stick());
        let before = km.current();
        km.set_move_stick(l.x, -l.y);
        km.add_look_stick(r.x, -r.y, time.delta_secs());
        // Edges only, so a key held on the keyboard is not released by an idle gamepad.
        for (button, name) in [
            (GamepadButton::South, "space"),
            (GamepadButton::East, "left ctrl"),
            (GamepadButton::West, "r"),
            (GamepadButton::LeftThumb, "left shift"),
            (GamepadButton::DPadLeft, "1"),
            (GamepadButton::DPadUp, "2"),
            (GamepadButton::DPadRight, "3"),
            (GamepadButton::RightTrigger2, "left click"),
            (GamepadButton::LeftTrigger2, "right click"),
        ] {
            if gamepad.just_pressed(button) {
                km.press(name);
            } else if gamepad.just_released(button) {
                km.release(name);
            }
        }
        if km.current() != before {
            control.refresh(InputSource::Gamepad);
        }
        return;
    }
    let Some(pad) = control.pad.as_mut() else {
        return;
    };
    let (l, r) = (gamepad.left_stick(), gamepad.right_stick());
    // Stick y is up-positive; frames are y-down.
    let rates = [l.x, -l.y, r.x, -r.y];
    let before = pad.values.clone();
    pad.apply_rates(&rates, time.delta_secs());
    for (i, b) in DISCRETE_BUTTONS.iter().enumerate() {
        if gamepad.just_pressed(*b) {
            pad.choose(i);
        }
    }
    if pad.values != before {
        control.refresh(InputSource::Gamepad);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dreamyard_scenes::{SceneSource, load_scene};

    use super::*;
    use crate::session::Session;
    use crate::session::truth::LiveScene;

    /// The input systems on a headless app: no window, no renderer.
    fn app() -> App {
        let mut app = App::new();
        app.add_plugins(MinimalPlugins)
            .init_resource::<ButtonInput<KeyCode>>()
            .init_resource::<EguiWantsInput>()
            .init_resource::<ControlState>()
            .init_resource::<AppCommands>()
            .init_resource::<crate::gui::driver::OutputsRes>()
            .init_resource::<crate::gui::files::Recent>()
            .add_systems(
                Update,
                (
                    sync_action_space,
                    keyboard,
                    crate::gui::driver::apply_commands,
                )
                    .chain(),
            );
        let mut session = Session::default();
        let scene = load_scene(&SceneSource::parse("push-t"), Some((32, 32))).unwrap();
        assert!(session.set_truth(Box::new(LiveScene::new(scene, 0))));
        app.insert_resource(SessionRes(session));
        app.update();
        app
    }

    fn tap(app: &mut App, key: KeyCode) {
        app.world_mut()
            .resource_mut::<ButtonInput<KeyCode>>()
            .press(key);
        app.update();
        let mut keys = app.world_mut().resource_mut::<ButtonInput<KeyCode>>();
        keys.release(key);
        keys.clear();
    }

    fn session(app: &App) -> &Session {
        &app.world().resource::<SessionRes>().0
    }

    #[test]
    fn diamond_keys_step_pause_and_reset() {
        let mut app = app();
        assert!(app.world().resource::<ControlState>().pad.is_some());
        tap(&mut app, KeyCode::KeyE);
        tap(&mut app, KeyCode::KeyE);
        assert_eq!(session(&app).active_branch().steps.len(), 3);
        tap(&mut app, KeyCode::Period);
        assert!(session(&app).transport.playing);
        tap(&mut app, KeyCode::Period);
        assert!(!session(&app).transport.playing);
        tap(&mut app, KeyCode::Enter);
        assert_eq!(session(&app).active_branch().steps.len(), 1);
        tap(&mut app, KeyCode::KeyF);
        assert_eq!(
            session(&app).branches().len(),
            2,
            "f forks at the shown step"
        );
    }

    #[test]
    fn arrows_move_the_target() {
        let mut app = app();
        let x0 = app
            .world()
            .resource::<ControlState>()
            .pad
            .as_ref()
            .unwrap()
            .values[0];
        app.world_mut()
            .resource_mut::<ButtonInput<KeyCode>>()
            .press(KeyCode::ArrowRight);
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(5));
            app.update();
        }
        let control = app.world().resource::<ControlState>();
        let x1 = control.pad.as_ref().unwrap().values[0];
        assert!(x1 > x0, "{x1} > {x0}");
        assert_eq!(control.source, InputSource::Keyboard);
        assert_eq!(
            control.action,
            Some(Action::Continuous(
                control.pad.as_ref().unwrap().values.clone()
            ))
        );
    }
}
