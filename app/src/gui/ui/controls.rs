//! The left panel: transport, the action (2-D pad, sliders or buttons from the action space),
//! input mappings, rollout settings (re-anchor, re-sync, take over, dream mode), recording and
//! export.

use bevy_egui::egui::{self, Color32, Sense, Stroke, Vec2};
use dreamyard_scenes::ActionSpace;

use super::UiState;
use crate::commands::{Command, ExportKind};
use crate::controls::{KEYS, gamepad_mapping};
use crate::gui::input::InputSource;
use crate::session::truth::TruthKind;

pub(super) fn controls_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    transport_ui(ui, state);
    ui.separator();
    action_ui(ui, state);
    ui.separator();
    rollout_ui(ui, state);
    ui.separator();
    record_ui(ui, state);
}

fn section(ui: &mut egui::Ui, title: &str) {
    ui.label(egui::RichText::new(title).strong().size(14.0));
}

fn transport_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    section(ui, "Playback");
    let session = state.session;
    let mut config = session.config.clone();
    ui.horizontal(|ui| {
        let playing = session.transport.playing;
        let label = if playing { "⏸ Pause" } else { "▶ Play" };
        if ui
            .add_sized([84.0, 26.0], egui::Button::new(label).selected(playing))
            .on_hover_text(". or Space")
            .clicked()
        {
            state.commands.push(Command::SetPlaying(!playing));
        }
        if ui
            .add_sized([70.0, 26.0], egui::Button::new("⏭ Step"))
            .on_hover_text("e")
            .clicked()
            && let Some(action) = state.control.action.clone()
        {
            state.commands.push(Command::Step(action));
            state.control.stepped();
        }
        if ui
            .add_sized([70.0, 26.0], egui::Button::new("⟲ Reset"))
            .on_hover_text("Enter")
            .clicked()
        {
            state.commands.push(Command::Reset);
        }
    });
    ui.horizontal(|ui| {
        ui.label("steps/s");
        ui.add(
            egui::Slider::new(&mut config.steps_per_sec, 0.5..=60.0)
                .logarithmic(true)
                .max_decimals(1),
        );
    });
    ui.horizontal(|ui| {
        ui.label("seed");
        ui.add(egui::DragValue::new(&mut config.seed));
        if ui.small_button("new episode").clicked() {
            state.commands.push(Command::NewEpisode);
        }
    });
    if config != session.config {
        state.commands.push(Command::SetConfig(config));
    }
}

fn action_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    section(ui, "Action");
    if state.control.keyboard_mouse.is_some() {
        keyboard_mouse_ui(ui, state);
        return;
    }
    let Some(pad) = state.control.pad.as_mut() else {
        ui.label(egui::RichText::new("no action space yet").weak());
        return;
    };
    let mut changed = false;
    match pad.space.clone() {
        ActionSpace::Continuous { low, high, names } => {
            if pad.is_planar() {
                ui.label(
                    egui::RichText::new(format!(
                        "{} / {}: drag here, click a frame, arrows/WASD, left stick",
                        names[0], names[1]
                    ))
                    .small()
                    .weak(),
                );
                changed |= planar_pad_ui(ui, pad);
            }
            for (i, name) in names.iter().enumerate() {
                let (lo, hi) = (low[i], high[i]);
                if let Some(v) = pad.values.get_mut(i) {
                    changed |= ui
                        .add(egui::Slider::new(v, lo..=hi).text(name.as_str()))
                        .changed();
                }
            }
        }
        ActionSpace::Discrete { names } => {
            ui.horizontal_wrapped(|ui| {
                for (i, name) in names.iter().enumerate() {
                    let selected = pad.values.first().is_some_and(|v| *v as usize == i);
                    if ui
                        .selectable_label(selected, format!("{i}: {name}"))
                        .clicked()
                    {
                        changed |= pad.choose(i);
                    }
                }
            });
        }
    }
    if changed {
        state.control.refresh(InputSource::Widget);
    }
    let source = match state.control.source {
        InputSource::None => "—",
        InputSource::Keyboard => "keyboard",
        InputSource::Mouse => "mouse",
        InputSource::Gamepad => "gamepad",
        InputSource::Widget => "on-screen",
        InputSource::Synthetic => "synthetic (automation)",
    };
    ui.label(
        egui::RichText::new(format!(
            "last input: {source} · gamepad: {}",
            state.control.gamepad.as_deref().unwrap_or("none")
        ))
        .small()
        .weak(),
    );
    egui::CollapsingHeader::new("Input mapping")
        .default_open(false)
        .show(ui, |ui| {
            egui::Grid::new("mapping").striped(true).show(ui, |ui| {
                if let Some(pad) = &state.control.pad {
                    for (input, does) in gamepad_mapping(&pad.space) {
                        ui.label(egui::RichText::new(input).monospace());
                        ui.label(does);
                        ui.end_row();
                    }
                }
                for (key, does) in KEYS {
                    ui.label(egui::RichText::new(key).monospace());
                    ui.label(does);
                    ui.end_row();
                }
            });
        });
}

