//! Does the dream obey physics and the controls? Per window and horizon step, from the frames
//! [`super::Evaluator`] already has (see [`crate::objects`] for the definitions), keyed by name:
//!
//! | key | value per step (mean over the K samples where defined) |
//! | --- | --- |
//! | `<object>.centroid_px` | centroid distance, model vs truth (pixels), where both show it |
//! | `<object>.angle_deg` | heading error (degrees), oriented objects |
//! | `<object>.area_ratio` | model mask area over true area, rigid objects the truth shows |
//! | `<object>.shape_iou` | mask IoU after aligning centroid and heading, rigid objects |
//! | `<object>.lost` | fraction of samples that lost it at this step (truth shows it) |
//! | `<object>.lost_by` | fraction of samples that lost it at this step or before |
//! | `<object>.phantom` | fraction of samples that draw it where the truth has none |
//! | `<object>.teleport` | fraction of samples whose object moved farther than the scene allows since the model last showed it (objects with a stated bound) |
//! | `<object>.teleport_by` | fraction of samples that teleported it at this step or before |
//! | `copy_last.<object>.centroid_px`, `copy_last.<object>.angle_deg` | the same errors of the copy-last-frame baseline |
//! | `samples.spread`, `samples.coverage` | K > 1: per-pixel standard deviation across samples (8-bit) and the fraction of pixel values the samples' range covers |
//! | `samples.coverage_moving` | K > 1: the same coverage over the pixel values where the truth differs from the last context frame (what moved; still background is covered trivially) |
//! | `response.model_px`, `response.world_px` | counterfactual: mean absolute pixel difference between the future under the recorded actions and the one under the perturbed actions, in the model (mean over samples, same noise) and in the simulator |
//! | `response.model_pose`, `response.world_pose` | the same as mean centroid distance of the moving objects (pixels) |
//!
//! The report derives `response.pixel_ratio` and `response.pose_ratio` (the model's mean
//! divergence over the world's: 0 = actions ignored, 1 = the world's response) and
//! `<object>.first_lost` (the share of rollouts whose first loss is at that step).

use std::collections::BTreeMap;

use crate::metrics::Palette;
use crate::objects::{
    Masks, ObjectRules, check_objects, is_teleport, moving_coverage, pixel_divergence,
    pose_divergence, presence_min_px, sample_spread,
};

/// Per key, one value per horizon step (`None` where undefined).
pub type PhysicsSeries = BTreeMap<String, Vec<Option<f64>>>;

/// The physics keys of `records`: the union over windows, sorted.
pub fn physics_keys(records: &[super::WindowRecord]) -> Vec<&String> {
    records
        .iter()
        .flat_map(|r| r.physics.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The frames of one counterfactual: the model's K futures under the perturbed actions (same
/// noise as the recorded-action rollouts), and the simulator's futures under both.
#[derive(Debug, Clone, Copy)]
pub struct CounterfactualFrames<'a> {
    /// `[sample][step]` RGB8.
    pub model: &'a [Vec<Vec<u8>>],
    /// `[step]` RGB8: the simulator with the recorded actions.
    pub world: &'a [Vec<u8>],
    /// `[step]` RGB8: the simulator with the perturbed actions.
    pub world_perturbed: &'a [Vec<u8>],
}

/// Everything one window's physics is measured on (RGB8 frames at one size).
#[derive(Debug, Clone, Copy)]
pub struct WindowFrames<'a> {
    pub width: usize,
    pub height: usize,
    /// The newest real frame the rollout started from.
    pub last_context: &'a [u8],
    /// `[step]`: the true frames.
    pub truth: &'a [&'a [u8]],
    /// `[sample][step]`: the model's frames.
    pub samples: &'a [&'a [Vec<u8>]],
    /// `[step]`: the copy-last-frame baseline's frames.
    pub baseline: &'a [&'a [u8]],
    pub counterfactual: Option<CounterfactualFrames<'a>>,
}

/// Sums per key and step, then means.
struct Series {
    horizon: usize,
    sums: BTreeMap<String, Vec<(f64, usize)>>,
}

impl Series {
    fn new(horizon: usize) -> Self {
        Self {
            horizon,
            sums: BTreeMap::new(),
        }
    }

