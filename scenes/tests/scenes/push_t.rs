//! PushT physics, reward and policies, checked against the definitions of gym-pusht.

use crate::common;

use common::act;
use dreamyard_scenes::Scene;
use dreamyard_scenes::policy::PolicyKind;
use dreamyard_scenes::push_t::{PushT, PushTConfig};

fn push_t() -> PushT {
    let text = dreamyard_scenes::builtin_toml("push-t").unwrap();
    PushT::new(PushTConfig::from_toml("push-t.toml".as_ref(), text).unwrap())
}

#[test]
fn agent_follows_the_closed_form_pd_update() {
    let mut scene = push_t();
    // Block in a far corner, agent moving in the open: no contact.
    scene.reset_to(&[100.0, 100.0, 420.0, 420.0, 0.0]).unwrap();
    let (kp, kd, dt) = (100.0, 20.0, 0.01);
    let (mut x, mut v) = ([100.0f64, 100.0], [0.0f64, 0.0]);
    let targets = [
        [200.0, 150.0],
        [200.0, 150.0],
        [120.0, 260.0],
        [300.0, 80.0],
        [300.0, 80.0],
    ];
    for target in targets {
        let obs = scene
            .step(&act(&[target[0] as f32, target[1] as f32]))
            .unwrap();
        for _ in 0..10 {
            for i in 0..2 {
                v[i] += (kp * (target[i] - x[i]) - kd * v[i]) * dt;
                x[i] += v[i] * dt;
            }
        }
        // f32 physics vs f64 closed form: agreement to a thousandth of a pixel.
        assert!(
            (obs.state[0] - x[0]).abs() < 1e-3,
            "{} vs {}",
            obs.state[0],
            x[0]
        );
        assert!(
            (obs.state[1] - x[1]).abs() < 1e-3,
            "{} vs {}",
            obs.state[1],
            x[1]
        );
        let pd_v = scene.agent_velocity();
        assert!(
            (pd_v[0] - v[0]).abs() < 1e-3 && (pd_v[1] - v[1]).abs() < 1e-3,
            "{pd_v:?} vs {v:?}"
        );
    }
}

#[test]
fn coverage_is_one_at_the_goal_and_zero_far_away() {
    let mut scene = push_t();
    let goal = std::f64::consts::FRAC_PI_4;
    let obs = scene.reset_to(&[60.0, 60.0, 256.0, 256.0, goal]).unwrap();
    assert!(scene.coverage() > 0.999, "coverage {}", scene.coverage());
    assert!(obs.success);
    assert_eq!(obs.reward, 1.0);

    let obs = scene.reset_to(&[60.0, 60.0, 420.0, 100.0, 0.3]).unwrap();
    assert_eq!(scene.coverage(), 0.0);
    assert!(!obs.success);
    assert_eq!(obs.reward, 0.0);

    // Half a bar-width off: partial coverage, reward = coverage / 0.95.
    scene.reset_to(&[60.0, 60.0, 271.0, 256.0, goal]).unwrap();
    let c = scene.coverage();
    assert!(c > 0.5 && c < 0.95, "coverage {c}");
    let obs = scene.reset_to(&[60.0, 60.0, 271.0, 256.0, goal]).unwrap();
    assert!((obs.reward - c / 0.95).abs() < 1e-12);
}

#[test]
fn block_stays_still_unless_pushed() {
    let mut scene = push_t();
    let start = [80.0, 80.0, 300.0, 300.0, 0.5];
    scene.reset_to(&start).unwrap();
    // Wander far from the block.
    for target in [[150.0, 60.0], [60.0, 160.0], [140.0, 140.0], [80.0, 80.0]] {
        for _ in 0..5 {
            let obs = scene.step(&act(&target)).unwrap();
            assert_eq!(&obs.state[2..], &start[2..], "untouched block moved");
        }
    }
    // Drive straight through the block's centre, then away: it moves, then stops dead.
    let mut obs = scene.step(&act(&[300.0, 330.0])).unwrap();
    for _ in 0..15 {
        obs = scene.step(&act(&[330.0, 360.0])).unwrap();
    }
    let moved = ((obs.state[2] - start[2]).powi(2) + (obs.state[3] - start[3]).powi(2)).sqrt();
    assert!(moved > 5.0, "pushed block moved only {moved}");
    // Back off (over a few steps the agent leaves contact), then the block must not slide.
    for _ in 0..10 {
        obs = scene.step(&act(&[30.0, 30.0])).unwrap();
    }
    let rest = obs.state.clone();
    for _ in 0..5 {
        let o = scene.step(&act(&[30.0, 30.0])).unwrap();
        assert_eq!(&o.state[2..], &rest[2..], "block slid after contact ended");
    }
}

