//! PushT as gym-pusht 0.1.x defines it: a kinematic disc, PD-controlled toward the target
//! position given as the action, pushes a T-shaped block onto a goal pose.
//!
//! Facts kept from the original (pymunk) implementation:
//! - 100 Hz physics, 10 control steps per second, `v += (kp (target - x) - kd v) dt` before each
//!   physics substep; the agent is kinematic (it pushes, nothing pushes it, it passes walls).
//! - The block has mass 1; pymunk's moment is computed for the bar polygon twice (an original
//!   quirk, kept) about the body origin; its centre of gravity is the mean of the two parts'
//!   centroids.
//! - pymunk's `space.damping = 0` removes all body velocity at every substep, so the block moves
//!   only while it is pushed and stops as soon as contact ends. Here the block's velocity is
//!   zeroed before each substep for the same effect.
//! - Contacts are frictionless (the original sets `friction` on bodies, where pymunk ignores it).
//! - coverage = area(block ∩ goal) / area(goal); reward = clip(coverage / 0.95, 0, 1);
//!   success = coverage > 0.95.

use std::path::Path;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rapier2d::prelude::*;
use serde::Deserialize;

use crate::config::{self, Check, FrameConfig, MAX_EXTENT, WallsConfig, WorldConfig};
use crate::geometry::{Pose2, convex_intersection_area, polygon_area, wrap_two_pi};
use crate::physics::Physics;
use crate::policy::{self, Policy, PolicyKind, RandomWalk, RestAction, push_target};
use crate::policy_mix::PolicyMix;
use crate::render::Canvas;
use crate::spec::{
    Action, ActionSpace, EnvironmentState, ObjectSpec, Observation, Rgb, SceneSpec, StateLayout,
};
use crate::{Scene, SceneError};

