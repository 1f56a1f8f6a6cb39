//! The three synced frame panels (Ground truth | Model | Error) of the shown step, with
//! DreamerV3's context/imagined borders, the mouse target, and the notices banner.

use bevy_egui::egui::{self, Color32, Rect, Sense, Stroke, Vec2};

use super::UiState;
use crate::commands::Command;
use crate::gui::input::InputSource;
use crate::metrics::heat_color;
use crate::session::export::{CONTEXT_RGB, IMAGINED_RGB};
use crate::session::{FrameKind, Level};

const CONTEXT: Color32 = Color32::from_rgb(CONTEXT_RGB[0], CONTEXT_RGB[1], CONTEXT_RGB[2]);
const IMAGINED: Color32 = Color32::from_rgb(IMAGINED_RGB[0], IMAGINED_RGB[1], IMAGINED_RGB[2]);
const NEUTRAL: Color32 = Color32::from_rgb(90, 90, 98);
const EMPTY: Color32 = Color32::from_rgb(32, 32, 36);

/// Recent notices: errors stay until dismissed, information fades after a few seconds.
pub(super) fn notices_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    let recent: Vec<(Level, String)> = state
        .session
        .notices()
        .iter()
        .rev()
        .filter(|n| n.level == Level::Error || n.at.elapsed().as_secs_f32() < 6.0)
        .take(3)
        .map(|n| {
            let text = if n.count > 1 {
                format!("{} (×{})", n.text, n.count)
            } else {
                n.text.clone()
            };
            (n.level, text)
        })
        .collect();
    if recent.is_empty() {
        return;
    }
    let mut dismiss = false;
    for (level, text) in recent {
        let (fill, icon) = match level {
            Level::Error => (Color32::from_rgb(90, 28, 28), "⚠"),
            Level::Info => (Color32::from_rgb(28, 52, 80), "ℹ"),
        };
        egui::Frame::new()
            .fill(fill)
            .corner_radius(4)
            .inner_margin(egui::Margin::symmetric(10, 5))
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    if level == Level::Error {
                        dismiss |= ui.small_button("✕").on_hover_text("dismiss").clicked();
                    }
                    ui.label(egui::RichText::new(icon).strong());
                    ui.add(egui::Label::new(text).wrap());
                });
            });
    }
    if dismiss {
        state.commands.push(Command::ClearNotices);
    }
    ui.add_space(4.0);
}

