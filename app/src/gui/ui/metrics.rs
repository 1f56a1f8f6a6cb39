//! Metrics of the active branch per step (egui_plot): PSNR in dB on the left; SSIM and the
//! object-mask IoU (when the scene defines object colours) on the right; the shown step and
//! the first divergence past the threshold as vertical lines. Clicking a plot scrubs.

use bevy_egui::egui::{self, Color32};
use egui_plot::{Corner, Legend, Line, Plot, PlotPoints, VLine};

use super::UiState;
use crate::commands::Command;
use crate::session::FrameKind;

const DIVERGED: Color32 = Color32::from_rgb(255, 210, 70);

pub(super) fn metrics_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    let session = state.session;
    let branch = session.active_branch();
    let threshold = session.config.divergence_psnr_db;
    let divergence = branch.first_divergence(threshold);
    let shown = session.view_step();
    let mut psnr = Vec::new();
    let mut ssim = Vec::new();
    let mut iou = Vec::new();
    for (i, rec) in branch.steps.iter().enumerate() {
        let Some(m) = rec
            .metrics
            .as_ref()
            .filter(|_| rec.kind == FrameKind::Imagined)
        else {
            continue;
        };
        let x = i as f64;
        if m.psnr_db.is_finite() {
            psnr.push([x, m.psnr_db]);
        }
        ssim.push([x, m.ssim]);
        if let Some(v) = m.mean_iou() {
            iou.push([x, v]);
        }
    }
    let show = (
        state.view.show_psnr,
        state.view.show_ssim,
        state.view.show_iou,
    );
    let head = branch.steps.len().max(1) as f64;
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
