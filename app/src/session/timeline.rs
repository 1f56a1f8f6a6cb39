//! The timeline: a session's branches (each a rollout's steps and the ground truth beside it),
//! which one is active, the step the views show, forking, switching and deleting, and the
//! bounded memory of rollout states. No model and no threads here: the session adds steps and
//! the model's frames; this type keeps them.

use std::sync::Arc;

use dreamyard_scenes::{Action, Frame};

use super::backend::ModelState;
use super::truth::{GroundTruth, TruthKind};

/// Where the frame in the model column of a step came from (DreamerV3 marks context frames and
/// imagined frames with different borders).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A real frame given to the model as context.
    Context,
    /// A frame the model generated.
    Imagined,
    /// No model: ground truth only.
    TruthOnly,
    /// A recorded frame after the branch's head (a replayed episode's future), shown before
    /// the model reaches it: no model frame yet. Never part of a branch.
    Recorded,
}

/// Model vs truth at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepMetrics {
    pub psnr_db: f64,
    pub ssim: f64,
    /// IoU per scene object (`None`: the object is in neither frame).
    pub iou: Vec<(String, Option<f64>)>,
    /// Each scene object's pose and presence in the model's frame against the truth (empty
    /// without scene colours).
    pub objects: Vec<ObjectStatus>,
}

/// One scene object in a model frame against the true one (see [`crate::objects`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectStatus {
    pub name: String,
    /// The scene states a motion bound for it: it moves (agent, block), unlike the goal.
    pub moving: bool,
    /// Centroid distance (pixels), where both frames show it.
    pub centroid_px: Option<f64>,
    /// Heading error (degrees), for objects with a heading.
    pub angle_deg: Option<f64>,
    /// The model shows less than half its true area.
    pub lost: bool,
    /// The model draws it where the truth has none.
    pub phantom: bool,
    /// It moved farther since the model's previous frame than the scene's dynamics allow.
    pub teleport: bool,
}

impl StepMetrics {
    /// Mean IoU over the objects present in either frame.
    pub fn mean_iou(&self) -> Option<f64> {
        let v: Vec<f64> = self.iou.iter().filter_map(|(_, x)| *x).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// One step of a branch.
#[derive(Clone, Debug)]
pub struct StepRecord {
    /// The action that led to this step (`None` for the first frame and for seed frames).
    pub action: Option<Action>,
    pub truth: Option<Arc<Frame>>,
    /// The ground truth's full state at this step, when it has one (recordings store it).
    pub truth_state: Option<Vec<f64>>,
    /// `None` while the model works on it, or when there is no model.
    pub model: Option<Arc<Frame>>,
    /// A two-stage model's first-stage frame (for context frames: the one it starts from).
    pub model_low: Option<Arc<Frame>>,
    /// A two-stage model's time per stage (first stage, upsampler) on the worker, ms.
    pub stage_ms: Option<[f64; 2]>,
    pub kind: FrameKind,
    /// The model's context was (or will be, before the next step) reset to real frames here.
    pub anchored: bool,
    pub metrics: Option<StepMetrics>,
    /// Model time on the worker.
    pub compute_ms: Option<f64>,
    /// From the action being issued to the frame being available.
    pub latency_ms: Option<f64>,
    /// The model's rollout state after this step (imagined steps), for forks.
    pub state: Option<ModelState>,
    /// A context frame that stands in for a real one (dream mode with nothing to seed it):
    /// never labelled real.
    pub placeholder: bool,
}

impl StepRecord {
    pub(super) fn context(action: Option<Action>, frame: Arc<Frame>, truth: bool) -> Self {
        Self {
            action,
            truth: truth.then(|| Arc::clone(&frame)),
            truth_state: None,
            model: Some(frame),
            model_low: None,
            stage_ms: None,
            kind: FrameKind::Context,
            anchored: false,
            metrics: None,
            compute_ms: None,
            latency_ms: None,
            state: None,
            placeholder: false,
        }
    }

    /// Whether the model's frame is still being computed.
    pub fn is_pending(&self) -> bool {
        self.kind == FrameKind::Imagined && self.model.is_none()
    }
}

/// A branch's metrics per imagined step, for plots (see [`Branch::metric_series`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricSeries {
    pub psnr: Vec<[f64; 2]>,
    pub ssim: Vec<[f64; 2]>,
    pub iou: Vec<[f64; 2]>,
    /// Centroid error (pixels) of each moving object, by name.
    pub pose: Vec<(String, Vec<[f64; 2]>)>,
}

/// Identifies a branch for the session's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchId(pub u32);

/// A rollout: its steps and the ground truth beside it.
#[derive(Debug)]
pub struct Branch {
    pub id: BranchId,
    pub name: String,
    /// Branch and step it was forked from.
    pub parent: Option<(BranchId, usize)>,
    pub steps: Vec<StepRecord>,
    /// Ground-truth sources by the step they start at; the last one is current, `None` is
    /// dream mode (model only).
    pub(super) truth: Vec<(usize, Option<Box<dyn GroundTruth>>)>,
    /// The next model step starts from a fresh context instead of the previous state.
    pub(super) needs_anchor: bool,
    /// That fresh context is the model's own last frames (a fork at a step whose state was
    /// dropped), not the real ones.
    pub(super) anchor_to_model: bool,
    pub(super) imagined_since_anchor: usize,
}

impl Branch {
    /// A branch without steps; its next model step starts from a fresh context.
    pub(super) fn empty(id: BranchId, name: String, parent: Option<(BranchId, usize)>) -> Self {
        Self {
            id,
            name,
            parent,
            steps: Vec::new(),
            truth: Vec::new(),
            needs_anchor: true,
            anchor_to_model: false,
            imagined_since_anchor: 0,
        }
    }

