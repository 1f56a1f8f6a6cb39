//! The Error panel on the GPU: a quad with [`ErrorMaterial`] (`shaders/error_heatmap.wgsl`)
//! reads the truth and model textures and renders the |model − truth| heat map into an
//! offscreen image, which egui shows like the other two frames.

use bevy::asset::uuid_handle;
use bevy::camera::RenderTarget;
use bevy::camera::visibility::RenderLayers;
use bevy::prelude::*;
use bevy::render::render_resource::{AsBindGroup, TextureUsages};
use bevy::shader::{Shader, ShaderRef};
use bevy::sprite_render::{Material2d, Material2dPlugin};

use super::AppSet;
use super::textures::FrameTextures;

const SHADER: Handle<Shader> = uuid_handle!("5d0f3f9e-4c1b-4b8e-9a57-6f2c1d7e8a41");
/// Layer of the offscreen quad and camera, so the window's camera never draws them.
const LAYER: usize = 7;

pub(super) fn plugin(app: &mut App) {
    let shader = Shader::from_wgsl(
        include_str!("../../../shaders/error_heatmap.wgsl"),
        "shaders/error_heatmap.wgsl",
    );
    if let Err(e) = app
        .world_mut()
        .resource_mut::<Assets<Shader>>()
        .insert(SHADER.id(), shader)
    {
        tracing::error!("cannot register the error shader: {e}");
    }
    app.add_plugins(Material2dPlugin::<ErrorMaterial>::default())
        .init_resource::<ErrorGain>()
        .add_systems(PostStartup, spawn_error_pass)
        .add_systems(Update, follow_frames.in_set(AppSet::Present));
}

/// Multiplier of the shown error (1 = raw |model − truth|).
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub(super) struct ErrorGain(pub f32);

impl Default for ErrorGain {
    fn default() -> Self {
        Self(1.0)
    }
}

#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub(super) struct ErrorMaterial {
    #[texture(0)]
    truth: Handle<Image>,
    #[texture(1)]
    model: Handle<Image>,
    /// x: gain, y: 1 when both frames exist.
    #[uniform(2)]
    settings: Vec4,
}

impl Material2d for ErrorMaterial {
    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(SHADER)
    }
}

#[derive(Component)]
struct ErrorQuad;

#[derive(Component)]
struct ErrorCamera;

/// A render-target image of `size`: the textures' blank frame, usable as a render target.
pub(super) fn target_image(size: UVec2) -> Image {
    let mut image = super::textures::frame_image(size);
    image.texture_descriptor.usage =
        TextureUsages::TEXTURE_BINDING | TextureUsages::COPY_DST | TextureUsages::RENDER_ATTACHMENT;
    image
}

fn spawn_error_pass(
    mut commands: Commands,
    textures: Res<FrameTextures>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<ErrorMaterial>>,
) {
    let size = textures.size.as_vec2();
    commands.spawn((
        ErrorQuad,
        Mesh2d(meshes.add(Rectangle::new(1.0, 1.0))),
        MeshMaterial2d(materials.add(ErrorMaterial {
            truth: textures.truth.clone(),
            model: textures.model.clone(),
            settings: Vec4::new(1.0, 0.0, 0.0, 0.0),
        })),
        Transform::from_scale(size.extend(1.0)),
        RenderLayers::layer(LAYER),
    ));
    commands.spawn((
        ErrorCamera,
        Camera2d,
        Camera {
            order: -1,
            clear_color: ClearColorConfig::Custom(Color::BLACK),
            ..default()
        },
        RenderTarget::Image(textures.error.clone().into()),
        RenderLayers::layer(LAYER),
    ));
}

/// Keeps the quad the size of the frames and the material's inputs current.
fn follow_frames(
    textures: Res<FrameTextures>,
    gain: Res<ErrorGain>,
    mut quads: Query<(&mut Transform, &MeshMaterial2d<ErrorMaterial>), With<ErrorQuad>>,
    mut materials: ResMut<Assets<ErrorMaterial>>,
) {
    if !textures.is_changed() && !gain.is_changed() {
        return;
    }
    for (mut transform, handle) in &mut quads {
        transform.scale = textures.size.as_vec2().extend(1.0);
        if let Some(mut m) = materials.get_mut(&handle.0) {
            m.truth = textures.truth.clone();
            m.model = textures.model.clone();
            m.settings = Vec4::new(gain.0, f32::from(u8::from(textures.has_error)), 0.0, 0.0);
        }
    }
}
