// Per-pixel |model - truth| error heat map of Dreamyard's Error panel.
//
// Both frames are RGB8 textures in an sRGB format, so sampling returns linear values; they are
// encoded back to sRGB bytes first so the error is measured on the 8-bit values the metrics and
// the CPU export use (`app/src/metrics.rs`: `abs_error`, then `heat_color`). The output goes to
// an sRGB render target, hence the final decode to linear.

#import bevy_sprite::mesh2d_vertex_output::VertexOutput

struct ErrorParams {
    // x: error gain (1 = the raw mean absolute difference), y: 1 when both frames exist.
    settings: vec4<f32>,
};

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var truth_texture: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var model_texture: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var<uniform> params: ErrorParams;

fn linear_to_srgb(c: vec3<f32>) -> vec3<f32> {
    let lo = c * 12.92;
    let hi = 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055;
    return select(hi, lo, c <= vec3(0.0031308));
}

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3(2.4));
    return select(hi, lo, c <= vec3(0.04045));
}

// The "inferno"-like ramp of `heat_color`: black, purple, red, orange, yellow (sRGB, 0..255).
fn heat(t: f32) -> vec3<f32> {
    let c0 = vec3(0.0, 0.0, 4.0);
    let c1 = vec3(87.0, 16.0, 110.0);
    let c2 = vec3(188.0, 55.0, 84.0);
    let c3 = vec3(249.0, 142.0, 9.0);
    let c4 = vec3(252.0, 255.0, 164.0);
    let x = clamp(t, 0.0, 1.0) * 4.0;
    var c: vec3<f32>;
    if x < 1.0 {
        c = mix(c0, c1, x);
    } else if x < 2.0 {
        c = mix(c1, c2, x - 1.0);
    } else if x < 3.0 {
        c = mix(c2, c3, x - 2.0);
    } else {
        c = mix(c3, c4, x - 3.0);
    }
    return c / 255.0;
}

@fragment
fn fragment(mesh: VertexOutput) -> @location(0) vec4<f32> {
    if params.settings.y < 0.5 {
        return vec4(srgb_to_linear(vec3(60.0, 60.0, 66.0) / 255.0), 1.0);
    }
    let size = vec2<f32>(textureDimensions(truth_texture));
    let texel = vec2<i32>(clamp(mesh.uv * size, vec2(0.0), size - 1.0));
    let truth = round(linear_to_srgb(textureLoad(truth_texture, texel, 0).rgb) * 255.0);
    let model = round(linear_to_srgb(textureLoad(model_texture, texel, 0).rgb) * 255.0);
    // Mean absolute difference over the channels, truncated like the CPU's integer mean.
    let err = floor((abs(truth.r - model.r) + abs(truth.g - model.g) + abs(truth.b - model.b)) / 3.0);
    let t = clamp(err * params.settings.x / 255.0, 0.0, 1.0);
    return vec4(srgb_to_linear(heat(t)), 1.0);
}
