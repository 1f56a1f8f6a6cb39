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
        .max(1) as f64;
    let show = (
        state.view.show_psnr,
        state.view.show_ssim,
        state.view.show_iou,
    );
    let height = ui.available_height().max(80.0);
    let mut clicked_step = None;
    ui.columns(2, |cols| {
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
    });
    if let Some(x) = clicked_step {
        state
            .commands
            .push(Command::Scrub(x.round().max(0.0) as usize));
    }
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
