//! Running a policy in a scene, and fingerprints of what came out.

use sha2::{Digest as _, Sha256};

use crate::policy::Policy;
use crate::spec::{Action, Observation};
use crate::{Scene, SceneError};

/// A SHA-256 over frames and states (bit patterns), for checking bit-identical rollouts
/// within and across processes.
#[derive(Clone, Debug, Default)]
pub struct RolloutDigest(Sha256);

impl RolloutDigest {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, obs: &Observation) {
        let Self(h) = self;
        h.update(obs.frame.width.to_le_bytes());
        h.update(obs.frame.height.to_le_bytes());
        h.update(&obs.frame.data);
        for v in &obs.state {
            h.update(v.to_bits().to_le_bytes());
        }
        h.update(obs.reward.to_bits().to_le_bytes());
        h.update([u8::from(obs.success)]);
    }

    /// Lower-case hex.
    pub fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Resets `scene` and `policy` with `seed` and runs `steps` steps (fewer if the scene
/// reports success and `stop_on_success`). `visit` sees the reset observation with no
/// action, then each action with the observation it produced.
pub fn run_policy(
    scene: &mut dyn Scene,
    policy: &mut dyn Policy,
    seed: u64,
    steps: usize,
    stop_on_success: bool,
    mut visit: impl FnMut(Option<&Action>, &Observation),
) -> Result<Observation, SceneError> {
    policy.reset(seed);
    let mut obs = scene.reset(seed);
    visit(None, &obs);
    for _ in 0..steps {
        if stop_on_success && obs.success {
            break;
        }
        let action = policy.act(&obs);
        obs = scene.step(&action)?;
        visit(Some(&action), &obs);
    }
    Ok(obs)
}