    fn add(&mut self, key: String, h: usize, v: Option<f64>) {
        let slot = self
            .sums
            .entry(key)
            .or_insert_with(|| vec![(0.0, 0); self.horizon]);
        if let Some(v) = v {
            slot[h].0 += v;
            slot[h].1 += 1;
        }
    }

    fn flag(&mut self, key: String, h: usize, defined: bool, on: bool) {
        self.add(key, h, defined.then_some(if on { 1.0 } else { 0.0 }));
    }

    /// `response.<who>_px` and `response.<who>_pose` per step: how far the futures under the
    /// recorded actions (`actual`, each with its masks) are from those under the perturbed ones.
    fn add_divergence<'f>(
        &mut self,
        who: &str,
        actual: impl Iterator<Item = (&'f [u8], &'f Masks)>,
        perturbed: &[Vec<u8>],
        (w, h): (usize, usize),
        palette: &Palette,
        rules: &ObjectRules,
    ) {
        for (step, ((a, ma), b)) in actual.zip(perturbed).enumerate() {
            self.add(
                format!("response.{who}_px"),
                step,
                Some(pixel_divergence(a, b)),
            );
            let mb = Masks::of(b, w, h, palette);
            self.add(
                format!("response.{who}_pose"),
                step,
                pose_divergence(ma, &mb, rules),
            );
        }
    }

    fn finish(self) -> PhysicsSeries {
        self.sums
            .into_iter()
            .map(|(k, v)| {
                let means = v
                    .into_iter()
                    .map(|(s, n)| (n > 0).then(|| s / n as f64))
                    .collect();
                (k, means)
            })
            .collect()
    }
}

