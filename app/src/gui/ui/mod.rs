//! The egui panels. One system gathers the resources into a [`UiState`] and lays out the
//! window; each panel is a plain `*_ui(ui, &mut state)` function in its own file.

mod branches;
mod controls;
mod episodes;
mod futures;
mod hud;
mod menu;
mod metrics;
mod timeline;
mod views;

use bevy::prelude::*;
use bevy_egui::{
    EguiContexts, EguiGlobalSettings, EguiPrimaryContextPass, PrimaryEguiContext, egui,
};

use super::driver::{AppCommands, OutputsRes, SessionRes};
use super::error_shader::ErrorGain;
use super::files::{Dialogs, Recent};
use super::input::ControlState;
use super::textures::FrameTextures;
use crate::commands::Command;
use crate::session::Session;

pub(super) fn plugin(app: &mut App) {
    // egui belongs to the window's camera, not to the offscreen error camera.
    if let Some(mut settings) = app.world_mut().get_resource_mut::<EguiGlobalSettings>() {
        settings.auto_create_primary_context = false;
    }
    app.init_resource::<Hud>()
        .init_resource::<ViewState>()
        .add_systems(Startup, spawn_window_camera)
        .add_systems(Update, measure_frame_rate)
        .add_systems(EguiPrimaryContextPass, (style, draw).chain());
}

fn spawn_window_camera(mut commands: Commands) {
    commands.spawn((Camera2d, PrimaryEguiContext));
}

/// Frame-rate of the UI, smoothed.
#[derive(Resource, Debug, Default)]
pub(super) struct Hud {
    pub ui_fps: f64,
}

/// Panel state that is neither session nor input.
#[derive(Resource, Debug)]
pub(super) struct ViewState {
    pub show_psnr: bool,
    pub show_ssim: bool,
    pub show_iou: bool,
    /// Record as AV1 video instead of PNG images.
    pub record_video: bool,
    /// File > Open path: typed where no file dialog can open (no desktop portal or zenity).
    pub open_path: String,
    /// The output folder field, while it is being edited.
    pub out_dir: Option<String>,
    /// Branches overlaid on the metrics plots beside the active one.
    pub compare: std::collections::BTreeSet<crate::session::BranchId>,
    /// A branch shown side by side with the active one (its model frame at the shown step).
    pub side_by_side: Option<crate::session::BranchId>,
    /// The texture of that frame, and which frame it is.
    pub beside_texture: TextureCache,
    /// The compared branch's ground-truth frame (a counterfactual's world).
    pub beside_truth_texture: TextureCache,
    /// The sampled-futures window is open.
    pub show_futures: bool,
    /// Its frames' textures, by slot.
    pub futures_textures: Vec<TextureCache>,
    /// Its spread heat map (kept alive while shown).
    pub futures_spread: TextureCache,
    /// A two-stage model's first-stage frame of the shown step.
    pub low_texture: TextureCache,
}

/// An uploaded frame texture and which frame (by address) it shows.
#[derive(Default)]
pub(super) struct TextureCache(pub Option<(usize, egui::TextureHandle)>);

impl std::fmt::Debug for TextureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TextureCache")
            .field(&self.0.as_ref().map(|(k, _)| k))
            .finish()
    }
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            show_psnr: true,
            show_ssim: true,
            show_iou: true,
            record_video: false,
            open_path: String::new(),
            out_dir: None,
            compare: Default::default(),
            side_by_side: None,
            beside_texture: TextureCache::default(),
            beside_truth_texture: TextureCache::default(),
            show_futures: false,
            futures_textures: Vec::new(),
            futures_spread: TextureCache::default(),
            low_texture: TextureCache::default(),
        }
    }
}

/// Everything a panel may read or change.
pub(super) struct UiState<'a> {
    /// Read-only: panels change the session by pushing commands.
    pub session: &'a Session,
    pub control: &'a mut ControlState,
    pub textures: &'a mut FrameTextures,
    pub gain: &'a mut ErrorGain,
    pub recent: &'a Recent,
    pub dialogs: &'a mut Dialogs,
    /// The replayed dataset's episodes and the episode picker.
    pub episodes: &'a mut super::episodes::Episodes,
    pub commands: &'a mut Vec<Command>,
    pub hud: &'a Hud,
    pub view: &'a mut ViewState,
    /// The device models open on (`--device`, or the Device menu's last choice).
    pub device: &'a str,
    /// Where recordings, exports and sessions go.
    pub out_dir: &'a std::path::Path,
    /// The path the open model was opened from.
    pub model_path: Option<&'a std::path::Path>,
}

