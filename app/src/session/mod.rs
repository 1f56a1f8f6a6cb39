//! The session core: a world model rolled out beside ground truth, step by step, with a
//! timeline per branch. Plain Rust, no Bevy: the GUI is a view over it and the tests drive it
//! without a window.
//!
//! A step takes one action to both sides: the ground truth (a live scene, or a recorded episode
//! that supplies its own action) steps at once; the model steps on its worker thread and its
//! frame arrives in a later [`Session::poll`]. The first `context_len` frames of a rollout are
//! real (the model's context); the rest are imagined. Re-anchoring replaces the model's context
//! by the last real frames, forking copies a branch up to a step (the model state is an
//! `Arc`-shared value, so a fork costs nothing), and take-over turns a replay into a live scene
//! at the current step.

pub mod backend;
pub mod export;
pub mod frames;
pub mod journal;
pub mod recorder;
pub mod recording;
pub mod timeline;
pub mod truth;
pub mod worker;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dreamyard_scenes::{Action, ActionSpace, Frame};

use crate::metrics::{self, Palette};
use backend::ModelInfo;
use journal::Event;
use recorder::{EpisodeMeta, Recorder, TruthColumns};
use recording::Recording;
use truth::{Episode, GroundTruth, TruthKind, TruthSource, TruthSpec};
use worker::{ModelWorker, Reply, StartFrom};

pub use timeline::{
    Branch, BranchId, FrameKind, KEPT_STATES, MetricSeries, ObjectStatus, StepMetrics, StepRecord,
    Timeline, evict_old_state,
};

/// One context record of a dream-mode start: the frame, a two-stage model's first-stage frame,
/// and the action that led to it.
type SeedRecord = (Arc<Frame>, Option<Arc<Frame>>, Option<Action>);

/// The model's context for a fresh start: frames, a two-stage model's first-stage frames (when
/// every frame has one), and the action taken at each.
struct ContextWindow {
    frames: Vec<Arc<Frame>>,
    low: Option<Vec<Arc<Frame>>>,
    actions: Vec<Action>,
}

/// What a dream-mode rollout starts from when there is no ground truth.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DreamSeed {
    /// Context frames at the model's size, oldest first.
    pub frames: Vec<Arc<Frame>>,
    /// A two-stage model's first-stage frames, one per frame (else it downscales them).
    pub low: Option<Vec<Arc<Frame>>>,
    /// The action taken after each frame but the last (fewer: the next step's action stands
    /// in, as for any context).
    pub actions: Vec<Action>,
}

/// Settings the user changes while the session runs.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    /// Re-anchor the model's context to the last real frames every this many imagined steps
    /// (0 = never).
    pub anchor_every: usize,
    /// PSNR (dB) below which an imagined frame counts as diverged.
    pub divergence_psnr_db: f64,
    /// Seed of the scene's episode and of the model's sampling noise.
    pub seed: u64,
    /// Steps per second while playing.
    pub steps_per_sec: f64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            anchor_every: 0,
            divergence_psnr_db: 25.0,
            seed: 0,
            steps_per_sec: 10.0,
        }
    }
}

/// Severity of a user-facing message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// A message for the user (errors never stop the session).
#[derive(Clone, Debug)]
pub struct Notice {
    pub level: Level,
    pub text: String,
    /// When it was last said.
    pub at: Instant,
    /// How many times it was said (the same notice again is counted, not stacked).
    pub count: u32,
}

/// Why a step was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The model is still working on the previous step.
    Busy,
    /// Nothing to step: no ground truth and no model.
    Empty,
    /// The replayed episode has no more frames.
    EpisodeEnded,
    /// The action does not fit the action space, or the ground truth failed.
    Invalid(String),
}

/// Play / pause and the pace of automatic steps.
#[derive(Clone, Debug, Default)]
pub struct Transport {
    pub playing: bool,
    last_step: Option<Instant>,
}

#[derive(Debug)]
struct Pending {
    job: u64,
    branch: BranchId,
    step: usize,
    issued: Instant,
    generation: u64,
}

/// A recorded frame shown beyond a branch's head, fitted: (episode address, frame), frame.
type RecordedFrame = ((usize, usize), Arc<Frame>);

/// Recording state for the UI.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingStatus {
    /// What each row holds ("ground truth and model frames, action, state, metrics").
    pub holds: String,
    pub rows: usize,
    pub episodes_saved: usize,
    /// The dataset folder, when the recorder writes to disk.
    pub path: Option<std::path::PathBuf>,
}

/// What a poll observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PollOutcome {
    pub steps_finished: usize,
    pub model_loaded: bool,
}

/// The session: ground truth, model, branches, timeline, recording.
#[derive(Debug)]
pub struct Session {
    pub config: SessionConfig,
    pub transport: Transport,
    /// The ground truth as opened (each reset starts from it).
    truth_template: Option<Box<dyn GroundTruth>>,
    model: Option<ModelWorker>,
    model_info: Option<ModelInfo>,
    /// A model set aside because the ground truth opened does not fit it, and why; it comes
    /// back when a ground truth it fits is opened.
    parked: Option<(ModelWorker, ModelInfo, String)>,
    /// A model being loaded; it replaces `model` if it loads and fits the ground truth.
    loading: Option<(ModelWorker, String)>,
    /// Ground truth that comes with the loading model (a scene that ships its own model).
    loading_truth: Option<Box<dyn GroundTruth>>,
    palette: Option<Palette>,
    /// The ground truth's scene, for what it states about its objects' physics.
    scene_spec: Option<dreamyard_scenes::SceneSpec>,
    timeline: Timeline,
    pending: Option<Pending>,
    /// Bumped by every reset so replies for an old rollout are ignored.
    generation: u64,
    notices: Vec<Notice>,
    recording: Option<Recording>,
    /// The last recorded frame shown beyond the head, fitted (keyed by episode and frame), so
    /// the views see the same frame while it is shown.
    recorded_cache: std::sync::Mutex<Option<RecordedFrame>>,
    /// See [`Session::takeover_action`].
    takeover_action: Option<(u64, Action)>,
    episodes_saved: usize,
    /// Frames that seed a rollout without ground truth (dream mode).
    dream_seed: Option<DreamSeed>,
    /// When the latest model steps finished, oldest first (for the achieved step rate).
    finished: std::collections::VecDeque<Instant>,
    /// What the user did since the ground truth and model were opened (a saved session).
    journal: Vec<Event>,
    /// Where the ground truth of the journal's start came from, and whether there was one.
    origin: Option<TruthSource>,
    origin_had_truth: bool,
    /// The seed the origin's first episode was reset to (that reset is not an event).
    origin_seed: u64,
    origin_reset_pending: bool,
    /// Events of a saved session still to replay, and how many it had.
    replay: std::collections::VecDeque<Event>,
    replay_total: usize,
    replay_done: usize,
    /// The SHA-256 of the weights the saved session being opened ran with.
    replay_weights: Option<String>,
    /// Whose events are being replayed: a saved session's, a counterfactual's (a fork and its
    /// perturbed steps) or sampled futures' (forks retaking the same steps with other noise).
    replay_kind: ReplayKind,
    /// The last sampled futures.
    futures: Option<Futures>,
}

/// Whose events [`Session::advance_replay`] carries out.
#[derive(Debug, Clone, PartialEq)]
enum ReplayKind {
    SavedSession,
    Counterfactual,
    /// K futures from step `at` of branch `original`; branches with ids from `first_new` on
    /// are its new samples; the user's seed is restored when they are done.
    Futures {
        original: BranchId,
        at: usize,
        first_new: u32,
        seed: u64,
    },
}

/// K sampled futures of the same actions: the branches (the original first), all equal up to
/// step `at` and each imagined with its own noise after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Futures {
    pub at: usize,
    pub branches: Vec<BranchId>,
}

/// Model steps kept for the achieved rate, and the window it is measured over.
const RATE_STEPS: usize = 64;
const RATE_WINDOW: Duration = Duration::from_secs(3);

const MAX_NOTICES: usize = 50;

