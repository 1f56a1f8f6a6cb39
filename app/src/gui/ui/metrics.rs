//! Metrics of the active branch per step (egui_plot): PSNR in dB on the left; SSIM and the
//! object-mask IoU (when the scene defines object colours) on the right; the shown step and
//! the first divergence past the threshold as vertical lines; branches ticked "plot" in the
//! branch list overlaid, dashed. Clicking a plot scrubs.

use bevy_egui::egui::{self, Color32};
use egui_plot::{Corner, Legend, Line, Plot, PlotPoints, VLine};

use super::UiState;
use crate::commands::Command;
use crate::session::MetricSeries;

const DIVERGED: Color32 = Color32::from_rgb(255, 210, 70);

pub(super) fn metrics_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    let session = state.session;
    let branch = session.active_branch();
    let threshold = session.config.divergence_psnr_db;
    let divergence = branch.first_divergence(threshold);
    let shown = session.view_step();
    let MetricSeries {
        psnr,
        ssim,
        iou,
        pose,
    } = branch.metric_series();
    let event = branch.first_object_event();
    status_ui(ui, state);
    // Other branches ticked "plot" in the branch list, overlaid (dashed) to compare.
    let others: Vec<(String, MetricSeries)> = session
        .branches()
        .iter()
        .filter(|b| b.id != branch.id && state.view.compare.contains(&b.id))
        .map(|b| (b.name.clone(), b.metric_series()))
        .collect();
    let head = session
        .branches()
        .iter()
        .filter(|b| b.id == branch.id || state.view.compare.contains(&b.id))
        .map(|b| b.steps.len())
        .max()
        .unwrap_or(1)
        .max(session.timeline_len())
        .max(1) as f64;
    // A replayed recording: its actions and states over the whole episode, a third plot.
    let recorded = recorded_series(state);
    let show = (
        state.view.show_psnr,
        state.view.show_ssim,
        state.view.show_iou,
    );
    let height = ui.available_height().max(80.0);
    let mut clicked_step = None;
    let pose_col = 2;
    let recorded_col = if pose.is_empty() { 2 } else { 3 };
    let columns = recorded_col + usize::from(!recorded.is_empty());
    ui.columns(columns, |cols| {
        if show.0 {
            let r = Plot::new("psnr")
                .height(height)
                .legend(Legend::default().position(Corner::LeftBottom))
                .include_x(0.0)
                .include_x(head)
                .include_y(threshold - 5.0)
                .include_y(threshold + 15.0)
                .y_axis_label("PSNR (dB)")
                .allow_scroll(false)
                .link_axis("metrics", [true, false])
                .show(&mut cols[0], |plot| {
                    plot.line(
                        Line::new("PSNR", PlotPoints::from(psnr.clone()))
                            .color(Color32::from_rgb(90, 170, 255)),
                    );
                    for (k, (name, series)) in others.iter().enumerate() {
                        plot.line(overlay(format!("PSNR · {name}"), &series.psnr, k));
                    }
                    plot.hline(
                        egui_plot::HLine::new("threshold", threshold)
                            .color(DIVERGED.gamma_multiply(0.5))
                            .style(egui_plot::LineStyle::dashed_loose()),
                    );
                    marks(plot, shown, divergence);
                    plot.pointer_coordinate()
                });
            if r.response.clicked() {
                clicked_step = r.inner.map(|p| p.x);
            }
        }
        if show.1 || show.2 {
            let r = Plot::new("ssim_iou")
                .height(height)
                .legend(Legend::default().position(Corner::LeftBottom))
                .include_x(0.0)
                .include_x(head)
                .include_y(0.0)
                .include_y(1.0)
                .y_axis_label("SSIM / IoU")
                .allow_scroll(false)
                .link_axis("metrics", [true, false])
                .show(&mut cols[1], |plot| {
                    if show.1 {
                        plot.line(
                            Line::new("SSIM", PlotPoints::from(ssim.clone()))
                                .color(Color32::from_rgb(120, 220, 140)),
                        );
                    }
                    if show.2 && !iou.is_empty() {
                        plot.line(
                            Line::new("mask IoU", PlotPoints::from(iou.clone()))
                                .color(Color32::from_rgb(230, 130, 230)),
                        );
                    }
                    for (k, (name, series)) in others.iter().enumerate() {
                        if show.1 {
                            plot.line(overlay(format!("SSIM · {name}"), &series.ssim, k));
                        }
                        if show.2 && !series.iou.is_empty() {
                            plot.line(overlay(format!("IoU · {name}"), &series.iou, k));
                        }
                    }
                    marks(plot, shown, divergence);
                    plot.pointer_coordinate()
                });
            if r.response.clicked() {
                clicked_step = r.inner.map(|p| p.x);
            }
        }
        if !pose.is_empty() {
            let r = Plot::new("pose")
                .height(height)
                .legend(Legend::default().position(Corner::LeftTop))
                .include_x(0.0)
                .include_x(head)
                .include_y(0.0)
                .include_y(2.0)
                .y_axis_label("object centroid error (px)")
                .allow_scroll(false)
                .link_axis("metrics", [true, false])
                .show(&mut cols[pose_col], |plot| {
                    for (k, (name, points)) in pose.iter().enumerate() {
                        plot.line(
                            Line::new(
                                format!("{name} pose error"),
                                PlotPoints::from(points.clone()),
                            )
                            .color(POSE_COLOURS[k % POSE_COLOURS.len()]),
                        );
                    }
                    if let Some((at, what)) = &event {
                        plot.vline(VLine::new(what.clone(), *at as f64).color(LOST).width(2.0));
                    }
                    marks(plot, shown, None);
                    plot.pointer_coordinate()
                });
            if r.response.clicked() {
                clicked_step = r.inner.map(|p| p.x);
            }
        }
        if !recorded.is_empty() {
            let r = Plot::new("recorded")
                .height(height)
                .legend(
                    Legend::default()
                        .position(Corner::LeftTop)
                        .text_style(egui::TextStyle::Small)
                        .background_alpha(0.5),
                )
                .include_x(0.0)
                .include_x(head)
                .y_axis_label("recorded action / state")
                .allow_scroll(false)
                .link_axis("metrics", [true, false])
                .show(&mut cols[recorded_col], |plot| {
                    for (k, (name, points, is_action)) in recorded.iter().enumerate() {
                        let line = Line::new(name.clone(), PlotPoints::from(points.clone()));
                        plot.line(if *is_action {
                            line.color(ACTION_COLOURS[k % ACTION_COLOURS.len()])
                                .width(2.0)
                        } else {
                            line.color(STATE_COLOURS[k % STATE_COLOURS.len()])
                        });
                    }
                    marks(plot, shown, None);
                    plot.pointer_coordinate()
                });
            if r.response.clicked() {
                clicked_step = r.inner.map(|p| p.x);
            }
        }
    });
    if let Some(x) = clicked_step {
        state
            .commands
            .push(Command::Scrub(x.round().max(0.0) as usize));
    }
}

