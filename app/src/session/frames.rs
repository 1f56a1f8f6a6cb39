//! Small RGB8 frame operations: placeholders, error heat maps
//! and tiling frames side by side for exports.

use dreamyard_scenes::Frame;

use crate::metrics::{abs_error, heat_color};

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
    error_heat_gain(a, b, 1.0)
}

/// [`error_heat`] with the error scaled by `gain` first (the Error panel's gain), clipped.
pub fn error_heat_gain(a: &Frame, b: &Frame, gain: f32) -> Frame {
    let data = abs_error(&a.data, &b.data)
        .into_iter()
        .flat_map(|e| heat_color((f32::from(e) * gain).round().clamp(0.0, 255.0) as u8))
        .collect();
    Frame {
        width: a.width.min(b.width),
        height: a.height.min(b.height),
        data,
    }
}

/// `frame` scaled up `k` times, each pixel a `k x k` block (nearest neighbour: pixels stay
/// sharp, as in the panels).
pub fn upscale(frame: &Frame, k: u32) -> Frame {
    if k <= 1 {
        return frame.clone();
    }
    let (w, h) = (frame.width as usize, frame.height as usize);
    let k = k as usize;
    let mut data = Vec::with_capacity(w * h * k * k * 3);
    for y in 0..h * k {
        let row = &frame.data[(y / k) * w * 3..(y / k + 1) * w * 3];
        for px in row.chunks_exact(3) {
            for _ in 0..k {
                data.extend_from_slice(px);
            }
        }
    }
    Frame {
        width: (w * k) as u32,
        height: (h * k) as u32,
        data,
    }
}

/// The mean of each `k x k` block (rounded), a frame `k` times smaller: how a two-stage model's
/// first-stage frame is made from a full-resolution one when none is given. Rows and columns
/// beyond a multiple of `k` are dropped.
pub fn box_downscale(frame: &Frame, k: u32) -> Frame {
    let k = k.max(1);
    let (w, h) = (frame.width / k, frame.height / k);
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    let n = k * k;
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..k {
                    for dx in 0..k {
                        let i = (((y * k + dy) * frame.width + x * k + dx) * 3 + c) as usize;
                        sum += u32::from(frame.data[i]);
                    }
                }
                data.push(((sum + n / 2) / n) as u8);
            }
        }
    }
    Frame {
        width: w,
        height: h,
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
        let grey = solid(2, 2, [10, 10, 10]);
        assert_eq!(error_heat_gain(&a, &grey, 4.0).pixel(0, 0), heat_color(40));
        assert_eq!(
            error_heat_gain(&a, &grey, 100.0).pixel(0, 0),
            heat_color(255)
        );
        let mut dot = solid(2, 1, [0, 0, 0]);
        dot.data[3..6].copy_from_slice(&[7, 8, 9]);
        let up = upscale(&dot, 3);
        assert_eq!((up.width, up.height), (6, 3));
        assert_eq!((up.pixel(2, 2), up.pixel(3, 0)), ([0, 0, 0], [7, 8, 9]));
        let mut quad = solid(2, 2, [0, 0, 0]);
        quad.data[0..3].copy_from_slice(&[4, 8, 255]);
        assert_eq!(box_downscale(&quad, 2).data, [1, 2, 64]);
        assert_eq!(
            (box_downscale(&up, 3).width, box_downscale(&up, 3).height),
            (2, 1)
        );
        let mut c = solid(4, 4, [0, 0, 0]);
        border(&mut c, 1, [1, 2, 3]);
        assert_eq!(c.pixel(0, 2), [1, 2, 3]);
        assert_eq!(c.pixel(1, 1), [0, 0, 0]);
    }
}
