//! Input: keyboard shortcuts (DIAMOND's Enter / `.` / `e`, LeRobot's recording keys), the held
//! action from arrows/WASD, digits and gamepads (bevy_gilrs). The mouse target is set by the
//! frame panels (see `ui::views`).

use bevy::input::gamepad::{Gamepad, GamepadButton};
use bevy::prelude::*;
use bevy_egui::input::EguiWantsInput;
use dreamyard_scenes::Action;

use super::AppSet;
use super::driver::{AppCommands, SessionRes};
use crate::commands::Command;
use crate::controls::{ActionPad, KeySteer};

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<ControlState>().add_systems(
        Update,
        (sync_action_space, keyboard, gamepads)
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
}

impl ControlState {
    pub fn refresh(&mut self, source: InputSource) {
        self.action = self.pad.as_ref().map(ActionPad::action);
        self.source = source;
    }
}

fn sync_action_space(session: Option<Res<SessionRes>>, mut control: ResMut<ControlState>) {
    let Some(session) = session else {
        return;
    };
    let space = session.action_space().cloned();
    if control.pad.as_ref().map(|p| &p.space) != space.as_ref() {
        control.pad = space.map(ActionPad::new);
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
    if keys.just_pressed(KeyCode::Enter) {
        queue.push(Command::Reset);
    }
    let ctrl = keys.any_pressed([
        KeyCode::ControlLeft,
        KeyCode::ControlRight,
        KeyCode::SuperLeft,
        KeyCode::SuperRight,
    ]);
    if ctrl && keys.just_pressed(KeyCode::KeyZ) {
        queue.push(Command::Undo);
    }
    if keys.just_pressed(KeyCode::Period) || keys.just_pressed(KeyCode::Space) {
        queue.push(Command::SetPlaying(!session.transport.playing));
    }
    if keys.just_pressed(KeyCode::KeyE)
        && let Some(action) = control.action.clone()
    {
        queue.push(Command::Step(action));
    }
    if keys.just_pressed(KeyCode::KeyF)
        && let Some(step) = session.view_step()
        && session.active_branch().head().is_some_and(|h| step <= h)
    {
        queue.push(Command::Fork(step));
    }
    if keys.just_pressed(KeyCode::KeyT) {
        queue.push(Command::TakeOver);
    }
    if recording {
        if keys.any_just_pressed([KeyCode::ArrowRight, KeyCode::KeyN]) {
            queue.push(Command::SaveEpisode);
        } else if keys.any_just_pressed([KeyCode::ArrowLeft, KeyCode::KeyR]) {
            queue.push(Command::DiscardEpisode);
        } else if keys.any_just_pressed([KeyCode::Escape, KeyCode::KeyQ]) {
            queue.push(Command::StopRecording);
        }
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