/// One window's physics series (see the module docs for the keys).
pub fn window_physics(
    f: &WindowFrames<'_>,
    palette: &Palette,
    rules: &ObjectRules,
) -> PhysicsSeries {
    let (w, h) = (f.width, f.height);
    let horizon = f.truth.len();
    let min_px = presence_min_px(w, h);
    let mut out = Series::new(horizon);
    let truth: Vec<Masks> = f
        .truth
        .iter()
        .map(|t| Masks::of(t, w, h, palette))
        .collect();
    let context = Masks::of(f.last_context, w, h, palette);
    let names = &rules.names;

    for (s, frames) in f.samples.iter().enumerate() {
        let model: Vec<Masks> = frames.iter().map(|m| Masks::of(m, w, h, palette)).collect();
        let checks: Vec<_> = truth
            .iter()
            .zip(&model)
            .map(|(t, m)| check_objects(t, m, rules))
            .collect();
        for (k, name) in names.iter().enumerate() {
            let oriented = rules.oriented.get(k).copied().unwrap_or(false);
            let rigid = rules.rigid.get(k).copied().unwrap_or(false);
            let bound = rules.max_step_px.get(k).copied().flatten();
            // Where the model last showed the object, and how many steps ago.
            let mut last_seen = context
                .object(k)
                .pose(false)
                .filter(|p| p.area >= min_px)
                .map(|p| (p.centroid, 0usize));
            let (mut seen_in_truth, mut lost_by, mut teleport_by) = (false, false, false);
            for (step, c) in checks.iter().map(|c| &c[k]).enumerate() {
                let present = c.present_in_truth(min_px);
                seen_in_truth |= present;
                lost_by |= c.lost;
                out.add(format!("{name}.centroid_px"), step, c.centroid_px);
                if oriented {
                    out.add(format!("{name}.angle_deg"), step, c.angle_deg);
                }
                if rigid {
                    out.add(format!("{name}.area_ratio"), step, c.area_ratio);
                    out.add(format!("{name}.shape_iou"), step, c.shape_iou);
                }
                out.flag(format!("{name}.lost"), step, present, c.lost);
                out.flag(format!("{name}.lost_by"), step, seen_in_truth, lost_by);
                out.flag(format!("{name}.phantom"), step, !present, c.phantom);
                if let Some(bound) = bound {
                    let mut jumped = false;
                    if let Some(p) = c.model_pose {
                        if let Some((before, ago)) = last_seen {
                            jumped = is_teleport(before, p.centroid, bound * (ago + 1) as f64);
                        }
                        last_seen = Some((p.centroid, 0));
                    } else if let Some((_, ago)) = &mut last_seen {
                        *ago += 1;
                    }
                    teleport_by |= jumped;
                    out.flag(format!("{name}.teleport"), step, true, jumped);
                    out.flag(format!("{name}.teleport_by"), step, true, teleport_by);
                }
            }
        }
        if let Some(cf) = f.counterfactual
            && let Some(other) = cf.model.get(s)
        {
            // This sample's frames are labelled already.
            let labelled = frames.iter().map(Vec::as_slice).zip(&model);
            out.add_divergence("model", labelled, other, (w, h), palette, rules);
        }
    }

    for (step, (t, b)) in truth.iter().zip(f.baseline).enumerate() {
        let base = check_objects(t, &Masks::of(b, w, h, palette), rules);
        for (k, c) in base.iter().enumerate() {
            let name = &names[k];
            out.add(format!("copy_last.{name}.centroid_px"), step, c.centroid_px);
            if rules.oriented.get(k).copied().unwrap_or(false) {
                out.add(format!("copy_last.{name}.angle_deg"), step, c.angle_deg);
            }
        }
    }

    if f.samples.len() > 1 {
        for (step, t) in f.truth.iter().enumerate() {
            let frames: Vec<&[u8]> = f.samples.iter().map(|s| s[step].as_slice()).collect();
            let (spread, coverage) = sample_spread(&frames, t);
            out.add("samples.spread".into(), step, Some(spread));
            out.add("samples.coverage".into(), step, Some(coverage));
            out.add(
                "samples.coverage_moving".into(),
                step,
                moving_coverage(&frames, t, f.last_context),
            );
        }
    }

    if let Some(cf) = f.counterfactual {
        let masks: Vec<Masks> = cf
            .world
            .iter()
            .map(|a| Masks::of(a, w, h, palette))
            .collect();
        let labelled = cf.world.iter().map(Vec::as_slice).zip(&masks);
        out.add_divergence(
            "world",
            labelled,
            cf.world_perturbed,
            (w, h),
            palette,
            rules,
        );
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::report::aggregate;
    use crate::eval::{FrameMetrics, Perturbation, Window, WindowRecord};
    use crate::metrics::DEFAULT_TOLERANCE;
    use dreamyard_model::config::ActionSpace as ModelActionSpace;
    use dreamyard_scenes::policy::PolicyKind;
    use dreamyard_scenes::{Action, SceneSource, load_scene};

    const SIZE: usize = 64;
    const H: usize = 8;

    /// A window of push-t: the last context frame, then `H` true frames under a person-like
    /// policy, and the simulator's frames from the same state under the mirrored actions.
    fn simulated_window(seed: u64) -> (Vec<u8>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let mut scene = load_scene(
            &SceneSource::parse("push-t"),
            Some((SIZE as u32, SIZE as u32)),
        )
        .unwrap();
        let mut obs = scene.reset(seed);
        let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
        policy.reset(seed);
        for _ in 0..5 {
            let a = policy.act(&obs);
            obs = scene.step(&a).unwrap();
        }
        let state = obs.state.clone();
        let context = obs.frame.data.clone();
        let mut actions = Vec::new();
        let mut truth = Vec::new();
        for _ in 0..H {
            let a = policy.act(&obs);
            obs = scene.step(&a).unwrap();
            actions.push(a);
            truth.push(obs.frame.data.clone());
        }
        let space = ModelActionSpace::Continuous {
            dim: 2,
            low: vec![0.0; 2],
            high: vec![512.0; 2],
        };
        scene.reset_to(&state).unwrap();
        let other = actions
            .iter()
            .map(|a| {
                let row = Perturbation::Mirror.apply(&a.to_vec(), &space);
                let obs = scene.step(&Action::Continuous(row)).unwrap();
                obs.frame.data
            })
            .collect();
        (context, truth, other)
    }

    fn record(id: usize, physics: PhysicsSeries) -> WindowRecord {
        let m = FrameMetrics {
            psnr: 30.0,
            ssim: 0.9,
            iou: vec![],
        };
        WindowRecord {
            window: Window {
                id,
                episode: id as u64,
                start: 0,
            },
            model: vec![m.clone(); H],
            best_of_k: None,
            baseline: vec![m; H],
            teacher_forced: None,
            physics,
        }
    }

    #[test]
    fn the_simulator_as_the_model_is_exact_and_copy_last_ignores_the_actions() {
        let scene = load_scene(&SceneSource::parse("push-t"), None).unwrap();
        let palette = Palette::from_spec(scene.spec(), DEFAULT_TOLERANCE);
        let rules = ObjectRules::from_spec(scene.spec(), SIZE);
        let (mut sim, mut copy) = (Vec::new(), Vec::new());
        for (id, seed) in [3u64, 11, 29].into_iter().enumerate() {
            let (context, truth, other) = simulated_window(seed);
            let truth_refs: Vec<&[u8]> = truth.iter().map(Vec::as_slice).collect();
            let baseline: Vec<&[u8]> = vec![context.as_slice(); H];
            // The simulator as the model: its futures are the world's under both actions.
            let model = [truth.clone()];
            let model_other = [other.clone()];
            let samples: Vec<&[Vec<u8>]> = model.iter().map(Vec::as_slice).collect();
            let frames = WindowFrames {
                width: SIZE,
                height: SIZE,
                last_context: &context,
                truth: &truth_refs,
                samples: &samples,
                baseline: &baseline,
                counterfactual: Some(CounterfactualFrames {
                    model: &model_other,
                    world: &truth,
                    world_perturbed: &other,
                }),
            };
            sim.push(record(id, window_physics(&frames, &palette, &rules)));
            // Copy-last as the model: the last context frame whatever the actions.
            let still = [vec![context.clone(); H]];
            let samples: Vec<&[Vec<u8>]> = still.iter().map(Vec::as_slice).collect();
            let frames = WindowFrames {
                samples: &samples,
                counterfactual: Some(CounterfactualFrames {
                    model: &still,
                    world: &truth,
                    world_perturbed: &other,
                }),
                ..frames
            };
            copy.push(record(id, window_physics(&frames, &palette, &rules)));
        }
        let (steps, summary) = aggregate(&sim, &[], H, 0).unwrap();
        for e in &steps {
            let p = &e.physics;
            for o in ["block", "agent"] {
                assert_eq!(p[&format!("{o}.centroid_px")], 0.0, "{o}: {p:?}");
                assert_eq!(p[&format!("{o}.lost_by")], 0.0, "{o}");
                assert_eq!(p[&format!("{o}.teleport_by")], 0.0, "{o}");
                assert_eq!(p[&format!("{o}.area_ratio")], 1.0, "{o}");
            }
            assert_eq!(p["block.angle_deg"], 0.0);
            assert_eq!(p["response.pixel_ratio"], 1.0);
            assert!(
                p["response.world_px"] > 0.0,
                "the mirrored actions change the world"
            );
        }
        // The world responds in positions too from the first step on (the agent moves).
        assert_eq!(summary.physics["response.pose_ratio"], 1.0);
        let (steps, _) = aggregate(&copy, &[], H, 0).unwrap();
        for e in &steps {
            assert_eq!(e.physics["response.pixel_ratio"], 0.0);
            assert_eq!(e.physics["response.model_px"], 0.0);
        }
        // Copy-last's own pose error grows as the true block and agent move away.
        let last = &steps[H - 1].physics;
        assert!(last["agent.centroid_px"] > 0.5, "{last:?}");
        assert_eq!(
            last["agent.centroid_px"],
            last["copy_last.agent.centroid_px"]
        );
    }

    #[test]
    fn perturbations_stay_in_the_box() {
        let space = ModelActionSpace::Continuous {
            dim: 2,
            low: vec![0.0, -1.0],
            high: vec![512.0, 1.0],
        };
        assert_eq!(
            Perturbation::Mirror.apply(&[100.0, 0.25], &space),
            vec![412.0, -0.25]
        );
        // 0.25 of the range: 400 + 128 = 528 reflects to 496; 0.9 + 0.5 = 1.4 reflects to 0.6.
        let got = Perturbation::Offset(0.25).apply(&[400.0, 0.9], &space);
        assert!(
            (got[0] - 496.0).abs() < 1e-4 && (got[1] - 0.6).abs() < 1e-6,
            "{got:?}"
        );
        let discrete = ModelActionSpace::Discrete { num_actions: 3 };
        assert_eq!(Perturbation::Mirror.apply(&[2.0], &discrete), vec![0.0]);
        assert_eq!("offset:0.25".parse(), Ok(Perturbation::Offset(0.25)));
        assert!("offset:0".parse::<Perturbation>().is_err());
        assert!("flip".parse::<Perturbation>().is_err());
        let json = serde_json::to_string(&Perturbation::Offset(0.5)).unwrap();
        assert_eq!(json, "\"offset:0.5\"");
    }
}
