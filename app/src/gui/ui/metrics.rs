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
    let MetricSeries { psnr, ssim, iou } = branch.metric_series();
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
    ui.columns(if recorded.is_empty() { 2 } else { 3 }, |cols| {
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
                .show(&mut cols[2], |plot| {
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