fn measure_frame_rate(time: Res<Time>, mut hud: ResMut<Hud>) {
    let dt = f64::from(time.delta_secs());
    if dt > 0.0 {
        let fps = 1.0 / dt;
        hud.ui_fps = if hud.ui_fps == 0.0 {
            fps
        } else {
            0.95 * hud.ui_fps + 0.05 * fps
        };
    }
}

fn style(mut contexts: EguiContexts, mut done: Local<bool>) {
    if *done {
        return;
    }
    let Ok(ctx) = contexts.ctx_mut() else {
        return;
    };
    *done = true;
    // The shipped DejaVu Sans after egui's own fonts: arrows, ✕, ⚠ and other symbols they lack
    // draw as glyphs, not boxes.
    let mut fonts = egui::FontDefinitions::default();
    fonts.font_data.insert(
        "dejavu".into(),
        std::sync::Arc::new(egui::FontData::from_static(crate::text::FONT_BYTES)),
    );
    for family in [egui::FontFamily::Proportional, egui::FontFamily::Monospace] {
        fonts
            .families
            .entry(family)
            .or_default()
            .push("dejavu".into());
    }
    ctx.set_fonts(fonts);
    ctx.set_visuals(egui::Visuals::dark());
    ctx.global_style_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 6.0);
        style.spacing.button_padding = egui::vec2(8.0, 3.0);
    });
}

#[allow(clippy::too_many_arguments)] // one resource per concern; bundled into UiState below
fn draw(
    mut contexts: EguiContexts,
    session: Option<Res<SessionRes>>,
    mut control: ResMut<ControlState>,
    textures: Option<ResMut<FrameTextures>>,
    mut gain: ResMut<ErrorGain>,
    recent: Res<Recent>,
    mut dialogs: ResMut<Dialogs>,
    mut episodes: ResMut<super::episodes::Episodes>,
    mut queue: ResMut<AppCommands>,
    hud: Res<Hud>,
    mut view: ResMut<ViewState>,
    outputs: Option<Res<OutputsRes>>,
) {
    let (Some(session), Some(mut textures)) = (session, textures) else {
        return;
    };
    let Ok(ctx) = contexts.ctx_mut() else {
        return;
    };
    let ctx = ctx.clone();
    let mut state = UiState {
        session: &session.0,
        control: &mut control,
        textures: &mut textures,
        gain: &mut gain,
        recent: &recent,
        dialogs: &mut dialogs,
        episodes: &mut episodes,
        commands: &mut queue.0,
        hud: &hud,
        view: &mut view,
        device: outputs.as_ref().map_or("cpu", |o| o.device.as_str()),
        out_dir: outputs
            .as_ref()
            .map_or(std::path::Path::new("."), |o| o.root.as_path()),
        model_path: outputs
            .as_ref()
            .and_then(|o| o.model.as_ref())
            .map(|(p, _)| p.as_path()),
    };
    let mut root = egui::Ui::new(
        ctx.clone(),
        "dreamyard-root".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    layout_ui(&mut root, &mut state);
    // Keep repainting while the model works so "pending" and new frames show promptly.
    if state.session.is_pending() || state.session.transport.playing {
        ctx.request_repaint();
    }
}

/// The window: menu bar + HUD on top, controls on the left, timeline and metrics at the bottom,
/// the three synced frame panels in the middle.
fn layout_ui(ui: &mut egui::Ui, state: &mut UiState<'_>) {
    egui::Panel::top("top_bar")
        .frame(egui::Frame::side_top_panel(ui.style()).inner_margin(egui::Margin::symmetric(10, 6)))
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                menu::menu_bar_ui(ui, state);
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    hud::hud_ui(ui, state);
                });
            });
        });
    egui::Panel::left("controls")
        .resizable(true)
        .default_size(310.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                episodes::episode_section_ui(ui, state);
                controls::controls_ui(ui, state);
                ui.separator();
                branches::branches_ui(ui, state);
            });
        });
    egui::Panel::bottom("timeline_metrics")
        .resizable(true)
        .default_size(290.0)
        .show(ui, |ui| {
            timeline::timeline_ui(ui, state);
            ui.add_space(4.0);
            metrics::metrics_ui(ui, state);
        });
    egui::CentralPanel::default().show(ui, |ui| {
        views::notices_ui(ui, state);
        views::frames_ui(ui, state);
    });
    episodes::episode_picker_ui(ui.ctx(), state);
    futures::futures_ui(ui.ctx(), state);
}