    pub(super) fn current_truth(&self) -> Option<&dyn GroundTruth> {
        self.truth.last().and_then(|(_, t)| t.as_deref())
    }

    pub(super) fn current_truth_mut(&mut self) -> Option<&mut (dyn GroundTruth + 'static)> {
        self.truth.last_mut().and_then(|(_, t)| t.as_deref_mut())
    }

    /// The kind of ground truth now (`None`: dream mode).
    pub fn truth_kind(&self) -> Option<TruthKind> {
        self.current_truth().map(|t| t.kind())
    }

    /// Cuts the branch back to its first `len` steps, the ground truth with it (positioned at
    /// the new head again), so both sides stay in lockstep. A truth source that started after
    /// the new head is dropped.
    pub(super) fn truncate(&mut self, len: usize) -> anyhow::Result<()> {
        if len >= self.steps.len() {
            return Ok(());
        }
        self.steps.truncate(len);
        let head = len.saturating_sub(1);
        while self.truth.len() > 1 && self.truth.last().is_some_and(|(s, _)| *s > head) {
            self.truth.pop();
        }
        if let Some((start, Some(t))) = self.truth.last_mut() {
            *t = t.fork_at(head.saturating_sub(*start))?;
        }
        Ok(())
    }

    /// Drops a step whose model frame is still being computed (its job is abandoned), with
    /// the truth's step.
    pub(super) fn drop_pending_head(&mut self) -> anyhow::Result<()> {
        match self.steps.iter().position(StepRecord::is_pending) {
            Some(i) => self.truncate(i),
            None => Ok(()),
        }
    }

    /// Index of the newest step.
    pub fn head(&self) -> Option<usize> {
        self.steps.len().checked_sub(1)
    }

    /// The first imagined step whose PSNR is below `threshold_db`.
    pub fn first_divergence(&self, threshold_db: f64) -> Option<usize> {
        self.steps.iter().position(|s| {
            s.kind == FrameKind::Imagined
                && s.metrics.as_ref().is_some_and(|m| m.psnr_db < threshold_db)
        })
    }

