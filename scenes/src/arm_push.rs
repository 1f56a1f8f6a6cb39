//! arm-push: a planar arm of revolute links (rapier2d impulse joints with limits and velocity
//! motors), seen from above, pushes a puck into a circular goal region. Actions are joint
//! velocities (rad/s); the state is the joint angles and the puck position.

use std::path::Path;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rapier2d::prelude::*;
use serde::Deserialize;

use crate::config::{self, Check, FrameConfig, WallsConfig, WorldConfig};
use crate::physics::Physics;
use crate::policy::{self, Policy, PolicyKind, RandomWalk, RestAction, push_target, v2};
use crate::policy_mix::PolicyMix;
use crate::render::Canvas;
use crate::spec::{
    Action, ActionSpace, EnvironmentState, ObjectSpec, Observation, Rgb, SceneSpec, StateLayout,
};
use crate::{Scene, SceneError};

/// The contents of an arm-push scene file (see `scenes/data/arm-push.toml`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmPushConfig {
    pub kind: String,
    pub name: String,
    pub fps: f64,
    pub frame: FrameConfig,
    pub world: WorldConfig,
    pub walls: WallsConfig,
    pub base: BaseConfig,
    pub links: Vec<LinkConfig>,
    pub motor: MotorConfig,
    pub puck: PuckConfig,
    pub goal: GoalConfig,
    pub reset: ResetConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseConfig {
    pub position: [f64; 2],
    pub half_size: f64,
    pub color: Rgb,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    pub length: f64,
    pub width: f64,
    pub density: f64,
    pub limits: [f64; 2],
    pub max_velocity: f64,
    pub color: Rgb,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotorConfig {
    pub gain: f64,
    pub max_force: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PuckConfig {
    pub radius: f64,
    pub mass: f64,
    pub linear_damping: f64,
    pub color: Rgb,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalConfig {
    pub position: [f64; 2],
    pub radius: f64,
    pub color: Rgb,
    pub reward_distance: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetConfig {
    pub joints: Vec<[f64; 2]>,
    pub puck_x: [f64; 2],
    pub puck_y: [f64; 2],
}

impl ArmPushConfig {
    /// Parses and validates an arm-push scene file; `file` names it in errors.
    pub fn from_toml(file: &Path, text: &str) -> Result<Self, SceneError> {
        config::parse_checked(file, text, Self::validate)
    }

    fn validate(&self, file: &Path) -> Result<(), SceneError> {
        let c = Check { file };
        c.kind(&self.kind, "arm-push")?;
        c.world(self.fps, &self.frame, &self.world, &self.walls)?;
        c.extent("base.half_size", self.base.half_size)?;
        for (i, v) in self.base.position.iter().enumerate() {
            c.coordinate(&format!("base.position[{i}]"), *v)?;
        }
        for (i, v) in self.goal.position.iter().enumerate() {
            c.coordinate(&format!("goal.position[{i}]"), *v)?;
        }
        if !(2..=3).contains(&self.links.len()) {
            return Err(SceneError::Invalid {
                file: file.to_owned(),
                field: "links".into(),
                expected: "2 or 3 links".into(),
                found: format!("{} links", self.links.len()),
            });
        }
        for (i, link) in self.links.iter().enumerate() {
            c.extent(&format!("links[{i}].length"), link.length)?;
            c.extent(&format!("links[{i}].width"), link.width)?;
            c.positive(&format!("links[{i}].density"), link.density)?;
            c.positive(&format!("links[{i}].max_velocity"), link.max_velocity)?;
            c.interval(&format!("links[{i}].limits"), link.limits)?;
            c.in_range(&format!("links[{i}].limits[0]"), link.limits[0], -3.1, 0.0)?;
            c.in_range(&format!("links[{i}].limits[1]"), link.limits[1], 0.0, 3.1)?;
        }
        c.positive("motor.gain", self.motor.gain)?;
        c.positive("motor.max_force", self.motor.max_force)?;
        c.extent("puck.radius", self.puck.radius)?;
        c.positive("puck.mass", self.puck.mass)?;
        c.non_negative("puck.linear_damping", self.puck.linear_damping)?;
        c.extent("goal.radius", self.goal.radius)?;
        c.extent("goal.reward_distance", self.goal.reward_distance)?;
        if self.goal.radius <= self.puck.radius {
            return Err(SceneError::Invalid {
                file: file.to_owned(),
                field: "goal.radius".into(),
                expected: format!("more than puck.radius ({})", self.puck.radius),
                found: self.goal.radius.to_string(),
            });
        }
        if self.reset.joints.len() != self.links.len() {
            return Err(SceneError::Invalid {
                file: file.to_owned(),
                field: "reset.joints".into(),
                expected: format!("one range per link ({})", self.links.len()),
                found: format!("{} ranges", self.reset.joints.len()),
            });
        }
        for (i, (r, link)) in self.reset.joints.iter().zip(&self.links).enumerate() {
            let field = format!("reset.joints[{i}]");
            c.interval(&field, *r)?;
            c.in_range(&field, r[0], link.limits[0], link.limits[1])?;
            c.in_range(&field, r[1], link.limits[0], link.limits[1])?;
        }
        let size = self.world.size;
        for (field, r) in [
            ("reset.puck_x", self.reset.puck_x),
            ("reset.puck_y", self.reset.puck_y),
        ] {
            c.interval(field, r)?;
            c.in_range(field, r[0], 0.0, size)?;
            c.in_range(field, r[1], 0.0, size)?;
        }
        Ok(())
    }

    pub fn spec(&self) -> SceneSpec {
        let n = self.links.len();
        let mut state_names: Vec<String> = (1..=n).map(|i| format!("joint{i}_angle")).collect();
        state_names.extend(["puck_x".into(), "puck_y".into()]);
        // Bounds on how far things move in one control step: a point at distance r from joint
        // j moves at most max_velocity_j * r per second from that joint's turn, so a link's
        // (any of its points') speed is bounded by the sum over the joints before it; the puck
        // has no drive of its own, so it is never faster than the arm point that pushes it (no
        // restitution; damping only slows it).
        let px = f64::from(self.frame.width) / self.world.size;
        let reach = |upto: usize, extra: f64| -> f64 {
            (0..=upto)
                .map(|j| {
                    let r: f64 = self.links[j..upto].iter().map(|l| l.length).sum::<f64>()
                        + self.links[upto].length
                        + extra;
                    self.links[j].max_velocity * r
                })
                .sum::<f64>()
                / self.fps
                * px
        };
        let mut objects = vec![
            ObjectSpec::new("goal", vec![self.goal.color]),
            ObjectSpec {
                rigid: true,
                max_step_px: n
                    .checked_sub(1)
                    .map(|last| reach(last, self.links[last].width / 2.0)),
                ..ObjectSpec::new("puck", vec![self.puck.color])
            },
            ObjectSpec::new("base", vec![self.base.color]),
        ];
        objects.extend(self.links.iter().enumerate().map(|(i, l)| ObjectSpec {
            max_step_px: Some(reach(i, l.width / 2.0)),
            ..ObjectSpec::new(format!("link{}", i + 1), vec![l.color])
        }));
        objects.push(ObjectSpec::new("wall", vec![self.walls.color]));
        SceneSpec {
            name: self.name.clone(),
            action_space: ActionSpace::Continuous {
                low: self.links.iter().map(|l| -l.max_velocity as f32).collect(),
                high: self.links.iter().map(|l| l.max_velocity as f32).collect(),
                names: (1..=n).map(|i| format!("joint{i}_velocity")).collect(),
            },
            state_names,
            fps: self.fps,
            frame_width: self.frame.width,
            frame_height: self.frame.height,
            background: self.world.background,
            objects,
            // The arm senses its joints; the puck is the world.
            layout: Some(StateLayout {
                robot: (0..n).collect(),
                environment: EnvironmentState::Entries {
                    indices: vec![n, n + 1],
                },
            }),
            task: Some("Push the puck onto the goal.".into()),
            robot_type: Some(format!("{n}-link planar arm")),
        }
    }

    /// World positions of the joints and the end effector for joint angles `q`, and each
    /// link's absolute angle. The base points up the screen (angle -π/2).
    pub fn forward_kinematics(&self, q: &[f64]) -> (Vec<[f64; 2]>, Vec<f64>) {
        let mut p = self.base.position;
        let mut angle = -std::f64::consts::FRAC_PI_2;
        let mut points = vec![p];
        let mut angles = Vec::with_capacity(q.len());
        for (link, qi) in self.links.iter().zip(q) {
            angle += qi;
            angles.push(angle);
            p = [
                p[0] + link.length * angle.cos(),
                p[1] + link.length * angle.sin(),
            ];
            points.push(p);
        }
        (points, angles)
    }
}

const LINKS: Group = Group::GROUP_1;
const PUCK: Group = Group::GROUP_2;
const WALLS: Group = Group::GROUP_3;

/// The arm-push scene.
#[derive(Clone)]
pub struct ArmPush {
    cfg: ArmPushConfig,
    spec: SceneSpec,
    substeps: u32,
    physics: Physics,
    base: RigidBodyHandle,
    links: Vec<RigidBodyHandle>,
    joints: Vec<ImpulseJointHandle>,
    puck: RigidBodyHandle,
}

impl std::fmt::Debug for ArmPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmPush")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl ArmPush {
    /// A scene with the arm straight up and the puck at the middle of its reset box; call
    /// `reset` to start a seeded episode.
    pub fn new(cfg: ArmPushConfig) -> Self {
        let spec = cfg.spec();
        let substeps = (cfg.world.sim_hz / cfg.fps).round() as u32;
        let mut state = vec![0.0; cfg.links.len()];
        state.push((cfg.reset.puck_x[0] + cfg.reset.puck_x[1]) / 2.0);
        state.push((cfg.reset.puck_y[0] + cfg.reset.puck_y[1]) / 2.0);
        let world = build_world(&cfg, substeps, &state);
        Self {
            cfg,
            spec,
            substeps,
            physics: world.physics,
            base: world.base,
            links: world.links,
            joints: world.joints,
            puck: world.puck,
        }
    }

    pub fn config(&self) -> &ArmPushConfig {
        &self.cfg
    }

    /// Joint angles, each relative to its parent, in `(-π, π]`.
    pub fn joint_angles(&self) -> Vec<f64> {
        let mut parent = self.physics.body(self.base).rotation().angle() as f64;
        self.links
            .iter()
            .map(|&h| {
                let angle = self.physics.body(h).rotation().angle() as f64;
                let q = wrap_pi(angle - parent);
                parent = angle;
                q
            })
            .collect()
    }

    pub fn puck_position(&self) -> [f64; 2] {
        let p = self.physics.body(self.puck).translation();
        [p.x as f64, p.y as f64]
    }

    pub fn state(&self) -> Vec<f64> {
        let mut s = self.joint_angles();
        s.extend(self.puck_position());
        s
    }

    fn goal_distance(&self) -> f64 {
        v2::norm(v2::sub(self.puck_position(), self.cfg.goal.position))
    }

    fn set_state(&mut self, state: &[f64]) {
        let world = build_world(&self.cfg, self.substeps, state);
        self.physics = world.physics;
        self.base = world.base;
        self.links = world.links;
        self.joints = world.joints;
        self.puck = world.puck;
    }

    fn render(&self) -> crate::Frame {
        let cfg = &self.cfg;
        let mut canvas = Canvas::for_scene(&cfg.frame, &cfg.world);
        let f = |p: [f64; 2]| [p[0] as f32, p[1] as f32];
        canvas.fill_circle(f(cfg.goal.position), cfg.goal.radius as f32, cfg.goal.color);
        for [a, b] in &cfg.walls.segments {
            canvas.stroke_segment(f(*a), f(*b), 2.0 * cfg.walls.radius as f32, cfg.walls.color);
        }
        canvas.fill_circle(
            f(self.puck_position()),
            cfg.puck.radius as f32,
            cfg.puck.color,
        );
        let [bx, by] = cfg.base.position;
        let h = cfg.base.half_size;
        canvas.fill_polygon(
            &[
                f([bx - h, by - h]),
                f([bx + h, by - h]),
                f([bx + h, by + h]),
                f([bx - h, by + h]),
            ],
            cfg.base.color,
        );
        let (points, _) = cfg.forward_kinematics(&self.joint_angles());
        for (i, link) in cfg.links.iter().enumerate() {
            canvas.stroke_segment(
                f(points[i]),
                f(points[i + 1]),
                link.width as f32,
                link.color,
            );
        }
        canvas.into_frame()
    }
}

fn wrap_pi(angle: f64) -> f64 {
    let a = (angle + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI;
    if a <= -std::f64::consts::PI {
        a + std::f64::consts::TAU
    } else {
        a
    }
}

struct World {
    physics: Physics,
    base: RigidBodyHandle,
    links: Vec<RigidBodyHandle>,
    joints: Vec<ImpulseJointHandle>,
    puck: RigidBodyHandle,
}

/// Builds the world at `state` (joint angles, puck position), everything at rest.
fn build_world(cfg: &ArmPushConfig, substeps: u32, state: &[f64]) -> World {
    let dt = 1.0 / (cfg.fps * substeps as f64);
    let mut physics = Physics::new(dt as f32, cfg.puck.radius as f32);
    let v = |p: [f64; 2]| Vector::new(p[0] as f32, p[1] as f32);
    let n = cfg.links.len();

    let walls = cfg
        .walls
        .segments
        .iter()
        .map(|[a, b]| {
            ColliderBuilder::capsule_from_endpoints(v(*a), v(*b), cfg.walls.radius as f32)
                .collision_groups(InteractionGroups::new(
                    WALLS,
                    PUCK,
                    InteractionTestMode::And,
                ))
                .friction(0.0)
                .restitution(0.0)
                .build()
        })
        .collect();
    physics.insert_body(RigidBodyBuilder::fixed(), walls);

    let base = physics.insert_body(
        RigidBodyBuilder::fixed()
            .translation(v(cfg.base.position))
            .rotation(-std::f32::consts::FRAC_PI_2),
        vec![],
    );
    let (points, angles) = cfg.forward_kinematics(&state[..n]);
    let mut links = Vec::with_capacity(n);
    let mut joints = Vec::with_capacity(n);
    let mut parent = base;
    let mut parent_length = 0.0;
    for (i, link) in cfg.links.iter().enumerate() {
        // The link's body frame sits at its proximal joint, x along the link.
        let collider = ColliderBuilder::capsule_from_endpoints(
            Vector::ZERO,
            Vector::new(link.length as f32, 0.0),
            (link.width / 2.0) as f32,
        )
        .density(link.density as f32)
        .collision_groups(InteractionGroups::new(
            LINKS,
            PUCK,
            InteractionTestMode::And,
        ))
        .friction(0.0)
        .restitution(0.0)
        .build();
        let body = physics.insert_body(
            RigidBodyBuilder::dynamic()
                .translation(v(points[i]))
                .rotation(angles[i] as f32)
                .can_sleep(false),
            vec![collider],
        );
        let joint = RevoluteJointBuilder::new()
            .local_anchor1(Vector::new(parent_length as f32, 0.0))
            .local_anchor2(Vector::ZERO)
            .limits([link.limits[0] as f32, link.limits[1] as f32])
            .motor_velocity(0.0, cfg.motor.gain as f32)
            .motor_max_force(cfg.motor.max_force as f32)
            .contacts_enabled(false)
            .build();
        joints.push(physics.impulse_joints.insert(parent, body, joint, true));
        links.push(body);
        parent = body;
        parent_length = link.length;
    }

    let puck = physics.insert_body(
        RigidBodyBuilder::dynamic()
            .translation(v([state[n], state[n + 1]]))
            .linear_damping(cfg.puck.linear_damping as f32)
            .can_sleep(false),
        vec![
            ColliderBuilder::ball(cfg.puck.radius as f32)
                .mass(cfg.puck.mass as f32)
                .collision_groups(InteractionGroups::new(
                    PUCK,
                    LINKS | WALLS,
                    InteractionTestMode::And,
                ))
                .friction(0.0)
                .restitution(0.0)
                .build(),
        ],
    );
    World {
        physics,
        base,
        links,
        joints,
        puck,
    }
}

impl Scene for ArmPush {
    fn spec(&self) -> &SceneSpec {
        &self.spec
    }

    fn reset(&mut self, seed: u64) -> Observation {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let r = &self.cfg.reset;
        let q: Vec<f64> = r
            .joints
            .iter()
            .map(|j| rng.random_range(j[0]..j[1]))
            .collect();
        let (points, _) = self.cfg.forward_kinematics(&q);
        let puck_r = self.cfg.puck.radius;
        // Redraw the puck while it would overlap the arm or start in the goal; after 1000
        // tries (a scene file whose box is all arm) keep the last draw.
        let mut puck = [0.0; 2];
        for _ in 0..1000 {
            puck = [
                rng.random_range(r.puck_x[0]..r.puck_x[1]),
                rng.random_range(r.puck_y[0]..r.puck_y[1]),
            ];
            let clear_of_arm = self.cfg.links.iter().enumerate().all(|(i, link)| {
                v2::dist_to_segment(puck, points[i], points[i + 1])
                    > puck_r + link.width / 2.0 + 10.0
            });
            let clear_of_goal = v2::norm(v2::sub(puck, self.cfg.goal.position))
                > self.cfg.goal.radius + puck_r + 20.0;
            if clear_of_arm && clear_of_goal {
                break;
            }
        }
        let mut state = q;
        state.extend(puck);
        self.set_state(&state);
        self.observe()
    }

    fn reset_to(&mut self, state: &[f64]) -> Result<Observation, SceneError> {
        self.spec.check_state(state)?;
        self.set_state(state);
        Ok(self.observe())
    }

    fn step(&mut self, action: &Action) -> Result<Observation, SceneError> {
        self.spec.action_space.check(&self.spec.name, action)?;
        let Action::Continuous(velocities) = action else {
            unreachable!("checked against the continuous action space above")
        };
        for _ in 0..self.substeps {
            let q = self.joint_angles();
            for (i, link) in self.cfg.links.iter().enumerate() {
                let mut target =
                    (velocities[i] as f64).clamp(-link.max_velocity, link.max_velocity);
                // Like a robot's controller: no commanded motion further into a limit.
                if (q[i] >= link.limits[1] && target > 0.0)
                    || (q[i] <= link.limits[0] && target < 0.0)
                {
                    target = 0.0;
                }
                if let Some(joint) = self.physics.impulse_joints.get_mut(self.joints[i], true) {
                    joint.data.set_motor_velocity(
                        JointAxis::AngX,
                        target as f32,
                        self.cfg.motor.gain as f32,
                    );
                }
            }
            self.physics.step();
        }
        Ok(self.observe())
    }

    fn observe(&self) -> Observation {
        let d = self.goal_distance();
        Observation {
            frame: self.render(),
            state: self.state(),
            reward: (1.0 - d / self.cfg.goal.reward_distance).clamp(0.0, 1.0),
            success: d + self.cfg.puck.radius <= self.cfg.goal.radius,
        }
    }

    fn boxed_clone(&self) -> Box<dyn Scene> {
        Box::new(self.clone())
    }

    fn scripted_policy(&self, kind: PolicyKind) -> Box<dyn Policy> {
        // At rest, every joint velocity is zero.
        let rest: RestAction = |obs| vec![0.0; obs.state.len() - 2];
        let space = &self.spec.action_space;
        match kind {
            PolicyKind::RandomWalk => Box::new(RandomWalk::new(space, 0.08, 0.7, rest)),
            PolicyKind::Heuristic => Box::new(ArmHeuristic::new(self.cfg.clone())),
            PolicyKind::Jump => policy::jump(space, rest),
            PolicyKind::Hold => policy::hold(space, rest),
            PolicyKind::Circle => policy::circle(space, rest),
            PolicyKind::UserLike => PolicyMix::user_like().policy(self),
        }
    }
}

/// Goal-directed arm policy: moves the end effector behind the puck (relative to the goal)
/// and pushes through it, turning the wanted end-effector velocity into joint velocities with
/// damped least squares on the arm's Jacobian.
pub struct ArmHeuristic {
    cfg: ArmPushConfig,
    rng: ChaCha8Rng,
    speed: f64,
    pushing: bool,
}

impl std::fmt::Debug for ArmHeuristic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmHeuristic")
            .field("speed", &self.speed)
            .finish_non_exhaustive()
    }
}

impl ArmHeuristic {
    pub fn new(cfg: ArmPushConfig) -> Self {
        Self {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(0),
            speed: 200.0,
            pushing: false,
        }
    }
}

impl Policy for ArmHeuristic {
    fn reset(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0061_726d);
        self.speed = self.rng.random_range(150.0..300.0);
        self.pushing = false;
    }

    fn act(&mut self, obs: &Observation) -> Action {
        let n = self.cfg.links.len();
        let q = &obs.state[..n];
        let puck = [obs.state[n], obs.state[n + 1]];
        let (points, _) = self.cfg.forward_kinematics(q);
        let ee = points[n];
        let to_goal = v2::sub(self.cfg.goal.position, puck);
        let dist = v2::norm(to_goal).max(1e-6);
        let dir = v2::scale(to_goal, 1.0 / dist);
        let tip = self.cfg.links[n - 1].width / 2.0;
        let r = self.cfg.puck.radius;
        let target = push_target(
            &mut self.pushing,
            ee,
            puck,
            dir,
            0.0,
            r + tip + 12.0,
            r + tip + 8.0,
            dist.clamp(5.0, 20.0),
            [0.0, self.cfg.world.size],
        );
        // Wanted end-effector velocity (px/s), capped at this episode's speed.
        let error = v2::sub(target, ee);
        let len = v2::norm(error);
        let vel = if len * self.cfg.fps > self.speed {
            v2::scale(error, self.speed / len)
        } else {
            v2::scale(error, self.cfg.fps)
        };
        // Jacobian column i: d(ee)/d(q_i) = perp(ee - joint_i) (every joint turns all links
        // after it). A joint at a limit that the solution would push further is dropped and
        // the others solve without it.
        let mut cols: Vec<v2::V> = (0..n).map(|i| v2::perp(v2::sub(ee, points[i]))).collect();
        let mut dq = damped_least_squares(&cols, vel);
        for (i, link) in self.cfg.links.iter().enumerate() {
            let into_limit = (q[i] > link.limits[1] - 0.05 && dq[i] > 0.0)
                || (q[i] < link.limits[0] + 0.05 && dq[i] < 0.0);
            if into_limit {
                cols[i] = [0.0, 0.0];
            }
        }
        dq = damped_least_squares(&cols, vel);
        Action::Continuous(
            dq.iter()
                .zip(&self.cfg.links)
                .map(|(v, link)| v.clamp(-link.max_velocity, link.max_velocity) as f32)
                .collect(),
        )
    }
}

/// Joint velocities `J^T (J J^T + λ² I)^-1 v` for a 2-D end-effector velocity `v`, with the
/// Jacobian given by its columns; the damping keeps it bounded near singular poses.
fn damped_least_squares(cols: &[v2::V], vel: v2::V) -> Vec<f64> {
    let lambda2 = 400.0;
    let mut jjt = [[lambda2, 0.0], [0.0, lambda2]];
    for c in cols {
        jjt[0][0] += c[0] * c[0];
        jjt[0][1] += c[0] * c[1];
        jjt[1][0] += c[1] * c[0];
        jjt[1][1] += c[1] * c[1];
    }
    let det = jjt[0][0] * jjt[1][1] - jjt[0][1] * jjt[1][0];
    let w = [
        (jjt[1][1] * vel[0] - jjt[0][1] * vel[1]) / det,
        (-jjt[1][0] * vel[0] + jjt[0][0] * vel[1]) / det,
    ];
    cols.iter().map(|c| c[0] * w[0] + c[1] * w[1]).collect()
}
