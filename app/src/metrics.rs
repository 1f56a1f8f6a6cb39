//! Frame metrics shared by the app's metrics panel and `dreamyard eval`: PSNR, SSIM and
//! per-object mask IoU on RGB8 frames.
//!
//! - PSNR on the 8-bit scale over all channels: `10 log10(255² / mse)`; identical frames give
//!   infinity.
//! - SSIM as Wang et al. (2004) define it: an 11x11 Gaussian window with σ = 1.5, `K1 = 0.01`,
//!   `K2 = 0.03`, `L = 255`, population (not sample) statistics, the map over every position
//!   where the window fits ("valid"), averaged, then averaged over the three channels. Frames
//!   smaller than the window use a window cropped to the frame.
//! - Object masks from the scene's colours: each pixel takes the label of the nearest palette
//!   colour (background and every object colour) if it lies within a tolerance of it, so blurry
//!   or slightly off model pixels still classify and unrelated colours stay unlabelled.

use dreamyard_scenes::{Rgb, SceneSpec};

/// Side of the SSIM window.
pub const SSIM_WINDOW: usize = 11;
/// Standard deviation of the SSIM window.
pub const SSIM_SIGMA: f64 = 1.5;

/// PSNR of identical frames is infinite; a frame's PSNR is capped here (in `eval` before
/// averaging, in the app before plotting), the same cap as the trainer's validation.
pub use dreamyard_model::metrics::PSNR_CAP_DB;

/// The scores of one frame against the truth, as both the app's panels and `eval` compute them.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameScores {
    /// PSNR (dB), capped at [`PSNR_CAP_DB`].
    pub psnr: f64,
    /// Mean SSIM over the three channels.
    pub ssim: f64,
    /// Mask IoU per palette object (in palette order); `None` where the object is in neither
    /// frame. Empty without a palette.
    pub iou: Vec<(String, Option<f64>)>,
}

/// Scores `model` against `truth` (RGB8, `width x height`, same size): the one definition the
/// app and `eval` share, so a step's numbers in the app equal `eval`'s for the same frames.
pub fn score_frame(
    truth: &[u8],
    model: &[u8],
    width: usize,
    height: usize,
    palette: Option<&Palette>,
) -> FrameScores {
    FrameScores {
        psnr: psnr(model, truth).min(PSNR_CAP_DB),
        ssim: ssim(model, truth, width, height),
        iou: palette.map_or_else(Vec::new, |p| mask_iou(model, truth, p)),
    }
}

/// Peak signal-to-noise ratio (dB) of two RGB8 buffers of equal length.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return f64::NAN;
    }
    let se: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = i64::from(x) - i64::from(y);
            (d * d) as u64
        })
        .sum();
    if se == 0 {
        return f64::INFINITY;
    }
    let mse = se as f64 / n as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Normalised 1-D Gaussian of `len` taps.
fn gaussian(len: usize, sigma: f64) -> Vec<f64> {
    let c = (len as f64 - 1.0) / 2.0;
    let w: Vec<f64> = (0..len)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|x| x / s).collect()
}

/// Separable "valid" filtering of a `w x h` plane with `k` (rows then columns).
fn filter_valid(plane: &[f64], w: usize, h: usize, kx: &[f64], ky: &[f64]) -> Vec<f64> {
    let (ow, oh) = (w + 1 - kx.len(), h + 1 - ky.len());
    let mut tmp = vec![0.0; ow * h];
    for y in 0..h {
        let row = &plane[y * w..(y + 1) * w];
        for x in 0..ow {
            tmp[y * ow + x] = kx.iter().zip(&row[x..]).map(|(k, v)| k * v).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = ky
                .iter()
                .enumerate()
                .map(|(i, k)| k * tmp[(y + i) * ow + x])
                .sum();
        }
    }
    out
}