/// The contents of a push-t scene file (see `scenes/data/push-t.toml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushTConfig {
    pub kind: String,
    pub name: String,
    pub fps: f64,
    pub frame: FrameConfig,
    pub world: WorldConfig,
    pub walls: WallsConfig,
    pub agent: AgentConfig,
    pub block: BlockConfig,
    pub goal: GoalConfig,
    pub reset: ResetConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub radius: f64,
    pub kp: f64,
    pub kd: f64,
    pub friction: f64,
    pub color: Rgb,
    /// The lighter disc drawn inside the agent, as pymunk's debug draw does.
    pub inner_color: Rgb,
    pub inner_radius: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    pub scale: f64,
    pub length: f64,
    pub mass: f64,
    pub friction: f64,
    pub color: Rgb,
    /// Fill of the two parts; `color` outlines them, as pymunk's debug draw does.
    pub fill_color: Rgb,
    pub outline_width: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalConfig {
    pub pose: [f64; 3],
    pub color: Rgb,
    pub success_threshold: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetConfig {
    pub agent_x: [f64; 2],
    pub agent_y: [f64; 2],
    pub block_x: [f64; 2],
    pub block_y: [f64; 2],
}

impl PushTConfig {
    /// Parses and validates a push-t scene file; `file` names it in errors.
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, SceneError> {
        config::parse_checked(file, text, Self::validate)
    }

    fn validate(&self, file: &Path) -> Result<(), SceneError> {
        let c = Check { file };
        c.kind(&self.kind, "push-t")?;
        c.world(self.fps, &self.frame, &self.world, &self.walls)?;
        c.extent("agent.radius", self.agent.radius)?;
        c.in_range(
            "agent.inner_radius",
            self.agent.inner_radius,
            0.0,
            self.agent.radius,
        )?;
        c.in_range(
            "block.outline_width",
            self.block.outline_width,
            0.0,
            MAX_EXTENT,
        )?;
        c.non_negative("agent.kp", self.agent.kp)?;
        c.non_negative("agent.kd", self.agent.kd)?;
        c.non_negative("agent.friction", self.agent.friction)?;
        c.extent("block.scale", self.block.scale)?;
        if !(self.block.length > 1.0 && self.block.length * self.block.scale <= MAX_EXTENT) {
            return Err(SceneError::Invalid {
                file: file.to_owned(),
                field: "block.length".into(),
                expected: format!(
                    "a number > 1 (the bar must be wider than the stem), at most {} block.scale",
                    MAX_EXTENT
                ),
                found: self.block.length.to_string(),
            });
        }
        c.positive("block.mass", self.block.mass)?;
        c.non_negative("block.friction", self.block.friction)?;
        for (i, v) in self.goal.pose.iter().enumerate() {
            c.coordinate(&format!("goal.pose[{i}]"), *v)?;
        }
        c.in_range(
            "goal.success_threshold",
            self.goal.success_threshold,
            1e-6,
            1.0,
        )?;
        let size = self.world.size;
        for (field, r) in [
            ("reset.agent_x", self.reset.agent_x),
            ("reset.agent_y", self.reset.agent_y),
            ("reset.block_x", self.reset.block_x),
            ("reset.block_y", self.reset.block_y),
        ] {
            c.interval(field, r)?;
            c.in_range(field, r[0], 0.0, size)?;
            c.in_range(field, r[1], 0.0, size)?;
        }
        Ok(())
    }

    /// The T's two parts (bar, stem) as polygons in the block's body frame.
    pub fn tee_parts(&self) -> [[[f64; 2]; 4]; 2] {
        let s = self.block.scale;
        let l = self.block.length;
        [
            [
                [-l * s / 2.0, s],
                [l * s / 2.0, s],
                [l * s / 2.0, 0.0],
                [-l * s / 2.0, 0.0],
            ],
            [
                [-s / 2.0, s],
                [-s / 2.0, l * s],
                [s / 2.0, l * s],
                [s / 2.0, s],
            ],
        ]
    }

    /// The T's eight keypoints in the block's body frame, in gym-pusht's order: pymunk
    /// stores each part's vertices as its convex hull, counter-clockwise (y up) from the
    /// lowest x (then lowest y), so `get_keypoints` yields the bar's then the stem's in that
    /// order, not as the parts were given.
    pub fn tee_keypoints(&self) -> Vec<[f64; 2]> {
        let s = self.block.scale;
        let l = self.block.length;
        vec![
            [-l * s / 2.0, 0.0],
            [l * s / 2.0, 0.0],
            [l * s / 2.0, s],
            [-l * s / 2.0, s],
            [-s / 2.0, s],
            [s / 2.0, s],
            [s / 2.0, l * s],
            [-s / 2.0, l * s],
        ]
    }

    /// The farthest the agent can move in one control step (world units), from the PD law as
    /// `step` integrates it: per axis, a substep sets `v += dt (kp e - kd v)` then moves by
    /// `v dt`, so a control step's displacement and end velocity are linear in the axis's
    /// target error `e` and start velocity `v`: `d = A e + B v`, `v' = C e + D v`. With
    /// `|e| <= size` (target and agent both in the world), every reachable velocity obeys
    /// `|v| <= V = C size / (1 - |D|)`, so `|d| <= |A| size + |B| V` per axis, times √2 for
    /// both axes. Walls and the block only stop the agent.
    pub fn max_agent_step(&self) -> f64 {
        let substeps = (self.world.sim_hz / self.fps).round().max(1.0) as u32;
        let dt = 1.0 / (self.fps * f64::from(substeps));
        let (kp, kd) = (self.agent.kp, self.agent.kd);
        let step = |mut e: f64, mut v: f64| {
            let mut d = 0.0;
            for _ in 0..substeps {
                v += dt * (kp * e - kd * v);
                e -= v * dt;
                d += v * dt;
            }
            (d, v)
        };
        let (a, c) = step(1.0, 0.0);
        let (b, dv) = step(0.0, 1.0);
        let size = self.world.size;
        let v_max = if dv.abs() < 1.0 {
            c.abs() * size / (1.0 - dv.abs())
        } else {
            f64::INFINITY
        };
        (a.abs() * size + b.abs() * v_max) * std::f64::consts::SQRT_2
    }

    pub fn spec(&self) -> SceneSpec {
        let size = self.world.size as f32;
        let agent_step = self.max_agent_step() * f64::from(self.frame.width) / self.world.size;
        SceneSpec {
            name: self.name.clone(),
            action_space: ActionSpace::Continuous {
                low: vec![0.0, 0.0],
                high: vec![size, size],
                names: vec!["target_x".into(), "target_y".into()],
            },
            state_names: ["agent_x", "agent_y", "block_x", "block_y", "block_angle"]
                .map(String::from)
                .to_vec(),
            fps: self.fps,
            frame_width: self.frame.width,
            frame_height: self.frame.height,
            background: self.world.background,
            objects: vec![
                ObjectSpec::new("goal", vec![self.goal.color]),
                ObjectSpec {
                    rigid: true,
                    oriented: true,
                    // Pushed by the kinematic agent, with its velocity zeroed every substep
                    // (pymunk's damping 0): a frictionless inelastic push moves its centre no
                    // faster than the pushing point, so the agent's bound holds for it too.
                    max_step_px: Some(agent_step),
                    ..ObjectSpec::new("block", vec![self.block.fill_color, self.block.color])
                },
                ObjectSpec {
                    rigid: true,
                    max_step_px: Some(agent_step),
                    ..ObjectSpec::new("agent", vec![self.agent.color, self.agent.inner_color])
                },
                ObjectSpec::new("wall", vec![self.walls.color]),
            ],
            // As gym-pusht observes it and lerobot's pusht datasets store it: the pointer's
            // position, and the block's keypoints (`pusht_keypoints`).
            layout: Some(StateLayout {
                robot: vec![0, 1],
                environment: EnvironmentState::Keypoints {
                    pose: [2, 3, 4],
                    points: self.tee_keypoints(),
                },
            }),
            // lerobot/pusht's task text and robot type.
            task: Some("Push the T-shaped block onto the T-shaped target.".into()),
            robot_type: Some("unknown".into()),
        }
    }
}

/// The PushT scene.
#[derive(Clone)]
pub struct PushT {
    cfg: PushTConfig,
    spec: SceneSpec,
    substeps: u32,
    physics: Physics,
    agent: RigidBodyHandle,
    block: RigidBodyHandle,
    /// The agent's velocity as the PD controller integrates it (pixels / s).
    agent_vel: [f64; 2],
    goal_area: f64,
}

impl std::fmt::Debug for PushT {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushT")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl PushT {
    /// A scene at the configuration's default start (agent (256, 400), block (256, 300), as
    /// gym-pusht before its first reset). Call `reset` to start a seeded episode.
    pub fn new(cfg: PushTConfig) -> Self {
        let spec = cfg.spec();
        // Validated when the file loaded.
        let substeps = (cfg.world.sim_hz / cfg.fps).round() as u32;
        let goal_area = cfg.tee_parts().iter().map(|p| polygon_area(p)).sum();
        let (physics, agent, block) =
            build_world(&cfg, substeps, [256.0, 400.0, 256.0, 300.0, 0.0]);
        Self {
            cfg,
            spec,
            substeps,
            physics,
            agent,
            block,
            agent_vel: [0.0; 2],
            goal_area,
        }
    }

    pub fn config(&self) -> &PushTConfig {
        &self.cfg
    }

    /// `[agent_x, agent_y, block_x, block_y, block_angle]`, angle in `[0, 2π)`.
    pub fn state(&self) -> Vec<f64> {
        let a = self.physics.body(self.agent).translation();
        let b = self.physics.body(self.block);
        let p = b.translation();
        vec![
            a.x as f64,
            a.y as f64,
            p.x as f64,
            p.y as f64,
            wrap_two_pi(b.rotation().angle() as f64),
        ]
    }

    fn block_pose(&self) -> Pose2 {
        let b = self.physics.body(self.block);
        Pose2 {
            x: b.translation().x as f64,
            y: b.translation().y as f64,
            angle: b.rotation().angle() as f64,
        }
    }

    fn goal_pose(&self) -> Pose2 {
        let [x, y, angle] = self.cfg.goal.pose;
        Pose2 { x, y, angle }
    }

    /// Fraction of the goal T covered by the block, in `[0, 1]`.
    pub fn coverage(&self) -> f64 {
        let parts = self.cfg.tee_parts();
        let (block, goal) = (self.block_pose(), self.goal_pose());
        let mut area = 0.0;
        for b in &parts {
            let bw = block.apply_all(b);
            for g in &parts {
                area += convex_intersection_area(&bw, &goal.apply_all(g));
            }
        }
        (area / self.goal_area).clamp(0.0, 1.0)
    }

    /// The agent's velocity as the PD controller integrates it.
    pub fn agent_velocity(&self) -> [f64; 2] {
        self.agent_vel
    }

    fn render(&self) -> crate::Frame {
        let cfg = &self.cfg;
        let mut canvas = Canvas::for_scene(&cfg.frame, &cfg.world);
        let to_f32 = |pts: Vec<[f64; 2]>| -> Vec<[f32; 2]> {
            pts.iter().map(|p| [p[0] as f32, p[1] as f32]).collect()
        };
        // Drawing order as gym-pusht: goal, then the block and the agent, walls last.
        let (goal, block) = (self.goal_pose(), self.block_pose());
        for part in cfg.tee_parts() {
            canvas.fill_polygon(&to_f32(goal.apply_all(&part)), cfg.goal.color);
        }
        for part in cfg.tee_parts() {
            let outline = to_f32(block.apply_all(&part));
            canvas.fill_polygon(&outline, cfg.block.fill_color);
            for i in 0..outline.len() {
                canvas.stroke_segment(
                    outline[i],
                    outline[(i + 1) % outline.len()],
                    cfg.block.outline_width as f32,
                    cfg.block.color,
                );
            }
        }
        let a = self.physics.body(self.agent).translation();
        canvas.fill_circle([a.x, a.y], cfg.agent.radius as f32, cfg.agent.color);
        canvas.fill_circle(
            [a.x, a.y],
            cfg.agent.inner_radius as f32,
            cfg.agent.inner_color,
        );
        for [a, b] in &cfg.walls.segments {
            canvas.stroke_segment(
                [a[0] as f32, a[1] as f32],
                [b[0] as f32, b[1] as f32],
                2.0 * cfg.walls.radius as f32,
                cfg.walls.color,
            );
        }
        canvas.into_frame()
    }
}

/// Builds a fresh physics world at `state` (everything at rest).
fn build_world(
    cfg: &PushTConfig,
    substeps: u32,
    state: [f64; 5],
) -> (Physics, RigidBodyHandle, RigidBodyHandle) {
    let dt = 1.0 / (cfg.fps * substeps as f64);
    let mut physics = Physics::new(dt as f32, cfg.block.scale as f32);
    let v = |p: [f64; 2]| Vector::new(p[0] as f32, p[1] as f32);

    let walls = cfg
        .walls
        .segments
        .iter()
        .map(|[a, b]| {
            ColliderBuilder::capsule_from_endpoints(v(*a), v(*b), cfg.walls.radius as f32)
                .friction(0.0)
                .restitution(0.0)
                .build()
        })
        .collect();
    physics.insert_body(RigidBodyBuilder::fixed(), walls);

    let agent = physics.insert_body(
        RigidBodyBuilder::kinematic_velocity_based().translation(v([state[0], state[1]])),
        vec![
            ColliderBuilder::ball(cfg.agent.radius as f32)
                .friction(cfg.agent.friction as f32)
                .restitution(0.0)
                .build(),
        ],
    );

    // Mass properties as pymunk gets them (see the module docs).
    let [bar, stem] = cfg.tee_parts();
    let s = cfg.block.scale;
    let l = cfg.block.length;
    let bar_w = l * s;
    let moment_bar =
        cfg.block.mass * (bar_w * bar_w + s * s) / 12.0 + cfg.block.mass * (s / 2.0).powi(2);
    let com = tee_center_of_gravity(cfg);
    let part = |p: &[[f64; 2]; 4]| {
        let pts: Vec<Vector> = p.iter().map(|q| v(*q)).collect();
        ColliderBuilder::convex_hull(&pts)
            .unwrap_or_else(|| unreachable!("a validated T part is a non-degenerate rectangle"))
            .density(0.0)
            .friction(cfg.block.friction as f32)
            .restitution(0.0)
            .build()
    };
    let block = physics.insert_body(
        RigidBodyBuilder::dynamic()
            .translation(v([state[2], state[3]]))
            .rotation(state[4] as f32)
            .additional_mass_properties(MassProperties::new(
                v(com),
                cfg.block.mass as f32,
                (2.0 * moment_bar) as f32,
            ))
            .can_sleep(false),
        vec![part(&bar), part(&stem)],
    );
    (physics, agent, block)
}

impl Scene for PushT {
    fn spec(&self) -> &SceneSpec {
        &self.spec
    }

    fn reset(&mut self, seed: u64) -> Observation {
        let r = &self.cfg.reset;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal: f64 = rng.sample(StandardNormal);
        let state = [
            rng.random_range(r.agent_x[0]..r.agent_x[1]),
            rng.random_range(r.agent_y[0]..r.agent_y[1]),
            rng.random_range(r.block_x[0]..r.block_x[1]),
            rng.random_range(r.block_y[0]..r.block_y[1]),
            // As gym-pusht: randn * 2π - π.
            normal * std::f64::consts::TAU - std::f64::consts::PI,
        ];
        self.set_state(legacy_block_origin(&self.cfg, state));
        self.observe()
    }

    fn reset_to(&mut self, state: &[f64]) -> Result<Observation, SceneError> {
        self.spec.check_state(state)?;
        self.set_state([state[0], state[1], state[2], state[3], state[4]]);
        Ok(self.observe())
    }

    fn step(&mut self, action: &Action) -> Result<Observation, SceneError> {
        self.spec.action_space.check(&self.spec.name, action)?;
        let Action::Continuous(target) = action else {
            unreachable!("checked against the continuous action space above")
        };
        let size = self.cfg.world.size;
        let target = [
            (target[0] as f64).clamp(0.0, size),
            (target[1] as f64).clamp(0.0, size),
        ];
        let dt = 1.0 / (self.cfg.fps * self.substeps as f64);
        let (kp, kd) = (self.cfg.agent.kp, self.cfg.agent.kd);
        for _ in 0..self.substeps {
            let pos = self.physics.body(self.agent).translation();
            let pos = [pos.x as f64, pos.y as f64];
            for i in 0..2 {
                let accel = kp * (target[i] - pos[i]) + kd * (0.0 - self.agent_vel[i]);
                self.agent_vel[i] += accel * dt;
            }
            let vel = Vector::new(self.agent_vel[0] as f32, self.agent_vel[1] as f32);
            self.physics.body_mut(self.agent).set_linvel(vel, true);
            let block = self.physics.body_mut(self.block);
            block.set_linvel(Vector::ZERO, true);
            block.set_angvel(0.0, true);
            self.physics.step();
        }
        Ok(self.observe())
    }

    fn observe(&self) -> Observation {
        let coverage = self.coverage();
        let threshold = self.cfg.goal.success_threshold;
        Observation {
            frame: self.render(),
            state: self.state(),
            reward: (coverage / threshold).clamp(0.0, 1.0),
            success: coverage > threshold,
        }
    }

    fn boxed_clone(&self) -> Box<dyn Scene> {
        Box::new(self.clone())
    }

    fn scripted_policy(&self, kind: PolicyKind) -> Box<dyn Policy> {
        // At rest, the target is where the agent is.
        let rest: RestAction = |obs| vec![obs.state[0] as f32, obs.state[1] as f32];
        let space = &self.spec.action_space;
        match kind {
            // Kicks of 1.5% of the world per step, smoothed over ~10 steps; starts where the
            // agent is.
            PolicyKind::RandomWalk => Box::new(RandomWalk::new(space, 0.015, 0.9, rest)),
            PolicyKind::Heuristic => Box::new(PushTHeuristic::new(self.cfg.clone())),
            PolicyKind::Jump => policy::jump(space, rest),
            PolicyKind::Hold => policy::hold(space, rest),
            PolicyKind::Circle => policy::circle(space, rest),
            PolicyKind::UserLike => PolicyMix::user_like().policy(self),
        }
    }
}

impl PushT {
    /// Rebuilds the world at `state`, at rest, then runs one physics substep as gym-pusht's
    /// `_set_state` does (it separates an agent that starts inside the block).
    fn set_state(&mut self, state: [f64; 5]) {
        let (physics, agent, block) = build_world(&self.cfg, self.substeps, state);
        self.physics = physics;
        self.agent = agent;
        self.block = block;
        self.agent_vel = [0.0; 2];
        self.physics.step();
    }
}

/// gym-pusht's seeded reset sets the block's position and then its angle; pymunk rotates
/// about the centre of gravity, so the body origin ends up at `p - R(θ) cog` with
/// `p = position + cog`. Seeded resets keep that, so their start distribution is the
/// original's; `reset_to` places the origin exactly where the state says.
fn legacy_block_origin(cfg: &PushTConfig, state: [f64; 5]) -> [f64; 5] {
    let cog = tee_center_of_gravity(cfg);
    let (s, c) = state[4].sin_cos();
    let rotated = [c * cog[0] - s * cog[1], s * cog[0] + c * cog[1]];
    [
        state[0],
        state[1],
        state[2] + cog[0] - rotated[0],
        state[3] + cog[1] - rotated[1],
        state[4],
    ]
}

/// The mean of the two parts' centroids (not area-weighted: as the original computes it).
fn tee_center_of_gravity(cfg: &PushTConfig) -> [f64; 2] {
    let centroid = |p: &[[f64; 2]; 4]| {
        [
            p.iter().map(|q| q[0]).sum::<f64>() / 4.0,
            p.iter().map(|q| q[1]).sum::<f64>() / 4.0,
        ]
    };
    let [bar, stem] = cfg.tee_parts();
    let (c1, c2) = (centroid(&bar), centroid(&stem));
    [(c1[0] + c2[0]) / 2.0, (c1[1] + c2[1]) / 2.0]
}

/// Goal-directed PushT policy: stands behind the T relative to the goal and pushes it there,
/// pushing off-centre to turn it; near the goal position it pushes a bar end to fix the angle.
/// Per-episode speed and per-step jitter come from the seed, so episodes differ.
pub struct PushTHeuristic {
    cfg: PushTConfig,
    rng: ChaCha8Rng,
    max_step: f64,
    jitter: f64,
    pushing: bool,
}

impl std::fmt::Debug for PushTHeuristic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTHeuristic")
            .field("max_step", &self.max_step)
            .finish_non_exhaustive()
    }
}

