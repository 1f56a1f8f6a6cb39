//! PNG line plots of metric curves and example strips for evaluation reports, drawn with
//! tiny-skia and a built-in 5x7 pixel font (upper case; lower case is drawn as upper case).
//!
//! Plotters, which the issue suggests, is not available offline here (its backend crates are
//! missing from the registry cache), so this module draws the few elements a paper figure
//! needs itself: axes with ticks and labels, one polyline per series and a legend.

use std::path::Path;

use anyhow::Context as _;
use tiny_skia::{Paint, PathBuilder, Pixmap, Rect, Stroke, Transform};

use crate::metrics::{abs_error, heat_color};

/// Series colours (colour-blind safe: Okabe-Ito blue, orange, bluish green, grey).
pub const COLORS: [[u8; 3]; 4] = [[0, 114, 178], [230, 159, 0], [0, 158, 115], [110, 110, 110]];

/// One curve.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Line colour.
    pub color: [u8; 3],
    /// (x, y) points in x order.
    pub points: Vec<(f64, f64)>,
}

const W: u32 = 800;
/// Height of the plot without its legend (which goes below, one line per series).
const H: u32 = 500;
const LEGEND_LINE: f32 = 22.0;
const LEFT: f32 = 90.0;
const RIGHT: f32 = 24.0;
const TOP: f32 = 48.0;
const BOTTOM: f32 = 64.0;
const TEXT_SCALE: f32 = 2.0;

/// Rows of a 5x7 glyph, bit 4 = leftmost column.
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [28, 18, 17, 17, 17, 18, 28],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 17, 10, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        '/' => [0, 1, 2, 4, 8, 16, 0],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        _ => [14, 17, 1, 2, 4, 0, 4],
    }
}

fn paint(color: [u8; 3]) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(color[0], color[1], color[2], 255);
    p.anti_alias = true;
    p
}

/// Width in pixels of `text` at `scale`.
fn text_width(text: &str, scale: f32) -> f32 {
    text.chars().count() as f32 * 6.0 * scale
}

/// Draws `text` with its top-left corner at (x, y).
fn draw_text(pm: &mut Pixmap, text: &str, x: f32, y: f32, scale: f32, color: [u8; 3]) {
    let mut p = paint(color);
    p.anti_alias = false;
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as f32 * 6.0 * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (1 << (4 - col)) != 0
                    && let Some(r) = Rect::from_xywh(
                        gx + col as f32 * scale,
                        y + row as f32 * scale,
                        scale,
                        scale,
                    )
                {
                    pm.fill_rect(r, &p, Transform::identity(), None);
                }
            }
        }
    }
}

fn line(pm: &mut Pixmap, a: (f32, f32), b: (f32, f32), color: [u8; 3], width: f32) {
    let mut pb = PathBuilder::new();
    pb.move_to(a.0, a.1);
    pb.line_to(b.0, b.1);
    if let Some(path) = pb.finish() {
        let stroke = Stroke {
            width,
            ..Stroke::default()
        };
        pm.stroke_path(&path, &paint(color), &stroke, Transform::identity(), None);
    }
}