impl Default for Session {
    fn default() -> Self {
        Self::new(SessionConfig::default())
    }
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            transport: Transport::default(),
            truth_template: None,
            model: None,
            model_info: None,
            parked: None,
            loading: None,
            loading_truth: None,
            palette: None,
            scene_spec: None,
            timeline: Timeline::default(),
            pending: None,
            generation: 0,
            notices: Vec::new(),
            recording: None,
            recorded_cache: std::sync::Mutex::default(),
            takeover_action: None,
            episodes_saved: 0,
            dream_seed: None,
            finished: std::collections::VecDeque::new(),
            journal: Vec::new(),
            origin: None,
            origin_had_truth: false,
            origin_seed: 0,
            origin_reset_pending: false,
            replay: std::collections::VecDeque::new(),
            replay_total: 0,
            replay_done: 0,
            replay_weights: None,
            replay_kind: ReplayKind::SavedSession,
            futures: None,
        }
    }

    // ----- sources -------------------------------------------------------------------------

    /// Starts loading a model on its worker; it replaces the current one when it has loaded
    /// and fits the ground truth (see [`Session::poll`]).
    pub fn load_model(&mut self, worker: ModelWorker, label: String) {
        self.notify(Level::Info, loading_notice(&label));
        self.loading = Some((worker, label));
        self.loading_truth = None;
    }

    /// Starts loading a model that comes with its own ground truth (a built-in scene and its
    /// shipped model): when the model has loaded and fits `truth`, both replace the current
    /// ones at once; otherwise a notice, and the session keeps what it had.
    pub fn load_model_with_truth(
        &mut self,
        worker: ModelWorker,
        label: String,
        truth: Box<dyn GroundTruth>,
    ) {
        self.load_model(worker, label);
        self.loading_truth = Some(truth);
    }

    /// Whether a model is being loaded.
    pub fn model_loading(&self) -> Option<&str> {
        self.loading.as_ref().map(|(_, l)| l.as_str())
    }

    /// Replaces the ground truth (a live scene or a replay) and resets. A ground truth the
    /// loaded model does not fit opens without it (ground truth only: no dead end); the model
    /// is set aside, says why, and comes back with a ground truth it fits.
    pub fn set_truth(&mut self, truth: Box<dyn GroundTruth>) -> bool {
        if let Some(info) = &self.model_info
            && let Err(e) = check_compatible(info, truth.spec())
        {
            if let (Some(worker), Some(info)) = (self.model.take(), self.model_info.take()) {
                self.parked = Some((worker, info, e.clone()));
            }
            self.notify(
                Level::Error,
                format!(
                    "{e}: showing the ground truth only (File > Open model opens one that fits)"
                ),
            );
        } else if self.model.is_none()
            && let Some((_, info, _)) = &self.parked
            && check_compatible(info, truth.spec()).is_ok()
            && let Some((worker, info, _)) = self.parked.take()
        {
            self.notify(Level::Info, format!("model {} is back", info.source));
            self.model = Some(worker);
            self.model_info = Some(info);
        }
        self.install_truth(truth);
        self.reset();
        true
    }

    /// Why the open model is not used (the ground truth does not fit it), if it is set aside.
    pub fn model_set_aside(&self) -> Option<&str> {
        self.parked.as_ref().map(|(_, _, why)| why.as_str())
    }

    /// A new origin (ground truth or model): the journal, the branches and the undo history
    /// start again, since what they hold was made with the old ones.
    fn new_origin(&mut self) {
        self.end_recording_because("the ground truth or the model changed");
        self.journal.clear();
        // Branch ids count from here, so a saved session's events name the same branches
        // when replayed (a reset follows and makes the first one).
        self.timeline = Timeline::default();
        self.origin = self
            .truth_template
            .as_ref()
            .and_then(|t| t.source().cloned());
        self.origin_had_truth = self.truth_template.is_some();
        self.origin_reset_pending = true;
    }

    /// The seed of the origin's first reset: a saved session opens with it.
    pub fn origin_seed(&self) -> u64 {
        self.origin_seed
    }

    /// Whether the journal starts from a ground truth (known or not: see [`Session::origin`]).
    pub fn origin_had_truth(&self) -> bool {
        self.origin_had_truth
    }

    /// Drops the ground truth the next reset would start from (a saved session that began in
    /// dream mode is being opened).
    pub fn drop_truth(&mut self) {
        self.truth_template = None;
    }

    fn journal_push(&mut self, event: Event) {
        match (self.journal.last_mut(), &event) {
            // Resetting twice to the same episode changes nothing.
            (Some(last), Event::Reset { .. }) if *last == event => {}
            // The same step again: one event with a count.
            (
                Some(Event::Step {
                    action,
                    seed,
                    anchor_every,
                    repeat,
                }),
                Event::Step {
                    action: a,
                    seed: s,
                    anchor_every: e,
                    ..
                },
            ) if action == a && seed == s && anchor_every == e && *repeat < u32::MAX => {
                *repeat += 1;
            }
            _ => self.journal.push(event),
        }
    }

    /// What the user did since the ground truth and model were opened.
    pub fn journal(&self) -> &[Event] {
        &self.journal
    }

    /// Where the ground truth the journal starts from came from (`None`: unknown, or dream
    /// mode from the start).
    pub fn origin(&self) -> Option<&TruthSource> {
        self.origin.as_ref()
    }

    /// Replays a saved session's events (after a model being loaded has loaded), as fast as
    /// the model allows; `weights_sha256` is what the session's model weights hashed to.
    pub fn replay_events(&mut self, events: Vec<Event>, weights_sha256: Option<String>) {
        self.replay_total = events
            .iter()
            .map(|e| match e {
                Event::Step { repeat, .. } => *repeat as usize,
                _ => 1,
            })
            .sum();
        self.replay_done = 0;
        self.replay = events.into();
        self.replay_weights = weights_sha256;
        self.replay_kind = ReplayKind::SavedSession;
    }

    /// K futures of the steps after `at` on the active branch: `k - 1` new branches forked at
    /// `at` retake its next `steps` actions, each with its own sampler noise, beside a live
    /// scene or a replay alike (the actions are the same, so is the world). [`Session::futures`]
    /// lists them with the original; the view shows them side by side with their spread.
    pub fn sample_futures(&mut self, at: usize, steps: usize, k: usize) -> Result<(), String> {
        if !self.replay.is_empty() {
            return Err("busy replaying events; try again when it is done".into());
        }
        if k < 2 {
            return Err("sampled futures need at least 2 samples".into());
        }
        if self.model.is_none() {
            return Err("sampled futures need a model".into());
        }
        let original = self.active_id();
        let actions = self.actions_after(at, steps, "sample again", "futures")?;
        let seed = self.config.seed;
        let mut events = Vec::new();
        for j in 1..k {
            events.push(Event::Switch { branch: original.0 });
            events.push(Event::Fork { step: at });
            let sample_seed = seed ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            events.extend(actions.iter().map(|a| Event::Step {
                action: a.clone(),
                seed: sample_seed,
                anchor_every: self.config.anchor_every,
                repeat: 1,
            }));
        }
        events.push(Event::Switch { branch: original.0 });
        let first_new = self.branches().iter().map(|b| b.id.0).max().unwrap_or(0) + 1;
        self.replay_events(events, None);
        self.replay_kind = ReplayKind::Futures {
            original,
            at,
            first_new,
            seed,
        };
        Ok(())
    }

    /// The actions of the (at most) `steps` steps after `at` on the active branch, to retake;
    /// an error naming what would `verb` them and the `request` when there are none.
    fn actions_after(
        &self,
        at: usize,
        steps: usize,
        verb: &str,
        request: &str,
    ) -> Result<Vec<Action>, String> {
        let actions: Vec<Action> = self
            .active_branch()
            .steps
            .iter()
            .skip(at + 1)
            .take(steps)
            .filter_map(|r| r.action.clone())
            .collect();
        if actions.is_empty() {
            return Err(format!(
                "no steps after step {at} to {verb}: step on first, then ask for the \
                 {request} of an earlier step"
            ));
        }
        Ok(actions)
    }

    /// The last sampled futures whose branches all still exist.
    pub fn futures(&self) -> Option<&Futures> {
        self.futures.as_ref().filter(|f| {
            f.branches
                .iter()
                .all(|id| self.branches().iter().any(|b| b.id == *id))
        })
    }

    /// The counterfactual of the steps after `at` on the active branch: a new branch forked
    /// at `at` retakes the next `steps` actions (those the branch has) perturbed, in the model
    /// (same noise per step as the original) and in the live scene alike, so the two branches
    /// show model and world under both action sequences ([`Session::action_response`]).
    pub fn counterfactual(
        &mut self,
        at: usize,
        steps: usize,
        perturbation: crate::perturb::Perturbation,
    ) -> Result<(), String> {
        if !self.replay.is_empty() {
            return Err("busy replaying events; try again when it is done".into());
        }
        if self
            .active_branch()
            .current_truth()
            .is_none_or(|t| t.kind() != TruthKind::Live)
        {
            return Err(
                "a counterfactual needs a live scene beside the model (a recording cannot \
                 show what other actions would have done)"
                    .into(),
            );
        }
        let space = self.action_space().cloned().ok_or("no action space")?;
        let actions = self.actions_after(at, steps, "perturb", "counterfactual")?;
        let mut events = vec![Event::Fork { step: at }];
        events.extend(actions.iter().map(|a| Event::Step {
            action: perturbation.apply_action(a, &space),
            seed: self.config.seed,
            anchor_every: self.config.anchor_every,
            repeat: 1,
        }));
        self.replay_events(events, None);
        self.replay_kind = ReplayKind::Counterfactual;
        Ok(())
    }

    /// Events replayed so far and in all (a step repeated counts each time) while a saved
    /// session is being restored.
    pub fn replay_progress(&self) -> Option<(usize, usize)> {
        (!self.replay.is_empty()).then_some((self.replay_done, self.replay_total))
    }

    /// Carries out replayed events while the model is idle (call every frame, after any
    /// ground truth the loaded model brings is in place).
    pub fn advance_replay(&mut self) {
        let mut budget = 256;
        while budget > 0 && self.loading.is_none() && self.pending.is_none() {
            let Some(mut event) = self.replay.pop_front() else {
                break;
            };
            budget -= 1;
            // A repeated step is taken once; the rest waits for the model.
            if let Event::Step { repeat, .. } = &mut event
                && *repeat > 1
            {
                *repeat -= 1;
                self.replay.push_front(event.clone());
            }
            self.replay_done += 1;
            let n = self.replay_done;
            let what = match self.replay_kind {
                ReplayKind::SavedSession => "saved session",
                ReplayKind::Counterfactual => "counterfactual",
                ReplayKind::Futures { .. } => "sampled futures",
            };
            if let Err(why) = self.apply_event(&event) {
                self.notify(
                    Level::Error,
                    format!(
                        "{what}: event {n} of {} ({event:?}) could not be replayed: \
                         {why}; it stops there",
                        self.replay_total
                    ),
                );
                self.replay.clear();
                if let ReplayKind::Futures { seed, .. } = self.replay_kind {
                    self.config.seed = seed;
                }
            } else if self.replay.is_empty() {
                let done = match self.replay_kind.clone() {
                    ReplayKind::SavedSession => {
                        format!("session restored: {} events replayed", self.replay_total)
                    }
                    ReplayKind::Counterfactual => format!(
                        "counterfactual: {} perturbed steps taken on a new branch; the views \
                         compare it with its parent",
                        self.replay_total - 1
                    ),
                    ReplayKind::Futures {
                        original,
                        at,
                        first_new,
                        seed,
                    } => {
                        // The samples' steps set the seed; the user's comes back.
                        self.config.seed = seed;
                        let mut branches = vec![original];
                        branches.extend(
                            self.branches()
                                .iter()
                                .map(|b| b.id)
                                .filter(|id| id.0 >= first_new),
                        );
                        let k = branches.len();
                        self.futures = Some(Futures { at, branches });
                        format!("{k} sampled futures from step {at}: shown side by side")
                    }
                };
                self.notify(Level::Info, done);
            }
        }
    }

    /// Carries out one event as the user's command did.
    fn apply_event(&mut self, event: &Event) -> Result<(), String> {
        match event {
            Event::Reset { seed } => {
                self.config.seed = *seed;
                self.reset();
                Ok(())
            }
            Event::Step {
                action,
                seed,
                anchor_every,
                ..
            } => {
                self.config.seed = *seed;
                self.config.anchor_every = *anchor_every;
                self.step_now(action).map_err(|r| format!("{r:?}"))
            }
            Event::Fork { step } => self.fork(*step).map(|_| ()),
            Event::Switch { branch } => {
                if self.switch_branch(BranchId(*branch)) {
                    Ok(())
                } else {
                    Err(format!("no branch {branch}"))
                }
            }
            Event::Delete { branch } => self.delete_branch(BranchId(*branch)),
            Event::Undo => self.undo(),
            Event::TakeOver => self.take_over(),
            Event::Resync => self.resync_now(),
            Event::Dream => self.enter_dream_mode(),
        }
    }

    fn install_truth(&mut self, truth: Box<dyn GroundTruth>) {
        self.palette = truth
            .spec()
            .scene
            .as_ref()
            .map(|s| Palette::from_spec(s, metrics::DEFAULT_TOLERANCE))
            .filter(Palette::has_objects);
        self.scene_spec = truth.spec().scene.clone();
        self.truth_template = Some(truth);
        self.new_origin();
    }

    /// Drops the ground truth: the model runs alone (dream mode) from the next reset, and from
    /// now on in the current branch.
    pub fn enter_dream_mode(&mut self) -> Result<(), String> {
        if self.model.is_none() {
            return Err("dream mode needs a model".into());
        }
        if self.recording.as_ref().is_some_and(Recording::has_truth) {
            self.end_recording_because("dream mode has no ground truth to record");
        }
        self.truth_template = None;
        let context_len = self.model_info.as_ref().map_or(1, |m| m.context_len);
        let real: Vec<Arc<Frame>> = self
            .active_branch()
            .steps
            .iter()
            .filter_map(|r| r.truth.clone())
            .collect();
        if real.len() >= context_len {
            self.dream_seed = Some(DreamSeed {
                frames: real[real.len() - context_len..].to_vec(),
                low: None,
                actions: Vec::new(),
            });
        }
        let head = self.active_branch().steps.len();
        let branch = self.active_branch_mut();
        if branch.current_truth().is_some() {
            branch.truth.push((head, None));
        }
        self.notify(
            Level::Info,
            "dream mode: the model runs without ground truth".into(),
        );
        self.journal_push(Event::Dream);
        Ok(())
    }

    /// Frames that seed dream-mode rollouts (default: the last real context, else grey).
    pub fn set_dream_seed(&mut self, frames: Vec<Frame>) {
        self.dream_seed = Some(DreamSeed {
            frames: frames.into_iter().map(Arc::new).collect(),
            low: None,
            actions: Vec::new(),
        });
    }

    /// A dream-mode seed with everything a context has: frames at the model's size, a
    /// two-stage model's first-stage frames, and the actions taken after each frame but the
    /// last (DIAMOND's spawn files hold all three). Frames of another size are fitted.
    pub fn set_dream_seed_full(&mut self, seed: DreamSeed) {
        let frames: Vec<Arc<Frame>> = seed
            .frames
            .iter()
            .map(|f| Arc::new(self.fit((**f).clone())))
            .collect();
        // First-stage frames only for a two-stage model, at its first stage's size: the
        // seed's, else the frames' box downscale (what the model would make of them).
        let stages = self.model_info.as_ref().and_then(|m| m.stages);
        let low = stages.map(|st| {
            let fit = |f: Frame| Arc::new(crate::bridge::fit(f, st.low_width, st.low_height));
            match &seed.low {
                Some(low) => low.iter().map(|f| fit((**f).clone())).collect(),
                None => frames
                    .iter()
                    .map(|f: &Arc<Frame>| fit(frames::box_downscale(f, st.factor)))
                    .collect(),
            }
        });
        self.dream_seed = Some(DreamSeed {
            frames,
            low,
            actions: seed.actions,
        });
    }

    /// The dream-mode seed, if one is set.
    pub fn dream_seed(&self) -> Option<&DreamSeed> {
        self.dream_seed.as_ref()
    }

    pub fn model_info(&self) -> Option<&ModelInfo> {
        self.model_info.as_ref()
    }

    pub fn truth_spec(&self) -> Option<&TruthSpec> {
        self.active_branch()
            .current_truth()
            .map(|t| t.spec())
            .or_else(|| self.truth_template.as_deref().map(|t| t.spec()))
    }

    /// The action space the controls should offer: the ground truth's (it has names), else
    /// the model's.
    pub fn action_space(&self) -> Option<&ActionSpace> {
        self.truth_spec()
            .map(|s| &s.action_space)
            .or_else(|| self.model_info.as_ref().map(|m| &m.action_space))
    }

    /// Frames per second of the ground truth or the model.
    pub fn fps(&self) -> f64 {
        self.truth_spec()
            .map(|s| s.fps)
            .or_else(|| self.model_info.as_ref().and_then(|m| m.fps))
            .unwrap_or(10.0)
    }

    /// Frame size of the model (frames are fitted to it), else of the ground truth.
    pub fn frame_size(&self) -> Option<(u32, u32)> {
        self.model_info
            .as_ref()
            .map(|m| (m.frame_width, m.frame_height))
            .or_else(|| self.truth_spec().map(|s| (s.frame_width, s.frame_height)))
    }

    // ----- branches and timeline -------------------------------------------------------------

    pub fn branches(&self) -> &[Branch] {
        self.timeline.branches()
    }

    pub fn active_id(&self) -> BranchId {
        self.timeline.active_id()
    }

    pub fn active_branch(&self) -> &Branch {
        self.timeline.active()
    }

    fn active_branch_mut(&mut self) -> &mut Branch {
        self.timeline.active_mut()
    }

    /// The active branch's parent and the step it forked at, when it has one.
    pub fn parent_branch(&self) -> Option<(&Branch, usize)> {
        let (id, at) = self.active_branch().parent?;
        Some((self.timeline.branch(id)?, at))
    }

    /// The active branch against its parent after the fork (see [`ActionResponse`]); `None`
    /// without a parent or before any step both imagined beside a truth.
    pub fn action_response(&self) -> Option<ActionResponse> {
        let (parent, at) = self.parent_branch()?;
        let branch = self.active_branch();
        let (mut steps, mut model_px, mut world_px) = (0usize, 0.0, 0.0);
        for (a, b) in branch.steps.iter().zip(&parent.steps).skip(at + 1) {
            let both = |r: &StepRecord| {
                (r.kind == FrameKind::Imagined).then_some(())?;
                Some((r.model.clone()?, r.truth.clone()?))
            };
            let (Some((ma, ta)), Some((mb, tb))) = (both(a), both(b)) else {
                continue;
            };
            if ma.data.len() != mb.data.len() || ta.data.len() != tb.data.len() {
                continue;
            }
            steps += 1;
            model_px += crate::objects::pixel_divergence(&ma.data, &mb.data);
            world_px += crate::objects::pixel_divergence(&ta.data, &tb.data);
        }
        (steps > 0).then(|| ActionResponse {
            steps,
            model_px: model_px / steps as f64,
            world_px: world_px / steps as f64,
        })
    }

    /// The step the views show: a step of the active branch, or one of the
    /// [`recorded_ahead`](Self::recorded_ahead) recorded steps after its head.
    pub fn view_step(&self) -> Option<usize> {
        self.timeline.view_step_ahead(self.recorded_ahead())
    }

    /// Shows step `step` (clamped to the steps there are, recorded ones included); scrubbing
    /// to the head follows new steps again.
    pub fn scrub(&mut self, step: usize) {
        let ahead = self.recorded_ahead();
        self.timeline.scrub_ahead(step, ahead);
    }

    /// The recorded episode the active branch replays, and the episode frame of its step 0
    /// (steps and episode frames advance together). `None` once the branch has left the
    /// recording (take-over, dream mode) or without one.
    pub fn recorded_episode(&self) -> Option<(&Episode, isize)> {
        let branch = self.active_branch();
        let truth = branch.current_truth()?;
        let episode = truth.recorded()?;
        let head = branch.head()?;
        Some((episode, truth.position() as isize - head as isize))
    }

    /// Recorded steps after the active branch's head, shown and scrubbable before the model
    /// reaches them (a replayed episode's future); 0 without a recording.
    pub fn recorded_ahead(&self) -> usize {
        // The head is the replay's current frame.
        let branch = self.active_branch();
        let (Some(truth), Some(_)) = (branch.current_truth(), branch.head()) else {
            return 0;
        };
        truth.recorded().map_or(0, |episode| {
            episode.frames.len().saturating_sub(truth.position() + 1)
        })
    }

    /// Steps the timeline spans: the active branch's and the recorded ones after its head.
    pub fn timeline_len(&self) -> usize {
        self.active_branch().steps.len() + self.recorded_ahead()
    }

    /// The record of the shown step: the branch's, or for a recorded step beyond the head a
    /// [`FrameKind::Recorded`] one holding the recorded frame (at the model's size) and the
    /// recorded action that led to it.
    pub fn shown_record(&self) -> Option<std::borrow::Cow<'_, StepRecord>> {
        let i = self.view_step()?;
        let branch = self.active_branch();
        if let Some(rec) = branch.steps.get(i) {
            return Some(std::borrow::Cow::Borrowed(rec));
        }
        let (episode, offset) = self.recorded_episode()?;
        let e = usize::try_from(i as isize + offset).ok()?;
        let frame = episode.frames.get(e)?;
        let key = (std::ptr::from_ref(episode) as usize, e);
        let mut cache = self
            .recorded_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fitted = match cache.as_ref() {
            Some((k, f)) if *k == key => Arc::clone(f),
            _ => {
                let f = Arc::new(self.fit(frame.clone()));
                *cache = Some((key, Arc::clone(&f)));
                f
            }
        };
        let mut rec = StepRecord::context(
            Option::<&Action>::cloned(e.checked_sub(1).and_then(|p| episode.actions.get(p))),
            fitted,
            true,
        );
        rec.kind = FrameKind::Recorded;
        rec.model = None;
        rec.truth_state = episode.states.as_ref().and_then(|s| s.get(e)).cloned();
        Some(std::borrow::Cow::Owned(rec))
    }

    /// Whether the views follow the newest step.
    pub fn following_head(&self) -> bool {
        self.timeline.following_head()
    }

    /// Whether a model step is in flight.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// How long the step in flight has been running.
    pub fn pending_for(&self) -> Option<Duration> {
        self.pending.as_ref().map(|p| p.issued.elapsed())
    }

    /// Copies the active branch up to `step` into a new branch and makes it active.
    pub fn fork(&mut self, step: usize) -> Result<BranchId, String> {
        let id = self.timeline.fork(step)?;
        self.journal_push(Event::Fork { step });
        self.notify(Level::Info, format!("forked at step {step}"));
        Ok(id)
    }

    /// Makes `id` the active branch.
    pub fn switch_branch(&mut self, id: BranchId) -> bool {
        let switched = self.timeline.switch(id);
        if switched {
            self.journal_push(Event::Switch { branch: id.0 });
        }
        switched
    }

    /// Deletes branch `id` (not the last one); the active branch moves to its parent or the
    /// first branch. A step in flight on it is dropped.
    pub fn delete_branch(&mut self, id: BranchId) -> Result<(), String> {
        if self.timeline.branches().len() > 1
            && self.pending.as_ref().is_some_and(|p| p.branch == id)
        {
            self.abandon_pending();
        }
        self.timeline.delete(id)?;
        self.journal_push(Event::Delete { branch: id.0 });
        Ok(())
    }

    /// Takes back the last reset or branch deletion (Ctrl+Z): the branches come back as they
    /// were, ground truth and model states included.
    pub fn undo(&mut self) -> Result<(), String> {
        if !self.timeline.can_undo() {
            return Err("nothing to undo (resets and branch deletions can be undone)".into());
        }
        self.abandon_pending();
        match self.timeline.undo() {
            Some(undone) => {
                let text = match undone {
                    timeline::Undone::Reset(n) => {
                        format!("undone: the reset ({n} branches back)")
                    }
                    timeline::Undone::Delete(name) => format!("undone: deleting `{name}`"),
                };
                self.journal_push(Event::Undo);
                self.notify(Level::Info, text);
                Ok(())
            }
            None => Err("nothing to undo (resets and branch deletions can be undone)".into()),
        }
    }

    /// Whether a reset now would drop steps the user took (and so be worth an undo).
    pub fn can_undo_reset(&self) -> bool {
        self.timeline.has_user_steps()
    }

    /// Whether [`Session::undo`] has something to take back.
    pub fn can_undo(&self) -> bool {
        self.timeline.can_undo()
    }

    /// Drops the step in flight: its job's reply will be ignored, and its record (with the
    /// truth's step) leaves its branch, which stays whole for an undo.
    fn abandon_pending(&mut self) {
        self.generation += 1;
        if let Some(p) = self.pending.take()
            && let Some(branch) = self.timeline.branch_mut(p.branch)
            && let Err(e) = branch.drop_pending_head()
        {
            self.notify(
                Level::Error,
                format!(
                    "the step in flight could not be taken back: {}",
                    crate::error_chain(e.as_ref())
                ),
            );
        }
    }

    // ----- stepping --------------------------------------------------------------------------

    /// Starts a new rollout from the ground truth's first frame (or the dream seed), dropping
    /// every branch.
    pub fn reset(&mut self) {
        self.abandon_pending();
        self.finished.clear();
        let mut branch = self.timeline.new_main();
        let context_len = self.model_info.as_ref().map_or(1, |m| m.context_len);
        let seed = self.config.seed;
        let fresh = self.truth_template.as_mut().map(|template| {
            template.reseed(seed);
            template.fork_at(0).and_then(|mut t| {
                let frame = t.reset()?;
                Ok((t, frame))
            })
        });
        match fresh {
            Some(Ok((t, frame))) => {
                let frame = Arc::new(self.fit(frame));
                branch.steps.push(StepRecord {
                    truth_state: t.state(),
                    ..self.first_record(frame)
                });
                branch.truth.push((0, Some(t)));
            }
            Some(Err(e)) => self.notify(
                Level::Error,
                format!("reset failed: {}", crate::error_chain(e.as_ref())),
            ),
            None if self.model_info.is_some() => {
                // Dream mode: seed frames stand in for a real context (grey placeholders when
                // there are none).
                branch.truth.push((0, None));
                let placeholder = self.dream_seed.is_none();
                for (f, low, action) in self.dream_context(context_len) {
                    branch.steps.push(StepRecord {
                        placeholder,
                        model_low: low,
                        ..StepRecord::context(action, f, false)
                    });
                }
            }
            None => {}
        }
        self.timeline.restart(branch);
        if std::mem::take(&mut self.origin_reset_pending) {
            self.origin_seed = seed;
        } else {
            self.journal_push(Event::Reset { seed });
        }
        if let Some(rec) = self.recording.as_mut() {
            rec.rewind();
        }
    }

    fn first_record(&self, frame: Arc<Frame>) -> StepRecord {
        if self.model_info.is_some() {
            StepRecord::context(None, frame, true)
        } else {
            StepRecord {
                kind: FrameKind::TruthOnly,
                model: None,
                ..StepRecord::context(None, frame, true)
            }
        }
    }

    /// The `n` context records of a dream-mode start: frame, first-stage frame (when the
    /// seed has them) and the action that led to it (the seed's action before it, if any).
    fn dream_context(&self, n: usize) -> Vec<SeedRecord> {
        if let Some(seed) = &self.dream_seed
            && let Some(last) = seed.frames.last()
        {
            let len = seed.frames.len();
            let skip = len.saturating_sub(n);
            let mut v: Vec<_> = (skip..len)
                .map(|i| {
                    let low = seed.low.as_ref().and_then(|l| l.get(i)).cloned();
                    let action = i.checked_sub(1).and_then(|p| seed.actions.get(p)).cloned();
                    (Arc::clone(&seed.frames[i]), low, action)
                })
                .collect();
            while v.len() < n {
                let low = seed.low.as_ref().and_then(|l| l.last()).cloned();
                v.insert(0, (Arc::clone(last), low, None));
            }
            // The oldest record of a window has no predecessor in it.
            if let Some(first) = v.first_mut() {
                first.2 = None;
            }
            return v;
        }
        let (w, h) = self.frame_size().unwrap_or((64, 64));
        let grey = Arc::new(frames::solid(w, h, [128, 128, 128]));
        vec![(grey, None, None); n]
    }

    /// Ground-truth frames are compared with the model's at the model's size.
    fn fit(&self, frame: Frame) -> Frame {
        match &self.model_info {
            Some(m) => crate::bridge::fit(frame, m.frame_width, m.frame_height),
            None => frame,
        }
    }

    /// Takes one step with `user_action` (a replay uses its recorded action instead): the
    /// ground truth steps at once; then either the step is real (no model, or the model's
    /// context is still filling) or the model's step is sent to its worker.
    pub fn step(&mut self, user_action: &Action) -> Result<(), Refused> {
        if !self.replay.is_empty() {
            return Err(Refused::Busy);
        }
        self.step_now(user_action)
    }

    fn step_now(&mut self, user_action: &Action) -> Result<(), Refused> {
        let event = Event::Step {
            action: user_action.clone(),
            seed: self.config.seed,
            anchor_every: self.config.anchor_every,
            repeat: 1,
        };
        let r = self.step_inner(user_action);
        if r.is_ok() {
            self.journal_push(event);
        }
        r
    }

    fn step_inner(&mut self, user_action: &Action) -> Result<(), Refused> {
        if self.pending.is_some() {
            return Err(Refused::Busy);
        }
        if self.active_branch().steps.is_empty() {
            return Err(Refused::Empty);
        }
        let issued = Instant::now();
        let (action, truth_frame) = self.advance_truth(user_action)?;
        let state = self.active_branch().current_truth().and_then(|t| t.state());
        let filled = self.active_branch().steps.len();
        match (self.model_info.as_ref().map(|m| m.context_len), truth_frame) {
            (None, None) => Err(Refused::Empty),
            (None, Some(frame)) => {
                self.push_real_step(action, (frame, state), FrameKind::TruthOnly, issued);
                Ok(())
            }
            (Some(context_len), Some(frame)) if filled < context_len => {
                self.push_real_step(action, (frame, state), FrameKind::Context, issued);
                Ok(())
            }
            (Some(context_len), truth) => {
                self.submit_model_step(action, truth.map(|f| (f, state)), context_len, issued)
            }
        }
    }

    /// Steps the active branch's ground truth (when it has one); returns the action taken and
    /// the truth frame at the model's size. A replay that ended stops playback.
    fn advance_truth(
        &mut self,
        user_action: &Action,
    ) -> Result<(Action, Option<Arc<Frame>>), Refused> {
        let stepped = match self.active_branch_mut().current_truth_mut() {
            Some(t) => step_truth(t, user_action).map(|(a, f)| (a, Some(f))),
            None => Ok((user_action.clone(), None)),
        };
        match stepped {
            Ok((action, frame)) => Ok((action, frame.map(|f| Arc::new(self.fit(f))))),
            Err(e) => {
                if e == Refused::EpisodeEnded {
                    self.transport.playing = false;
                }
                Err(e)
            }
        }
    }

    /// A step with a real frame only: no model (`TruthOnly`) or the model's context filling
    /// (`Context`).
    fn push_real_step(
        &mut self,
        action: Action,
        (frame, state): (Arc<Frame>, Option<Vec<f64>>),
        kind: FrameKind,
        issued: Instant,
    ) {
        let mut rec = StepRecord::context(Some(action), frame, true);
        rec.truth_state = state;
        if kind == FrameKind::TruthOnly {
            rec.kind = kind;
            rec.model = None;
        }
        rec.latency_ms = Some(issued.elapsed().as_secs_f64() * 1e3);
        self.active_branch_mut().steps.push(rec);
        self.after_step_recorded();
    }

    /// Records a pending imagined step and sends it to the model's worker: from the previous
    /// step's rollout state, or from a fresh context when the branch must re-anchor.
    fn submit_model_step(
        &mut self,
        action: Action,
        truth: Option<(Arc<Frame>, Option<Vec<f64>>)>,
        context_len: usize,
        issued: Instant,
    ) -> Result<(), Refused> {
        let (seed, generation) = (self.config.seed, self.generation);
        let branch = self.timeline.active_mut();
        let n = branch.steps.len();
        let start = match branch.steps[n - 1].state.clone() {
            Some(state) if !branch.needs_anchor => StartFrom::State(state),
            _ => {
                let ContextWindow {
                    frames,
                    low,
                    actions,
                } = context_window(&branch.steps, context_len, &action, branch.anchor_to_model);
                branch.needs_anchor = false;
                branch.anchor_to_model = false;
                branch.imagined_since_anchor = 0;
                StartFrom::Context {
                    frames,
                    low,
                    actions,
                }
            }
        };
        let branch_id = branch.id;
        let (truth, truth_state) = truth.unzip();
        branch.steps.push(StepRecord {
            action: Some(action.clone()),
            truth,
            truth_state: truth_state.flatten(),
            model: None,
            model_low: None,
            stage_ms: None,
            kind: FrameKind::Imagined,
            anchored: false,
            metrics: None,
            compute_ms: None,
            latency_ms: None,
            state: None,
            placeholder: false,
        });
        let Some(worker) = self.model.as_mut() else {
            return Err(Refused::Empty);
        };
        match worker.submit(start, action, step_seed(seed, n)) {
            Ok(job) => {
                self.pending = Some(Pending {
                    job,
                    branch: branch_id,
                    step: n,
                    issued,
                    generation,
                });
                Ok(())
            }
            Err(e) => {
                self.active_branch_mut().steps.pop();
                Err(Refused::Invalid(crate::error_chain(e.as_ref())))
            }
        }
    }

    /// Applies finished work from the model thread. Call every frame; never blocks.
    pub fn poll(&mut self) -> PollOutcome {
        let mut out = PollOutcome::default();
        while let Some(reply) = self
            .loading
            .as_ref()
            .and_then(|(w, _)| w.try_recv())
            .map(|r| (true, r))
            .or_else(|| {
                self.model
                    .as_ref()
                    .and_then(|w| w.try_recv())
                    .map(|r| (false, r))
            })
        {
            match reply {
                (true, Reply::Loaded(result)) => {
                    out.model_loaded |= self.finish_loading(result.map(|info| *info));
                }
                (false, Reply::Loaded(Err(e))) => {
                    // The running model's thread died.
                    self.notify(Level::Error, format!("model: {e}"));
                    self.model = None;
                    self.model_info = None;
                    self.pending = None;
                }
                (_, Reply::Loaded(Ok(_))) => {}
                (from_loading, Reply::Step { id, result }) => {
                    if !from_loading && self.finish_step(id, result) {
                        out.steps_finished += 1;
                        self.finished.push_back(Instant::now());
                        if self.finished.len() > RATE_STEPS {
                            self.finished.pop_front();
                        }
                    }
                }
            }
        }
        out
    }

    /// Model steps per second finished over the last few seconds (what playback achieves,
    /// beside the requested `config.steps_per_sec`): `None` until two have finished in that
    /// window.
    pub fn achieved_rate(&self) -> Option<f64> {
        let now = Instant::now();
        let mut recent = self
            .finished
            .iter()
            .filter(|t| now.duration_since(**t) <= RATE_WINDOW);
        let first = recent.next()?;
        let (n, last) = recent.fold((1usize, first), |(n, _), t| (n + 1, t));
        let span = last.duration_since(*first).as_secs_f64();
        (n >= 2 && span > 0.0).then(|| (n - 1) as f64 / span)
    }

    /// Polls until the model is idle or `timeout` passes (tests, headless runs, exports).
    pub fn wait_idle(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            self.advance_replay();
            if self.pending.is_none() && self.loading.is_none() && self.replay.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn finish_loading(&mut self, result: Result<ModelInfo, String>) -> bool {
        let Some((worker, label)) = self.loading.take() else {
            return false;
        };
        let with_truth = self.loading_truth.take();
        // The "loading…" notice is answered by this one.
        let pending = loading_notice(&label);
        self.notices.retain(|n| n.text != pending);
        match result {
            Err(e) => {
                self.notify(Level::Error, e);
                if !self.replay.is_empty() {
                    self.replay.clear();
                    self.notify(
                        Level::Error,
                        "the saved session was not replayed: its model did not load".into(),
                    );
                }
                false
            }
            Ok(info) => {
                if let Some(saved) = self.replay_weights.take()
                    && saved != info.weights_sha256
                {
                    self.notify(
                        Level::Error,
                        format!(
                            "{label}: its weights (SHA-256 {}) are not the ones the saved \
                             session ran (SHA-256 {saved}): its frames will differ",
                            short_hash(&info.weights_sha256)
                        ),
                    );
                }
                if let Some(t) = with_truth.as_deref().or(self.truth_template.as_deref())
                    && let Err(e) = check_compatible(&info, t.spec())
                {
                    self.notify(Level::Error, format!("{label}: {e}"));
                    return false;
                }
                self.notify(
                    Level::Info,
                    format!(
                        "model loaded: {label} ({}x{}, {} context frames, {})",
                        info.frame_width, info.frame_height, info.context_len, info.device
                    ),
                );
                self.model = Some(worker);
                self.model_info = Some(info);
                self.parked = None;
                match with_truth {
                    Some(truth) => self.install_truth(truth),
                    None => self.new_origin(),
                }
                self.reset();
                true
            }
        }
    }

    fn finish_step(&mut self, id: u64, result: Result<worker::StepDone, String>) -> bool {
        let Some(p) = self.pending.take_if(|p| p.job == id) else {
            return false;
        };
        if p.generation != self.generation {
            return false;
        }
        let anchor_every = self.config.anchor_every;
        let has_palette = self.palette.clone();
        let scene_spec = self.scene_spec.clone();
        let Some(branch) = self.timeline.branch_mut(p.branch) else {
            return false;
        };
        let has_truth = branch.current_truth().is_some();
        // The model's frame before this step, for motion checks.
        let previous = p
            .step
            .checked_sub(1)
            .and_then(|i| branch.steps.get(i))
            .and_then(|r| r.model.clone());
        let Some(rec) = branch.steps.get_mut(p.step) else {
            return false;
        };
        match result {
            Ok(done) => {
                rec.metrics = rec.truth.as_ref().map(|t| {
                    let mut m = frame_metrics(t, &done.out.frame, has_palette.as_ref());
                    if let (Some(palette), Some(spec)) = (&has_palette, &scene_spec) {
                        m.objects =
                            object_status(t, &done.out.frame, previous.as_deref(), palette, spec);
                    }
                    m
                });
                rec.model = Some(Arc::new(done.out.frame));
                rec.model_low = done.out.low.map(Arc::new);
                rec.stage_ms = done.out.stage_ms;
                rec.state = Some(done.out.state);
                rec.compute_ms = Some(done.compute_ms);
                if let Some(info) = self.model_info.as_mut() {
                    info.memory = done.memory.or(info.memory);
                }
                rec.latency_ms = Some(p.issued.elapsed().as_secs_f64() * 1e3);
                branch.imagined_since_anchor += 1;
                if anchor_every > 0 && has_truth && branch.imagined_since_anchor >= anchor_every {
                    rec.anchored = true;
                    branch.needs_anchor = true;
                }
                evict_old_state(branch, p.step);
                if p.branch == self.timeline.active_id() {
                    self.after_step_recorded();
                }
                true
            }
            Err(e) => {
                // The ground truth's step goes too, so both sides stay in lockstep.
                let _ = branch.truncate(p.step);
                self.transport.playing = false;
                self.notify(Level::Error, format!("model step failed: {e}"));
                false
            }
        }
    }

    /// Steps if playing and the pace allows; call every frame with the current user action.
    pub fn tick(&mut self, now: Instant, user_action: &Action) -> Option<Result<(), Refused>> {
        if !self.transport.playing || self.pending.is_some() || !self.replay.is_empty() {
            return None;
        }
        let period = Duration::from_secs_f64(1.0 / self.config.steps_per_sec.clamp(0.1, 240.0));
        if self
            .transport
            .last_step
            .is_some_and(|t| now.duration_since(t) < period)
        {
            return None;
        }
        self.transport.last_step = Some(now);
        let r = self.step(user_action);
        if let Err(e) = &r
            && *e != Refused::Busy
        {
            self.transport.playing = false;
        }
        Some(r)
    }

    /// The recorded action at the step the last take-over from a replay started (what the
    /// recording did next there), numbered so the controls pick each one up once: they start
    /// from it instead of from wherever the pad was.
    pub fn takeover_action(&self) -> Option<(u64, &Action)> {
        self.takeover_action.as_ref().map(|(n, a)| (*n, a))
    }

    /// The action the recording takes at step `step` of the active branch (LeRobot's row:
    /// the action applied after that frame), while the branch replays one.
    pub fn recorded_action_at(&self, step: usize) -> Option<&Action> {
        let (episode, offset) = self.recorded_episode()?;
        episode.next_action(usize::try_from(step as isize + offset).ok()?)
    }

    /// Re-anchors the model on the next step: its context becomes the last real frames.
    pub fn resync_now(&mut self) -> Result<(), String> {
        let branch = self.active_branch_mut();
        if branch.current_truth().is_none() {
            return Err("no ground truth to re-sync to".into());
        }
        branch.needs_anchor = true;
        if let Some(last) = branch.steps.last_mut() {
            last.anchored = true;
        }
        self.journal_push(Event::Resync);
        Ok(())
    }

    /// During a replay, continues from the current step under user control (a live scene from
    /// the episode's state when possible, else the model alone).
    pub fn take_over(&mut self) -> Result<(), String> {
        let branch = self.active_branch();
        let Some(t) = branch.current_truth() else {
            return Err("nothing to take over: no ground truth".into());
        };
        if t.kind() != TruthKind::Replay {
            return Err("already under live control".into());
        }
        if self.pending.is_some() {
            return Err("wait for the model's step to finish".into());
        }
        let head = branch.steps.len().saturating_sub(1);
        // The controls start from what the recording did here, not from where the pad was.
        let recorded = (t.kind() == TruthKind::Replay)
            .then(|| t.scripted_action())
            .flatten();
        let (source, note) = match t.take_over() {
            Ok(live) => (
                Some(live),
                "live control: the scene continues from this step".to_owned(),
            ),
            Err(e) => (
                None,
                format!(
                    "live control without ground truth (the model alone): {}",
                    crate::error_chain(e.as_ref())
                ),
            ),
        };
        if source.is_none() && self.model.is_none() {
            return Err(note);
        }
        self.active_branch_mut().truth.push((head, source));
        if let Some(action) = recorded {
            let n = self.takeover_action.as_ref().map_or(0, |(n, _)| n + 1);
            self.takeover_action = Some((n, action));
        }
        self.timeline.follow_head();
        self.notify(Level::Info, note);
        self.journal_push(Event::TakeOver);
        Ok(())
    }

    // ----- recording -------------------------------------------------------------------------

    /// Starts recording the active branch's model frames and actions from the current step.
    pub fn start_recording(&mut self, recorder: Box<dyn Recorder>) -> Result<(), String> {
        let Some(info) = &self.model_info else {
            return Err("recording needs a model".into());
        };
        let current = self.active_branch().current_truth();
        let truth = current.map(|t| TruthColumns {
            // Without states (a replayed episode of another tool) there is none to store.
            scene: t.spec().scene.clone().filter(|_| t.state().is_some()),
            metrics: Recording::metric_names(self.palette.as_ref()),
        });
        let meta = EpisodeMeta {
            imagined: true,
            model: info.source.clone(),
            model_sha256: info.weights_sha256.clone(),
            ground_truth: current.map(|t| t.spec().name.clone()),
            fps: self.fps(),
            action_space: self
                .action_space()
                .cloned()
                .unwrap_or(info.action_space.clone()),
            seed: self.config.seed,
            truth,
        };
        let next_step = self.active_branch().steps.len();
        let rec = Recording::start(recorder, meta, self.palette.clone(), next_step)?;
        self.notify(Level::Info, format!("recording {}", rec.describe()));
        self.recording = Some(rec);
        Ok(())
    }

    /// Ends a recording that no longer fits what the session shows (another ground truth or
    /// model, or dream mode beside a recording of the truth): its episode in progress is
    /// saved, and a notice says why.
    fn end_recording_because(&mut self, why: &str) {
        let Some(rec) = self.recording.take() else {
            return;
        };
        let place = rec
            .location()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
        match rec.finish() {
            Ok(saved) => {
                self.episodes_saved += usize::from(saved);
                self.notify(
                    Level::Info,
                    format!(
                        "recording stopped{place}: {why} (its episodes are saved; Record starts \
                         a new recording)"
                    ),
                );
            }
            Err(e) => self.notify(Level::Error, format!("{why}: {e}")),
        }
    }

    pub fn recording(&self) -> Option<RecordingStatus> {
        self.recording.as_ref().map(|r| RecordingStatus {
            holds: r.describe(),
            rows: r.rows(),
            episodes_saved: self.episodes_saved,
            path: r.location().map(std::path::Path::to_path_buf),
        })
    }

    /// Saves the episode in progress and starts the next one from a reset (LeRobot's → / n).
    pub fn save_episode(&mut self) -> Result<usize, String> {
        let Some(rec) = self.recording.as_mut() else {
            return Err("not recording".into());
        };
        let index = rec.save()?;
        self.episodes_saved += 1;
        self.reset();
        self.restart_recording_episode();
        self.notify(Level::Info, format!("saved episode {index}"));
        Ok(index)
    }

    /// Drops the episode in progress and re-records from a reset (LeRobot's ← / r).
    pub fn discard_episode(&mut self) -> Result<(), String> {
        let Some(rec) = self.recording.as_mut() else {
            return Err("not recording".into());
        };
        rec.discard()?;
        self.reset();
        self.restart_recording_episode();
        self.notify(Level::Info, "episode discarded; recording again".into());
        Ok(())
    }

    /// Saves a non-empty episode in progress and closes the recorder (LeRobot's Esc / q).
    pub fn stop_recording(&mut self) -> Result<(), String> {
        let Some(rec) = self.recording.take() else {
            return Err("not recording".into());
        };
        if rec.finish()? {
            self.episodes_saved += 1;
        }
        self.notify(Level::Info, "recording stopped".into());
        Ok(())
    }

    /// Begins the recorder's next episode (after a save or discard reset the session).
    fn restart_recording_episode(&mut self) {
        let seed = self.config.seed;
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        if let Err(e) = rec.begin_next(seed) {
            self.recording = None;
            self.notify(
                Level::Error,
                format!("recording stopped: {}", crate::error_chain(e.as_ref())),
            );
        }
    }

    /// Writes the rows that became complete on the active branch.
    fn after_step_recorded(&mut self) {
        let Some(rec) = self.recording.as_mut() else {
            return;
        };
        if let Err(e) = rec.push_complete_rows(&self.timeline.active().steps) {
            self.recording = None;
            self.notify(
                Level::Error,
                format!("recording stopped: {}", crate::error_chain(e.as_ref())),
            );
        }
    }

    // ----- notices ---------------------------------------------------------------------------

    pub fn notify(&mut self, level: Level, text: String) {
        match level {
            Level::Error => tracing::warn!("{text}"),
            Level::Info => tracing::info!("{text}"),
        }
        // One notice per distinct message: said again, it moves to the end with a count.
        let count = match self
            .notices
            .iter()
            .position(|n| n.level == level && n.text == text)
        {
            Some(i) => self.notices.remove(i).count.saturating_add(1),
            None => 1,
        };
        self.notices.push(Notice {
            level,
            text,
            at: Instant::now(),
            count,
        });
        if self.notices.len() > MAX_NOTICES {
            self.notices.remove(0);
        }
    }

    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    pub fn clear_notices(&mut self) {
        self.notices.clear();
    }
}

fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

fn loading_notice(label: &str) -> String {
    format!("loading model {label}…")
}

/// Steps a ground truth with the user's action, or the recorded one when replaying.
fn step_truth(t: &mut dyn GroundTruth, user_action: &Action) -> Result<(Action, Frame), Refused> {
    let scripted = t.scripted_action();
    if t.kind() == TruthKind::Replay && scripted.is_none() {
        return Err(Refused::EpisodeEnded);
    }
    let action = scripted.unwrap_or_else(|| user_action.clone());
    t.spec()
        .action_space
        .check(&t.spec().name, &action)
        .map_err(|e| Refused::Invalid(e.to_string()))?;
    match t.step(&action) {
        Ok(Some(f)) => Ok((action, f)),
        Ok(None) => Err(Refused::EpisodeEnded),
        Err(e) => Err(Refused::Invalid(crate::error_chain(e.as_ref()))),
    }
}

/// The model's context for a fresh start at step `n = steps.len()`: the last `len` frames
/// (real ones where the step has ground truth, else the model's) with the action taken at each;
/// the newest gets `next_action`, which the step overwrites anyway.
/// The last `len` frames of `steps` with the actions taken after them: the real frames where
/// there are any, or the model's own when `model_first` (rebuilding an imagined rollout's state,
/// which is exactly this window: the model's quantised frames and the actions).
///
/// A two-stage model's first-stage frames come along when every step of the window used the
/// model's frame and has one (dream mode's seed, the model's own rollout); otherwise the model
/// downscales the frames.
fn context_window(
    steps: &[StepRecord],
    len: usize,
    next_action: &Action,
    model_first: bool,
) -> ContextWindow {
    let n = steps.len();
    let first = n.saturating_sub(len);
    let mut frames = Vec::with_capacity(len);
    let mut low = Some(Vec::with_capacity(len));
    let mut actions = Vec::with_capacity(len);
    for i in first..n {
        let rec = &steps[i];
        let use_model = model_first || rec.truth.is_none();
        let frame = if model_first {
            rec.model.as_ref().or(rec.truth.as_ref())
        } else {
            rec.truth.as_ref().or(rec.model.as_ref())
        };
        if let Some(f) = frame {
            frames.push(Arc::clone(f));
        }
        low = match (low, &rec.model_low) {
            (Some(mut v), Some(l)) if use_model => {
                v.push(Arc::clone(l));
                Some(v)
            }
            _ => None,
        };
        let taken = steps
            .get(i + 1)
            .and_then(|s| s.action.clone())
            .unwrap_or_else(|| next_action.clone());
        actions.push(taken);
    }
    // Too short (cannot happen after the context phase): repeat the oldest.
    while frames.len() < len
        && let Some(f) = frames.first().cloned()
    {
        frames.insert(0, f);
        actions.insert(0, next_action.clone());
        if let Some(v) = low.as_mut()
            && let Some(l) = v.first().cloned()
        {
            v.insert(0, l);
        }
    }
    ContextWindow {
        frames,
        low: low.filter(|v| v.len() == len),
        actions,
    }
}

