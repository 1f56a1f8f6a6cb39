//! Does a frame keep the scene's physics? Object poses from colour masks and what they say
//! about a model's frame against the true one, shared by `dreamyard eval` and the app:
//!
//! - **pose**: each object's mask (the scene's colours, as mask IoU labels pixels) gives its
//!   area, its centroid (pixel centres) and, for objects the scene marks as oriented, its
//!   heading: the major axis of the mask's second moments, pointed by the sign of the third
//!   moment along it (so a T's heading is known over the full turn, not modulo 180°);
//! - **permanence**: an object present in the true frame is *lost* where the model's mask has
//!   less than half its true area, and a *phantom* where the model draws it and the truth has
//!   none (present = at least [`presence_min_px`] pixels);
//! - **shape**: for rigid objects, model area over true area, and the IoU of the two masks once
//!   the model's is moved onto the true centroid and heading (shape error apart from pose);
//! - **impossible motion**: a centroid moving farther between consecutive frames than the
//!   scene's dynamics allow ([`dreamyard_scenes::ObjectSpec::max_step_px`], scaled to the frame)
//!   plus [`TELEPORT_SLACK_PX`] of mask measurement error;
//! - **action response**: how far two futures from one context drift apart, in pixels (mean
//!   absolute difference, 8-bit) and in object positions;
//! - **K samples**: their per-pixel spread and whether the truth lies within it.

use dreamyard_scenes::SceneSpec;

use crate::metrics::Palette;

/// A mask counts as present from this many pixels: a thousandth of the frame, at least 4, so a
/// few stray pixels of a blurry frame that happen to match a colour are not an object.
pub fn presence_min_px(width: usize, height: usize) -> f64 {
    ((width * height) as f64 / 1000.0).max(4.0)
}

/// Measurement slack of a mask's centroid (pixels) added to a scene's motion bound before a
/// move counts as a teleport: anti-aliased edges and partial occlusion move a centroid by a
/// fraction of a pixel without the object moving.
pub const TELEPORT_SLACK_PX: f64 = 1.0;

/// A model object counts as lost below this fraction of its true area.
pub const LOST_AREA_FRACTION: f64 = 0.5;

/// Masks below this anisotropy (`(λ1 - λ2) / (λ1 + λ2)` of the second moments) have no
/// readable heading: a disc's is noise.
const MIN_ANISOTROPY: f64 = 0.05;

/// What the scene promises about each palette object, at one frame size.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRules {
    /// Object names, in palette order.
    pub names: Vec<String>,
    /// Rigid bodies: shape conservation applies.
    pub rigid: Vec<bool>,
    /// Shapes with a heading.
    pub oriented: Vec<bool>,
    /// Largest centroid move per step (pixels of this frame size), where the scene states one.
    pub max_step_px: Vec<Option<f64>>,
}

impl ObjectRules {
    /// The rules of `spec`'s objects for frames `width` pixels wide (the spec's bounds are in
    /// pixels of its own frame).
    pub fn from_spec(spec: &SceneSpec, width: usize) -> Self {
        let scale = width as f64 / f64::from(spec.frame_width.max(1));
        Self {
            names: spec.objects.iter().map(|o| o.name.clone()).collect(),
            rigid: spec.objects.iter().map(|o| o.rigid).collect(),
            oriented: spec.objects.iter().map(|o| o.oriented).collect(),
            max_step_px: spec
                .objects
                .iter()
                .map(|o| o.max_step_px.map(|b| b * scale))
                .collect(),
        }
    }

    /// Whether the scene states any physics of its objects (specs stored before these fields
    /// existed state none).
    pub fn states_any(&self) -> bool {
        self.rigid.iter().chain(&self.oriented).any(|&b| b)
            || self.max_step_px.iter().any(Option::is_some)
    }
}

/// Where an object is in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectPose {
    /// Mask area (pixels).
    pub area: f64,
    /// Centroid `[x, y]` in pixels (pixel centres at `i + 0.5`).
    pub centroid: [f64; 2],
    /// Heading (radians, image axes: x right, y down) where the object is oriented and its
    /// mask anisotropic enough to read one.
    pub angle: Option<f64>,
}

/// One frame's pixels labelled with the palette's objects.
#[derive(Debug, Clone)]
pub struct Masks {
    labels: Vec<Option<usize>>,
    width: usize,
    height: usize,
}

