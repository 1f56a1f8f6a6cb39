//! Small RGB8 frame operations: resizing to the model's size, placeholders, error heat maps
//! and tiling frames side by side for exports.

use dreamyard_scenes::Frame;

use crate::metrics::{abs_error, heat_color};

/// `frame` resized to `width x height` with bilinear sampling (pixel centres aligned); the frame
/// itself when it already has that size.
pub fn fit(frame: Frame, width: u32, height: u32) -> Frame {
    if frame.width == width && frame.height == height {
        return frame;
    }
    let (sw, sh) = (frame.width as usize, frame.height as usize);
    if sw == 0 || sh == 0 {
        return solid(width, height, [0, 0, 0]);
    }
    let (dw, dh) = (width as usize, height as usize);
    let mut data = Vec::with_capacity(dw * dh * 3);
    let sx = sw as f32 / dw as f32;
    let sy = sh as f32 / dh as f32;
    for y in 0..dh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (sh - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(sh - 1);
        for x in 0..dw {
            let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (sw - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(sw - 1);
            for c in 0..3 {
                let p = |xx: usize, yy: usize| f32::from(frame.data[(yy * sw + xx) * 3 + c]);
                let top = p(x0, y0) * (1.0 - tx) + p(x1, y0) * tx;
                let bottom = p(x0, y1) * (1.0 - tx) + p(x1, y1) * tx;
                data.push((top * (1.0 - ty) + bottom * ty).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    Frame {
        width,
        height,
        data,
    }
}

/// A frame of one colour.
pub fn solid(width: u32, height: u32, rgb: [u8; 3]) -> Frame {
    Frame {
        width,
        height,
        data: rgb
            .iter()
            .copied()
            .cycle()
            .take(width as usize * height as usize * 3)
            .collect(),
    }
}

/// The per-pixel |a - b| heat map (the CPU twin of `shaders/error_heatmap.wgsl`).
pub fn error_heat(a: &Frame, b: &Frame) -> Frame {
    let data = abs_error(&a.data, &b.data)
        .into_iter()
        .flat_map(heat_color)
        .collect();
    Frame {
        width: a.width.min(b.width),
        height: a.height.min(b.height),
        data,
    }
}

/// Frames of equal height side by side with `gap` pixels of `gap_rgb` between them.
pub fn hstack(frames: &[&Frame], gap: u32, gap_rgb: [u8; 3]) -> Frame {
    let height = frames.iter().map(|f| f.height).max().unwrap_or(0);
    let width =
        frames.iter().map(|f| f.width).sum::<u32>() + gap * (frames.len().saturating_sub(1)) as u32;
    let mut out = solid(width, height, gap_rgb);
    let mut x0 = 0;
    for f in frames {
        blit(&mut out, f, x0, 0);
        x0 += f.width + gap;
    }
    out
}

/// Frames of equal width stacked top to bottom with `gap` pixels between them.
pub fn vstack(frames: &[&Frame], gap: u32, gap_rgb: [u8; 3]) -> Frame {
    let width = frames.iter().map(|f| f.width).max().unwrap_or(0);
    let height = frames.iter().map(|f| f.height).sum::<u32>()
        + gap * (frames.len().saturating_sub(1)) as u32;
    let mut out = solid(width, height, gap_rgb);
    let mut y0 = 0;
    for f in frames {
        blit(&mut out, f, 0, y0);
        y0 += f.height + gap;
    }
    out
}

/// Copies `src` into `dst` with its top-left corner at (`x0`, `y0`), clipped.
pub fn blit(dst: &mut Frame, src: &Frame, x0: u32, y0: u32) {
    for y in 0..src.height.min(dst.height.saturating_sub(y0)) {
        let w = src.width.min(dst.width.saturating_sub(x0)) as usize;
        let s = (y * src.width) as usize * 3;
        let d = ((y0 + y) * dst.width + x0) as usize * 3;
        dst.data[d..d + w * 3].copy_from_slice(&src.data[s..s + w * 3]);
    }
}

/// Draws a `thickness`-pixel border of `rgb` inside `frame`.
pub fn border(frame: &mut Frame, thickness: u32, rgb: [u8; 3]) {
    let (w, h) = (frame.width, frame.height);
    for y in 0..h {
        for x in 0..w {
            if x < thickness || y < thickness || x + thickness >= w || y + thickness >= h {
                let i = ((y * w + x) * 3) as usize;
                frame.data[i..i + 3].copy_from_slice(&rgb);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_same_size_and_resizes_uniform_frames_exactly() {
        let f = solid(8, 6, [10, 20, 30]);
        assert_eq!(fit(f.clone(), 8, 6), f);
        let g = fit(f, 3, 5);
        assert_eq!((g.width, g.height), (3, 5));
        assert!(g.data.chunks(3).all(|p| p == [10, 20, 30]));
    }

    #[test]
    fn stacking_and_heat() {
        let a = solid(2, 2, [0, 0, 0]);
        let b = solid(2, 2, [255, 255, 255]);
        let s = hstack(&[&a, &b], 1, [9, 9, 9]);
        assert_eq!((s.width, s.height), (5, 2));
        assert_eq!(s.pixel(2, 0), [9, 9, 9]);
        assert_eq!(s.pixel(4, 1), [255, 255, 255]);
        let v = vstack(&[&a, &b], 0, [0, 0, 0]);
        assert_eq!((v.width, v.height), (2, 4));
        assert_eq!(error_heat(&a, &a).pixel(0, 0), heat_color(0));
        assert_eq!(error_heat(&a, &b).pixel(1, 1), heat_color(255));
        let mut c = solid(4, 4, [0, 0, 0]);
        border(&mut c, 1, [1, 2, 3]);
        assert_eq!(c.pixel(0, 2), [1, 2, 3]);
        assert_eq!(c.pixel(1, 1), [0, 0, 0]);
    }
}