/// The noise seed of step `n`: reproducible per (seed, step), so a fork given the same actions
/// repeats its parent and differs only where the actions do.
fn step_seed(seed: u64, n: usize) -> u64 {
    // SplitMix64 finaliser.
    let mut z = seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// PSNR (capped, as `eval`'s), SSIM and per-object IoU of a model frame against the truth,
/// through the one definition `eval` uses too ([`metrics::score_frame`]).
pub fn frame_metrics(truth: &Frame, model: &Frame, palette: Option<&Palette>) -> StepMetrics {
    let s = metrics::score_frame(
        &truth.data,
        &model.data,
        truth.width as usize,
        truth.height as usize,
        palette,
    );
    StepMetrics {
        psnr_db: s.psnr,
        ssim: s.ssim,
        iou: s.iou,
        objects: Vec::new(),
    }
}

/// Each scene object of a model frame against the truth (same size), and whether it moved
/// farther than the scene allows since `previous` (the model's frame a step before), through
/// the definitions `eval` uses ([`crate::objects`]).
pub fn object_status(
    truth: &Frame,
    model: &Frame,
    previous: Option<&Frame>,
    palette: &Palette,
    spec: &dreamyard_scenes::SceneSpec,
) -> Vec<ObjectStatus> {
    use crate::objects::{Masks, ObjectRules, check_objects, is_teleport, presence_min_px};
    let (w, h) = (truth.width as usize, truth.height as usize);
    let rules = ObjectRules::from_spec(spec, w);
    let t = Masks::of(&truth.data, w, h, palette);
    let m = Masks::of(&model.data, w, h, palette);
    let before = previous
        .filter(|p| (p.width, p.height) == (truth.width, truth.height))
        .map(|p| Masks::of(&p.data, w, h, palette));
    let min_px = presence_min_px(w, h);
    check_objects(&t, &m, &rules)
        .into_iter()
        .enumerate()
        .map(|(k, c)| {
            let bound = rules.max_step_px.get(k).copied().flatten();
            let teleport = match (bound, &before, c.model_pose) {
                (Some(b), Some(before), Some(now)) => before
                    .object(k)
                    .pose(false)
                    .filter(|p| p.area >= min_px)
                    .is_some_and(|p| is_teleport(p.centroid, now.centroid, b)),
                _ => false,
            };
            ObjectStatus {
                name: rules.names[k].clone(),
                moving: bound.is_some(),
                centroid_px: c.centroid_px,
                angle_deg: c.angle_deg,
                lost: c.lost,
                phantom: c.phantom,
                teleport,
            }
        })
        .collect()
}

/// How a branch's model responds to its different actions, against the world: over the steps
/// after the fork where both it and its parent have true and imagined frames, the mean
/// absolute pixel difference between the two model frames and between the two true frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionResponse {
    /// Steps compared.
    pub steps: usize,
    /// Mean divergence of the two branches' model frames (8-bit).
    pub model_px: f64,
    /// Mean divergence of their true frames (8-bit).
    pub world_px: f64,
}