/// Mean SSIM of two RGB8 frames of `width x height`.
pub fn ssim(a: &[u8], b: &[u8], width: usize, height: usize) -> f64 {
    let c1 = (0.01f64 * 255.0).powi(2);
    let c2 = (0.03f64 * 255.0).powi(2);
    let kx = gaussian(SSIM_WINDOW.min(width), SSIM_SIGMA);
    let ky = gaussian(SSIM_WINDOW.min(height), SSIM_SIGMA);
    let n = width * height;
    if n == 0 || a.len() < 3 * n || b.len() < 3 * n {
        return f64::NAN;
    }
    let mut total = 0.0;
    for ch in 0..3 {
        let pa: Vec<f64> = (0..n).map(|i| f64::from(a[3 * i + ch])).collect();
        let pb: Vec<f64> = (0..n).map(|i| f64::from(b[3 * i + ch])).collect();
        let prod = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).collect::<Vec<_>>();
        let mu_a = filter_valid(&pa, width, height, &kx, &ky);
        let mu_b = filter_valid(&pb, width, height, &kx, &ky);
        let e_aa = filter_valid(&prod(&pa, &pa), width, height, &kx, &ky);
        let e_bb = filter_valid(&prod(&pb, &pb), width, height, &kx, &ky);
        let e_ab = filter_valid(&prod(&pa, &pb), width, height, &kx, &ky);
        let mut sum = 0.0;
        for i in 0..mu_a.len() {
            let (ma, mb) = (mu_a[i], mu_b[i]);
            let va = e_aa[i] - ma * ma;
            let vb = e_bb[i] - mb * mb;
            let cov = e_ab[i] - ma * mb;
            sum += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
        }
        total += sum / mu_a.len() as f64;
    }
    total / 3.0
}

/// Colours of a scene's objects and background, for labelling pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    /// Object names, in label order (label `i` is `names[i]`).
    pub names: Vec<String>,
    /// `(colour, label)`; label `None` is the background.
    colors: Vec<(Rgb, Option<usize>)>,
    /// Largest squared RGB distance at which a pixel still takes a colour's label.
    max_dist2: u32,
}

impl Palette {
    /// The palette of `spec`: every object's colours and the background. A pixel further than
    /// `tolerance` (RGB Euclidean distance) from every colour is unlabelled.
    pub fn from_spec(spec: &SceneSpec, tolerance: u8) -> Self {
        let mut colors = vec![(spec.background, None)];
        let mut names = Vec::with_capacity(spec.objects.len());
        for (i, obj) in spec.objects.iter().enumerate() {
            names.push(obj.name.clone());
            colors.extend(obj.colors.iter().map(|&c| (c, Some(i))));
        }
        Self {
            names,
            colors,
            max_dist2: u32::from(tolerance).pow(2),
        }
    }

    /// Whether the scene defines any object colour.
    pub fn has_objects(&self) -> bool {
        !self.names.is_empty()
    }

    /// Label of one pixel: the nearest colour's object within the tolerance.
    pub fn label(&self, px: [u8; 3]) -> Option<usize> {
        let mut best: Option<(u32, Option<usize>)> = None;
        for &(c, label) in &self.colors {
            let d2: u32 = px
                .iter()
                .zip(c)
                .map(|(&p, q)| (i32::from(p) - i32::from(q)).unsigned_abs().pow(2))
                .sum();
            if best.is_none_or(|(bd, _)| d2 < bd) {
                best = Some((d2, label));
            }
        }
        best.and_then(|(d2, label)| if d2 <= self.max_dist2 { label } else { None })
    }

    /// Per-pixel labels of an RGB8 frame.
    pub fn labels(&self, frame: &[u8]) -> Vec<Option<usize>> {
        frame
            .chunks_exact(3)
            .map(|p| self.label([p[0], p[1], p[2]]))
            .collect()
    }
}

/// Default colour tolerance for mask IoU: generous enough for a model's soft edges, tight
/// enough that push-t's and arm-push's colours stay apart.
pub const DEFAULT_TOLERANCE: u8 = 60;

/// IoU of each object's mask between frames `a` and `b` (RGB8, same size): `None` for an object
/// that is in neither frame (IoU undefined).
pub fn mask_iou(a: &[u8], b: &[u8], palette: &Palette) -> Vec<(String, Option<f64>)> {
    let la = palette.labels(a);
    let lb = palette.labels(b);
    palette
        .names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let (mut inter, mut union) = (0u64, 0u64);
            for (x, y) in la.iter().zip(&lb) {
                let (ia, ib) = (*x == Some(k), *y == Some(k));
                inter += u64::from(ia && ib);
                union += u64::from(ia || ib);
            }
            let iou = (union > 0).then(|| inter as f64 / union as f64);
            (name.clone(), iou)
        })
        .collect()
}

