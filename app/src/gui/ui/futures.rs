//! Sampled futures side by side: the K branches of [`crate::session::Futures`] at the shown
//! step (the same actions, each imagined with its own noise), the true frame, and their
//! per-pixel spread as a heat map, with the spread and the truth's coverage as `eval` measures
//! them (`objects::sample_spread`).

use std::sync::Arc;

use bevy_egui::egui::{self, Color32, Vec2};

use super::UiState;
use crate::commands::Command;
use crate::metrics::heat_color;
use crate::objects::{ideal_coverage, moving_coverage, sample_spread};

/// Samples a "Futures" request asks for.
pub(super) const FUTURES_K: usize = 4;
/// Steps they retake at most.
pub(super) const FUTURES_STEPS: usize = 16;

/// The button in the branches panel: K futures of the next steps from the shown one.
pub(super) fn futures_button_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    let session = state.session;
    let head = session.active_branch().head();
    let shown = session.view_step();
    let after = match (shown, head) {
        (Some(s), Some(h)) if h > s => (h - s).min(FUTURES_STEPS),
        _ => 0,
    };
    if ui
        .add_enabled(
            after > 0 && session.model_info().is_some(),
            egui::Button::new(format!("Futures ×{FUTURES_K} ({after} steps)")),
        )
        .on_hover_text(
            "imagine the next steps again from here with the same actions and other sampler \
             noise, on new branches: the futures are shown side by side with their spread \
             (needs a model and steps after this one)",
        )
        .clicked()
        && let Some(s) = shown
    {
        state.view.show_futures = true;
        state.commands.push(Command::SampleFutures {
            at: s,
            steps: after,
            k: FUTURES_K,
        });
    }
}

/// The window of the last sampled futures (while the user keeps it open).
pub(super) fn futures_ui(ctx: &egui::Context, state: &mut UiState<'_>) {
    let session = state.session;
    let Some(futures) = session.futures().cloned() else {
        return;
    };
    if !state.view.show_futures {
        return;
    }
    let Some(step) = session.view_step() else {
        return;
    };
    let frames: Vec<(String, Option<Arc<dreamyard_scenes::Frame>>)> = futures
        .branches
        .iter()
        .filter_map(|id| session.branches().iter().find(|b| b.id == *id))
        .map(|b| {
            (
                b.name.clone(),
                b.steps.get(step).and_then(|r| r.model.clone()),
            )
        })
        .collect();
    let original = session
        .branches()
        .iter()
        .find(|b| Some(&b.id) == futures.branches.first());
    let truth = original
        .and_then(|b| b.steps.get(step))
        .and_then(|r| r.truth.clone());
    // The true frame the futures started from: what "moved" is measured against.
    let start = original
        .and_then(|b| b.steps.get(futures.at))
        .and_then(|r| r.truth.clone());
    let mut open = true;
    egui::Window::new(format!("Sampled futures from step {}", futures.at))
        .open(&mut open)
        .default_width(640.0)
        .show(ctx, |ui| {
            let models: Vec<&Arc<dreamyard_scenes::Frame>> =
                frames.iter().filter_map(|(_, f)| f.as_ref()).collect();
            if step <= futures.at || models.len() < 2 {
                ui.label(format!(
                    "step {step}: the futures start after step {}; scrub past it to compare them",
                    futures.at
                ));
                return;
            }
            let side = 120.0;
            ui.horizontal_wrapped(|ui| {
                for (k, (name, frame)) in frames.iter().enumerate() {
                    ui.vertical(|ui| {
                        ui.label(egui::RichText::new(name).small());
                        match frame {
                            Some(f) => {
                                let tex = cached(ui, &mut state.view.futures_textures, k, f);
                                ui.image((tex, Vec2::splat(side)));
                            }
                            None => {
                                ui.allocate_exact_size(Vec2::splat(side), egui::Sense::hover());
                            }
                        }
                    });
                }
                if let Some(t) = &truth {
                    ui.vertical(|ui| {
                        ui.label(egui::RichText::new("ground truth").small());
                        let tex = cached(ui, &mut state.view.futures_textures, frames.len(), t);
                        ui.image((tex, Vec2::splat(side)));
                    });
                }
                // The per-pixel standard deviation across the samples, as a heat map.
                let f0 = models[0];
                let same = models.iter().all(|m| m.data.len() == f0.data.len());
                if same {
                    // Uploaded again only when the shown frames change (a texture made and
                    // dropped within one frame never reaches the screen).
                    let key = models
                        .iter()
                        .fold(0usize, |h, m| h.rotate_left(7) ^ Arc::as_ptr(m) as usize);
                    let id = match &state.view.futures_spread.0 {
                        Some((k, tex)) if *k == key => tex.id(),
                        _ => {
                            let tex = ui.ctx().load_texture(
                                "futures-spread",
                                spread_image(&models),
                                egui::TextureOptions::NEAREST,
                            );
                            let id = tex.id();
                            state.view.futures_spread = super::TextureCache(Some((key, tex)));
                            id
                        }
                    };
                    ui.vertical(|ui| {
                        ui.label(egui::RichText::new("spread (×4)").small());
                        ui.image((id, Vec2::splat(side)));
                    });
                }
            });
            let slices: Vec<&[u8]> = models.iter().map(|m| m.data.as_slice()).collect();
            let text = match &truth {
                Some(t) if slices.iter().all(|s| s.len() == t.data.len()) => {
                    let (spread, coverage) = sample_spread(&slices, &t.data);
                    let moving = start
                        .as_ref()
                        .and_then(|b| moving_coverage(&slices, &t.data, &b.data))
                        .map_or_else(String::new, |m| {
                            format!(", {:.0} % where the truth moved", m * 100.0)
                        });
                    format!(
                        "spread {spread:.2} (8-bit std per pixel) · truth within the samples' \
                         range at {:.0} % of pixel values{moving} ({} calibrated samples: \
                         {:.0} %)",
                        coverage * 100.0,
                        models.len(),
                        ideal_coverage(models.len()) * 100.0
                    )
                }
                _ => {
                    let (spread, _) = sample_spread(&slices, slices[0]);
                    format!("spread {spread:.2} (8-bit std per pixel)")
                }
            };
            ui.label(egui::RichText::new(text).color(Color32::from_gray(200)));
        });
    if !open {
        state.view.show_futures = false;
    }
}