/// Truth, model and error of the shown step, side by side, scaled to the panel.
pub(super) fn frames_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    let session = state.session;
    let branch = session.active_branch();
    let step = session.view_step();
    let shown = session.shown_record();
    let rec = shown.as_deref();
    let kind = rec.map(|r| r.kind);
    let pending = rec.is_some_and(|r| r.is_pending());
    let has_truth_source = rec.is_some_and(|r| r.truth.is_some());

    // A branch shown beside the active one: its step at the same index (or its last).
    let beside = state.view.side_by_side.and_then(|id| {
        let b = session
            .branches()
            .iter()
            .find(|b| b.id == id && b.id != branch.id)?;
        let i = step?.min(b.steps.len().checked_sub(1)?);
        Some((b.name.clone(), i, b.steps[i].clone()))
    });
    let beside_truth = beside
        .as_ref()
        .is_some_and(|(_, _, rec)| rec.truth.is_some());
    let panels = match (&beside, beside_truth) {
        (Some(_), true) => 5.0,
        (Some(_), false) => 4.0,
        (None, _) => 3.0,
    };
    let gap = 12.0;
    let avail = ui.available_size();
    let caption_h = 64.0;
    let side = ((avail.x - (panels - 1.0) * gap) / panels)
        .min(avail.y - caption_h - 28.0)
        .max(64.0);
    let (fw, fh) = (
        state.textures.size.x.max(1) as f32,
        state.textures.size.y.max(1) as f32,
    );
    let size = if fw >= fh {
        Vec2::new(side, side * fh / fw)
    } else {
        Vec2::new(side * fw / fh, side)
    };

    let model_border = match kind {
        Some(FrameKind::Context) => CONTEXT,
        Some(FrameKind::Imagined) => IMAGINED,
        _ => NEUTRAL,
    };
    let placeholder = rec.is_some_and(|r| r.placeholder);
    let seeded = rec.is_some_and(|r| r.truth.is_none());
    let model_tag = match kind {
        // Where a context frame came from: a real frame, a seed frame, or a grey stand-in.
        Some(FrameKind::Context) if placeholder => "context (grey placeholder)",
        Some(FrameKind::Context) if seeded => "context (seed frame)",
        Some(FrameKind::Context) => "context (real)",
        Some(FrameKind::Imagined) if pending => "imagining…",
        Some(FrameKind::Imagined) => "imagined",
        Some(FrameKind::TruthOnly) => "no model",
        Some(FrameKind::Recorded) => "not imagined yet",
        None => "",
    };
    let truth_tag = match session.active_branch().truth_kind() {
        Some(crate::session::truth::TruthKind::Live) => "live scene",
        Some(crate::session::truth::TruthKind::Replay) => "replay",
        None => "dream mode",
    };

    // A two-stage model dreaming (DIAMOND's CS:GO): the full-resolution dream large, its first
    // stage beside it; no truth or error panels.
    if let Some(stages) = session.model_info().and_then(|m| m.stages)
        && session.active_branch().truth_kind().is_none()
        && beside.is_none()
    {
        two_stage_ui(ui, state, stages, rec, pending, (model_tag, model_border));
        caption_ui(ui, state);
        return;
    }

    let mut target_uv = None;
    ui.horizontal_top(|ui| {
        ui.spacing_mut().item_spacing.x = gap;
        // Ground truth.
        ui.vertical(|ui| {
            header_ui(ui, "Ground truth", truth_tag, NEUTRAL);
            let image = state.textures.has_truth.then_some(state.textures.truth_id);
            let r = frame_ui(ui, image, size, NEUTRAL, "no ground truth");
            target_uv = target_uv.or(pointer_uv(ui, &r));
            draw_recorded_action(ui, state, &r);
            draw_target(ui, state, &r);
        });
        // Model.
        ui.vertical(|ui| {
            header_ui(ui, "Model", model_tag, model_border);
            let image = (state.textures.has_model && !pending).then_some(state.textures.model_id);
            let set_aside = session.model_set_aside();
            let recorded = kind == Some(FrameKind::Recorded);
            let empty = match (pending, set_aside) {
                (true, _) => "",
                _ if recorded => "not imagined yet:\n▶ Play or ⏭ Step\nimagines up to here",
                (false, Some(_)) => "model set aside: it does not fit this ground truth",
                (false, None) => "no model loaded",
            };
            let r = frame_ui(ui, image, size, model_border, empty);
            if image.is_none() && !pending && !recorded && session.model_loading().is_none() {
                // No dead end: say why there is no model and offer one.
                let below = Rect::from_center_size(
                    r.rect.center() + Vec2::new(0.0, 40.0),
                    Vec2::new(r.rect.width() - 20.0, 60.0),
                );
                ui.scope_builder(egui::UiBuilder::new().max_rect(below), |ui| {
                    ui.vertical_centered(|ui| {
                        if let Some(why) = set_aside {
                            ui.label(egui::RichText::new(why).small().weak());
                        }
                        if ui.button("Open model…").clicked() {
                            state.dialogs.open(crate::gui::files::DialogKind::Model);
                        }
                    });
                });
            }
            if pending {
                ui.put(
                    Rect::from_center_size(r.rect.center(), Vec2::splat(40.0)),
                    egui::Spinner::new().size(36.0),
                );
            }
            if r.clicked() && state.control.keyboard_mouse.is_some() {
                state.control.lock_requested = true;
            }
            target_uv = target_uv.or(pointer_uv(ui, &r));
            draw_recorded_action(ui, state, &r);
            draw_target(ui, state, &r);
        });
        // Error.
        ui.vertical(|ui| {
            header_ui(ui, "Error |model − truth|", "GPU heat map", NEUTRAL);
            let image = state.textures.has_error.then_some(state.textures.error_id);
            let empty = match kind {
                Some(FrameKind::Context) => "context frame: model = truth",
                Some(FrameKind::Recorded) => "no model frame yet",
                _ if !has_truth_source => "no ground truth to compare",
                _ if pending => "",
                _ => "no model frame",
            };
            frame_ui(ui, image, size, NEUTRAL, empty);
            heat_legend_ui(ui, size.x, state.gain.0);
        });
        // The compared branch's model frame, beside.
        if let Some((name, i, rec)) = &beside {
            ui.vertical(|ui| {
                let border = match rec.kind {
                    FrameKind::Context => CONTEXT,
                    FrameKind::Imagined => IMAGINED,
                    FrameKind::TruthOnly | FrameKind::Recorded => NEUTRAL,
                };
                let tag = match rec.metrics.as_ref() {
                    Some(m) => format!("step {i} · {:.1} dB", m.psnr_db),
                    None => format!("step {i}"),
                };
                header_ui(ui, &format!("Model · {name}"), &tag, border);
                let image = rec
                    .model
                    .as_ref()
                    .map(|f| texture_of(ui, &mut state.view.beside_texture.0, f));
                frame_ui(ui, image, size, border, "no model frame at this step");
            });
            // And its ground truth: with a counterfactual, the world under the other actions.
            if let Some(truth) = &rec.truth {
                ui.vertical(|ui| {
                    header_ui(
                        ui,
                        &format!("Ground truth · {name}"),
                        &format!("step {i}"),
                        NEUTRAL,
                    );
                    let image = texture_of(ui, &mut state.view.beside_truth_texture.0, truth);
                    frame_ui(ui, Some(image), size, NEUTRAL, "");
                });
            }
        }
    });

    if let Some(uv) = target_uv
        && let Some(pad) = state.control.pad.as_mut()
        && pad.is_planar()
    {
        pad.set_from_uv(uv);
        state.control.refresh(InputSource::Mouse);
    }

    caption_ui(ui, state);
}

