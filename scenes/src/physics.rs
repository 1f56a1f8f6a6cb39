//! A rapier2d world that can be cloned (to fork a scene) and stepped.

use rapier2d::prelude::*;

/// The rapier sets and solver state of one scene. Cloning copies the simulation state
/// (including contact caches, so a clone continues bit-identically); the pipeline holds only
/// scratch buffers and is created afresh.
pub(crate) struct Physics {
    pub bodies: RigidBodySet,
    pub colliders: ColliderSet,
    pub impulse_joints: ImpulseJointSet,
    multibody_joints: MultibodyJointSet,
    soft_bodies: SoftBodySet,
    islands: IslandManager,
    broad_phase: BroadPhaseBvh,
    narrow_phase: NarrowPhase,
    ccd_solver: CCDSolver,
    params: IntegrationParameters,
    pipeline: PhysicsPipeline,
}

impl Physics {
    /// A world without gravity (every scene is seen from above), stepping `dt` seconds.
    /// `length_unit` is the typical object size, which rapier scales its tolerances by.
    pub fn new(dt: f32, length_unit: f32) -> Self {
        let params = IntegrationParameters {
            dt,
            length_unit,
            ..IntegrationParameters::default()
        };
        Self {
            bodies: RigidBodySet::new(),
            colliders: ColliderSet::new(),
            impulse_joints: ImpulseJointSet::new(),
            multibody_joints: MultibodyJointSet::new(),
            soft_bodies: SoftBodySet::new(),
            islands: IslandManager::new(),
            broad_phase: BroadPhaseBvh::default(),
            narrow_phase: NarrowPhase::new(),
            ccd_solver: CCDSolver::new(),
            params,
            pipeline: PhysicsPipeline::new(),
        }
    }

    pub fn insert_body(
        &mut self,
        body: impl Into<RigidBody>,
        colliders: Vec<Collider>,
    ) -> RigidBodyHandle {
        let handle = self.bodies.insert(body);
        for collider in colliders {
            self.colliders
                .insert_with_parent(collider, handle, &mut self.bodies);
        }
        handle
    }

    pub fn body(&self, handle: RigidBodyHandle) -> &RigidBody {
        &self.bodies[handle]
    }

    pub fn body_mut(&mut self, handle: RigidBodyHandle) -> &mut RigidBody {
        &mut self.bodies[handle]
    }

    pub fn step(&mut self) {
        self.pipeline.step(
            Vector::ZERO,
            &self.params,
            &mut self.islands,
            &mut self.broad_phase,
            &mut self.narrow_phase,
            &mut self.bodies,
            &mut self.colliders,
            &mut self.impulse_joints,
            &mut self.multibody_joints,
            &mut self.soft_bodies,
            &mut self.ccd_solver,
            &(),
            &(),
        );
    }
}

impl Clone for Physics {
    fn clone(&self) -> Self {
        Self {
            bodies: self.bodies.clone(),
            colliders: self.colliders.clone(),
            impulse_joints: self.impulse_joints.clone(),
            multibody_joints: self.multibody_joints.clone(),
            soft_bodies: self.soft_bodies.clone(),
            islands: self.islands.clone(),
            broad_phase: self.broad_phase.clone(),
            narrow_phase: self.narrow_phase.clone(),
            ccd_solver: self.ccd_solver.clone(),
            params: self.params,
            pipeline: PhysicsPipeline::new(),
        }
    }
}