    /// The branch's metrics as plot series over its imagined steps: `[step, value]` points
    /// of PSNR (finite values only), SSIM and mean mask IoU (steps whose objects are known).
    pub fn metric_series(&self) -> MetricSeries {
        let mut out = MetricSeries::default();
        for (i, rec) in self.steps.iter().enumerate() {
            let Some(m) = rec
                .metrics
                .as_ref()
                .filter(|_| rec.kind == FrameKind::Imagined)
            else {
                continue;
            };
            let x = i as f64;
            if m.psnr_db.is_finite() {
                out.psnr.push([x, m.psnr_db]);
            }
            out.ssim.push([x, m.ssim]);
            if let Some(v) = m.mean_iou() {
                out.iou.push([x, v]);
            }
            for o in m.objects.iter().filter(|o| o.moving) {
                let Some(v) = o.centroid_px else { continue };
                match out.pose.iter_mut().find(|(n, _)| *n == o.name) {
                    Some((_, points)) => points.push([x, v]),
                    None => out.pose.push((o.name.clone(), vec![[x, v]])),
                }
            }
        }
        out
    }

    /// The first imagined step where the model lost an object or moved one farther than the
    /// scene allows, and what happened ("block lost", "agent teleported").
    pub fn first_object_event(&self) -> Option<(usize, String)> {
        self.steps.iter().enumerate().find_map(|(i, rec)| {
            let m = rec
                .metrics
                .as_ref()
                .filter(|_| rec.kind == FrameKind::Imagined)?;
            let what: Vec<String> = m
                .objects
                .iter()
                .filter_map(|o| {
                    if o.lost {
                        Some(format!("{} lost", o.name))
                    } else if o.teleport {
                        Some(format!("{} teleported", o.name))
                    } else {
                        None
                    }
                })
                .collect();
            (!what.is_empty()).then(|| (i, what.join(", ")))
        })
    }

    /// Number of imagined steps.
    pub fn imagined(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.kind == FrameKind::Imagined)
            .count()
    }
}

/// Steps per branch that keep their rollout state (a few hundred KB each at push-t's size), so
/// a long session's memory grows only by its frames. Forking at an older imagined step rebuilds
/// the state from the model's frames there.
pub const KEPT_STATES: usize = 256;

/// Resets and deletions that [`Timeline::undo`] can take back, newest last.
pub const UNDO_DEPTH: usize = 8;

/// What a reset or a deletion took away, kept so it can be brought back.
#[derive(Debug)]
enum Undo {
    /// Every branch before a restart, the active one and the shown step.
    Restart {
        branches: Vec<Branch>,
        active: BranchId,
        cursor: Option<usize>,
    },
    /// A deleted branch, where it was in the list, and whether it was active.
    Delete {
        index: usize,
        branch: Branch,
        was_active: bool,
    },
}

/// What [`Timeline::undo`] brought back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Undone {
    /// The branches a reset dropped (how many).
    Reset(usize),
    /// A deleted branch (its name).
    Delete(String),
}

/// Every branch of a session, the active one and the shown step.
#[derive(Debug)]
pub struct Timeline {
    branches: Vec<Branch>,
    active: BranchId,
    next_branch: u32,
    /// Step shown by the views; `None` follows the head.
    cursor: Option<usize>,
    /// What resets and deletions took away, newest last (at most [`UNDO_DEPTH`]).
    undo: Vec<Undo>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            branches: vec![Branch::empty(BranchId(0), "main".into(), None)],
            active: BranchId(0),
            next_branch: 1,
            cursor: None,
            undo: Vec::new(),
        }
    }
}

impl Timeline {
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    pub fn active_id(&self) -> BranchId {
        self.active
    }

    pub fn active(&self) -> &Branch {
        self.branches
            .iter()
            .find(|b| b.id == self.active)
            .unwrap_or(&self.branches[0])
    }

    pub fn active_mut(&mut self) -> &mut Branch {
        let active = self.active;
        let i = self
            .branches
            .iter()
            .position(|b| b.id == active)
            .unwrap_or(0);
        &mut self.branches[i]
    }