/// About five "nice" tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// Writes a line plot of `series` to `path` (PNG, 800 pixels wide; 500 high plus the legend).
pub fn line_plot(
    path: &Path,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    // The legend sits under the axes, where it can never hide a curve.
    let height = H + (series.len() as f32 * LEGEND_LINE).ceil() as u32 + 8;
    let mut pm = Pixmap::new(W, height).context("cannot allocate the plot")?;
    pm.fill(tiny_skia::Color::WHITE);
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    // Pad the y range by 5% (and give a flat curve some room).
    let pad = ((y1 - y0) * 0.05).max(1e-3 * y1.abs().max(1.0));
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (pw, ph) = (W as f32 - LEFT - RIGHT, H as f32 - TOP - BOTTOM);
    let sx = |x: f64| LEFT + ((x - x0) / (x1 - x0)) as f32 * pw;
    let sy = |y: f64| TOP + ph - ((y - y0) / (y1 - y0)) as f32 * ph;
    let (axis, grid, ink) = ([40, 40, 40], [225, 225, 225], [30, 30, 30]);

    let yt = ticks(y0, y1);
    let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    for &v in &yt {
        let y = sy(v);
        line(&mut pm, (LEFT, y), (LEFT + pw, y), grid, 1.0);
        line(&mut pm, (LEFT - 5.0, y), (LEFT, y), axis, 1.5);
        let label = tick_label(v, ystep);
        let tw = text_width(&label, TEXT_SCALE);
        draw_text(&mut pm, &label, LEFT - 10.0 - tw, y - 7.0, TEXT_SCALE, ink);
    }
    let xt: Vec<f64> = ticks(x0, x1)
        .into_iter()
        .filter(|v| v.fract() == 0.0)
        .collect();
    for &v in &xt {
        let x = sx(v);
        line(&mut pm, (x, TOP + ph), (x, TOP + ph + 5.0), axis, 1.5);
        let label = tick_label(v, 1.0);
        let tw = text_width(&label, TEXT_SCALE);
        draw_text(
            &mut pm,
            &label,
            x - tw / 2.0,
            TOP + ph + 10.0,
            TEXT_SCALE,
            ink,
        );
    }
    line(&mut pm, (LEFT, TOP), (LEFT, TOP + ph), axis, 1.5);
    line(&mut pm, (LEFT, TOP + ph), (LEFT + pw, TOP + ph), axis, 1.5);
    let tw = text_width(x_label, TEXT_SCALE);
    draw_text(
        &mut pm,
        x_label,
        LEFT + (pw - tw) / 2.0,
        H as f32 - 28.0,
        TEXT_SCALE,
        ink,
    );
    draw_text(&mut pm, y_label, 12.0, 14.0, TEXT_SCALE, ink);

    // The first series (the model) is drawn last, on top of curves it overlaps.
    for s in series.iter().rev() {
        let mut pb = PathBuilder::new();
        for (i, &(x, y)) in s.points.iter().enumerate() {
            if i == 0 {
                pb.move_to(sx(x), sy(y));
            } else {
                pb.line_to(sx(x), sy(y));
            }
        }
        if s.points.len() == 1 {
            let (x, y) = s.points[0];
            pb.line_to(sx(x) + 0.1, sy(y));
        }
        if let Some(path) = pb.finish() {
            let stroke = Stroke {
                width: 2.5,
                line_join: tiny_skia::LineJoin::Round,
                line_cap: tiny_skia::LineCap::Round,
                ..Stroke::default()
            };
            pm.stroke_path(&path, &paint(s.color), &stroke, Transform::identity(), None);
        }
        if s.points.len() <= 40 {
            for &(x, y) in &s.points {
                if let Some(c) = PathBuilder::from_circle(sx(x), sy(y), 3.5) {
                    pm.fill_path(
                        &c,
                        &paint(s.color),
                        tiny_skia::FillRule::Winding,
                        Transform::identity(),
                        None,
                    );
                }
            }
        }
    }

    for (i, s) in series.iter().enumerate() {
        let y = H as f32 + i as f32 * LEGEND_LINE;
        line(
            &mut pm,
            (LEFT, y + 7.0),
            (LEFT + 28.0, y + 7.0),
            s.color,
            3.0,
        );
        draw_text(&mut pm, &s.label, LEFT + 38.0, y, TEXT_SCALE, ink);
    }
    save_pixmap(&pm, path)
}

fn save_pixmap(pm: &Pixmap, path: &Path) -> anyhow::Result<()> {
    // The background is opaque, so premultiplied RGBA equals straight RGBA.
    image::save_buffer(
        path,
        pm.data(),
        pm.width(),
        pm.height(),
        image::ExtendedColorType::Rgba8,
    )
    .with_context(|| format!("{}: cannot write PNG", path.display()))
}

