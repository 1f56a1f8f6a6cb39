//! Scripted data-collection policies: a smooth random walk over the action space and, per
//! scene, a goal-directed heuristic that makes contact and pushes. All are seeded and
//! deterministic.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::spec::{Action, ActionSpace, Observation};

/// A policy maps observations to actions. `reset` starts a new episode.
pub trait Policy: Send {
    fn reset(&mut self, seed: u64);
    fn act(&mut self, obs: &Observation) -> Action;
}

/// The scripted policies every built-in scene provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Smooth random walk over the action space.
    RandomWalk,
    /// Goal-directed: approaches the object from behind and pushes it toward the goal.
    Heuristic,
    /// What a person dragging the target does: jumps to a random action anywhere in the action
    /// box and holds it for a few steps, again and again.
    Jump,
    /// Holding still: the scene's rest action (push-t: the agent's own position; arm-push: zero
    /// joint velocity), taken when the policy starts, repeated.
    Hold,
    /// Slow circling: the action goes round a circle in the action box at a steady rate.
    Circle,
    /// The built-in mixture of all of the above, switching every few seconds
    /// ([`PolicyMix::user_like`](crate::policy_mix::PolicyMix::user_like)): how people drive the
    /// app.
    UserLike,
}

impl PolicyKind {
    pub const ALL: [Self; 6] = [
        Self::RandomWalk,
        Self::Heuristic,
        Self::Jump,
        Self::Hold,
        Self::Circle,
        Self::UserLike,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::RandomWalk => "random-walk",
            Self::Heuristic => "heuristic",
            Self::Jump => "jump",
            Self::Hold => "hold",
            Self::Circle => "circle",
            Self::UserLike => "user-like",
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
    start: RestAction,
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
    pub(crate) fn new(space: &ActionSpace, kick: f64, momentum: f64, start: RestAction) -> Self {
        let (low, high) = action_box(space);
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

/// The scene's rest action for an observation (push-t: the agent's position; arm-push: zero
/// joint velocities).
pub(crate) type RestAction = fn(&Observation) -> Vec<f32>;

/// [`PolicyKind::Jump`] in a scene with this action box.
pub(crate) fn jump(space: &ActionSpace, rest: RestAction) -> Box<dyn Policy> {
    Box::new(Jump {
        shape: Shape::new(space, rest),
        rng: ChaCha8Rng::seed_from_u64(0),
        target: None,
        left: 0,
    })
}

/// [`PolicyKind::Hold`] in a scene with this rest action.
pub(crate) fn hold(space: &ActionSpace, rest: RestAction) -> Box<dyn Policy> {
    Box::new(Hold {
        shape: Shape::new(space, rest),
        action: None,
    })
}

/// [`PolicyKind::Circle`] in a scene with this action box.
pub(crate) fn circle(space: &ActionSpace, rest: RestAction) -> Box<dyn Policy> {
    Box::new(Circle {
        shape: Shape::new(space, rest),
        rng: ChaCha8Rng::seed_from_u64(0),
        orbit: None,
    })
}

/// What the generic policies know of a scene.
#[derive(Clone)]
struct Shape {
    low: Vec<f32>,
    high: Vec<f32>,
    discrete: bool,
    rest: RestAction,
}

impl Shape {
    fn new(space: &ActionSpace, rest: RestAction) -> Self {
        let (low, high) = action_box(space);
        Self {
            low,
            high,
            discrete: matches!(space, ActionSpace::Discrete { .. }),
            rest,
        }
    }

    fn action(&self, values: &[f64]) -> Action {
        if self.discrete {
            let id = values.first().copied().unwrap_or(0.0).round().max(0.0);
            Action::Discrete((id as u32).min(self.high[0] as u32))
        } else {
            Action::Continuous(
                values
                    .iter()
                    .zip(self.low.iter().zip(&self.high))
                    .map(|(&v, (&lo, &hi))| (v as f32).clamp(lo, hi))
                    .collect(),
            )
        }
    }
}

/// See [`PolicyKind::Jump`]: a uniform point of the action box (5% margin), held for 3 to 12
/// steps.
struct Jump {
    shape: Shape,
    rng: ChaCha8Rng,
    target: Option<Vec<f64>>,
    left: u32,
}

impl Policy for Jump {
    fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6a75_6d70);
        self.target = None;
        self.left = 0;
    }

    fn act(&mut self, _obs: &Observation) -> Action {
        if self.left == 0 || self.target.is_none() {
            let target = self
                .shape
                .low
                .iter()
                .zip(&self.shape.high)
                .map(|(&lo, &hi)| {
                    let margin = 0.05 * f64::from(hi - lo);
                    self.rng
                        .random_range(f64::from(lo) + margin..=f64::from(hi) - margin)
                })
                .collect();
            self.target = Some(target);
            self.left = self.rng.random_range(3..=12);
        }
        self.left -= 1;
        self.shape
            .action(self.target.as_deref().unwrap_or_default())
    }
}

/// See [`PolicyKind::Hold`].
struct Hold {
    shape: Shape,
    action: Option<Vec<f32>>,
}

impl Policy for Hold {
    fn reset(&mut self, _seed: u64) {
        self.action = None;
    }