    pub fn branch(&self, id: BranchId) -> Option<&Branch> {
        self.branches.iter().find(|b| b.id == id)
    }

    pub fn branch_mut(&mut self, id: BranchId) -> Option<&mut Branch> {
        self.branches.iter_mut().find(|b| b.id == id)
    }

    /// Replaces every branch with `branch`, a new main one, and follows its head. The old
    /// branches can be brought back by [`Timeline::undo`] unless no step was taken in them.
    pub fn restart(&mut self, branch: Branch) {
        let old = std::mem::replace(&mut self.branches, vec![branch]);
        let (active, cursor) = (self.active, self.cursor);
        self.active = self.branches[0].id;
        self.cursor = None;
        if has_user_steps(&old) {
            self.remember(Undo::Restart {
                branches: old,
                active,
                cursor,
            });
        }
    }

    /// Whether any branch holds a step the user took (not only a first frame or seed frames).
    pub fn has_user_steps(&self) -> bool {
        has_user_steps(&self.branches)
    }

    fn remember(&mut self, undo: Undo) {
        self.undo.push(undo);
        if self.undo.len() > UNDO_DEPTH {
            self.undo.remove(0);
        }
    }

    /// Whether a reset or deletion can be taken back.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Brings back what the last reset or deletion took away: after a reset, the branches as
    /// they were (the fresh one is dropped); after a deletion, the branch, where it was. Ids
    /// stay unique: undone branches keep theirs, new ones never reuse an id.
    pub fn undo(&mut self) -> Option<Undone> {
        match self.undo.pop()? {
            Undo::Restart {
                branches,
                active,
                cursor,
            } => {
                let n = branches.len();
                self.branches = branches;
                self.active = active;
                self.cursor = cursor;
                Some(Undone::Reset(n))
            }
            Undo::Delete {
                index,
                branch,
                was_active,
            } => {
                let name = branch.name.clone();
                let id = branch.id;
                self.branches.insert(index.min(self.branches.len()), branch);
                if was_active {
                    self.active = id;
                    self.cursor = None;
                }
                Some(Undone::Delete(name))
            }
        }
    }

    /// A fresh id and an empty branch named `main`, for [`Timeline::restart`].
    pub fn new_main(&mut self) -> Branch {
        let id = BranchId(self.next_branch);
        self.next_branch += 1;
        Branch::empty(id, "main".into(), None)
    }

    /// The step the views show: the scrubbed one, or, following the head, the newest step
    /// whose model frame is ready. A step being computed shows once it is, so truth, model and
    /// error panels always show one and the same complete step, never a blank model panel.
    pub fn view_step(&self) -> Option<usize> {
        self.view_step_ahead(0)
    }

    /// The shown step when `ahead` recorded steps after the head can be shown too (a
    /// replayed episode's future, before the model reaches it).
    pub fn view_step_ahead(&self, ahead: usize) -> Option<usize> {
        let branch = self.active();
        let head = branch.head()?;
        Some(match self.cursor {
            Some(c) => c.min(head + ahead),
            None => (0..=head)
                .rev()
                .find(|&i| !branch.steps[i].is_pending())
                .unwrap_or(head),
        })
    }

    /// Shows step `step` (clamped); scrubbing to the head follows new steps again.
    pub fn scrub(&mut self, step: usize) {
        self.scrub_ahead(step, 0);
    }

    /// Shows step `step`, which may be one of `ahead` recorded steps after the head (the view
    /// stays there while the model catches up); scrubbing to the head follows new steps again.
    pub fn scrub_ahead(&mut self, step: usize, ahead: usize) {
        let head = self.active().head().unwrap_or(0);
        let step = step.min(head + ahead);
        self.cursor = (step != head).then_some(step);
    }

    /// Whether the views follow the newest step.
    pub fn following_head(&self) -> bool {
        self.cursor.is_none()
    }

