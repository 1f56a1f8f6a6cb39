//! The Episode section (a replayed dataset: which episode, the previous / next one, choose
//! another) and the episode picker window File > Open dataset opens.

use bevy_egui::egui;

use super::UiState;
use crate::commands::Command;
use crate::launch::EpisodeSummary;
use crate::session::truth::TruthSource;

/// Shown while the ground truth is an episode of a dataset.
pub(super) fn episode_section_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    let Some(TruthSource::Dataset { dir, episode }) = state.session.origin().cloned() else {
        return;
    };
    let Some((listed, list)) = &state.episodes.current else {
        return;
    };
    if *listed != dir {
        return;
    }
    ui.label(egui::RichText::new("Episode").strong().size(14.0));
    let name = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
    ui.label(egui::RichText::new(name).monospace().small())
        .on_hover_text(dir.display().to_string());
    let list = match list {
        Ok(list) => list,
        Err(e) => {
            ui.label(egui::RichText::new(format!("cannot list the episodes: {e}")).small());
            return;
        }
    };
    let count = list.len();
    let mut go = None;
    ui.horizontal(|ui| {
        if ui
            .add_enabled(episode > 0, egui::Button::new("◀").small())
            .on_hover_text("previous episode")
            .clicked()
        {
            go = Some(episode - 1);
        }
        ui.label(egui::RichText::new(format!("{episode} of {count}")).monospace());
        if ui
            .add_enabled(episode + 1 < count, egui::Button::new("▶").small())
            .on_hover_text("next episode")
            .clicked()
        {
            go = Some(episode + 1);
        }
        if ui.small_button("Choose…").clicked() {
            state.episodes.picker = Some((dir.clone(), Ok(list.clone())));
        }
    });
    if let Some(e) = list.iter().find(|e| e.index == episode) {
        ui.label(egui::RichText::new(describe(e)).small().weak());
    }
    if let Some(episode) = go {
        state.commands.push(Command::OpenDataset {
            dir: dir.clone(),
            episode,
        });
    }
    ui.separator();
}

fn describe(e: &EpisodeSummary) -> String {
    let mut s = format!("{} frames · {}", e.length, e.task);
    if let Some(src) = &e.source {
        s.push_str(&format!(" · {src}"));
    }
    s
}

/// The window that asks which episode of a dataset to open.
pub(super) fn episode_picker_ui(ctx: &egui::Context, state: &mut UiState<'_>) {
    let Some((dir, list)) = state.episodes.picker.clone() else {
        return;
    };
    let mut open = true;
    let mut chosen = None;
    egui::Window::new("Open which episode?")
        .open(&mut open)
        .collapsible(false)
        .default_width(460.0)
        .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .show(ctx, |ui| {
            ui.label(
                egui::RichText::new(dir.display().to_string())
                    .monospace()
                    .small(),
            );
            match &list {
                Err(e) => {
                    ui.label(format!("cannot list the episodes: {e}"));
                }
                Ok(list) => {
                    ui.label(format!("{} episodes", list.len()));
                    egui::ScrollArea::vertical()
                        .max_height(360.0)
                        .show(ui, |ui| {
                            for e in list {
                                ui.horizontal(|ui| {
                                    if ui.button(format!("episode {}", e.index)).clicked() {
                                        chosen = Some(e.index);
                                    }
                                    ui.label(egui::RichText::new(describe(e)).small());
                                });
                            }
                        });
                }
            }
        });
    if let Some(episode) = chosen {
        state.commands.push(Command::OpenDataset { dir, episode });
        state.episodes.picker = None;
    } else if !open {
        state.episodes.picker = None;
    }
}