impl Masks {
    /// Labels an RGB8 frame of `width x height`.
    pub fn of(frame: &[u8], width: usize, height: usize, palette: &Palette) -> Self {
        Self {
            labels: palette.labels(frame),
            width,
            height,
        }
    }

    /// Object `k`'s mask: its pixels, less the specks apart from its body. Anti-aliased edges
    /// of one colour can fall nearest another object's colour (a blue disc's rim on white reads
    /// as the grey block), and a few such pixels far from the body would move its centroid and
    /// turn its moments; so only the 8-connected components of at least a quarter of the
    /// largest one's size are kept (an object cut in two by another in front keeps both parts).
    pub fn object(&self, k: usize) -> ObjectMask {
        let (w, h) = (self.width, self.height);
        let mut comp = vec![usize::MAX; w * h];
        let mut sizes = Vec::new();
        let mut stack = Vec::new();
        for start in 0..w * h {
            if self.labels[start] != Some(k) || comp[start] != usize::MAX {
                continue;
            }
            let id = sizes.len();
            let mut size = 0usize;
            comp[start] = id;
            stack.push(start);
            while let Some(i) = stack.pop() {
                size += 1;
                let (x, y) = ((i % w) as isize, (i / w) as isize);
                for dy in -1..=1isize {
                    for dx in -1..=1isize {
                        let (nx, ny) = (x + dx, y + dy);
                        if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                            continue;
                        }
                        let j = ny as usize * w + nx as usize;
                        if self.labels[j] == Some(k) && comp[j] == usize::MAX {
                            comp[j] = id;
                            stack.push(j);
                        }
                    }
                }
            }
            sizes.push(size);
        }
        let largest = sizes.iter().copied().max().unwrap_or(0);
        let keep: Vec<bool> = sizes.iter().map(|&s| s * 4 >= largest).collect();
        ObjectMask {
            bits: comp
                .into_iter()
                .map(|c| c != usize::MAX && keep[c])
                .collect(),
            width: w,
            height: h,
        }
    }
}

/// One object's pixels in one frame (see [`Masks::object`]).
#[derive(Debug, Clone)]
pub struct ObjectMask {
    bits: Vec<bool>,
    width: usize,
    height: usize,
}

impl ObjectMask {
    fn has(&self, x: usize, y: usize) -> bool {
        self.bits[y * self.width + x]
    }

    /// Pixels of the object.
    pub fn area(&self) -> usize {
        self.bits.iter().filter(|b| **b).count()
    }

    /// The object's pose, or `None` where it has no pixel. `oriented` asks for its heading.
    pub fn pose(&self, oriented: bool) -> Option<ObjectPose> {
        let points: Vec<(f64, f64)> = (0..self.height)
            .flat_map(|y| (0..self.width).map(move |x| (x, y)))
            .filter(|&(x, y)| self.has(x, y))
            .map(|(x, y)| (x as f64 + 0.5, y as f64 + 0.5))
            .collect();
        if points.is_empty() {
            return None;
        }
        let n = points.len() as f64;
        let cx = points.iter().map(|p| p.0).sum::<f64>() / n;
        let cy = points.iter().map(|p| p.1).sum::<f64>() / n;
        let angle = oriented.then(|| heading(&points, cx, cy)).flatten();
        Some(ObjectPose {
            area: n,
            centroid: [cx, cy],
            angle,
        })
    }

    /// IoU of this mask (the truth, at pose `tp`) and `model`'s (at `mp`) after moving the
    /// model's onto the true centroid and heading: each pixel looks up the model pixel it maps
    /// from (nearest neighbour).
    pub fn aligned_iou(&self, tp: &ObjectPose, model: &Self, mp: &ObjectPose) -> f64 {
        let turn = match (tp.angle, mp.angle) {
            (Some(t), Some(m)) => m - t,
            _ => 0.0,
        };
        let (c, s) = (turn.cos(), turn.sin());
        let (mut inter, mut union) = (0u64, 0u64);
        for y in 0..self.height {
            for x in 0..self.width {
                let (dx, dy) = (
                    x as f64 + 0.5 - tp.centroid[0],
                    y as f64 + 0.5 - tp.centroid[1],
                );
                let px = c * dx - s * dy + mp.centroid[0];
                let py = s * dx + c * dy + mp.centroid[1];
                let in_model = px >= 0.0
                    && py >= 0.0
                    && (px as usize) < model.width
                    && (py as usize) < model.height
                    && model.has(px as usize, py as usize);
                let in_truth = self.has(x, y);
                inter += u64::from(in_truth && in_model);
                union += u64::from(in_truth || in_model);
            }
        }
        if union == 0 {
            1.0
        } else {
            inter as f64 / union as f64
        }
    }
}

