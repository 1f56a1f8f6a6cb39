//! The HUD: model step time, action-to-frame latency, UI frames per second, device, and whether
//! a step is pending.

use bevy_egui::egui::{self, Color32};

use super::UiState;

pub(super) fn hud_ui(ui: &mut egui::Ui, state: &UiState<'_>) {
    let session = state.session;
    // Right-to-left layout: the last item added is the leftmost.
    // `cuda:0 · bf16 · 1.2/139.8 GiB`: where the model runs, in what, and the memory in use.
    let device = session.model_info().map_or_else(
        || "no model".to_owned(),
        |m| {
            let mut s = format!("{} · {}", m.device, m.dtype);
            if let Some(mem) = &m.memory {
                s.push_str(" · ");
                s.push_str(&mem.label());
            }
            s
        },
    );
    chip(ui, "device", &device);
    chip(ui, "UI", &format!("{:.0} fps", state.hud.ui_fps));
    let branch = session.active_branch();
    let last = branch
        .steps
        .iter()
        .rev()
        .find(|r| r.compute_ms.is_some() || r.latency_ms.is_some());
    let fmt = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.0} ms"));
    chip(ui, "latency", &fmt(last.and_then(|r| r.latency_ms)));
    chip(ui, "model step", &fmt(last.and_then(|r| r.compute_ms)));
    // A two-stage model: what each stage took (the upsampler usually dominates).
    if let Some([low, up]) = last.and_then(|r| r.stage_ms) {
        chip(ui, "upsampler", &fmt(Some(up)));
        chip(ui, "first stage", &fmt(Some(low)));
    }
    // Achieved against requested: a slow model (or machine) lowers the first, not the second.
    let rate = match (session.transport.playing, session.achieved_rate()) {
        (true, Some(r)) => format!("{r:.1} / {:.0}", session.config.steps_per_sec),
        (true, None) => format!("— / {:.0}", session.config.steps_per_sec),
        (false, _) => "paused".to_owned(),
    };
    chip(ui, "steps/s", &rate);
    if let Some((done, total)) = session.replay_progress() {
        ui.label(
            egui::RichText::new(format!("restoring session {done}/{total}"))
                .color(Color32::from_rgb(255, 196, 80)),
        );
        ui.add(egui::Spinner::new());
    } else if let Some(t) = session.pending_for() {
        ui.label(
            egui::RichText::new(format!("imagining… {:.0} ms", t.as_secs_f64() * 1e3))
                .color(Color32::from_rgb(255, 196, 80)),
        );
        ui.add(egui::Spinner::new());
    } else if let Some(label) = session.model_loading() {
        ui.label(
            egui::RichText::new(format!("loading {label}…")).color(Color32::from_rgb(255, 196, 80)),
        );
        ui.add(egui::Spinner::new());
    }
}

fn chip(ui: &mut egui::Ui, name: &str, value: &str) {
    egui::Frame::new()
        .fill(Color32::from_gray(36))
        .corner_radius(4)
        .inner_margin(egui::Margin::symmetric(8, 2))
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new(value).monospace().strong());
                ui.label(egui::RichText::new(name).small().weak());
            });
        });
}