/// The two-stage dream: the model's full-resolution frame large (a click there takes the mouse
/// for a keyboard-and-mouse model), its first-stage frame beside it, each stage's time.
fn two_stage_ui(
    ui: &mut egui::Ui,
    state: &mut UiState<'_>,
    stages: crate::session::backend::Stages,
    rec: Option<&crate::session::StepRecord>,
    pending: bool,
    (model_tag, model_border): (&str, Color32),
) {
    let gap = 12.0;
    let avail = ui.available_size();
    let (fw, fh) = (
        state.textures.size.x.max(1) as f32,
        state.textures.size.y.max(1) as f32,
    );
    // The big panel takes about 70% of the width, within the height left for captions.
    let big_w = ((avail.x - gap) * 0.7)
        .min((avail.y - 92.0) * fw / fh)
        .max(64.0);
    let big = Vec2::new(big_w, big_w * fh / fw);
    let small_w = ((avail.x - gap) * 0.3 - gap).max(48.0);
    let small = Vec2::new(small_w, small_w * fh / fw);
    let ms = rec.and_then(|r| r.stage_ms);
    let fmt = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.0} ms"));
    ui.horizontal_top(|ui| {
        ui.spacing_mut().item_spacing.x = gap;
        ui.vertical(|ui| {
            header_ui(ui, "Model · dream", model_tag, model_border);
            let image = (state.textures.has_model && !pending).then_some(state.textures.model_id);
            let r = frame_ui(ui, image, big, model_border, "no model frame");
            if pending {
                ui.put(
                    Rect::from_center_size(r.rect.center(), Vec2::splat(40.0)),
                    egui::Spinner::new().size(36.0),
                );
            }
            if state.control.keyboard_mouse.is_some() {
                if r.clicked() {
                    state.control.lock_requested = true;
                }
                if !state.control.pointer_locked {
                    r.on_hover_text("click to take the mouse and play; Esc gives it back");
                }
            }
            ui.label(
                egui::RichText::new(format!(
                    "{}x{} · x{} diffusion upsampler · {}",
                    fw as u32,
                    fh as u32,
                    stages.factor,
                    fmt(ms.map(|m| m[1]))
                ))
                .small()
                .weak(),
            );
        });
        ui.vertical(|ui| {
            header_ui(ui, "First stage", "next-frame denoiser", NEUTRAL);
            let image = rec
                .and_then(|r| r.model_low.as_ref())
                .map(|f| texture_of(ui, &mut state.view.low_texture.0, f));
            frame_ui(ui, image, small, NEUTRAL, "no first-stage frame");
            ui.label(
                egui::RichText::new(format!(
                    "{}x{} · {}",
                    stages.low_width,
                    stages.low_height,
                    fmt(ms.map(|m| m[0]))
                ))
                .small()
                .weak(),
            );
        });
    });
}