/// The heading of a point set about its centroid: the major axis of its second moments,
/// pointed by the sign of the third moment along it; `None` for a nearly isotropic set.
fn heading(points: &[(f64, f64)], cx: f64, cy: f64) -> Option<f64> {
    let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
    for &(x, y) in points {
        let (dx, dy) = (x - cx, y - cy);
        xx += dx * dx;
        yy += dy * dy;
        xy += dx * dy;
    }
    let spread = ((xx - yy).powi(2) + 4.0 * xy * xy).sqrt();
    if spread < MIN_ANISOTROPY * (xx + yy) || xx + yy == 0.0 {
        return None;
    }
    let theta = 0.5 * (2.0 * xy).atan2(xx - yy);
    let (c, s) = (theta.cos(), theta.sin());
    let skew: f64 = points
        .iter()
        .map(|&(x, y)| ((x - cx) * c + (y - cy) * s).powi(3))
        .sum();
    Some(if skew < 0.0 {
        theta + std::f64::consts::PI
    } else {
        theta
    })
}

/// One object in a model frame against the true frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectCheck {
    /// Mask areas (pixels) in the true and the model frame.
    pub true_area: f64,
    pub model_area: f64,
    /// Present in the truth and below half its true area in the model.
    pub lost: bool,
    /// Absent from the truth and present in the model.
    pub phantom: bool,
    /// Distance between the centroids (pixels), where both frames show the object.
    pub centroid_px: Option<f64>,
    /// Heading error (degrees, 0..=180) for oriented objects whose heading both frames show.
    pub angle_deg: Option<f64>,
    /// Model area over true area (rigid objects present in the truth).
    pub area_ratio: Option<f64>,
    /// IoU after aligning centroid and heading (rigid objects both frames show).
    pub shape_iou: Option<f64>,
    /// The model's pose, where it shows the object (for motion checks between frames).
    pub model_pose: Option<ObjectPose>,
}

impl ObjectCheck {
    /// Whether the truth shows the object.
    pub fn present_in_truth(&self, min_px: f64) -> bool {
        self.true_area >= min_px
    }
}

/// Every palette object of `model` against `truth` (both labelled, same size).
pub fn check_objects(truth: &Masks, model: &Masks, rules: &ObjectRules) -> Vec<ObjectCheck> {
    let min_px = presence_min_px(truth.width, truth.height);
    (0..rules.names.len())
        .map(|k| {
            let oriented = rules.oriented.get(k).copied().unwrap_or(false);
            let rigid = rules.rigid.get(k).copied().unwrap_or(false);
            let (tm, mm) = (truth.object(k), model.object(k));
            let tp = tm.pose(oriented).filter(|p| p.area >= min_px);
            let mp = mm.pose(oriented).filter(|p| p.area >= min_px);
            let true_area = tm.area() as f64;
            let model_area = mm.area() as f64;
            let both = tp.zip(mp);
            ObjectCheck {
                true_area,
                model_area,
                lost: tp.is_some() && model_area < LOST_AREA_FRACTION * true_area,
                phantom: tp.is_none() && mp.is_some(),
                centroid_px: both.map(|(t, m)| distance(t.centroid, m.centroid)),
                angle_deg: both.and_then(|(t, m)| Some(angle_between(t.angle?, m.angle?))),
                area_ratio: (rigid && tp.is_some()).then(|| model_area / true_area),
                shape_iou: both
                    .filter(|_| rigid)
                    .map(|(t, m)| tm.aligned_iou(&t, &mm, &m)),
                model_pose: mp,
            }
        })
        .collect()
}

/// Euclidean distance of two points.
pub fn distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// The absolute difference of two headings, in degrees within 0..=180.
pub fn angle_between(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(std::f64::consts::TAU);
    d.min(std::f64::consts::TAU - d).to_degrees()
}

/// Whether moving from `before` to `after` (centroids, pixels) outruns `bound` (pixels per
/// step, see [`ObjectRules::max_step_px`]) by more than the measurement slack.
pub fn is_teleport(before: [f64; 2], after: [f64; 2], bound: f64) -> bool {
    distance(before, after) > bound + TELEPORT_SLACK_PX
}