    fn act(&mut self, obs: &Observation) -> Action {
        let rest = self.action.get_or_insert_with(|| (self.shape.rest)(obs));
        let values: Vec<f64> = rest.iter().map(|&v| f64::from(v)).collect();
        self.shape.action(&values)
    }
}

/// See [`PolicyKind::Circle`]: a circle in the first two action components (a discrete or 1-D
/// space swings back and forth), its radius 10-30% of the range, a turn every 30-80 steps in
/// either direction, starting at the point nearest the rest action.
struct Circle {
    shape: Shape,
    rng: ChaCha8Rng,
    /// Centre, radius per component, angle and angular step.
    orbit: Option<(Vec<f64>, Vec<f64>, f64, f64)>,
}

impl Policy for Circle {
    fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6369_7263);
        self.orbit = None;
    }

    fn act(&mut self, obs: &Observation) -> Action {
        let (low, high) = (&self.shape.low, &self.shape.high);
        let (center, radius, angle, rate) = match &mut self.orbit {
            Some(o) => o,
            None => {
                let rest = (self.shape.rest)(obs);
                let fraction = self.rng.random_range(0.1..0.3);
                let radius: Vec<f64> = low
                    .iter()
                    .zip(high)
                    .map(|(&lo, &hi)| fraction * f64::from(hi - lo))
                    .collect();
                let angle = self.rng.random_range(0.0..std::f64::consts::TAU);
                let period = self.rng.random_range(30.0..80.0);
                let sign = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
                // The centre sits so that the circle passes through the rest action, kept
                // inside the box.
                let offset = [angle.cos(), angle.sin()];
                let center = (0..low.len())
                    .map(|i| {
                        let (lo, hi) = (f64::from(low[i]), f64::from(high[i]));
                        let start = rest.get(i).map_or((lo + hi) / 2.0, |&v| f64::from(v));
                        let c = start - radius[i] * offset.get(i).copied().unwrap_or(0.0);
                        c.clamp(lo + radius[i], hi - radius[i])
                    })
                    .collect();
                self.orbit
                    .insert((center, radius, angle, sign * std::f64::consts::TAU / period))
            }
        };
        *angle += *rate;
        let (s, c) = angle.sin_cos();
        let values: Vec<f64> = center
            .iter()
            .enumerate()
            .map(|(i, &m)| match i {
                0 => m + radius[0] * c,
                1 => m + radius[1] * s,
                _ => m,
            })
            .collect();
        self.shape.action(&values)
    }
}

/// The box the policies move in: a continuous space's bounds, or `[0, n - 1]` over a discrete
/// space's `n` ids.
fn action_box(space: &ActionSpace) -> (Vec<f32>, Vec<f32>) {
    match space {
        ActionSpace::Continuous { low, high, .. } => (low.clone(), high.clone()),
        ActionSpace::Discrete { names } => (vec![0.0], vec![names.len() as f32 - 1.0]),
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