/// An egui texture of `frame`, uploaded again only when the frame changes (nearest sampling,
/// as the other panels).
fn texture_of(
    ui: &egui::Ui,
    cache: &mut Option<(usize, egui::TextureHandle)>,
    frame: &std::sync::Arc<dreamyard_scenes::Frame>,
) -> egui::TextureId {
    let key = std::sync::Arc::as_ptr(frame) as usize;
    match cache {
        Some((k, tex)) if *k == key => tex.id(),
        _ => {
            let image = egui::ColorImage::from_rgb(
                [frame.width as usize, frame.height as usize],
                &frame.data,
            );
            let tex = ui
                .ctx()
                .load_texture("beside", image, egui::TextureOptions::NEAREST);
            let id = tex.id();
            *cache = Some((key, tex));
            id
        }
    }
}

fn header_ui(ui: &mut egui::Ui, title: &str, tag: &str, color: Color32) {
    ui.horizontal(|ui| {
        ui.label(egui::RichText::new(title).strong().size(15.0));
        if !tag.is_empty() {
            egui::Frame::new()
                .fill(color.gamma_multiply(0.35))
                .stroke(Stroke::new(1.0, color))
                .corner_radius(8)
                .inner_margin(egui::Margin::symmetric(6, 1))
                .show(ui, |ui| ui.label(egui::RichText::new(tag).small()));
        }
    });
}

/// One frame scaled into `size` with a coloured border; `empty` is shown when there is none.
fn frame_ui(
    ui: &mut egui::Ui,
    image: Option<egui::TextureId>,
    size: Vec2,
    border: Color32,
    empty: &str,
) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
    let painter = ui.painter_at(rect.expand(4.0));
    match image {
        Some(id) => {
            painter.image(
                id,
                rect,
                Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        None => {
            painter.rect_filled(rect, 2.0, EMPTY);
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                empty,
                egui::FontId::proportional(14.0),
                Color32::from_gray(150),
            );
        }
    }
    painter.rect_stroke(
        rect.expand(2.0),
        2.0,
        Stroke::new(3.0, border),
        egui::StrokeKind::Middle,
    );
    response
}

/// Where the pointer presses or drags in a frame, `uv` in [0, 1]².
fn pointer_uv(ui: &egui::Ui, r: &egui::Response) -> Option<[f32; 2]> {
    let held = r.is_pointer_button_down_on() || r.dragged();
    if !held {
        return None;
    }
    let pos = ui.ctx().pointer_interact_pos()?;
    let rel = (pos - r.rect.min) / r.rect.size();
    Some([rel.x.clamp(0.0, 1.0), rel.y.clamp(0.0, 1.0)])
}

/// The held 2-D target as a crosshair (the push-t agent's goal position).
fn draw_target(ui: &egui::Ui, state: &UiState<'_>, r: &egui::Response) {
    let Some(uv) = state.control.pad.as_ref().and_then(|p| p.uv()) else {
        return;
    };
    let p = r.rect.min + Vec2::new(uv[0], uv[1]) * r.rect.size();
    let painter = ui.painter_at(r.rect);
    let c = Color32::from_rgb(80, 200, 255);
    painter.circle_stroke(p, 7.0, Stroke::new(2.0, c));
    painter.line_segment(
        [p - Vec2::X * 11.0, p + Vec2::X * 11.0],
        Stroke::new(1.5, c),
    );
    painter.line_segment(
        [p - Vec2::Y * 11.0, p + Vec2::Y * 11.0],
        Stroke::new(1.5, c),
    );
}

/// The colour of the recorded action (on the frames, in the caption and the plot).
pub(super) const RECORDED_ACTION: Color32 = Color32::from_rgb(255, 150, 40);