/// Mean absolute difference of two RGB8 frames on the 8-bit scale: how far apart two futures
/// are in pixels.
pub fn pixel_divergence(a: &[u8], b: &[u8]) -> f64 {
    let n = a.len().min(b.len());
    if n == 0 {
        return 0.0;
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum::<u64>() as f64
        / n as f64
}

/// Mean centroid distance (pixels) between two futures over the objects that can move (a
/// stated motion bound) and that both frames show; `None` where there is none.
pub fn pose_divergence(a: &Masks, b: &Masks, rules: &ObjectRules) -> Option<f64> {
    let min_px = presence_min_px(a.width, a.height);
    let d: Vec<f64> = (0..rules.names.len())
        .filter(|&k| rules.max_step_px.get(k).copied().flatten().is_some())
        .filter_map(|k| {
            let pa = a.object(k).pose(false).filter(|p| p.area >= min_px)?;
            let pb = b.object(k).pose(false).filter(|p| p.area >= min_px)?;
            Some(distance(pa.centroid, pb.centroid))
        })
        .collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

/// The spread of K sampled frames and whether the truth lies within it: the mean over pixel
/// values of the samples' standard deviation (8-bit scale), and the fraction of values where
/// the truth lies within the samples' range `[min, max]`. For K exchangeable samples and a
/// truth drawn like them, that fraction is `(K - 1) / (K + 1)` ([`ideal_coverage`]): more is
/// over-dispersed, less is over-confident.
pub fn sample_spread(samples: &[&[u8]], truth: &[u8]) -> (f64, f64) {
    let k = samples.len() as f64;
    let n = samples
        .iter()
        .map(|s| s.len())
        .min()
        .unwrap_or(0)
        .min(truth.len());
    if n == 0 || samples.is_empty() {
        return (0.0, 0.0);
    }
    let (mut spread, mut covered) = (0.0, 0u64);
    for i in 0..n {
        let (mut sum, mut sum2, mut lo, mut hi) = (0.0, 0.0, u8::MAX, u8::MIN);
        for s in samples {
            let v = s[i];
            sum += f64::from(v);
            sum2 += f64::from(v) * f64::from(v);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let mean = sum / k;
        spread += (sum2 / k - mean * mean).max(0.0).sqrt();
        covered += u64::from((lo..=hi).contains(&truth[i]));
    }
    (spread / n as f64, covered as f64 / n as f64)
}

/// The fraction of pixel values, among those where the truth changed since `before` (what
/// moved), where the truth lies within the samples' range; `None` where nothing changed.
/// Unchanged background is trivially covered by samples that all draw it, so this isolates
/// the dynamic part of [`sample_spread`]'s coverage.
pub fn moving_coverage(samples: &[&[u8]], truth: &[u8], before: &[u8]) -> Option<f64> {
    let n = samples
        .iter()
        .map(|s| s.len())
        .min()
        .unwrap_or(0)
        .min(truth.len())
        .min(before.len());
    let (mut moved, mut covered) = (0u64, 0u64);
    for i in (0..n).filter(|&i| truth[i] != before[i]) {
        let lo = samples.iter().map(|s| s[i]).min().unwrap_or(0);
        let hi = samples.iter().map(|s| s[i]).max().unwrap_or(0);
        moved += 1;
        covered += u64::from((lo..=hi).contains(&truth[i]));
    }
    (moved > 0).then(|| covered as f64 / moved as f64)
}

/// The coverage [`sample_spread`] expects of K calibrated samples: `(K - 1) / (K + 1)`.
pub fn ideal_coverage(k: usize) -> f64 {
    (k as f64 - 1.0) / (k as f64 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::DEFAULT_TOLERANCE;
    use dreamyard_scenes::{Scene, SceneSource, load_scene};

    const SIZE: u32 = 64;

    fn push_t() -> (Box<dyn Scene>, Palette, ObjectRules) {
        let scene = load_scene(&SceneSource::parse("push-t"), Some((SIZE, SIZE))).unwrap();
        let palette = Palette::from_spec(scene.spec(), DEFAULT_TOLERANCE);
        let rules = ObjectRules::from_spec(scene.spec(), SIZE as usize);
        (scene, palette, rules)
    }

    fn index(rules: &ObjectRules, name: &str) -> usize {
        rules.names.iter().position(|n| n == name).unwrap()
    }

    fn masks(scene: &mut Box<dyn Scene>, state: &[f64], palette: &Palette) -> Masks {
        let f = scene.reset_to(state).unwrap().frame;
        Masks::of(&f.data, SIZE as usize, SIZE as usize, palette)
    }

    #[test]
    fn the_truth_against_itself_has_no_error_loss_or_phantom() {
        let (mut scene, palette, rules) = push_t();
        let truth = masks(&mut scene, &[60.0, 60.0, 300.0, 280.0, 0.4], &palette);
        for c in check_objects(&truth, &truth, &rules) {
            assert!(!c.lost && !c.phantom);
            assert_eq!(c.centroid_px.unwrap_or(0.0), 0.0);
            assert_eq!(c.angle_deg.unwrap_or(0.0), 0.0);
            if let Some(r) = c.area_ratio {
                assert_eq!(r, 1.0);
            }
            if let Some(iou) = c.shape_iou {
                assert_eq!(iou, 1.0);
            }
        }
        let block = index(&rules, "block");
        let c = &check_objects(&truth, &truth, &rules)[block];
        assert!(c.angle_deg == Some(0.0) && c.shape_iou == Some(1.0));
    }

    #[test]
    fn a_known_shift_and_turn_of_the_block_give_their_centroid_and_angle_error() {
        let (mut scene, palette, rules) = push_t();
        let block = index(&rules, "block");
        let unit = 512.0 / f64::from(SIZE);
        let (bx, by, a) = (300.0, 260.0, 0.3);
        let agent = [60.0, 450.0];
        let truth = masks(&mut scene, &[agent[0], agent[1], bx, by, a], &palette);
        // Shifted by (3, -4) frame pixels, not turned: a 5-pixel centroid error, no angle error.
        let shifted = masks(
            &mut scene,
            &[agent[0], agent[1], bx + 3.0 * unit, by - 4.0 * unit, a],
            &palette,
        );
        let c = &check_objects(&truth, &shifted, &rules)[block];
        assert!((c.centroid_px.unwrap() - 5.0).abs() < 0.1, "{c:?}");
        // At 64 px the T is ~110 pixels: its heading reads to about a degree.
        assert!(c.angle_deg.unwrap() < 1.5, "{c:?}");
        assert!(c.shape_iou.unwrap() > 0.9 && !c.lost, "{c:?}");
        // Turned by 30° about the block's origin: the heading error is 30°, whatever the
        // centroid does, and aligning pose recovers the shape. Headings read to a degree or
        // so at 128 px (at 64 px, where the T is ~110 pixels, to about 5°).
        let big = 128u32;
        let mut scene = load_scene(&SceneSource::parse("push-t"), Some((big, big))).unwrap();
        let rules = ObjectRules::from_spec(scene.spec(), big as usize);
        let at = |scene: &mut Box<dyn Scene>, angle: f64| {
            let f = scene
                .reset_to(&[agent[0], agent[1], bx, by, angle])
                .unwrap()
                .frame;
            Masks::of(&f.data, big as usize, big as usize, &palette)
        };
        let truth = at(&mut scene, a);
        let turned = at(&mut scene, a + 30f64.to_radians());
        let c = &check_objects(&truth, &turned, &rules)[block];
        assert!((c.angle_deg.unwrap() - 30.0).abs() < 1.5, "{c:?}");
        assert!(c.shape_iou.unwrap() > 0.85, "{c:?}");
        // Turned half a circle: a moment's axis alone would call this 0°.
        let flipped = at(&mut scene, a + std::f64::consts::PI);
        let c = &check_objects(&truth, &flipped, &rules)[block];
        assert!((c.angle_deg.unwrap() - 180.0).abs() < 1.5, "{c:?}");
    }

    #[test]
    fn a_block_painted_out_is_lost_and_one_painted_in_is_a_phantom() {
        let (mut scene, palette, rules) = push_t();
        let block = index(&rules, "block");
        let state = [60.0, 450.0, 300.0, 260.0, 0.3];
        let frame = scene.reset_to(&state).unwrap().frame.data;
        let bg = scene.spec().background;
        let mut painted = frame.clone();
        for px in painted.chunks_exact_mut(3) {
            if palette.label([px[0], px[1], px[2]]) == Some(block) {
                px.copy_from_slice(&bg);
            }
        }
        let (w, h) = (SIZE as usize, SIZE as usize);
        let truth = Masks::of(&frame, w, h, &palette);
        let model = Masks::of(&painted, w, h, &palette);
        let c = &check_objects(&truth, &model, &rules)[block];
        assert!(c.lost && !c.phantom && c.model_area == 0.0, "{c:?}");
        assert_eq!(c.area_ratio, Some(0.0));
        let c = &check_objects(&model, &truth, &rules)[block];
        assert!(c.phantom && !c.lost, "{c:?}");
        // Half the block kept: lost is below half, so a block at 60 % is not lost.
        let mut kept = 0;
        let total = truth.object(block).area();
        let mut part = frame.clone();
        for px in part.chunks_exact_mut(3) {
            if palette.label([px[0], px[1], px[2]]) == Some(block) {
                kept += 1;
                if kept * 10 > total * 6 {
                    px.copy_from_slice(&bg);
                }
            }
        }
        let c = &check_objects(&truth, &Masks::of(&part, w, h, &palette), &rules)[block];
        assert!(!c.lost, "{c:?}");
    }

    #[test]
    fn the_scenes_own_motion_never_outruns_its_stated_bound() {
        // The simulator used as the model: consecutive true frames of seeded random episodes
        // move every object within its bound (no teleports), for both built-in scenes.
        for name in ["push-t", "arm-push"] {
            let mut scene = load_scene(&SceneSource::parse(name), Some((SIZE, SIZE))).unwrap();
            let palette = Palette::from_spec(scene.spec(), DEFAULT_TOLERANCE);
            let rules = ObjectRules::from_spec(scene.spec(), SIZE as usize);
            assert!(rules.max_step_px.iter().any(Option::is_some), "{name}");
            let (w, h) = (SIZE as usize, SIZE as usize);
            let mut fastest = vec![0.0f64; rules.names.len()];
            for seed in 0..6 {
                let mut obs = scene.reset(seed);
                // A person dragging the target: jumps anywhere in the action box.
                let mut policy = scene.scripted_policy(dreamyard_scenes::policy::PolicyKind::Jump);
                policy.reset(seed);
                let mut prev = Masks::of(&obs.frame.data, w, h, &palette);
                for _ in 0..40 {
                    let a = policy.act(&obs);
                    obs = scene.step(&a).unwrap();
                    let next = Masks::of(&obs.frame.data, w, h, &palette);
                    for (k, bound) in rules.max_step_px.iter().enumerate() {
                        let (Some(b), Some(p), Some(q)) = (
                            bound,
                            prev.object(k).pose(false),
                            next.object(k).pose(false),
                        ) else {
                            continue;
                        };
                        let d = distance(p.centroid, q.centroid);
                        fastest[k] = fastest[k].max(d);
                        assert!(!is_teleport(p.centroid, q.centroid, *b), "{name} {k}: {d}");
                    }
                    prev = next;
                }
            }
            assert!(fastest.iter().any(|&d| d > 0.5), "{name}: nothing moved");
        }
    }

    #[test]
    fn spread_and_coverage_of_samples() {
        let truth = [10u8, 50, 200];
        // Identical samples: no spread; the truth is covered only where it equals them.
        let s: [&[u8]; 2] = [&[10, 60, 200], &[10, 60, 200]];
        let (spread, cov) = sample_spread(&s, &truth);
        assert_eq!(spread, 0.0);
        assert!((cov - 2.0 / 3.0).abs() < 1e-12);
        let s: [&[u8]; 2] = [&[0, 40, 190], &[20, 60, 210]];
        let (spread, cov) = sample_spread(&s, &truth);
        assert_eq!((spread, cov), (10.0, 1.0));
        assert_eq!(ideal_coverage(4), 0.6);
        // Only the values that changed since `before` count: the first is unchanged.
        let before = [10u8, 40, 190];
        let s: [&[u8]; 2] = [&[10, 60, 200], &[10, 60, 200]];
        assert_eq!(moving_coverage(&s, &truth, &before), Some(0.5));
        assert_eq!(moving_coverage(&s, &before, &before), None);
        assert_eq!(pixel_divergence(&[0, 10], &[4, 0]), 7.0);
        assert!((angle_between(0.1, 0.1 + std::f64::consts::TAU) - 0.0).abs() < 1e-9);
        assert!(
            (angle_between(3.0, -3.0) - (std::f64::consts::TAU - 6.0).to_degrees()).abs() < 1e-9
        );
    }
}