impl ActionResponse {
    /// Model over world: 0 = the model ignores the different actions, 1 = it responds as the
    /// world does; `None` while the worlds have not diverged.
    pub fn ratio(&self) -> Option<f64> {
        (self.world_px > 0.0).then(|| self.model_px / self.world_px)
    }
}

/// Whether a model can run beside a ground truth: same kind of actions and dimension.
pub fn check_compatible(model: &ModelInfo, truth: &TruthSpec) -> Result<(), String> {
    fits(model, &truth.action_space, &truth.name)
}

/// Whether `model` takes the actions of `space` (ground truth `name`'s), else why not.
pub fn fits(model: &ModelInfo, space: &ActionSpace, name: &str) -> Result<(), String> {
    match (&model.action_space, space) {
        (ActionSpace::Discrete { names: m }, ActionSpace::Discrete { names: t })
            if m.len() == t.len() =>
        {
            Ok(())
        }
        (ActionSpace::Continuous { names: m, .. }, ActionSpace::Continuous { names: t, .. })
            if m.len() == t.len() =>
        {
            Ok(())
        }
        (m, t) => Err(format!(
            "the model's actions ({}) do not fit `{}`'s ({})",
            describe(m),
            name,
            describe(t)
        )),
    }
}

fn describe(space: &ActionSpace) -> String {
    match space {
        ActionSpace::Discrete { names } => format!("{} discrete", names.len()),
        ActionSpace::Continuous { names, .. } => format!("{} continuous values", names.len()),
    }
}