impl PushTHeuristic {
    pub fn new(cfg: PushTConfig) -> Self {
        Self {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(0),
            max_step: 50.0,
            jitter: 2.0,
            pushing: false,
        }
    }
}

impl crate::policy::Policy for PushTHeuristic {
    fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7075_7368);
        self.max_step = self.rng.random_range(35.0..65.0);
        self.jitter = self.rng.random_range(0.0..4.0);
        self.pushing = false;
    }

    fn act(&mut self, obs: &Observation) -> Action {
        use crate::policy::v2::*;
        let s = &obs.state;
        let agent = [s[0], s[1]];
        let cog = tee_center_of_gravity(&self.cfg);
        let center = add([s[2], s[3]], rotate(cog, s[4]));
        let [gx, gy, ga] = self.cfg.goal.pose;
        let goal_center = add([gx, gy], rotate(cog, ga));
        let error = sub(goal_center, center);
        let dist = norm(error);
        let dtheta = (ga - s[4] + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
            - std::f64::consts::PI;
        let bar_half = self.cfg.block.length * self.cfg.block.scale / 2.0;
        let reach = (bar_half.powi(2) + cog[1].powi(2)).sqrt();
        let r = self.cfg.agent.radius;
        let bounds = [0.0, self.cfg.world.size];
        let target = if dist > 12.0 {
            let dir = scale(error, 1.0 / dist);
            // Off-centre contact makes torque -offset (see the docs of `push_target`'s callers).
            let offset = (-25.0 * dtheta).clamp(-25.0, 25.0);
            push_target(
                &mut self.pushing,
                agent,
                center,
                dir,
                offset,
                reach + r + 5.0,
                reach + r,
                dist.clamp(10.0, 40.0),
                bounds,
            )
        } else {
            // Turn in place: push along the bar from one end, on the bar's centre line.
            let sign = if dtheta >= 0.0 { 1.0 } else { -1.0 };
            let dir = rotate([sign, 0.0], s[4]);
            let bar_line = self.cfg.block.scale / 2.0 - cog[1];
            push_target(
                &mut self.pushing,
                agent,
                center,
                dir,
                sign * bar_line,
                bar_half + r + 5.0,
                reach + r,
                15.0,
                bounds,
            )
        };
        let jitter = [
            self.jitter * crate::policy::normal(&mut self.rng),
            self.jitter * crate::policy::normal(&mut self.rng),
        ];
        let next = add(step_toward(agent, target, self.max_step), jitter);
        let size = self.cfg.world.size;
        Action::Continuous(vec![
            next[0].clamp(0.0, size) as f32,
            next[1].clamp(0.0, size) as f32,
        ])
    }
}
