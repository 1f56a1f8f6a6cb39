//! Helpers shared by the scene tests.

use dreamyard_scenes::policy::PolicyKind;
use dreamyard_scenes::{Action, RolloutDigest, Scene, SceneSource, load_scene, run_policy};

pub fn scene(name: &str) -> Box<dyn Scene> {
    load_scene(&SceneSource::parse(name), None).unwrap()
}

/// Digest of `steps` steps of `policy` from `seed`.
pub fn digest(name: &str, policy: PolicyKind, seed: u64, steps: usize) -> String {
    let mut scene = scene(name);
    let mut policy = scene.scripted_policy(policy);
    let mut d = RolloutDigest::new();
    run_policy(
        scene.as_mut(),
        policy.as_mut(),
        seed,
        steps,
        false,
        |_, obs| d.add(obs),
    )
    .unwrap();
    d.finish()
}

pub fn act(values: &[f32]) -> Action {
    Action::Continuous(values.to_vec())
}
