//! Text in the images Dreamyard writes (evaluation plots and example strips): DejaVu Sans,
//! shipped under `assets/fonts/` with its licence and embedded in the binary, rasterised with
//! anti-aliasing by `ab_glyph` (outline fonts, kerning) onto tiny-skia pixmaps. Any text the
//! font covers draws as itself: mixed case, units (dB, %), Greek, arrows.

use std::sync::OnceLock;

use ab_glyph::{Font as _, FontRef, PxScale, ScaleFont as _};
use tiny_skia::{Pixmap, PremultipliedColorU8};

/// The shipped font file.
pub static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| match FontRef::try_from_slice(FONT_BYTES) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!("the embedded font cannot be read ({e}); images get no text");
            None
        }
    })
    .as_ref()
}

/// The glyphs of `text` at `px` pixels (the height of a line, ascent to descent, as ab_glyph
/// scales) with their pen positions, kerned.
fn layout(text: &str, px: f32) -> Vec<(ab_glyph::GlyphId, f32)> {
    let Some(font) = font() else {
        return Vec::new();
    };
    let scaled = font.as_scaled(PxScale::from(px));
    let mut out = Vec::with_capacity(text.len());
    let mut caret = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        out.push((id, caret));
        caret += scaled.h_advance(id);
        prev = Some(id);
    }
    out
}

/// Width in pixels of `text` set at `px` pixels.
pub fn text_width(text: &str, px: f32) -> f32 {
    let Some(font) = font() else {
        return 0.0;
    };
    let scaled = font.as_scaled(PxScale::from(px));
    layout(text, px)
        .last()
        .map_or(0.0, |&(id, x)| x + scaled.h_advance(id))
}

/// Height in pixels of a line of text at `px` pixels (ascent minus descent: `px` itself for
/// this font, kept as a function so callers do not rely on that).
pub fn line_height(px: f32) -> f32 {
    font().map_or(px, |f| {
        let s = f.as_scaled(PxScale::from(px));
        s.ascent() - s.descent()
    })
}

/// Draws `text` at `px` pixels in `color`, the top of its line box at (`x`, `y`). The pixmap is
/// opaque where text goes (plots and strips are drawn on white), so coverage blends the colour
/// over what is there.
pub fn draw_text(pm: &mut Pixmap, text: &str, x: f32, y: f32, px: f32, color: [u8; 3]) {
    let Some(font) = font() else {
        return;
    };
    let scale = PxScale::from(px);
    let baseline = y + font.as_scaled(scale).ascent();
    let (w, h) = (pm.width() as i64, pm.height() as i64);
    let pixels = pm.pixels_mut();
    for (id, dx) in layout(text, px) {
        let glyph = id.with_scale_and_position(scale, ab_glyph::point(x + dx, baseline));
        let Some(outline) = font.outline_glyph(glyph) else {
            continue; // a space
        };
        let b = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let (px_x, px_y) = (
                b.min.x as i64 + i64::from(gx),
                b.min.y as i64 + i64::from(gy),
            );
            if px_x < 0 || px_y < 0 || px_x >= w || px_y >= h || coverage <= 0.0 {
                return;
            }
            let i = (px_y * w + px_x) as usize;
            let dst = pixels[i];
            let a = coverage.min(1.0);
            let mix = |s: u8, d: u8| (f32::from(s) * a + f32::from(d) * (1.0 - a)).round() as u8;
            let alpha = mix(255, dst.alpha());
            if let Some(c) = PremultipliedColorU8::from_rgba(
                mix(color[0], dst.red()).min(alpha),
                mix(color[1], dst.green()).min(alpha),
                mix(color[2], dst.blue()).min(alpha),
                alpha,
            ) {
                pixels[i] = c;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink(pm: &Pixmap) -> Vec<bool> {
        pm.pixels().iter().map(|p| p.red() < 128).collect()
    }

    fn drawn(text: &str) -> Pixmap {
        let mut pm = Pixmap::new(80, 24).unwrap();
        pm.fill(tiny_skia::Color::WHITE);
        draw_text(&mut pm, text, 2.0, 2.0, 16.0, [0, 0, 0]);
        pm
    }

    #[test]
    fn mixed_case_and_units_draw_as_themselves() {
        // "dB" is not "DB": lower case has its own glyphs and widths.
        assert_ne!(ink(&drawn("dB")), ink(&drawn("DB")));
        assert!(text_width("dB", 16.0) < text_width("DB", 16.0));
        assert!(text_width("PSNR (dB)", 16.0) > text_width("PSNR", 16.0));
        // Glyphs the old 5x7 font lacked are real glyphs, not a placeholder.
        assert_ne!(ink(&drawn("→")), ink(&drawn("?")));
        assert!(ink(&drawn("σ")).iter().any(|&b| b));
        // Anti-aliased: edges have grey levels, and nothing is drawn for a space.
        let pm = drawn("Step");
        assert!(pm.pixels().iter().any(|p| (40..215).contains(&p.red())));
        assert!(!ink(&drawn(" ")).iter().any(|&b| b));
        // The size is the line's height (ascent to descent), as ab_glyph scales.
        assert!((line_height(16.0) - 16.0).abs() < 0.5);
    }

    #[test]
    fn text_past_the_edges_is_clipped() {
        let mut pm = Pixmap::new(10, 10).unwrap();
        pm.fill(tiny_skia::Color::WHITE);
        draw_text(&mut pm, "Wide text", -20.0, -5.0, 20.0, [0, 0, 0]);
        draw_text(&mut pm, "Wide text", 5.0, 5.0, 20.0, [0, 0, 0]);
        assert!(ink(&pm).iter().any(|&b| b));
    }
}