#[test]
fn reset_to_round_trips_and_seeded_reset_uses_the_gym_ranges() {
    let mut scene = push_t();
    let state = [123.0, 234.0, 300.0, 200.0, 1.25];
    let obs = scene.reset_to(&state).unwrap();
    for (a, b) in obs.state.iter().zip(state) {
        assert!((a - b).abs() < 1e-4, "{:?} vs {:?}", obs.state, state);
    }
    for seed in 0..50 {
        let obs = scene.reset(seed);
        let s = &obs.state;
        assert!(
            (50.0..450.0).contains(&s[0]) && (50.0..450.0).contains(&s[1]),
            "{s:?}"
        );
        // The legacy position-then-angle order moves the origin by at most 2 * 45 px.
        assert!(
            (10.0..490.0).contains(&s[2]) && (10.0..490.0).contains(&s[3]),
            "{s:?}"
        );
        assert!((0.0..std::f64::consts::TAU).contains(&s[4]));
    }
}

#[test]
fn bad_actions_and_states_are_errors_naming_what_was_expected() {
    let mut scene = push_t();
    let err = scene.step(&act(&[1.0])).unwrap_err().to_string();
    assert!(
        err.contains("2 values") && err.contains("target_x"),
        "{err}"
    );
    let err = scene.step(&act(&[f32::NAN, 1.0])).unwrap_err().to_string();
    assert!(err.contains("finite"), "{err}");
    let err = scene
        .step(&dreamyard_scenes::Action::Discrete(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("continuous"), "{err}");
    let err = scene.reset_to(&[1.0, 2.0]).unwrap_err().to_string();
    assert!(
        err.contains("5 values") && err.contains("block_angle"),
        "{err}"
    );
}

#[test]
fn frames_are_drawn_in_the_scene_colours() {
    let mut scene = push_t();
    let obs = scene.reset_to(&[100.0, 100.0, 300.0, 350.0, 0.0]).unwrap();
    let spec = scene.spec().clone();
    assert_eq!((obs.frame.width, obs.frame.height), (96, 96));
    assert_eq!(obs.frame.data.len(), 96 * 96 * 3);
    // White background, and every object visible in its own colour.
    assert_eq!(obs.frame.pixel(50, 5), [255, 255, 255]);
    for name in ["goal", "block", "agent"] {
        let colors = &spec.object(name).unwrap().colors;
        let pixels: usize = colors.iter().map(|&c| obs.frame.count_color(c, 0)).sum();
        assert!(pixels > 5, "{name} not drawn");
    }
    // The agent is at (100, 100) of 512 -> pixel (18.75, 18.75).
    assert_eq!(
        obs.frame.pixel(18, 18),
        spec.object("agent").unwrap().colors[1]
    );
}

#[test]
fn heuristic_episodes_push_the_block() {
    let mut scene = push_t();
    let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
    let mut pushed = 0;
    let mut best_reward: f64 = 0.0;
    for seed in 0..10 {
        let mut moved = 0.0f64;
        let mut last: Option<Vec<f64>> = None;
        dreamyard_scenes::run_policy(&mut scene, policy.as_mut(), seed, 100, false, |_, obs| {
            if let Some(prev) = &last {
                moved += (obs.state[2] - prev[2]).abs() + (obs.state[3] - prev[3]).abs();
            }
            best_reward = best_reward.max(obs.reward);
            last = Some(obs.state.clone());
        })
        .unwrap();
        if moved > 20.0 {
            pushed += 1;
        }
    }
    assert!(
        pushed >= 9,
        "only {pushed} of 10 heuristic episodes pushed the block"
    );
    assert!(
        best_reward > 0.5,
        "the heuristic never got the block near the goal"
    );
}

#[test]
fn random_walk_is_smooth_and_in_bounds() {
    let mut scene = push_t();
    let mut policy = scene.scripted_policy(PolicyKind::RandomWalk);
    let mut prev: Option<Vec<f32>> = None;
    dreamyard_scenes::run_policy(&mut scene, policy.as_mut(), 5, 200, false, |action, _| {
        if let Some(a) = action {
            let a = a.to_vec();
            assert!(a.iter().all(|v| (0.0..=512.0).contains(v)));
            if let Some(p) = &prev {
                let jump = ((a[0] - p[0]).powi(2) + (a[1] - p[1]).powi(2)).sqrt();
                assert!(jump < 60.0, "random walk jumped {jump} px in one step");
            }
            prev = Some(a);
        }
    })
    .unwrap();
}

#[test]
fn environment_state_is_gym_pushts_keypoints() {
    // gym-pusht's own `environment_state` for six poses (tests/fixtures/README.md says how
    // it was made): same points, same order.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/gym-pusht-keypoints.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spec = push_t().spec().clone();
    let layout = spec.layout.as_ref().unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let state = floats(&case["state"]);
        assert_eq!(layout.robot_state(&state), floats(&case["agent_pos"]));
        let ours = layout.environment_state(&state);
        let theirs = floats(&case["environment_state"]);
        assert_eq!(ours.len(), 16);
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() < 1e-9,
                "state {state:?} value {i}: {a} vs {b}"
            );
        }
    }
    assert_eq!(
        spec.task.as_deref(),
        Some("Push the T-shaped block onto the T-shaped target."),
        "lerobot/pusht's task text"
    );
}