/// Per-pixel absolute error of two RGB8 frames, averaged over channels (0..=255), for error
/// heat maps and exports.
pub fn abs_error(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.chunks_exact(3)
        .zip(b.chunks_exact(3))
        .map(|(p, q)| {
            let s: u16 = p
                .iter()
                .zip(q)
                .map(|(&x, &y)| u16::from(x.abs_diff(y)))
                .sum();
            (s / 3) as u8
        })
        .collect()
}

/// The "inferno"-like colour of an error value in 0..=255 (black, purple, orange, yellow), the
/// same ramp the error shader uses.
pub fn heat_color(v: u8) -> [u8; 3] {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (0.0, [0.0, 0.0, 4.0]),
        (0.25, [87.0, 16.0, 110.0]),
        (0.5, [188.0, 55.0, 84.0]),
        (0.75, [249.0, 142.0, 9.0]),
        (1.0, [252.0, 255.0, 164.0]),
    ];
    let t = f32::from(v) / 255.0;
    for w in STOPS.windows(2) {
        let ((t0, c0), (t1, c1)) = (w[0], w[1]);
        if t <= t1 {
            let f = (t - t0) / (t1 - t0);
            return [0, 1, 2].map(|i| (c0[i] + f * (c1[i] - c0[i])).round() as u8);
        }
    }
    [252, 255, 164]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise_image(w: usize, h: usize, seed: u32) -> Vec<u8> {
        // A small LCG: deterministic texture without a dependency.
        let mut s = seed;
        (0..w * h * 3)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn psnr_known_values() {
        let a = noise_image(8, 8, 1);
        assert!(psnr(&a, &a).is_infinite());
        // Every value off by exactly 4: mse 16, PSNR = 10 log10(65025 / 16).
        let a = vec![100u8; 192];
        let b = vec![104u8; 192];
        assert!((psnr(&a, &b) - 10.0 * (65025.0f64 / 16.0).log10()).abs() < 1e-9);
    }

    #[test]
    fn ssim_identical_is_one_and_constant_images_follow_the_formula() {
        let a = noise_image(20, 16, 7);
        assert!((ssim(&a, &a, 20, 16) - 1.0).abs() < 1e-12);
        // Constant images: variances and covariance vanish, SSIM = (2 μa μb + C1)/(μa² + μb² + C1).
        let (ma, mb) = (50.0f64, 80.0f64);
        let c1 = (0.01f64 * 255.0).powi(2);
        let want = (2.0 * ma * mb + c1) / (ma * ma + mb * mb + c1);
        let a = vec![50u8; 16 * 16 * 3];
        let b = vec![80u8; 16 * 16 * 3];
        assert!((ssim(&a, &b, 16, 16) - want).abs() < 1e-9);
    }

    #[test]
    fn ssim_matches_a_direct_single_window_evaluation() {
        // An 11x11 frame has exactly one window position: evaluate Wang's formula directly with
        // the 2-D Gaussian weights.
        let (a, b) = (noise_image(11, 11, 3), noise_image(11, 11, 4));
        let g = gaussian(11, 1.5);
        let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
        let mut want = 0.0;
        for ch in 0..3 {
            let (mut ma, mut mb, mut aa, mut bb, mut ab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in 0..11 {
                for x in 0..11 {
                    let wgt = g[x] * g[y];
                    let pa = f64::from(a[(y * 11 + x) * 3 + ch]);
                    let pb = f64::from(b[(y * 11 + x) * 3 + ch]);
                    ma += wgt * pa;
                    mb += wgt * pb;
                    aa += wgt * pa * pa;
                    bb += wgt * pb * pb;
                    ab += wgt * pa * pb;
                }
            }
            let (va, vb, cov) = (aa - ma * ma, bb - mb * mb, ab - ma * mb);
            want += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
        }
        want /= 3.0;
        assert!((ssim(&a, &b, 11, 11) - want).abs() < 1e-9);
        assert!(
            want < 0.5,
            "independent noise should be dissimilar, got {want}"
        );
    }

    #[test]
    fn psnr_of_a_known_noise_level() {
        // Every value moved by exactly ±10 (random signs, no clipping): mse = 100, so
        // PSNR = 20 log10(255 / 10) = 28.1308... dB.
        let a: Vec<u8> = noise_image(16, 16, 5)
            .into_iter()
            .map(|v| v.clamp(20, 235))
            .collect();
        let signs = noise_image(16, 16, 6);
        let b: Vec<u8> = a
            .iter()
            .zip(&signs)
            .map(|(&v, &r)| if r & 1 == 1 { v + 10 } else { v - 10 })
            .collect();
        let got = psnr(&a, &b);
        assert!((got - 20.0 * 25.5f64.log10()).abs() < 1e-9, "{got}");
        assert!((got - 28.130_803_608_679_1).abs() < 1e-9, "{got}");
    }

    #[test]
    fn ssim_matches_wang_formula_at_every_window_position() {
        // A 14x12 frame has 4x2 valid window positions: evaluate Wang et al.'s formula at each
        // with the 2-D Gaussian weights directly (no separable filtering) and average.
        let (w, h) = (14usize, 12usize);
        let a = noise_image(w, h, 11);
        // b: a noisy, brightened copy of a, so the two are correlated but not equal.
        let b: Vec<u8> = a
            .iter()
            .zip(noise_image(w, h, 12))
            .map(|(&x, n)| (u16::from(x) * 3 / 4 + u16::from(n) / 8 + 20) as u8)
            .collect();
        let g = gaussian(11, 1.5);
        let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
        let mut want = 0.0;
        for ch in 0..3 {
            let mut sum = 0.0;
            for oy in 0..=h - 11 {
                for ox in 0..=w - 11 {
                    let (mut ma, mut mb, mut aa, mut bb, mut ab) = (0.0, 0.0, 0.0, 0.0, 0.0);
                    for y in 0..11 {
                        for x in 0..11 {
                            let wgt = g[x] * g[y];
                            let i = ((oy + y) * w + ox + x) * 3 + ch;
                            let (pa, pb) = (f64::from(a[i]), f64::from(b[i]));
                            ma += wgt * pa;
                            mb += wgt * pb;
                            aa += wgt * pa * pa;
                            bb += wgt * pb * pb;
                            ab += wgt * pa * pb;
                        }
                    }
                    let (va, vb, cov) = (aa - ma * ma, bb - mb * mb, ab - ma * mb);
                    sum += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                        / ((ma * ma + mb * mb + c1) * (va + vb + c2));
                }
            }
            want += sum / ((w - 10) * (h - 10)) as f64;
        }
        want /= 3.0;
        let got = ssim(&a, &b, w, h);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        assert!(want > 0.5 && want < 1.0, "correlated images: {want}");
    }

    #[test]
    fn mask_iou_from_scene_colours() {
        let spec = dreamyard_scenes::load_scene(
            &dreamyard_scenes::SceneSource::parse("push-t"),
            Some((96, 96)),
        )
        .unwrap()
        .spec()
        .clone();
        let palette = Palette::from_spec(&spec, DEFAULT_TOLERANCE);
        let block = spec.object("block").unwrap().colors[0];
        let bg = spec.background;
        // Frame a: block in pixels 0..4, frame b: block in pixels 2..6 of an 8-pixel row.
        let row = |range: std::ops::Range<usize>| -> Vec<u8> {
            (0..8)
                .flat_map(|i| if range.contains(&i) { block } else { bg })
                .collect()
        };
        let ious = mask_iou(&row(0..4), &row(2..6), &palette);
        let got: Vec<_> = ious.iter().filter(|(n, _)| n == "block").collect();
        assert_eq!(got[0].1, Some(2.0 / 6.0));
        // The agent is in neither frame: undefined.
        assert!(ious.iter().any(|(n, v)| n == "agent" && v.is_none()));
        // A slightly off block colour still counts; a far colour does not.
        let near = [block[0].saturating_add(10), block[1], block[2]];
        assert_eq!(palette.label(near), palette.label(block));
        assert_eq!(palette.label([255, 0, 255]), None);
    }

    #[test]
    fn heat_ramp_is_monotone_in_brightness() {
        let lum = |c: [u8; 3]| u32::from(c[0]) + u32::from(c[1]) + u32::from(c[2]);
        let mut prev = 0;
        for v in (0..=255).step_by(15) {
            let l = lum(heat_color(v as u8));
            assert!(l >= prev);
            prev = l;
        }
        assert_eq!(abs_error(&[10, 20, 30], &[13, 20, 24]), vec![3]);
    }
}
