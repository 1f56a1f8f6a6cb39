//! The menu bar: open a model or dataset (dialogs), recent files, scenes, view options.

use bevy_egui::egui;
use dreamyard_scenes::BUILTIN_SCENES;

use super::UiState;
use crate::commands::Command;
use crate::gui::files::{DialogKind, RecentKind};
use crate::gui::textures::Filter;

pub(super) fn menu_bar_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    ui.label(egui::RichText::new("Dreamyard").strong().size(17.0));
    ui.add_space(8.0);
    // Clicking inside the File menu (its path field) keeps it open; its items close it.
    let keep_open = egui::containers::menu::MenuConfig::new()
        .close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
    egui::containers::menu::MenuButton::new("File")
        .config(keep_open)
        .ui(ui, |ui| {
            if ui.button("Open model…").clicked() {
                state.dialogs.open(DialogKind::Model);
                ui.close();
            }
            if ui.button("Open dataset…").clicked() {
                state.dialogs.open(DialogKind::Dataset);
                ui.close();
            }
            if ui
                .button("Dream from frames…")
                .on_hover_text(
                    "the model alone, starting from real frames: a DIAMOND spawn folder \
                     (low_res.npy, full_res.npy, act.npy) or a folder of PNG / JPEG images",
                )
                .clicked()
            {
                state.dialogs.open(DialogKind::Spawn);
                ui.close();
            }
            ui.separator();
            if ui
                .button("Save session")
                .on_hover_text(
                    "what was opened, the settings and every step, fork and reset: a small file \
                 that regenerates every frame",
                )
                .clicked()
            {
                state.commands.push(Command::SaveSession);
                ui.close();
            }
            if ui.button("Open session…").clicked() {
                state.dialogs.open(DialogKind::Session);
                ui.close();
            }
            ui.separator();
            ui.menu_button("Open recent", |ui| {
                if state.recent.entries.is_empty() {
                    ui.label(egui::RichText::new("nothing yet").weak());
                }
                for entry in &state.recent.entries {
                    let tag = match entry.kind {
                        RecentKind::Model => "model",
                        RecentKind::Dataset => "dataset",
                    };
                    if ui
                        .button(format!("{tag}: {}", entry.path.display()))
                        .clicked()
                    {
                        let command = match entry.kind {
                            RecentKind::Model => Some(Command::OpenModel {
                                path: entry.path.clone(),
                                config: None,
                            }),
                            RecentKind::Dataset => state.episodes.ask_or_open(entry.path.clone()),
                        };
                        state.commands.extend(command);
                        ui.close();
                    }
                }
            });
            ui.separator();
            // Where no file dialog can open (no desktop portal or zenity), a typed path works.
            ui.label(
                egui::RichText::new("Open a path (model, dataset, session or spawn):").small(),
            );
            ui.horizontal(|ui| {
                let field = ui.add(
                    egui::TextEdit::singleline(&mut state.view.open_path)
                        .hint_text("/path/to/model, dataset or session.json")
                        .desired_width(280.0),
                );
                let typed = state.view.open_path.trim();
                let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                if (ui
                    .add_enabled(!typed.is_empty(), egui::Button::new("Open"))
                    .clicked()
                    || enter)
                    && !typed.is_empty()
                {
                    let path = std::path::PathBuf::from(typed);
                    // A dataset: which episode? The picker asks.
                    let command = if path.join("meta").is_dir() {
                        state.episodes.ask_or_open(path)
                    } else {
                        Some(Command::OpenPath(path))
                    };
                    state.commands.extend(command);
                    // An error names the path; the field starts empty for the next one.
                    state.view.open_path.clear();
                    ui.close();
                }
            });
            ui.label(
                egui::RichText::new("Drop a model or dataset folder on the window to open it.")
                    .small()
                    .weak(),
            );
        });
    ui.menu_button("Edit", |ui| {
        let undo = ui.add_enabled(
            state.session.can_undo(),
            egui::Button::new("Undo reset / delete").shortcut_text("Ctrl+Z"),
        );
        if undo.clicked() {
            state.commands.push(Command::Undo);
            ui.close();
        }
    });
    ui.menu_button("Scene", |ui| {
        for name in BUILTIN_SCENES {
            // A scene the open model does not fit still opens, with its ground truth only;
            // the menu says so before it is chosen.
            let why = crate::launch::scene_fit(name, state.session.model_info(), state.model_path);
            let label = match &why {
                None => (*name).to_owned(),
                Some(_) => format!("{name} (ground truth only)"),
            };
            let mut item = ui.button(label);
            if let Some(why) = why {
                item = item.on_hover_text(format!(
                    "{why}; open a model that fits it with File > Open model"
                ));
            }
            if item.clicked() {
                state.commands.push(Command::OpenScene((*name).to_owned()));
                ui.close();
            }
        }
    });
    ui.menu_button("Device", |ui| {
        // The open model loads again on the chosen device; one the build or the machine lacks
        // is refused with a notice that says how to get it.
        ui.label(egui::RichText::new("Run the model on").weak());
        for (name, label) in [
            ("auto", "auto (a GPU if there is one)"),
            ("cpu", "CPU"),
            ("cuda:0", "CUDA GPU 0"),
            ("metal", "Metal"),
        ] {
            if ui.radio(state.device == name, label).clicked() && state.device != name {
                state.commands.push(Command::SetDevice(name.to_owned()));
                ui.close();
            }
        }
    });
    ui.menu_button("View", |ui| {
        ui.label("Frame scaling");
        ui.radio_value(&mut state.textures.filter, Filter::Nearest, "nearest");
        ui.radio_value(&mut state.textures.filter, Filter::Linear, "linear");
        ui.separator();
        ui.checkbox(&mut state.view.show_psnr, "PSNR plot");
        ui.checkbox(&mut state.view.show_ssim, "SSIM");
        ui.checkbox(&mut state.view.show_iou, "mask IoU");
    });
    if state.dialogs.is_open() {
        ui.label(egui::RichText::new("waiting for the file dialog…").weak());
    }
    ui.separator();
    let session = state.session;
    let model = session
        .model_info()
        .map_or_else(|| "no model".to_owned(), |m| short(&m.source));
    let truth = session
        .truth_spec()
        .map_or_else(|| "no ground truth".to_owned(), |t| t.name.clone());
    let label = ui.label(egui::RichText::new(format!("{model}  ·  {truth}")).weak());
    if let Some(m) = session.model_info() {
        label.on_hover_text(format!(
            "{}\nweights SHA-256 {}\non {}",
            m.source, m.weights_sha256, m.device
        ));
    }
}

/// The last two components of a path.
fn short(path: &str) -> String {
    let parts: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}
