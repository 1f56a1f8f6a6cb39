//! The branches of the rollout: fork at the shown step, switch, delete, and pick branches to
//! compare (overlaid on the plots, or shown beside the active one).

use bevy_egui::egui;

use super::UiState;
use crate::commands::Command;

/// Steps a counterfactual retakes at most.
const COUNTERFACTUAL_STEPS: usize = 16;

pub(super) fn branches_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    ui.label(egui::RichText::new("Branches").strong().size(14.0));
    let session = state.session;
    // A recorded step ahead of the model cannot be forked yet.
    let head = session.active_branch().head();
    let shown = session
        .view_step()
        .filter(|&s| head.is_some_and(|h| s <= h));
    ui.horizontal(|ui| {
        let label = match shown {
            Some(s) => format!("Fork at step {s}"),
            None => "Fork".to_owned(),
        };
        if ui
            .add_enabled(shown.is_some(), egui::Button::new(label))
            .on_hover_text(
                "f: branch the rollout here (the model state is cloned); a recorded step the \
                 model has not reached: play up to it first",
            )
            .clicked()
            && let Some(s) = shown
        {
            state.commands.push(Command::Fork(s));
        }
        // What other actions would have done: the next steps retaken mirrored on a new
        // branch, shown beside this one.
        let after = match (shown, head) {
            (Some(s), Some(h)) if h > s => (h - s).min(COUNTERFACTUAL_STEPS),
            _ => 0,
        };
        let live =
            session.active_branch().truth_kind() == Some(crate::session::truth::TruthKind::Live);
        if ui
            .add_enabled(
                after > 0 && live,
                egui::Button::new(format!("Counterfactual ({after} steps)")),
            )
            .on_hover_text(
                "fork here and retake the next steps with mirrored actions (each target \
                 mirrored about the middle of the table), in the model with the same noise and \
                 in the live scene: the views show both branches' model and world frames, the \
                 metrics the action response (needs a live scene and steps after this one)",
            )
            .clicked()
            && let Some(s) = shown
        {
            state.view.side_by_side = Some(session.active_id());
            state.commands.push(Command::Counterfactual {
                at: s,
                steps: after,
                perturbation: crate::perturb::Perturbation::Mirror,
            });
        }
    });
    super::futures::futures_button_ui(ui, state);
    let active = session.active_id();
    let divergence_db = session.config.divergence_psnr_db;
    let rows: Vec<_> = session
        .branches()
        .iter()
        .map(|b| {
            (
                b.id,
                b.name.clone(),
                b.steps.len(),
                b.imagined(),
                b.first_divergence(divergence_db),
            )
        })
        .collect();
    let mut switch = None;
    let mut delete = None;
    egui::Grid::new("branches")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for (id, name, len, imagined, div) in &rows {
                if ui.selectable_label(*id == active, name).clicked() {
                    switch = Some(*id);
                }
                // Compare: overlay its metrics, or show it beside the active branch.
                let mut plotted = state.view.compare.contains(id);
                if ui
                    .add_enabled(*id != active, egui::Checkbox::new(&mut plotted, "plot"))
                    .on_hover_text("overlay this branch's metrics on the plots (dashed)")
                    .changed()
                {
                    if plotted {
                        state.view.compare.insert(*id);
                    } else {
                        state.view.compare.remove(id);
                    }
                }
                let mut beside = state.view.side_by_side == Some(*id);
                if ui
                    .add_enabled(*id != active, egui::Checkbox::new(&mut beside, "beside"))
                    .on_hover_text("show this branch's model frame beside the active one's")
                    .changed()
                {
                    state.view.side_by_side = beside.then_some(*id);
                }
                let div = div.map_or_else(|| "—".to_owned(), |d| d.to_string());
                ui.label(
                    egui::RichText::new(format!(
                        "{len} steps · {imagined} imagined · diverged {div}"
                    ))
                    .small()
                    .weak(),
                );
                if rows.len() > 1 && ui.small_button("🗑").on_hover_text("delete").clicked() {
                    delete = Some(*id);
                }
                ui.end_row();
            }
        });
    if let Some(id) = switch {
        state.commands.push(Command::SwitchBranch(id));
    }
    if let Some(id) = delete {
        state.commands.push(Command::DeleteBranch(id));
    }
}