    /// The views follow the newest step again.
    pub fn follow_head(&mut self) {
        self.cursor = None;
    }

    /// Copies the active branch up to `step` (its ground truth forked there) into a new branch
    /// and makes it active.
    pub fn fork(&mut self, step: usize) -> Result<BranchId, String> {
        let src = self.active();
        let Some(rec) = src.steps.get(step) else {
            return Err(format!("no step {step} to fork at"));
        };
        if rec.is_pending() {
            return Err("the model is still computing that step".into());
        }
        let mut truth = Vec::new();
        // The ground truth source that was current at `step`, positioned there.
        if let Some((start, source)) = src.truth.iter().rev().find(|(s, _)| *s <= step) {
            let forked = match source {
                Some(t) => Some(
                    t.fork_at(step - start)
                        .map_err(|e| crate::error_chain(e.as_ref()))?,
                ),
                None => None,
            };
            truth.push((*start, forked));
        }
        let steps = src.steps[..=step].to_vec();
        let needs_anchor = rec.anchored || rec.state.is_none();
        // An imagined step whose state was dropped (older than `KEPT_STATES`): the fork continues
        // the imagined rollout from the model's own frames.
        let anchor_to_model =
            !rec.anchored && rec.state.is_none() && rec.kind == FrameKind::Imagined;
        let parent = src.id;
        let id = BranchId(self.next_branch);
        self.next_branch += 1;
        let mut branch = Branch::empty(id, format!("fork {} @ {step}", id.0), Some((parent, step)));
        branch.steps = steps;
        branch.truth = truth;
        branch.needs_anchor = needs_anchor;
        branch.anchor_to_model = anchor_to_model;
        self.branches.push(branch);
        self.active = id;
        self.cursor = None;
        Ok(id)
    }

    /// Makes `id` the active branch.
    pub fn switch(&mut self, id: BranchId) -> bool {
        if self.branches.iter().any(|b| b.id == id) {
            self.active = id;
            self.cursor = None;
            true
        } else {
            false
        }
    }

    /// Deletes branch `id` (not the last one); the active branch moves to its parent or the
    /// first branch.
    pub fn delete(&mut self, id: BranchId) -> Result<(), String> {
        if self.branches.len() <= 1 {
            return Err("the last branch cannot be deleted".into());
        }
        let Some(i) = self.branches.iter().position(|b| b.id == id) else {
            return Err(format!("no branch {}", id.0));
        };
        let removed = self.branches.remove(i);
        let was_active = self.active == id;
        if was_active {
            let parent = removed
                .parent
                .map(|(p, _)| p)
                .filter(|p| self.branches.iter().any(|b| b.id == *p));
            self.active = parent.unwrap_or(self.branches[0].id);
            self.cursor = None;
        }
        self.remember(Undo::Delete {
            index: i,
            branch: removed,
            was_active,
        });
        Ok(())
    }
}

fn has_user_steps(branches: &[Branch]) -> bool {
    branches
        .iter()
        .any(|b| b.steps.iter().any(|r| r.action.is_some()))
}