/// The first step an object was lost or teleported.
pub(super) const LOST: Color32 = Color32::from_rgb(255, 90, 90);
const POSE_COLOURS: [Color32; 3] = [
    Color32::from_rgb(150, 170, 200),
    Color32::from_rgb(90, 130, 240),
    Color32::from_rgb(230, 160, 90),
];

/// One line over the plots: the shown step's objects (pose error, lost, phantom, teleported)
/// and, on a branch forked from another, how its model responds to the different actions
/// against the world's response.
fn status_ui(ui: &mut egui::Ui, state: &UiState<'_>) {
    let session = state.session;
    let objects = session
        .shown_record()
        .and_then(|r| r.metrics.clone())
        .map(|m| m.objects)
        .unwrap_or_default();
    let response = session.action_response();
    if objects.is_empty() && response.is_none() {
        return;
    }
    ui.horizontal_wrapped(|ui| {
        // What moves, and anything lost or drawn where it is not (static scenery's centroid,
        // like a thin wall's, says little).
        for o in objects.iter().filter(|o| o.moving || o.lost || o.phantom) {
            let (text, colour) = if o.lost {
                (format!("{}: LOST", o.name), LOST)
            } else if o.phantom {
                (format!("{}: phantom", o.name), LOST)
            } else if o.teleport {
                (format!("{}: teleported", o.name), LOST)
            } else {
                let pose = match (o.centroid_px, o.angle_deg) {
                    (Some(c), Some(a)) => format!("{c:.1} px, {a:.0}°"),
                    (Some(c), None) => format!("{c:.1} px"),
                    _ => "absent".to_owned(),
                };
                (format!("{}: {pose}", o.name), Color32::from_gray(190))
            };
            ui.label(egui::RichText::new(text).small().color(colour))
                .on_hover_text(
                    "the object read from its colour in the model's frame against the truth: \
                     centroid error in pixels and heading error; LOST below half its true \
                     area; teleported: moved farther in a step than the scene allows",
                );
        }
        if let Some(r) = response {
            let ratio = r
                .ratio()
                .map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
            let parent = session
                .parent_branch()
                .map_or_else(String::new, |(b, _)| format!(" vs {}", b.name));
            ui.separator();
            ui.label(
                egui::RichText::new(format!(
                    "action response{parent}: {ratio} (model {:.1}, world {:.1} over {} steps)",
                    r.model_px, r.world_px, r.steps
                ))
                .small(),
            )
            .on_hover_text(
                "how far this branch's model frames are from its parent's after the fork, over \
                 how far the true frames are (mean absolute pixel difference): 0 = the model \
                 ignores the different actions, 1 = it responds as the world does",
            );
        }
    });
}