/// The per-pixel standard deviation across `models` (same size) as a heat map: four times the
/// mean channel deviation, so 64 levels fill the ramp.
fn spread_image(models: &[&Arc<dreamyard_scenes::Frame>]) -> egui::ColorImage {
    let f0 = models[0];
    let (w, h) = (f0.width as usize, f0.height as usize);
    let n = models.len() as f64;
    let mut rgb = Vec::with_capacity(w * h * 3);
    for p in 0..w * h {
        let mut sd = 0.0;
        for c in 0..3 {
            let vals = models.iter().map(|m| f64::from(m.data[p * 3 + c]));
            let mean = vals.clone().sum::<f64>() / n;
            sd += (vals.map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        }
        rgb.extend(heat_color((sd / 3.0 * 4.0).min(255.0) as u8));
    }
    egui::ColorImage::from_rgb([w, h], &rgb)
}

/// The texture of `frame` in slot `k`, uploaded again only when the frame changes.
fn cached(
    ui: &egui::Ui,
    caches: &mut Vec<super::TextureCache>,
    k: usize,
    frame: &Arc<dreamyard_scenes::Frame>,
) -> egui::TextureId {
    if caches.len() <= k {
        caches.resize_with(k + 1, Default::default);
    }
    let key = Arc::as_ptr(frame) as usize;
    match &caches[k].0 {
        Some((cached, tex)) if *cached == key => tex.id(),
        _ => {
            let image = egui::ColorImage::from_rgb(
                [frame.width as usize, frame.height as usize],
                &frame.data,
            );
            let tex =
                ui.ctx()
                    .load_texture(format!("future-{k}"), image, egui::TextureOptions::NEAREST);
            let id = tex.id();
            caches[k].0 = Some((key, tex));
            id
        }
    }
}
