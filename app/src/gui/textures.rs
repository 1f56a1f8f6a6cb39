//! Frame textures: the shown step's truth and model frames as Bevy images (uploaded only when
//! the shown frame changes), plus the error target the shader renders into, all registered
//! with egui.

use std::sync::Arc;

use bevy::asset::RenderAssetUsages;
use bevy::image::ImageSampler;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy_egui::{EguiTextureHandle, EguiUserTextures, egui};
use dreamyard_scenes::Frame;

use super::AppSet;
use super::driver::SessionRes;
use super::error_shader::target_image;

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, create_textures)
        .add_systems(Update, upload_shown_step.in_set(AppSet::Present));
}

/// How frames are scaled to their panels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Filter {
    #[default]
    Nearest,
    Linear,
}

#[derive(Resource, Debug)]
pub(super) struct FrameTextures {
    pub truth: Handle<Image>,
    pub model: Handle<Image>,
    pub error: Handle<Image>,
    pub truth_id: egui::TextureId,
    pub model_id: egui::TextureId,
    pub error_id: egui::TextureId,
    pub size: UVec2,
    pub has_truth: bool,
    pub has_model: bool,
    pub has_error: bool,
    pub filter: Filter,
    applied_filter: Filter,
    /// Identity of the uploaded frames (the `Arc` pointers), to skip re-uploads.
    shown: [usize; 2],
}

/// A blank (dark grey) RGBA image of `size`, the look of an empty panel.
pub(super) fn frame_image(size: UVec2) -> Image {
    Image::new_fill(
        Extent3d {
            width: size.x.max(1),
            height: size.y.max(1),
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[60, 60, 66, 255],
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

fn create_textures(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    mut egui_textures: ResMut<EguiUserTextures>,
) {
    let size = UVec2::splat(64);
    let mut add = |image: Image| {
        let mut image = image;
        image.sampler = ImageSampler::nearest();
        let handle = images.add(image);
        let id = egui_textures.add_image(EguiTextureHandle::Strong(handle.clone()));
        (handle, id)
    };
    let (truth, truth_id) = add(frame_image(size));
    let (model, model_id) = add(frame_image(size));
    let (error, error_id) = add(target_image(size));
    commands.insert_resource(FrameTextures {
        truth,
        model,
        error,
        truth_id,
        model_id,
        error_id,
        size,
        has_truth: false,
        has_model: false,
        has_error: false,
        filter: Filter::Nearest,
        applied_filter: Filter::Nearest,
        shown: [0, 0],
    });
}

fn rgba(frame: &Frame) -> Vec<u8> {
    frame
        .data
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect()
}

fn identity(frame: Option<&Arc<Frame>>) -> usize {
    frame.map_or(0, |f| Arc::as_ptr(f) as usize)
}

fn upload_shown_step(
    session: Option<Res<SessionRes>>,
    mut textures: ResMut<FrameTextures>,
    mut images: ResMut<Assets<Image>>,
) {
    let Some(session) = session else {
        return;
    };
    let shown = session.shown_record();
    let rec = shown.as_deref();
    let truth = rec.and_then(|r| r.truth.as_ref());
    let model = rec.and_then(|r| r.model.as_ref());
    let ids = [identity(truth), identity(model)];
    let filter_changed = textures.filter != textures.applied_filter;
    if ids == textures.shown && !filter_changed {
        return;
    }
    let size = truth
        .or(model)
        .map_or(textures.size, |f| UVec2::new(f.width, f.height));
    let sampler = match textures.filter {
        Filter::Nearest => ImageSampler::nearest(),
        Filter::Linear => ImageSampler::linear(),
    };
    let handles = [
        textures.truth.clone(),
        textures.model.clone(),
        textures.error.clone(),
    ];
    for (i, handle) in handles.iter().enumerate() {
        let Some(mut image) = images.get_mut(handle) else {
            continue;
        };
        let frame = [truth, model].get(i).copied().flatten();
        if image.width() != size.x || image.height() != size.y {
            let mut fresh = if i == 2 {
                target_image(size)
            } else {
                frame_image(size)
            };
            fresh.sampler = sampler.clone();
            *image = fresh;
        }
        image.sampler = sampler.clone();
        if let Some(f) = frame
            && f.width == size.x
            && f.height == size.y
        {
            image.data = Some(rgba(f));
        }
    }
    let kind_is_imagined = rec.is_some_and(|r| r.kind == crate::session::FrameKind::Imagined);
    textures.has_truth = truth.is_some();
    textures.has_model = model.is_some();
    textures.has_error = truth.is_some() && model.is_some() && kind_is_imagined;
    textures.size = size;
    textures.shown = ids;
    textures.applied_filter = textures.filter;
}
