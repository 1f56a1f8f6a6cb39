//! Scripted data-collection policies: a smooth random walk over the action space and, per
//! scene, a goal-directed heuristic that makes contact and pushes. All are seeded and
//! deterministic.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::spec::{Action, ActionSpace, Observation};

/// A policy maps observations to actions. `reset` starts a new episode.
pub trait Policy: Send {
    fn reset(&mut self, seed: u64);
    fn act(&mut self, obs: &Observation) -> Action;
}

/// The scripted policies every built-in scene provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Smooth random walk over the action space.
    RandomWalk,
    /// Goal-directed: approaches the object from behind and pushes it toward the goal.
    Heuristic,
}

impl PolicyKind {
    pub const ALL: [Self; 2] = [Self::RandomWalk, Self::Heuristic];

    pub fn name(self) -> &'static str {
        match self {
            Self::RandomWalk => "random-walk",
            Self::Heuristic => "heuristic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// A smooth random walk: the action drifts with a velocity that follows an
/// Ornstein-Uhlenbeck process, bounces off the bounds of the action box.
pub struct RandomWalk {
    low: Vec<f32>,
    high: Vec<f32>,
    /// Standard deviation of the velocity's per-step kick, as a fraction of the range.
    kick: f64,
    /// Fraction of the velocity kept from one step to the next.
    momentum: f64,
    /// Where a new episode's walk starts, from its first observation.
    start: fn(&Observation) -> Vec<f32>,
    seed: u64,
    rng: ChaCha8Rng,
    action: Option<Vec<f64>>,
    velocity: Vec<f64>,
}

impl std::fmt::Debug for RandomWalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomWalk")
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl RandomWalk {
    /// A walk over a continuous action space. `start` gives the first action of an episode.
    pub(crate) fn new(
        space: &ActionSpace,
        kick: f64,
        momentum: f64,
        start: fn(&Observation) -> Vec<f32>,
    ) -> Self {
        let (low, high) = match space {
            ActionSpace::Continuous { low, high, .. } => (low.clone(), high.clone()),
            ActionSpace::Discrete { names } => (vec![0.0], vec![names.len() as f32 - 1.0]),
        };
        let dim = low.len();
        Self {
            low,
            high,
            kick,
            momentum,
            start,
            seed: 0,
            rng: ChaCha8Rng::seed_from_u64(0),
            action: None,
            velocity: vec![0.0; dim],
        }
    }
}

impl Policy for RandomWalk {
    fn reset(&mut self, seed: u64) {
        self.seed = seed;
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_7a1c);
        self.action = None;
        self.velocity.iter_mut().for_each(|v| *v = 0.0);
    }

    fn act(&mut self, obs: &Observation) -> Action {
        let mut action = match self.action.take() {
            Some(a) => a,
            None => (self.start)(obs).iter().map(|&v| v as f64).collect(),
        };
        for (i, value) in action.iter_mut().enumerate() {
            let (lo, hi) = (self.low[i] as f64, self.high[i] as f64);
            let range = hi - lo;
            self.velocity[i] =
                self.momentum * self.velocity[i] + self.kick * range * normal(&mut self.rng);
            let mut next = *value + self.velocity[i];
            if next < lo {
                next = 2.0 * lo - next;
                self.velocity[i] = -self.velocity[i];
            } else if next > hi {
                next = 2.0 * hi - next;
                self.velocity[i] = -self.velocity[i];
            }
            *value = next.clamp(lo, hi);
        }
        let out = Action::Continuous(action.iter().map(|&v| v as f32).collect());
        self.action = Some(action);
        out
    }
}

/// Vector helpers for the heuristics.
pub(crate) mod v2 {
    pub type V = [f64; 2];
    pub fn add(a: V, b: V) -> V {
        [a[0] + b[0], a[1] + b[1]]
    }
    pub fn sub(a: V, b: V) -> V {
        [a[0] - b[0], a[1] - b[1]]
    }
    pub fn scale(a: V, s: f64) -> V {
        [a[0] * s, a[1] * s]
    }
    pub fn dot(a: V, b: V) -> f64 {
        a[0] * b[0] + a[1] * b[1]
    }
    pub fn norm(a: V) -> f64 {
        dot(a, a).sqrt()
    }
    pub fn rotate(a: V, angle: f64) -> V {
        let (s, c) = angle.sin_cos();
        [c * a[0] - s * a[1], s * a[0] + c * a[1]]
    }
    /// Perpendicular (rotated by +90°).
    pub fn perp(a: V) -> V {
        [-a[1], a[0]]
    }
    /// Distance from `p` to the segment `a`-`b`.
    pub fn dist_to_segment(p: V, a: V, b: V) -> f64 {
        let ab = sub(b, a);
        let len2 = dot(ab, ab);
        let t = if len2 > 0.0 {
            (dot(sub(p, a), ab) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        norm(sub(p, add(a, scale(ab, t))))
    }
    /// Moves from `from` toward `to` by at most `max_len`.
    pub fn step_toward(from: V, to: V, max_len: f64) -> V {
        let d = sub(to, from);
        let len = norm(d);
        if len <= max_len {
            to
        } else {
            add(from, scale(d, max_len / len))
        }
    }
}

/// Where to aim a pushing disc at `agent` so that it drives a body's point `center` along
/// `dir` (aiming `depth` past it), the contact offset sideways by `offset` (to turn the body), standing `standoff`
/// behind the centre before pushing. When the straight way to the standing point crosses the
/// body (radius `clearance`), it circles around the body instead. Points are kept inside
/// `[low, high]` on both axes. `pushing` carries the push phase from step to step, so that
/// a push, once started, goes on while the disc stays roughly on the push line.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_target(
    pushing: &mut bool,
    agent: v2::V,
    center: v2::V,
    dir: v2::V,
    offset: f64,
    standoff: f64,
    clearance: f64,
    depth: f64,
    bounds: [f64; 2],
) -> v2::V {
    use v2::*;
    let clamp = |p: V| {
        [
            p[0].clamp(bounds[0], bounds[1]),
            p[1].clamp(bounds[0], bounds[1]),
        ]
    };
    let side_axis = perp(dir);
    let behind = clamp(add(
        sub(center, scale(dir, standoff)),
        scale(side_axis, offset),
    ));
    let rel = sub(agent, center);
    let along = dot(rel, dir);
    let lateral = dot(rel, side_axis) - offset;
    let behind_along = dot(sub(behind, center), dir);
    let tolerance = if *pushing { 35.0 } else { 15.0 };
    *pushing = (along < behind_along + 20.0 || *pushing && along < 0.0)
        && lateral.abs() < tolerance
        || norm(sub(agent, behind)) < 10.0;
    if *pushing {
        // Push through: aim `depth` past the centre along the push line.
        return clamp(add(
            add(center, scale(dir, depth)),
            scale(side_axis, offset),
        ));
    }
    if dist_to_segment(center, agent, behind) < clearance {
        // The straight way crosses the body: circle around it toward the standing point.
        let radius = clearance + 15.0;
        let angle_of = |p: V| (p[1] - center[1]).atan2(p[0] - center[0]);
        let (a, b) = (angle_of(agent), angle_of(behind));
        let diff =
            (b - a + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
        let next = a + diff.clamp(-0.6, 0.6);
        return clamp(add(center, scale([next.cos(), next.sin()], radius)));
    }
    behind
}