/// Bounded memory: once step `step` of `branch` has its state, the step [`KEPT_STATES`] before
/// it drops its own (a fork there rebuilds it from the model's frames).
pub fn evict_old_state(branch: &mut Branch, step: usize) {
    if let Some(old) = step
        .checked_sub(KEPT_STATES)
        .and_then(|i| branch.steps.get_mut(i))
    {
        old.state = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: u8) -> Arc<Frame> {
        Arc::new(Frame {
            width: 2,
            height: 2,
            data: vec![v; 12],
        })
    }

    /// A timeline whose main branch has `n` real steps.
    fn timeline(n: u8) -> Timeline {
        let mut t = Timeline::default();
        for i in 0..n {
            t.active_mut()
                .steps
                .push(StepRecord::context(None, frame(i), true));
        }
        t
    }

    #[test]
    fn metric_series_cover_the_imagined_steps_for_comparing_branches() {
        let mut t = timeline(2);
        let metrics = |psnr: f64, iou: Option<f64>| StepMetrics {
            psnr_db: psnr,
            ssim: psnr / 100.0,
            iou: vec![("block".into(), iou)],
            objects: Vec::new(),
        };
        for (psnr, iou) in [(30.0, Some(0.5)), (f64::INFINITY, None), (20.0, Some(0.25))] {
            t.active_mut().steps.push(StepRecord {
                kind: FrameKind::Imagined,
                metrics: Some(metrics(psnr, iou)),
                ..StepRecord::context(None, frame(0), true)
            });
        }
        let main = t.active_id();
        t.fork(2).unwrap();
        t.active_mut().steps.push(StepRecord {
            kind: FrameKind::Imagined,
            metrics: Some(metrics(40.0, Some(1.0))),
            ..StepRecord::context(None, frame(0), true)
        });
        let series = t.branch(main).unwrap().metric_series();
        assert_eq!(
            series.psnr,
            vec![[2.0, 30.0], [4.0, 20.0]],
            "infinite PSNR left out"
        );
        assert_eq!(series.ssim.len(), 3);
        assert_eq!(series.iou, vec![[2.0, 0.5], [4.0, 0.25]]);
        // The fork shares the steps before it and has its own after.
        let fork = t.active().metric_series();
        assert_eq!(fork.psnr, vec![[2.0, 30.0], [3.0, 40.0]]);
    }

    #[test]
    fn forks_copy_up_to_the_step_and_become_active() {
        let mut t = timeline(5);
        let main = t.active_id();
        let id = t.fork(2).unwrap();
        assert_eq!(t.active_id(), id);
        assert_eq!(t.active().steps.len(), 3);
        assert_eq!(t.active().parent, Some((main, 2)));
        assert_eq!(
            t.branch(main).unwrap().steps.len(),
            5,
            "the source is untouched"
        );
        assert!(t.fork(9).unwrap_err().contains("no step 9"));
        // A pending imagined step cannot be forked at.
        t.active_mut().steps.push(StepRecord {
            kind: FrameKind::Imagined,
            model: None,
            ..StepRecord::context(None, frame(9), true)
        });
        assert!(t.fork(3).unwrap_err().contains("still computing"));
    }

    #[test]
    fn switch_delete_and_the_cursor() {
        let mut t = timeline(6);
        let main = t.active_id();
        t.scrub(2);
        assert_eq!(t.view_step(), Some(2));
        assert!(!t.following_head());
        let fork = t.fork(4).unwrap();
        assert!(t.following_head(), "a fork shows its head");
        assert_eq!(t.view_step(), Some(4));
        t.scrub(99);
        assert!(t.following_head(), "scrubbing past the head follows it");
        assert!(t.switch(main));
        assert_eq!(t.view_step(), Some(5));
        assert!(!t.switch(BranchId(77)));
        // Deleting the active fork moves to its parent; the last branch stays.
        assert!(t.switch(fork));
        t.delete(fork).unwrap();
        assert_eq!(t.active_id(), main);
        assert!(t.delete(main).unwrap_err().contains("last branch"));
        assert!(t.delete(BranchId(77)).is_err());
        // A restart keeps one new main branch.
        let b = t.new_main();
        let id = b.id;
        t.restart(b);
        assert_eq!((t.branches().len(), t.active_id()), (1, id));
        assert_ne!(id, main);
    }

    #[test]
    fn only_the_last_kept_states_keep_their_rollout_state() {
        let mut t = timeline(0);
        let b = t.active_mut();
        for i in 0..=KEPT_STATES + 1 {
            b.steps.push(StepRecord {
                state: Some(ModelState::new(i)),
                ..StepRecord::context(None, frame(0), true)
            });
            evict_old_state(b, i);
        }
        assert!(b.steps[0].state.is_none() && b.steps[1].state.is_none());
        assert!(b.steps[2..].iter().all(|s| s.state.is_some()));
    }
}
