//! Same scene file + seed + actions -> bit-identical frames and states, in one process and
//! across processes.

use crate::common;

use dreamyard_scenes::policy::PolicyKind;

const CHILD_ENV: &str = "DREAMYARD_DIGEST_CHILD";

#[test]
fn same_seed_same_rollout_in_process() {
    for scene in ["push-t", "arm-push"] {
        for policy in PolicyKind::ALL {
            let a = common::digest(scene, policy, 7, 60);
            let b = common::digest(scene, policy, 7, 60);
            assert_eq!(a, b, "{scene} / {}", policy.name());
            let other = common::digest(scene, policy, 8, 60);
            assert_ne!(
                a, other,
                "{scene}: different seeds must give different rollouts"
            );
        }
    }
}

#[test]
fn cloned_scene_continues_identically() {
    for name in ["push-t", "arm-push"] {
        let mut scene = common::scene(name);
        let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
        policy.reset(3);
        let mut obs = scene.reset(3);
        for _ in 0..20 {
            obs = scene.step(&policy.act(&obs)).unwrap();
        }
        let mut fork = scene.boxed_clone();
        for _ in 0..20 {
            let action = policy.act(&obs);
            obs = scene.step(&action).unwrap();
            let forked = fork.step(&action).unwrap();
            assert_eq!(obs, forked, "{name}: a clone must continue bit-identically");
        }
    }
}

/// Not a test on its own: prints the digest when a parent test runs this binary as a child.
#[test]
#[ignore = "run as a child process by cross_process_rollouts_are_identical"]
fn print_digest_child() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (scene, seed) = spec.split_once(':').unwrap();
        let d = common::digest(scene, PolicyKind::Heuristic, seed.parse().unwrap(), 60);
        println!("DIGEST={d}");
    }
}

#[test]
fn cross_process_rollouts_are_identical() {
    let exe = std::env::current_exe().unwrap();
    for scene in ["push-t", "arm-push"] {
        let in_process = common::digest(scene, PolicyKind::Heuristic, 11, 60);
        for _ in 0..2 {
            let out = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "determinism::print_digest_child",
                    "--include-ignored",
                    "--nocapture",
                ])
                .env(CHILD_ENV, format!("{scene}:11"))
                .output()
                .unwrap();
            assert!(out.status.success(), "child failed: {out:?}");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let digest = stdout
                .lines()
                .find_map(|l| l.strip_prefix("DIGEST="))
                .unwrap_or_else(|| panic!("no digest in child output: {stdout}"));
            assert_eq!(
                digest, in_process,
                "{scene}: another process computed another rollout"
            );
        }
    }
}
