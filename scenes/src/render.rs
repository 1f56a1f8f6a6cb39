//! Anti-aliased 2-D rasterisation of scene geometry with tiny-skia.

use tiny_skia::{FillRule, Paint, PathBuilder, Pixmap, Stroke, Transform};

use crate::spec::Rgb;

/// An RGB8 image, row-major, `height x width x 3`.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{} RGB8)", self.width, self.height)
    }
}

impl Frame {
    /// The pixel at column `x`, row `y`.
    pub fn pixel(&self, x: u32, y: u32) -> Rgb {
        let i = 3 * (y as usize * self.width as usize + x as usize);
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Number of pixels whose colour is within `tolerance` (per channel) of `color`.
    pub fn count_color(&self, color: Rgb, tolerance: u8) -> usize {
        self.data
            .chunks_exact(3)
            .filter(|p| {
                p.iter()
                    .zip(color)
                    .all(|(&a, b)| a.abs_diff(b) <= tolerance)
            })
            .count()
    }
}

/// Draws world-space shapes onto a pixmap; world coordinates are scaled so that a square world
/// of `world_size` units fills the frame, with y pointing down (as pygame draws PushT).
pub(crate) struct Canvas {
    pixmap: Pixmap,
    transform: Transform,
}

fn paint(color: Rgb) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color_rgba8(color[0], color[1], color[2], 255);
    paint.anti_alias = true;
    paint
}

impl Canvas {
    /// A canvas for a scene file's frame size and world (size and background colour).
    pub fn for_scene(
        frame: &crate::config::FrameConfig,
        world: &crate::config::WorldConfig,
    ) -> Self {
        Self::new(
            frame.width,
            frame.height,
            world.size as f32,
            world.background,
        )
    }

    pub fn new(width: u32, height: u32, world_size: f32, background: Rgb) -> Self {
        // Sizes are validated when the scene file loads, so the pixmap always exists.
        let mut pixmap = Pixmap::new(width.max(1), height.max(1))
            .unwrap_or_else(|| unreachable!("frame size is validated to be non-zero"));
        pixmap.fill(tiny_skia::Color::from_rgba8(
            background[0],
            background[1],
            background[2],
            255,
        ));
        let transform =
            Transform::from_scale(width as f32 / world_size, height as f32 / world_size);
        Self { pixmap, transform }
    }

    pub fn fill_polygon(&mut self, points: &[[f32; 2]], color: Rgb) {
        let mut pb = PathBuilder::new();
        let Some((first, rest)) = points.split_first() else {
            return;
        };
        pb.move_to(first[0], first[1]);
        for p in rest {
            pb.line_to(p[0], p[1]);
        }
        pb.close();
        if let Some(path) = pb.finish() {
            self.pixmap.fill_path(
                &path,
                &paint(color),
                FillRule::Winding,
                self.transform,
                None,
            );
        }
    }

    pub fn fill_circle(&mut self, center: [f32; 2], radius: f32, color: Rgb) {
        if let Some(path) = PathBuilder::from_circle(center[0], center[1], radius) {
            self.pixmap.fill_path(
                &path,
                &paint(color),
                FillRule::Winding,
                self.transform,
                None,
            );
        }
    }

    /// A line segment of the given width with round caps (a capsule).
    pub fn stroke_segment(&mut self, a: [f32; 2], b: [f32; 2], width: f32, color: Rgb) {
        let mut pb = PathBuilder::new();
        pb.move_to(a[0], a[1]);
        pb.line_to(b[0], b[1]);
        let Some(path) = pb.finish() else {
            return;
        };
        let stroke = Stroke {
            width,
            line_cap: tiny_skia::LineCap::Round,
            ..Stroke::default()
        };
        self.pixmap
            .stroke_path(&path, &paint(color), &stroke, self.transform, None);
    }

    /// The finished RGB8 frame. Every shape is opaque on an opaque background, so the
    /// premultiplied pixels are the straight colours.
    pub fn into_frame(self) -> Frame {
        let width = self.pixmap.width();
        let height = self.pixmap.height();
        let data = self
            .pixmap
            .pixels()
            .iter()
            .flat_map(|p| [p.red(), p.green(), p.blue()])
            .collect();
        Frame {
            width,
            height,
            data,
        }
    }
}
