//! arm-push: joint limits, motors and the goal-directed policy.

use crate::common;

use common::act;
use dreamyard_scenes::Scene;
use dreamyard_scenes::arm_push::{ArmPush, ArmPushConfig};
use dreamyard_scenes::policy::PolicyKind;

fn arm() -> ArmPush {
    let text = dreamyard_scenes::builtin_toml("arm-push").unwrap();
    ArmPush::new(ArmPushConfig::from_toml("arm-push.toml".as_ref(), text).unwrap())
}

#[test]
fn joint_limits_hold_under_full_velocity() {
    let mut scene = arm();
    let limits: Vec<[f64; 2]> = scene.config().links.iter().map(|l| l.limits).collect();
    // Puck in a far corner, out of the arm's reach, so nothing stops the sweep.
    scene.reset_to(&[0.0, 0.0, 0.0, 30.0, 30.0]).unwrap();
    for direction in [1.0f32, -1.0] {
        let mut reached = vec![false; limits.len()];
        for _ in 0..40 {
            let obs = scene
                .step(&act(&[3.0 * direction, 3.0 * direction, 3.0 * direction]))
                .unwrap();
            for (i, lim) in limits.iter().enumerate() {
                let q = obs.state[i];
                assert!(
                    q >= lim[0] - 0.02 && q <= lim[1] + 0.02,
                    "joint {i} at {q} outside {lim:?}"
                );
                let bound = if direction > 0.0 { lim[1] } else { lim[0] };
                reached[i] |= (q - bound).abs() < 0.05;
            }
        }
        assert!(
            reached.iter().all(|&r| r),
            "joints never reached their limits: {reached:?}"
        );
    }
}

#[test]
fn joints_follow_velocity_commands() {
    let mut scene = arm();
    scene.reset_to(&[0.0, 0.0, 0.0, 30.0, 30.0]).unwrap();
    let command = [1.0, -0.5, 0.8];
    let mut obs = scene.observe();
    for _ in 0..3 {
        obs = scene.step(&act(&command)).unwrap();
    }
    let before = obs.state.clone();
    for _ in 0..2 {
        obs = scene.step(&act(&command)).unwrap();
    }
    // Past the start-up transient, each joint turns at the commanded rate (2 steps = 0.2 s).
    for i in 0..3 {
        let rate = (obs.state[i] - before[i]) / 0.2;
        assert!(
            (rate - command[i] as f64).abs() < 0.1,
            "joint {i}: {rate} rad/s"
        );
    }
    // Out-of-range velocities are clipped to max_velocity (2 rad/s for joint 1).
    scene.reset_to(&[0.0, 0.0, 0.0, 30.0, 30.0]).unwrap();
    let obs = scene.step(&act(&[50.0, 0.0, 0.0])).unwrap();
    assert!(obs.state[0] < 0.25, "{:?}", obs.state);
}

#[test]
fn the_puck_stays_put_until_the_arm_pushes_it() {
    let mut scene = arm();
    let start = [0.0, 0.0, 0.0, 140.0, 300.0];
    scene.reset_to(&start).unwrap();
    for _ in 0..5 {
        let obs = scene.step(&act(&[0.0, 0.0, 0.0])).unwrap();
        assert_eq!(&obs.state[3..], &start[3..]);
    }
    // Sweep joint 1 to the left (negative): the arm hits the puck.
    let mut obs = scene.observe();
    for _ in 0..15 {
        obs = scene.step(&act(&[-2.0, 0.0, 0.0])).unwrap();
    }
    assert!(
        (obs.state[3] - start[3]).abs() + (obs.state[4] - start[4]).abs() > 10.0,
        "{:?}",
        obs.state
    );
}

#[test]
fn success_and_reward_follow_the_goal_distance() {
    let mut scene = arm();
    let goal = scene.config().goal.position;
    let obs = scene.reset_to(&[0.8, 0.8, 0.0, goal[0], goal[1]]).unwrap();
    assert!(obs.success);
    assert_eq!(obs.reward, 1.0);
    let obs = scene
        .reset_to(&[0.8, 0.8, 0.0, goal[0], goal[1] + 150.0])
        .unwrap();
    assert!(!obs.success);
    assert!((obs.reward - 0.5).abs() < 1e-6);
}

#[test]
fn heuristic_pushes_the_puck_toward_the_goal() {
    let mut scene = arm();
    let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
    let (mut pushed, mut succeeded) = (0, 0);
    for seed in 0..8 {
        let first = scene.reset(seed).state;
        let last =
            dreamyard_scenes::run_policy(&mut scene, policy.as_mut(), seed, 150, true, |_, _| {})
                .unwrap();
        let n = first.len() - 2;
        if (last.state[n] - first[n]).abs() + (last.state[n + 1] - first[n + 1]).abs() > 20.0 {
            pushed += 1;
        }
        succeeded += usize::from(last.success);
    }
    assert!(pushed >= 7, "only {pushed} of 8 episodes pushed the puck");
    assert!(
        succeeded >= 3,
        "only {succeeded} of 8 episodes reached the goal"
    );
}

#[test]
fn objects_have_distinct_colours() {
    let scene = arm();
    let spec = scene.spec();
    let mut colors: Vec<_> = spec.objects.iter().flat_map(|o| o.colors.clone()).collect();
    colors.push(spec.background);
    let n = colors.len();
    colors.sort();
    colors.dedup();
    assert_eq!(colors.len(), n, "two objects share a colour");
}