/// A keyboard-and-mouse model's action (DIAMOND's CS:GO): its keys and buttons as caps that
/// light up when held (click one to hold or release it), the mouse movement of the step on the
/// model's bins, what the last step took, and how to drive it.
fn keyboard_mouse_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    let locked = state.control.pointer_locked;
    let Some(km) = state.control.keyboard_mouse.as_mut() else {
        return;
    };
    let now = km.current();
    let hint = if locked {
        "mouse captured: move to look, click to shoot · Esc gives it back"
    } else {
        "keys as in the game · click the Model view to take the mouse (and play)"
    };
    ui.label(egui::RichText::new(hint).small().weak());
    let mut changed = false;
    let on = Color32::from_rgb(80, 200, 255);
    let cap = |ui: &mut egui::Ui, name: &str, held: bool| -> bool {
        let text = egui::RichText::new(name).monospace();
        let text = if held {
            text.color(Color32::BLACK)
        } else {
            text
        };
        ui.add(
            egui::Button::new(text)
                .fill(if held { on } else { Color32::from_gray(40) })
                .min_size(Vec2::new(26.0, 22.0)),
        )
        .clicked()
    };
    let names: Vec<String> = km
        .layout
        .keys
        .iter()
        .chain(&km.layout.buttons)
        .cloned()
        .collect();
    let input = km.input();
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = Vec2::new(4.0, 4.0);
        for name in &names {
            let held = now.kept_keys.contains(name) || input.buttons.contains(name);
            let pressed = input.keys.contains(name) || input.buttons.contains(name);
            if cap(ui, name, held) {
                if pressed {
                    km.release(name);
                } else {
                    km.press(name);
                }
                changed = true;
            }
        }
    });
    // The mouse movement of this step on the model's bins (x across, y down).
    let (w, h) = (ui.available_width().min(220.0), 70.0);
    let (rect, _) = ui.allocate_exact_size(Vec2::new(w, h), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, Color32::from_gray(28));
    let bins_x = &km.layout.mouse_x;
    let bins_y = &km.layout.mouse_y;
    // Where bin `i` of `n` sits across the strip, in [0, 1].
    let centre = |i: usize, n: usize| (i as f32 + 0.5) / n.max(1) as f32;
    let at =
        |bins: &[f32], v: f32| centre(bins.iter().position(|&b| b == v).unwrap_or(0), bins.len());
    for i in 0..bins_x.len() {
        let x = rect.left() + centre(i, bins_x.len()) * rect.width();
        painter.vline(x, rect.y_range(), Stroke::new(1.0, Color32::from_gray(40)));
    }
    let p = rect.min + Vec2::new(at(bins_x, now.mouse.0), at(bins_y, now.mouse.1)) * rect.size();
    painter.circle_filled(p, 5.0, on);
    ui.label(
        egui::RichText::new(format!(
            "mouse this step: x {:+} · y {:+}",
            now.mouse.0, now.mouse.1
        ))
        .small()
        .monospace(),
    );
    if let Some(last) = km.last() {
        let took = crate::keyboard_mouse::describe(&km.layout, &last.vector);
        ui.label(
            egui::RichText::new(format!("last step took: {took}"))
                .small()
                .weak(),
        );
    }
    if changed {
        state.control.refresh(InputSource::Widget);
    }
    egui::CollapsingHeader::new("Input mapping")
        .default_open(false)
        .show(ui, |ui| {
            egui::Grid::new("km-mapping").striped(true).show(ui, |ui| {
                let rows: Vec<(&str, String)> = vec![
                    ("keys", names.join(" ")),
                    ("mouse (captured)", "look; left / right click".into()),
                    (
                        "← ↑ → ↓",
                        "look by a fixed step (DIAMOND's arrow keys)".into(),
                    ),
                    ("left stick", "w a s d".into()),
                    ("right stick", "look".into()),
                ];
                for (input, does) in rows {
                    ui.label(egui::RichText::new(input).monospace());
                    ui.label(does);
                    ui.end_row();
                }
                for (input, does) in crate::keyboard_mouse::GAMEPAD_BUTTONS {
                    ui.label(egui::RichText::new(input).monospace());
                    ui.label(does);
                    ui.end_row();
                }
                for (key, does) in [
                    (".", "pause / play"),
                    ("e", "single step"),
                    ("Enter", "reset"),
                    ("Esc", "give the mouse back, pause"),
                    ("Backspace", "discard episode (recording)"),
                ] {
                    ui.label(egui::RichText::new(key).monospace());
                    ui.label(does);
                    ui.end_row();
                }
            });
        });
}

