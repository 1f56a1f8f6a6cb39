//! The timeline: every step of the active branch as a strip (green: real context, red:
//! imagined, grey: ground truth only), anchors, the first divergence, forks; click or drag to
//! scrub, and the three panels follow.

use bevy_egui::egui::{self, Color32, Sense, Stroke, Vec2};

use super::UiState;
use crate::commands::Command;
use crate::session::FrameKind;
use crate::session::export::{CONTEXT_RGB, IMAGINED_RGB};

pub(super) fn timeline_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    let session = state.session;
    let branch = session.active_branch();
    // A replayed episode's frames after the head are shown too, before the model reaches them.
    let n = session.timeline_len();
    let shown = session.view_step();
    let divergence = branch.first_divergence(session.config.divergence_psnr_db);
    let object_event = branch.first_object_event();
    let fork_point = branch.parent.map(|(_, s)| s);

    ui.horizontal(|ui| {
        ui.label(egui::RichText::new("Timeline").strong().size(14.0));
        let head = branch.steps.len().saturating_sub(1);
        let last = n.saturating_sub(1);
        let cur = shown.unwrap_or(0);
        let mut go = None;
        if ui.small_button("⏮").on_hover_text("first step").clicked() {
            go = Some(0);
        }
        if ui
            .small_button("◀")
            .on_hover_text("previous step")
            .clicked()
        {
            go = Some(cur.saturating_sub(1));
        }
        if ui.small_button("▶").on_hover_text("next step").clicked() {
            go = Some((cur + 1).min(last));
        }
        if ui
            .add(
                egui::Button::new("⏭ live")
                    .small()
                    .selected(session.following_head()),
            )
            .on_hover_text("follow the newest step")
            .clicked()
        {
            go = Some(head);
        }
        if let Some(d) = divergence
            && ui
                .small_button(format!("⚠ diverged at {d}"))
                .on_hover_text("jump to the first step below the PSNR threshold")
                .clicked()
        {
            go = Some(d);
        }
        if let Some((at, what)) = &object_event
            && ui
                .small_button(
                    egui::RichText::new(format!("⚠ {what} at {at}")).color(super::metrics::LOST),
                )
                .on_hover_text(
                    "jump to the first step where the model lost an object (below half its \
                     true area) or moved one farther than the scene allows",
                )
                .clicked()
        {
            go = Some(*at);
        }
        let position = if last > head {
            format!("{} / {head} imagined · {last} recorded", shown.unwrap_or(0))
        } else {
            format!("{} / {head}", shown.unwrap_or(0))
        };
        ui.label(egui::RichText::new(position).monospace().weak());
        legend(
            ui,
            Color32::from_rgb(CONTEXT_RGB[0], CONTEXT_RGB[1], CONTEXT_RGB[2]),
            "context",
        );
        legend(
            ui,
            Color32::from_rgb(IMAGINED_RGB[0], IMAGINED_RGB[1], IMAGINED_RGB[2]),
            "imagined",
        );
        if last > head {
            legend(ui, RECORDED, "recorded, not imagined yet");
        }
        legend(ui, Color32::from_rgb(255, 210, 70), "anchor / divergence");
        if object_event.is_some() {
            legend(ui, super::metrics::LOST, "object lost / teleported");
        }
        if let Some(step) = go {
            state.commands.push(Command::Scrub(step));
        }
    });

    let width = ui.available_width();
    let (rect, response) = ui.allocate_exact_size(Vec2::new(width, 26.0), Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 3.0, Color32::from_gray(26));
    let session = state.session;
    let branch = session.active_branch();
    if n == 0 {
        return;
    }
    let x_of = |i: usize| rect.left() + (i as f32 + 0.5) / n as f32 * rect.width();
    let seg = (rect.width() / n as f32).max(1.0);
    for (i, rec) in branch.steps.iter().enumerate() {
        let color = match rec.kind {
            FrameKind::Context => Color32::from_rgb(CONTEXT_RGB[0], CONTEXT_RGB[1], CONTEXT_RGB[2]),
            FrameKind::Imagined if rec.model.is_none() => Color32::from_gray(110),
            FrameKind::Imagined => {
                Color32::from_rgb(IMAGINED_RGB[0], IMAGINED_RGB[1], IMAGINED_RGB[2])
            }
            FrameKind::TruthOnly => Color32::from_gray(80),
            FrameKind::Recorded => RECORDED,
        };
        let x = x_of(i);
        let r = egui::Rect::from_center_size(
            egui::pos2(x, rect.center().y),
            Vec2::new((seg - 1.0).max(1.0), rect.height() - 10.0),
        );
        painter.rect_filled(r, 1.0, color.gamma_multiply(0.85));
        if rec.anchored {
            painter.line_segment(
                [egui::pos2(x, rect.top()), egui::pos2(x, rect.top() + 6.0)],
                Stroke::new(2.0, Color32::from_rgb(255, 210, 70)),
            );
        }
    }
    for i in branch.steps.len()..n {
        let r = egui::Rect::from_center_size(
            egui::pos2(x_of(i), rect.center().y),
            Vec2::new((seg - 1.0).max(1.0), rect.height() - 14.0),
        );
        painter.rect_filled(r, 1.0, RECORDED);
    }
    if let Some(d) = divergence {
        let x = x_of(d);
        let y = rect.bottom();
        painter.add(egui::Shape::convex_polygon(
            vec![
                egui::pos2(x, y - 8.0),
                egui::pos2(x - 6.0, y),
                egui::pos2(x + 6.0, y),
            ],
            Color32::from_rgb(255, 210, 70),
            Stroke::NONE,
        ));
    }
    if let Some((at, _)) = object_event {
        // A red triangle on top: the first object lost or teleported.
        let x = x_of(at);
        let y = rect.top();
        painter.add(egui::Shape::convex_polygon(
            vec![
                egui::pos2(x, y + 8.0),
                egui::pos2(x + 6.0, y),
                egui::pos2(x - 6.0, y),
            ],
            super::metrics::LOST,
            Stroke::NONE,
        ));
    }
    if let Some(f) = fork_point {
        let x = x_of(f);
        painter.line_segment(
            [egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())],
            Stroke::new(1.0, Color32::from_rgb(150, 150, 255)),
        );
    }
    if let Some(s) = shown {
        let x = x_of(s);
        painter.line_segment(
            [
                egui::pos2(x, rect.top() - 1.0),
                egui::pos2(x, rect.bottom() + 1.0),
            ],
            Stroke::new(2.5, Color32::WHITE),
        );
    }
    if (response.dragged() || response.clicked())
        && let Some(p) = response.interact_pointer_pos()
    {
        let t = ((p.x - rect.left()) / rect.width()).clamp(0.0, 1.0);
        let step = ((t * n as f32) as usize).min(n - 1);
        state.commands.push(Command::Scrub(step));
    }
    response.on_hover_text(
        "click or drag to scrub; the three panels show that step (a replayed episode: all of \
         it, the model's frames where it has reached)",
    );
}

/// Recorded steps of a replayed episode that the model has not reached.
const RECORDED: Color32 = Color32::from_rgb(70, 90, 120);

fn legend(ui: &mut egui::Ui, color: Color32, text: &str) {
    let (r, _) = ui.allocate_exact_size(Vec2::new(10.0, 10.0), Sense::hover());
    ui.painter().rect_filled(r, 2.0, color);
    ui.label(egui::RichText::new(text).small().weak());
}