/// The action a replayed recording takes at the shown step, where a planar action points
/// in the frame (push-t's target): an orange cross.
fn draw_recorded_action(ui: &egui::Ui, state: &UiState<'_>, r: &egui::Response) {
    let session = state.session;
    let Some(action) = session
        .view_step()
        .and_then(|i| session.recorded_action_at(i))
    else {
        return;
    };
    let Some(uv) = state
        .control
        .pad
        .as_ref()
        .filter(|p| p.is_planar())
        .and_then(|p| p.uv_of(action))
    else {
        return;
    };
    let p = r.rect.min + Vec2::new(uv[0], uv[1]) * r.rect.size();
    let painter = ui.painter_at(r.rect);
    let stroke = Stroke::new(2.0, RECORDED_ACTION);
    let d = Vec2::splat(7.0);
    painter.line_segment([p - d, p + d], stroke);
    painter.line_segment([p + Vec2::new(-7.0, 7.0), p + Vec2::new(7.0, -7.0)], stroke);
}

/// The heat ramp with its scale, under the error panel.
fn heat_legend_ui(ui: &mut egui::Ui, width: f32, gain: f32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::new(width, 10.0), Sense::hover());
    let n = 64;
    for i in 0..n {
        let t0 = i as f32 / n as f32;
        let c = heat_color((t0 * 255.0) as u8);
        let x0 = rect.left() + t0 * rect.width();
        let x1 = rect.left() + (i + 1) as f32 / n as f32 * rect.width();
        ui.painter().rect_filled(
            Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom())),
            0.0,
            Color32::from_rgb(c[0], c[1], c[2]),
        );
    }
    ui.horizontal(|ui| {
        ui.set_width(width);
        ui.label(egui::RichText::new("0").small());
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            ui.label(egui::RichText::new(format!("{:.0} levels", 255.0 / gain)).small());
        });
    });
}

/// The shown step's number, kind, action and metrics.
fn caption_ui(ui: &mut egui::Ui, state: &UiState<'_>) {
    let session = state.session;
    let branch = session.active_branch();
    let Some(i) = session.view_step() else {
        ui.label(
            "Nothing to show yet: open a model or a scene (File menu), or drop a folder here.",
        );
        return;
    };
    let Some(rec) = session.shown_record() else {
        return;
    };
    ui.add_space(6.0);
    ui.horizontal_wrapped(|ui| {
        let head = branch.head().unwrap_or(0);
        ui.label(
            egui::RichText::new(format!("step {i} / {head}"))
                .strong()
                .monospace(),
        );
        if rec.kind == FrameKind::Recorded {
            ui.label(egui::RichText::new("(recorded, ahead of the model)").weak());
        } else if !session.following_head() {
            ui.label(egui::RichText::new("(scrubbing)").weak());
        }
        if let Some(a) = &rec.action {
            let text = match (&state.control.keyboard_mouse, a) {
                (Some(km), dreamyard_scenes::Action::Continuous(v)) => {
                    crate::keyboard_mouse::describe(&km.layout, v)
                }
                _ => format_action(a),
            };
            ui.label(format!("action {text}"))
                .on_hover_text("the action that led to this step");
        }
        if let Some(a) = session.recorded_action_at(i) {
            ui.label(
                egui::RichText::new(format!("recorded next {}", format_action(a)))
                    .color(RECORDED_ACTION),
            )
            .on_hover_text(
                "the action the recording takes at this step (drawn as an orange cross on the \
                 frames); Take over starts the controls from it",
            );
        }
        if let Some(m) = &rec.metrics {
            ui.separator();
            ui.label(format!("PSNR {:.1} dB", m.psnr_db));
            ui.label(format!("SSIM {:.3}", m.ssim));
            if let Some(iou) = m.mean_iou() {
                ui.label(format!("IoU {iou:.2}"));
            }
            for (name, v) in &m.iou {
                if let Some(v) = v {
                    ui.label(egui::RichText::new(format!("{name} {v:.2}")).weak());
                }
            }
        }
        if rec.anchored {
            ui.separator();
            ui.label(egui::RichText::new("⚓ re-anchored to real frames").color(CONTEXT));
        }
    });
}

pub(super) fn format_action(a: &dreamyard_scenes::Action) -> String {
    match a {
        dreamyard_scenes::Action::Continuous(v) => {
            let parts: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
            format!("({})", parts.join(", "))
        }
        dreamyard_scenes::Action::Discrete(i) => format!("#{i}"),
    }
}