/// A square pad for the first two continuous dimensions (x right, y down, as frames).
fn planar_pad_ui(ui: &mut egui::Ui, pad: &mut crate::controls::ActionPad) -> bool {
    let side = ui.available_width().min(180.0);
    let (rect, response) = ui.allocate_exact_size(Vec2::splat(side), Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 4.0, Color32::from_gray(28));
    for k in 1..4 {
        let t = k as f32 / 4.0;
        let stroke = Stroke::new(1.0, Color32::from_gray(45));
        painter.vline(rect.left() + t * rect.width(), rect.y_range(), stroke);
        painter.hline(rect.x_range(), rect.top() + t * rect.height(), stroke);
    }
    let mut changed = false;
    if (response.dragged() || response.is_pointer_button_down_on())
        && let Some(p) = response.interact_pointer_pos()
    {
        let rel = (p - rect.min) / rect.size();
        pad.set_from_uv([rel.x, rel.y]);
        changed = true;
    }
    if let Some(uv) = pad.uv() {
        let p = rect.min + Vec2::new(uv[0], uv[1]) * rect.size();
        painter.circle_filled(p, 6.0, Color32::from_rgb(80, 200, 255));
    }
    changed
}

fn rollout_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    section(ui, "Rollout");
    let session = state.session;
    let mut config = session.config.clone();
    ui.horizontal(|ui| {
        ui.label("re-anchor every");
        ui.add(egui::DragValue::new(&mut config.anchor_every).range(0..=10_000))
            .on_hover_text("reset the model's context to the last real frames every N imagined steps (0 = never)");
        ui.label("steps");
    });
    ui.horizontal(|ui| {
        let has_truth = session.active_branch().truth_kind().is_some();
        if ui
            .add_enabled(has_truth, egui::Button::new("⚓ Re-sync now"))
            .on_hover_text("the next step starts from the last real frames")
            .clicked()
        {
            state.commands.push(Command::ResyncNow);
        }
        let replay = session.active_branch().truth_kind() == Some(TruthKind::Replay);
        if ui
            .add_enabled(replay, egui::Button::new("🎮 Take over"))
            .on_hover_text("t: leave the recorded actions and drive from this step")
            .clicked()
        {
            state.commands.push(Command::TakeOver);
        }
    });
    ui.horizontal(|ui| {
        ui.label("diverged below");
        ui.add(
            egui::DragValue::new(&mut config.divergence_psnr_db)
                .range(5.0..=60.0)
                .speed(0.5)
                .suffix(" dB"),
        );
    });
    ui.horizontal(|ui| {
        let dreaming = session.active_branch().truth_kind().is_none();
        if ui
            .add_enabled(
                !dreaming && session.model_info().is_some(),
                egui::Button::new("Dream mode"),
            )
            .on_hover_text("the model alone, no ground truth")
            .clicked()
        {
            state.commands.push(Command::EnterDream);
        }
        ui.label("error gain");
        ui.add(
            egui::DragValue::new(&mut state.gain.0)
                .range(1.0..=16.0)
                .speed(0.1)
                .suffix("×"),
        );
    });
    if config != session.config {
        state.commands.push(Command::SetConfig(config));
    }
}

