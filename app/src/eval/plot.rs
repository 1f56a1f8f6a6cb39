//! PNG line plots of metric curves and example strips for evaluation reports, drawn with
//! tiny-skia; text is set in the shipped DejaVu Sans by [`crate::text`] (mixed case, units).
//!
//! The figures need only axes with ticks and labels, one polyline per series and a legend, so
//! this module draws them on tiny-skia (already used for the scenes) rather than pulling in a
//! plotting library and its font stack.

use std::path::Path;

use anyhow::Context as _;
use tiny_skia::{Paint, PathBuilder, Pixmap, Stroke, Transform};

use crate::metrics::{abs_error, heat_color};
use crate::text::{draw_text, line_height, text_width};

/// Series colours (colour-blind safe: Okabe-Ito blue, orange, bluish green, grey, then
/// vermillion, sky blue, reddish purple, yellow).
pub const COLORS: [[u8; 3]; 8] = [
    [0, 114, 178],
    [230, 159, 0],
    [0, 158, 115],
    [110, 110, 110],
    [213, 94, 0],
    [86, 180, 233],
    [204, 121, 167],
    [240, 228, 66],
];

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
/// Text size: the height of a line in pixels (capitals are about 0.63 of it).
const TEXT_PX: f32 = 22.0;
const INK: [u8; 3] = [30, 30, 30];

fn paint(color: [u8; 3]) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(color[0], color[1], color[2], 255);
    p.anti_alias = true;
    p
}

/// Draws `text` centred vertically on `y`, starting at `x`.
fn label(pm: &mut Pixmap, text: &str, x: f32, y: f32) {
    draw_text(pm, text, x, y - line_height(TEXT_PX) / 2.0, TEXT_PX, INK);
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
    let (axis, grid) = ([40, 40, 40], [225, 225, 225]);

    let yt = ticks(y0, y1);
    let ystep = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    for &v in &yt {
        let y = sy(v);
        line(&mut pm, (LEFT, y), (LEFT + pw, y), grid, 1.0);
        line(&mut pm, (LEFT - 5.0, y), (LEFT, y), axis, 1.5);
        let text = tick_label(v, ystep);
        let tw = text_width(&text, TEXT_PX);
        label(&mut pm, &text, LEFT - 10.0 - tw, y);
    }
    let xt: Vec<f64> = ticks(x0, x1)
        .into_iter()
        .filter(|v| v.fract() == 0.0)
        .collect();
    for &v in &xt {
        let x = sx(v);
        line(&mut pm, (x, TOP + ph), (x, TOP + ph + 5.0), axis, 1.5);
        let text = tick_label(v, 1.0);
        let tw = text_width(&text, TEXT_PX);
        draw_text(&mut pm, &text, x - tw / 2.0, TOP + ph + 8.0, TEXT_PX, INK);
    }
    line(&mut pm, (LEFT, TOP), (LEFT, TOP + ph), axis, 1.5);
    line(&mut pm, (LEFT, TOP + ph), (LEFT + pw, TOP + ph), axis, 1.5);
    let tw = text_width(x_label, TEXT_PX);
    draw_text(
        &mut pm,
        x_label,
        LEFT + (pw - tw) / 2.0,
        H as f32 - 30.0,
        TEXT_PX,
        INK,
    );
    draw_text(&mut pm, y_label, 12.0, 12.0, TEXT_PX, INK);

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
        label(&mut pm, &s.label, LEFT + 38.0, y + 7.0);
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
    for (r, name) in ["Truth", "Model", "Error"].iter().enumerate() {
        let y = head_h + r * (ch + gap) + ch / 2;
        label(&mut pm, name, 8.0, y as f32);
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
        let text = format!("{}", s + 1);
        let x = (label_w + ci * (cw + gap) + cw / 2) as f32 - text_width(&text, TEXT_PX) / 2.0;
        label(&mut pm, &text, x, head_h as f32 / 2.0);
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