const ACTION_COLOURS: [Color32; 3] = [
    super::views::RECORDED_ACTION,
    Color32::from_rgb(255, 90, 90),
    Color32::from_rgb(255, 210, 120),
];
const STATE_COLOURS: [Color32; 4] = [
    Color32::from_rgb(120, 170, 230),
    Color32::from_rgb(150, 220, 200),
    Color32::from_rgb(190, 160, 240),
    Color32::from_rgb(170, 170, 170),
];

/// At most this many state values are plotted (the first ones).
const STATE_LINES: usize = 6;

/// The replayed recording's action dimensions and state values per step of the active branch
/// (step = episode frame − offset), named, with whether each is an action.
fn recorded_series(state: &UiState<'_>) -> Vec<(String, Vec<[f64; 2]>, bool)> {
    let session = state.session;
    let Some((episode, offset)) = session.recorded_episode() else {
        return Vec::new();
    };
    let step = |e: usize| (e as isize - offset) as f64;
    let mut out = Vec::new();
    let names: Vec<String> = match &episode.action_space {
        dreamyard_scenes::ActionSpace::Continuous { names, .. } => names.clone(),
        dreamyard_scenes::ActionSpace::Discrete { .. } => vec!["action".into()],
    };
    for (j, name) in names.iter().enumerate() {
        let points = episode
            .actions
            .iter()
            .enumerate()
            .filter_map(|(e, a)| {
                let v = match a {
                    dreamyard_scenes::Action::Continuous(v) => f64::from(*v.get(j)?),
                    dreamyard_scenes::Action::Discrete(i) => f64::from(*i),
                };
                Some([step(e), v])
            })
            .collect();
        out.push((format!("action {name}"), points, true));
    }
    let state_names = session
        .truth_spec()
        .and_then(|t| t.scene.as_ref())
        .map(|s| s.state_names.clone())
        .unwrap_or_default();
    if let Some(states) = &episode.states {
        let dim = states.first().map_or(0, Vec::len);
        for j in 0..dim.min(STATE_LINES) {
            let name = state_names
                .get(j)
                .cloned()
                .unwrap_or_else(|| format!("state {j}"));
            let points = states
                .iter()
                .enumerate()
                .filter_map(|(e, s)| Some([step(e), *s.get(j)?]))
                .collect();
            out.push((name, points, false));
        }
    }
    out
}

/// Colours of compared branches, in turn.
const OVERLAY: [Color32; 4] = [
    Color32::from_rgb(255, 160, 60),
    Color32::from_rgb(200, 200, 90),
    Color32::from_rgb(90, 220, 220),
    Color32::from_rgb(240, 110, 110),
];

/// A compared branch's series: dashed, in the `k`-th overlay colour.
fn overlay(name: String, points: &[[f64; 2]], k: usize) -> Line<'static> {
    Line::new(name, PlotPoints::from(points.to_vec()))
        .color(OVERLAY[k % OVERLAY.len()])
        .style(egui_plot::LineStyle::dashed_dense())
}

fn marks(plot: &mut egui_plot::PlotUi<'_>, shown: Option<usize>, divergence: Option<usize>) {
    if let Some(d) = divergence {
        plot.vline(
            VLine::new("first divergence", d as f64)
                .color(DIVERGED)
                .width(2.0),
        );
    }
    if let Some(s) = shown {
        plot.vline(VLine::new("shown step", s as f64).color(Color32::from_gray(200)));
    }
}