fn record_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    section(ui, "Record & export");
    let session = state.session;
    match session.recording() {
        None => {
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(
                        session.model_info().is_some(),
                        egui::Button::new(
                            egui::RichText::new("⏺ Record").color(Color32::from_rgb(235, 90, 90)),
                        ),
                    )
                    .on_hover_text(
                        "record a LeRobot v3.0 dataset (recordings/ in the output folder below): \
                         beside a ground truth its frames as observation.image, the model's as \
                         observation.image_model, the state, the action and the per-step metrics; \
                         in dream mode the model's frames and the actions",
                    )
                    .clicked()
                {
                    state.commands.push(Command::StartRecording {
                        video: state.view.record_video,
                    });
                }
                ui.checkbox(&mut state.view.record_video, "as video").on_hover_text(
                    "store frames as AV1 in MP4 (LeRobot's default; push-t frames take about 7x less disk) \
                     instead of PNG images; needs frames of at least 64x64",
                );
            });
        }
        Some(status) => {
            ui.label(
                egui::RichText::new(format!(
                    "⏺ recording: {} rows · {} episodes saved",
                    status.rows, status.episodes_saved
                ))
                .color(Color32::from_rgb(235, 90, 90)),
            );
            ui.label(egui::RichText::new(format!("each row: {}", status.holds)).small());
            if let Some(path) = &status.path {
                ui.horizontal(|ui| {
                    ui.label(
                        egui::RichText::new(path.display().to_string())
                            .monospace()
                            .small(),
                    )
                    .on_hover_text("the LeRobot dataset being written");
                    if ui.small_button("Open folder").clicked() {
                        state.commands.push(Command::OpenFolder(path.clone()));
                    }
                });
            }
            ui.horizontal(|ui| {
                if ui.button("Save (→/n)").clicked() {
                    state.commands.push(Command::SaveEpisode);
                }
                if ui.button("Re-record (←/r)").clicked() {
                    state.commands.push(Command::DiscardEpisode);
                }
                if ui.button("Stop (Esc/q)").clicked() {
                    state.commands.push(Command::StopRecording);
                }
            });
        }
    }
    // Where recordings, exports and sessions go: click the path to change it.
    ui.horizontal(|ui| {
        ui.label(egui::RichText::new("into").small().weak());
        match state.view.out_dir.as_mut() {
            None => {
                let shown = state.out_dir.display().to_string();
                if ui
                    .add(egui::Button::new(
                        egui::RichText::new(shown).monospace().small(),
                    ))
                    .on_hover_text(
                        "the folder recordings/, exports and sessions/ go in; click to change",
                    )
                    .clicked()
                {
                    state.view.out_dir = Some(state.out_dir.display().to_string());
                }
            }
            Some(text) => {
                let field = ui.add(egui::TextEdit::singleline(text).desired_width(150.0));
                let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if ui.button("Set").clicked() || enter {
                    let dir = std::path::PathBuf::from(text.trim());
                    state.commands.push(Command::SetOutputFolder(dir));
                    state.view.out_dir = None;
                }
            }
        }
    });
    ui.horizontal(|ui| {
        if ui
            .button("Export GIF")
            .on_hover_text("Truth | Model | Error per step")
            .clicked()
        {
            state.commands.push(Command::Export {
                kind: ExportKind::Gif,
                gain: state.gain.0,
            });
        }
        if ui
            .button("Export PNG strip")
            .on_hover_text("rows Truth, Model, Error over 12 steps")
            .clicked()
        {
            state.commands.push(Command::Export {
                kind: ExportKind::PngStrip,
                gain: state.gain.0,
            });
        }
    });
}