/// Writes an example strip: rows truth / model / error heat map, one column per chosen step
/// (at most 16, spread over the horizon, always including the last), labelled on the left and
/// on top. Frames are RGB8 `w x h`, enlarged to at least 64 pixels high.
pub fn example_strip(
    path: &Path,
    truth: &[Vec<u8>],
    model: &[Vec<u8>],
    w: usize,
    h: usize,
) -> anyhow::Result<()> {
    let n = truth.len().min(model.len());
    let cols: Vec<usize> = if n <= 16 {
        (0..n).collect()
    } else {
        let mut c: Vec<usize> = (0..15).map(|i| i * (n - 1) / 15).collect();
        c.push(n - 1);
        c.dedup();
        c
    };
    let zoom = 64usize.div_ceil(h.max(1)).max(1);
    let (cw, ch) = (w * zoom, h * zoom);
    let (label_w, head_h, gap) = (100usize, 24usize, 4usize);
    let width = label_w + cols.len() * (cw + gap);
    let height = head_h + 3 * (ch + gap);
    let mut pm = Pixmap::new(width as u32, height as u32).context("cannot allocate the strip")?;
    pm.fill(tiny_skia::Color::WHITE);
    let ink = [30, 30, 30];
    for (r, name) in ["TRUTH", "MODEL", "ERROR"].iter().enumerate() {
        let y = head_h + r * (ch + gap) + ch / 2;
        draw_text(&mut pm, name, 8.0, y as f32 - 7.0, 2.0, ink);
    }
    let data = pm.data_mut();
    for (ci, &s) in cols.iter().enumerate() {
        let err = abs_error(&model[s], &truth[s]);
        let x0 = label_w + ci * (cw + gap);
        for (r, img) in [&truth[s], &model[s]].into_iter().enumerate() {
            blit(data, width, x0, head_h + r * (ch + gap), zoom, w, h, |p| {
                [img[3 * p], img[3 * p + 1], img[3 * p + 2]]
            });
        }
        blit(data, width, x0, head_h + 2 * (ch + gap), zoom, w, h, |p| {
            heat_color(err[p])
        });
    }
    for (ci, &s) in cols.iter().enumerate() {
        let label = format!("{}", s + 1);
        let x = (label_w + ci * (cw + gap) + cw / 2) as f32 - text_width(&label, 2.0) / 2.0;
        draw_text(&mut pm, &label, x, 4.0, 2.0, ink);
    }
    save_pixmap(&pm, path)
}

/// Copies a `w x h` image given per pixel by `px`, enlarged `zoom` times, to (x0, y0) of an RGBA
/// buffer `width` pixels wide.
#[allow(clippy::too_many_arguments, reason = "a private pixel helper")]
fn blit(
    data: &mut [u8],
    width: usize,
    x0: usize,
    y0: usize,
    zoom: usize,
    w: usize,
    h: usize,
    px: impl Fn(usize) -> [u8; 3],
) {
    for y in 0..h * zoom {
        for x in 0..w * zoom {
            let c = px((y / zoom) * w + x / zoom);
            let o = ((y0 + y) * width + x0 + x) * 4;
            data[o..o + 4].copy_from_slice(&[c[0], c[1], c[2], 255]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks() {
        assert_eq!(
            ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(ticks(13.0, 31.0), vec![15.0, 20.0, 25.0, 30.0]);
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(25.0, 5.0), "25");
    }

    #[test]
    fn plots_and_strips_are_pngs_of_the_expected_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.png");
        let s = Series {
            label: "model".into(),
            color: COLORS[0],
            points: vec![(1.0, 20.0), (2.0, 18.0), (3.0, 17.5)],
        };
        line_plot(&p, "horizon step", "PSNR (dB)", &[s]).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!((img.width(), img.height()), (W, H + 22 + 8));

        let frames = vec![vec![128u8; 8 * 8 * 3]; 3];
        let q = dir.path().join("s.png");
        example_strip(&q, &frames, &frames, 8, 8).unwrap();
        let img = image::open(&q).unwrap();
        assert_eq!(img.height() as usize, 24 + 3 * (64 + 4));
    }
}
