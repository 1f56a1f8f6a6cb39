//! Headless tests of the session core with a fake model (and one with a real, tiny candle
//! model): lockstep, replay, take-over, re-anchoring, forks, recording, exports and errors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dreamyard_scenes::policy::PolicyKind;
use dreamyard_scenes::{Action, ActionSpace, Frame, SceneSource, load_scene, run_policy};

use super::backend::{Backend, CandleBackend, ModelInfo, ModelState, StepOutput};
use super::recorder::MemoryRecorder;
use super::truth::{Episode, LiveScene, Replay};
use super::worker::ModelWorker;
use super::*;

const SIZE: u32 = 32;
const WAIT: Duration = Duration::from_secs(20);

/// A fake model: the next frame is the newest context frame darkened by one level per step
/// since the context was (re)set, so frames drift from the truth. It counts resets.
struct Fake {
    info: ModelInfo,
    resets: Arc<AtomicUsize>,
    delay: Duration,
}

#[derive(Clone)]
struct FakeState {
    last: Arc<Frame>,
    age: u8,
}

impl Fake {
    fn new(action_space: ActionSpace) -> (Self, Arc<AtomicUsize>) {
        let resets = Arc::new(AtomicUsize::new(0));
        let fake = Self {
            info: ModelInfo {
                source: "fake".into(),
                // The fake has no weights file to hash.
                weights_sha256: String::new(),
                context_len: 4,
                action_space,
                frame_width: SIZE,
                frame_height: SIZE,
                fps: Some(10.0),
                device: "test".into(),
                dtype: "f32".into(),
                memory: None,
                stages: None,
                keyboard_mouse: None,
            },
            resets: Arc::clone(&resets),
            delay: Duration::ZERO,
        };
        (fake, resets)
    }
}

impl Backend for Fake {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn reset(
        &self,
        frames: &[Arc<Frame>],
        _low: Option<&[Arc<Frame>]>,
        actions: &[Action],
    ) -> anyhow::Result<ModelState> {
        anyhow::ensure!(frames.len() == 4 && actions.len() == 4, "context of 4");
        self.resets.fetch_add(1, Ordering::SeqCst);
        Ok(ModelState::new(FakeState {
            last: Arc::clone(&frames[3]),
            age: 0,
        }))
    }

    fn step(&self, state: &ModelState, _action: &Action, _seed: u64) -> anyhow::Result<StepOutput> {
        std::thread::sleep(self.delay);
        let s = state.get::<FakeState>().unwrap();
        let age = s.age.saturating_add(1);
        let mut frame = (*s.last).clone();
        for v in &mut frame.data {
            *v = v.saturating_sub(age);
        }
        Ok(StepOutput {
            frame,
            low: None,
            stage_ms: None,
            state: ModelState::new(FakeState {
                last: Arc::clone(&s.last),
                age,
            }),
        })
    }
}

fn push_t() -> Box<dyn dreamyard_scenes::Scene> {
    load_scene(&SceneSource::parse("push-t"), Some((SIZE, SIZE))).unwrap()
}

fn push_t_space() -> ActionSpace {
    push_t().spec().action_space.clone()
}

/// A session over live push-t with the fake model loaded.
fn live_session() -> (Session, Arc<AtomicUsize>) {
    let (fake, resets) = Fake::new(push_t_space());
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "fake".into(),
    );
    assert!(s.wait_idle(WAIT));
    assert!(s.model_info().is_some());
    // The session's seed picks the scene's episode (the UI's seed field).
    s.config.seed = 7;
    assert!(s.set_truth(Box::new(LiveScene::new(push_t(), 0))));
    (s, resets)
}

fn act(x: f32, y: f32) -> Action {
    Action::Continuous(vec![x, y])
}

fn step_wait(s: &mut Session, a: &Action) {
    s.step(a).unwrap();
    assert!(s.wait_idle(WAIT));
}

/// A recorded push-t episode (heuristic policy) with states.
fn episode(len: usize, with_states: bool) -> Episode {
    let mut scene = push_t();
    let mut policy = scene.scripted_policy(PolicyKind::Heuristic);
    let (mut frames, mut actions, mut states) = (Vec::new(), Vec::new(), Vec::new());
    run_policy(
        scene.as_mut(),
        policy.as_mut(),
        3,
        len - 1,
        false,
        |a, obs| {
            if let Some(a) = a {
                actions.push(a.clone());
            }
            frames.push(obs.frame.clone());
            states.push(obs.state.clone());
        },
    )
    .unwrap();
    // The last frame's action: hold the last one.
    actions.push(actions.last().unwrap().clone());
    Episode {
        name: "push-t episode 0".into(),
        frames,
        actions,
        states: with_states.then_some(states),
        action_space: push_t_space(),
        fps: 10.0,
    }
}

#[test]
fn lockstep_live_scene_and_model() {
    let (mut s, resets) = live_session();
    let mut reference = push_t();
    let first = reference.reset(7).frame;
    assert_eq!(*s.active_branch().steps[0].truth.clone().unwrap(), first);
    let actions: Vec<Action> = (0..10)
        .map(|i| act(200.0 + 10.0 * i as f32, 300.0))
        .collect();
    for a in &actions {
        step_wait(&mut s, a);
    }
    let b = s.active_branch();
    assert_eq!(b.steps.len(), 11);
    for (i, a) in actions.iter().enumerate() {
        let rec = &b.steps[i + 1];
        // The same action went to both sides; the truth is the scene's own frame.
        assert_eq!(rec.action.as_ref(), Some(a));
        assert_eq!(
            **rec.truth.as_ref().unwrap(),
            reference.step(a).unwrap().frame
        );
        assert!(rec.model.is_some());
    }
    let kinds: Vec<FrameKind> = b.steps.iter().map(|r| r.kind).collect();
    assert_eq!(&kinds[..4], &[FrameKind::Context; 4]);
    assert!(kinds[4..].iter().all(|k| *k == FrameKind::Imagined));
    // Context frames are the real ones; imagined ones have metrics and timings.
    assert_eq!(b.steps[2].model, b.steps[2].truth);
    let m = b.steps[6].metrics.as_ref().unwrap();
    assert!(m.psnr_db.is_finite() && m.ssim <= 1.0);
    assert_eq!(
        m.iou.len(),
        push_t().spec().objects.len(),
        "one IoU per object colour"
    );
    assert!(m.mean_iou().is_some());
    assert!(b.steps[6].compute_ms.is_some() && b.steps[6].latency_ms.is_some());
    // One context reset; the rest continued from the state.
    assert_eq!(resets.load(Ordering::SeqCst), 1);
    assert_eq!(s.view_step(), Some(10));
    s.scrub(3);
    assert_eq!(s.view_step(), Some(3));
    assert!(!s.following_head());
}

#[test]
fn following_the_head_shows_the_newest_complete_step_while_the_next_computes() {
    let (mut fake, _) = Fake::new(push_t_space());
    fake.delay = Duration::from_millis(150);
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "slow".into(),
    );
    assert!(s.wait_idle(WAIT));
    s.set_truth(Box::new(LiveScene::new(push_t(), 1)));
    assert_eq!(s.achieved_rate(), None);
    for _ in 0..4 {
        s.step(&act(100.0, 100.0)).unwrap();
        assert!(s.wait_idle(WAIT));
    }
    s.step(&act(120.0, 100.0)).unwrap();
    assert!(s.is_pending());
    let head = s.active_branch().steps.len() - 1;
    assert!(s.active_branch().steps[head].is_pending());
    // Truth, model and error show the step before, complete, not a blank model panel.
    assert_eq!(s.view_step(), Some(head - 1));
    let shown = &s.active_branch().steps[head - 1];
    assert!(shown.model.is_some() && shown.truth.is_some() && shown.metrics.is_some());
    assert!(s.wait_idle(WAIT));
    assert_eq!(s.view_step(), Some(head), "then the step once it is ready");
    // Two imagined steps finished: the achieved rate is measured.
    assert!(s.achieved_rate().is_some_and(|r| r > 0.0));
    s.reset();
    assert_eq!(s.achieved_rate(), None);
}

#[test]
fn a_step_in_flight_refuses_the_next_and_reset_drops_it() {
    let (mut fake, _) = Fake::new(push_t_space());
    fake.delay = Duration::from_millis(300);
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "slow".into(),
    );
    assert!(s.wait_idle(WAIT));
    s.set_truth(Box::new(LiveScene::new(push_t(), 1)));
    for _ in 0..3 {
        s.step(&act(100.0, 100.0)).unwrap();
    }
    s.step(&act(100.0, 100.0)).unwrap();
    assert!(s.is_pending());
    assert!(s.active_branch().steps[4].is_pending());
    assert_eq!(s.step(&act(1.0, 1.0)), Err(Refused::Busy));
    // A reset while pending ignores the late reply.
    s.reset();
    assert!(!s.is_pending());
    std::thread::sleep(Duration::from_millis(400));
    s.poll();
    assert_eq!(s.active_branch().steps.len(), 1);
}

#[test]
fn replay_uses_recorded_actions_and_seeds_the_model_with_four_real_frames() {
    let (fake, resets) = Fake::new(push_t_space());
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "fake".into(),
    );
    assert!(s.wait_idle(WAIT));
    let ep = episode(12, true);
    assert!(s.set_truth(Box::new(Replay::new(ep.clone(), None).unwrap())));
    let mut steps = 0;
    loop {
        match s.step(&act(0.0, 0.0)) {
            Ok(()) => assert!(s.wait_idle(WAIT)),
            Err(Refused::EpisodeEnded) => break,
            Err(e) => panic!("{e:?}"),
        }
        steps += 1;
    }
    assert_eq!(steps, 11);
    let b = s.active_branch();
    for (i, rec) in b.steps.iter().enumerate() {
        assert_eq!(**rec.truth.as_ref().unwrap(), ep.frames[i]);
        if i > 0 {
            assert_eq!(rec.action.as_ref(), Some(&ep.actions[i - 1]));
        }
        let kind = if i < 4 {
            FrameKind::Context
        } else {
            FrameKind::Imagined
        };
        assert_eq!(rec.kind, kind, "step {i}");
    }
    assert_eq!(resets.load(Ordering::SeqCst), 1);
    assert!(!s.transport.playing);
}

#[test]
fn take_over_continues_in_a_live_scene_from_the_episode_state() {
    let (fake, _) = Fake::new(push_t_space());
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "fake".into(),
    );
    assert!(s.wait_idle(WAIT));
    let ep = episode(20, true);
    s.set_truth(Box::new(Replay::new(ep.clone(), Some(push_t())).unwrap()));
    for _ in 0..6 {
        step_wait(&mut s, &act(0.0, 0.0));
    }
    assert_eq!(s.active_branch().truth_kind(), Some(TruthKind::Replay));
    assert_eq!(s.takeover_action(), None);
    s.take_over().unwrap();
    assert_eq!(s.active_branch().truth_kind(), Some(TruthKind::Live));
    // The controls start from what the recording did at this step, not from the pad.
    assert_eq!(s.takeover_action(), Some((0, &ep.actions[6])));
    let mut pad = crate::controls::ActionPad::new(push_t_space());
    assert!(pad.set_action(s.takeover_action().unwrap().1));
    assert_eq!(pad.action(), ep.actions[6]);
    // Once live, no recorded future is shown.
    assert_eq!(s.recorded_ahead(), 0);
    assert_eq!(s.timeline_len(), 7);
    let mine = act(480.0, 40.0);
    step_wait(&mut s, &mine);
    let rec = s.active_branch().steps.last().unwrap();
    assert_eq!(
        rec.action.as_ref(),
        Some(&mine),
        "the user's action, not the episode's"
    );
    let mut scene = push_t();
    scene.reset_to(&ep.states.as_ref().unwrap()[6]).unwrap();
    assert_eq!(
        **rec.truth.as_ref().unwrap(),
        scene.step(&mine).unwrap().frame
    );
    assert_eq!(rec.kind, FrameKind::Imagined);
    assert!(s.take_over().is_err(), "already live");
}

/// A replayed episode spans the timeline from the start: its frames beyond the model's
/// progress are shown (truth only, "recorded"), scrubbable, with the recorded action; the
/// view stays there while the model catches up, and a fork replays from its step on.
#[test]
fn a_replayed_episode_is_shown_whole_before_the_model_reaches_it() {
    let (fake, _) = Fake::new(push_t_space());
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "fake".into(),
    );
    assert!(s.wait_idle(WAIT));
    let ep = episode(12, true);
    s.set_truth(Box::new(Replay::new(ep.clone(), Some(push_t())).unwrap()));
    assert_eq!(s.active_branch().steps.len(), 1);
    assert_eq!((s.recorded_ahead(), s.timeline_len()), (11, 12));
    assert_eq!(s.view_step(), Some(0), "following the head");
    // Scrub to the last recorded frame: the truth is the recording's, no model frame yet.
    s.scrub(11);
    assert_eq!(s.view_step(), Some(11));
    let rec = s.shown_record().unwrap();
    assert_eq!(rec.kind, FrameKind::Recorded);
    assert_eq!(rec.truth.as_deref(), Some(&ep.frames[11]));
    assert!(rec.model.is_none() && rec.metrics.is_none());
    assert_eq!(
        rec.action.as_ref(),
        Some(&ep.actions[10]),
        "the action that led here"
    );
    assert_eq!(
        rec.truth_state.as_ref(),
        Some(&ep.states.as_ref().unwrap()[11])
    );
    // The same frame while it is shown (the views compare it by identity).
    let again = s.shown_record().unwrap();
    assert!(Arc::ptr_eq(
        rec.truth.as_ref().unwrap(),
        again.truth.as_ref().unwrap()
    ));
    assert_eq!(s.recorded_action_at(3), Some(&ep.actions[3]));
    assert_eq!(
        s.recorded_action_at(11),
        None,
        "the last frame's action leads nowhere"
    );
    // Stepping: the model catches up; the view stays on the scrubbed step.
    for _ in 0..5 {
        step_wait(&mut s, &act(0.0, 0.0));
    }
    assert_eq!(s.active_branch().steps.len(), 6);
    assert_eq!((s.recorded_ahead(), s.timeline_len()), (6, 12));
    assert_eq!(s.view_step(), Some(11));
    assert_eq!(s.shown_record().unwrap().kind, FrameKind::Recorded);
    s.scrub(4);
    assert_eq!(s.shown_record().unwrap().kind, FrameKind::Imagined);
    assert_eq!(
        s.shown_record().unwrap().truth.as_deref(),
        Some(&ep.frames[4])
    );
    // Back to the head follows new steps again.
    s.scrub(5);
    assert!(s.following_head());
    // A fork at step 2 replays from there: the rest of the episode is ahead of it.
    s.fork(2).unwrap();
    assert_eq!(s.active_branch().steps.len(), 3);
    assert_eq!((s.recorded_ahead(), s.timeline_len()), (9, 12));
    assert_eq!(s.recorded_action_at(2), Some(&ep.actions[2]));
    // Scrubbing past the episode is clamped to its last frame.
    s.scrub(40);
    assert_eq!(s.view_step(), Some(11));
    // A live scene has no recorded future.
    let (live, _) = live_session();
    assert_eq!((live.recorded_ahead(), live.timeline_len()), (0, 1));
}

#[test]
fn take_over_without_states_goes_on_with_the_model_alone() {
    let (fake, _) = Fake::new(push_t_space());
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "fake".into(),
    );
    assert!(s.wait_idle(WAIT));
    s.set_truth(Box::new(Replay::new(episode(10, false), None).unwrap()));
    for _ in 0..5 {
        step_wait(&mut s, &act(0.0, 0.0));
    }
    s.take_over().unwrap();
    assert_eq!(s.active_branch().truth_kind(), None);
    step_wait(&mut s, &act(10.0, 10.0));
    let rec = s.active_branch().steps.last().unwrap();
    assert!(rec.truth.is_none() && rec.model.is_some());
    assert_eq!(rec.action, Some(act(10.0, 10.0)));
}

#[test]
fn re_anchor_every_n_steps_and_resync_now() {
    let (mut s, resets) = live_session();
    s.config.anchor_every = 3;
    for _ in 0..12 {
        step_wait(&mut s, &act(250.0, 250.0));
    }
    // Imagined steps 4..=12: the context is reset at 4, then after every 3rd imagined step.
    assert_eq!(resets.load(Ordering::SeqCst), 3);
    let anchored: Vec<usize> = s
        .active_branch()
        .steps
        .iter()
        .enumerate()
        .filter(|(_, r)| r.anchored)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(anchored, vec![6, 9, 12]);
    // After re-anchoring the model starts again from a real frame: its drift restarts.
    let b = s.active_branch();
    let darkening = |i: usize| {
        let t = b.steps[i].truth.as_ref().unwrap();
        let m = b.steps[i].model.as_ref().unwrap();
        crate::metrics::psnr(&t.data, &m.data)
    };
    assert!(darkening(7).is_finite());

    s.config.anchor_every = 0;
    step_wait(&mut s, &act(250.0, 250.0));
    step_wait(&mut s, &act(250.0, 250.0));
    let before = resets.load(Ordering::SeqCst);
    step_wait(&mut s, &act(250.0, 250.0));
    assert_eq!(
        resets.load(Ordering::SeqCst),
        before,
        "no anchoring when N = 0"
    );
    s.resync_now().unwrap();
    step_wait(&mut s, &act(250.0, 250.0));
    assert_eq!(resets.load(Ordering::SeqCst), before + 1);
}

#[test]
fn forks_branch_the_rollout_and_can_be_switched_and_deleted() {
    let (mut s, resets) = live_session();
    let actions: Vec<Action> = (0..8)
        .map(|i| act(150.0 + 20.0 * i as f32, 200.0))
        .collect();
    for a in &actions {
        step_wait(&mut s, a);
    }
    let main = s.active_id();
    let main_steps = s.active_branch().steps.clone();
    let fork = s.fork(6).unwrap();
    assert_ne!(fork, main);
    assert_eq!(s.active_id(), fork);
    assert_eq!(s.active_branch().steps.len(), 7);
    assert_eq!(s.active_branch().parent, Some((main, 6)));
    // The fork's scene is where the main branch's was at step 6: the same action gives the same
    // frame as the main branch's step 7, and the model continues from the cloned state.
    let resets_before = resets.load(Ordering::SeqCst);
    step_wait(&mut s, &actions[6]);
    let rec = s.active_branch().steps.last().unwrap();
    assert_eq!(rec.truth, main_steps[7].truth);
    assert_eq!(rec.model, main_steps[7].model);
    assert_eq!(resets.load(Ordering::SeqCst), resets_before);
    // A different action diverges.
    step_wait(&mut s, &act(20.0, 20.0));
    assert_ne!(s.active_branch().steps[8].truth, main_steps[8].truth);

    assert!(s.switch_branch(main));
    assert_eq!(s.active_branch().steps.len(), 9);
    s.switch_branch(fork);
    s.delete_branch(fork).unwrap();
    assert_eq!(s.active_id(), main);
    assert_eq!(s.branches().len(), 1);
    assert!(s.delete_branch(main).is_err(), "the last branch stays");
    // A fork of a context step re-seeds the model from real frames.
    s.fork(2).unwrap();
    for _ in 0..3 {
        step_wait(&mut s, &act(1.0, 1.0));
    }
    assert_eq!(s.active_branch().steps[4].kind, FrameKind::Imagined);
}

#[test]
fn only_recent_steps_keep_states_and_older_forks_rebuild_from_model_frames() {
    use super::KEPT_STATES;
    let (mut s, resets) = live_session();
    let total = KEPT_STATES + 20;
    for i in 0..total {
        step_wait(&mut s, &act(100.0 + (i % 50) as f32, 200.0));
    }
    let steps = &s.active_branch().steps;
    assert_eq!(steps.len(), total + 1);
    let newest = steps.len() - 1;
    assert!(steps[newest].state.is_some());
    assert!(steps[newest + 1 - KEPT_STATES].state.is_some());
    assert!(
        steps[newest - KEPT_STATES].state.is_none(),
        "older states are dropped"
    );
    assert!(steps[10].state.is_none());

    // Fork at an old imagined step: the model restarts from its own frames there, so the next
    // frame continues the imagined rollout (the fake darkens the newest context frame by one).
    let k = 10;
    let imagined_k = steps[k].model.clone().unwrap();
    assert_ne!(
        Some(&imagined_k),
        steps[k].truth.as_ref(),
        "the fake drifts from the truth"
    );
    let before = resets.load(Ordering::SeqCst);
    s.fork(k).unwrap();
    step_wait(&mut s, &act(1.0, 1.0));
    assert_eq!(resets.load(Ordering::SeqCst), before + 1);
    let mut want = (*imagined_k).clone();
    for v in &mut want.data {
        *v = v.saturating_sub(1);
    }
    assert_eq!(s.active_branch().steps[k + 1].model.as_deref(), Some(&want));
}

#[test]
fn recording_writes_model_frames_with_their_actions() {
    let (mut s, _) = live_session();
    let rec = Arc::new(Mutex::new(MemoryRecorder::default()));
    s.start_recording(Box::new(Arc::clone(&rec))).unwrap();
    let actions: Vec<Action> = (0..6).map(|i| act(100.0 + i as f32, 50.0)).collect();
    for a in &actions {
        step_wait(&mut s, a);
    }
    assert_eq!(s.recording().unwrap().rows, 6);
    let steps = s.active_branch().steps.clone();
    s.save_episode().unwrap();
    // Re-record: a discarded episode leaves nothing.
    step_wait(&mut s, &act(1.0, 2.0));
    s.discard_episode().unwrap();
    step_wait(&mut s, &act(3.0, 4.0));
    step_wait(&mut s, &act(5.0, 6.0));
    s.stop_recording().unwrap();
    assert!(s.recording().is_none());

    let r = rec.lock().unwrap();
    assert!(r.finished);
    assert_eq!(r.saved.len(), 2);
    let ep = &r.saved[0];
    assert!(ep.meta.imagined);
    assert_eq!(ep.meta.model, "fake");
    assert_eq!(ep.meta.ground_truth.as_deref(), Some("push-t"));
    assert_eq!(ep.actions, actions);
    // Row t: the frame shown at step t (real context first, then imagined) and its action.
    for (t, f) in ep.frames.iter().enumerate() {
        assert_eq!(f, &**steps[t].model.as_ref().unwrap());
    }
    assert_ne!(ep.frames[5], **steps[5].truth.as_ref().unwrap());
    // Beside the truth each row holds the true frame and state too.
    assert_eq!(ep.truth.len(), 6);
    for (t, row) in ep.truth.iter().enumerate() {
        assert_eq!(row.frame, **steps[t].truth.as_ref().unwrap(), "row {t}");
        assert_eq!(row.state, steps[t].truth_state, "row {t}");
        assert!(row.state.is_some());
        assert_eq!(
            row.imagined,
            steps[t].kind == FrameKind::Imagined,
            "row {t}"
        );
    }
    assert_eq!(r.saved[1].actions, vec![act(3.0, 4.0), act(5.0, 6.0)]);
}

/// A recording of the truth cannot go on without one: dream mode, another ground truth or
/// another model end it, its episode saved, with a notice saying why.
#[test]
fn a_recording_ends_saved_when_what_it_records_goes_away() {
    for change in ["dream", "truth"] {
        let (mut s, _) = live_session();
        let rec = Arc::new(Mutex::new(MemoryRecorder::default()));
        s.start_recording(Box::new(Arc::clone(&rec))).unwrap();
        for _ in 0..3 {
            step_wait(&mut s, &act(200.0, 200.0));
        }
        match change {
            "dream" => s.enter_dream_mode().unwrap(),
            _ => assert!(s.set_truth(Box::new(LiveScene::new(push_t(), 3)))),
        }
        assert!(s.recording().is_none(), "{change}");
        let r = rec.lock().unwrap();
        assert!(r.finished, "{change}");
        assert_eq!(
            r.saved.len(),
            1,
            "{change}: the episode in progress is saved"
        );
        assert_eq!(r.saved[0].frames.len(), 3, "{change}");
        assert!(
            s.notices()
                .iter()
                .any(|n| n.text.starts_with("recording stopped")),
            "{change}: {:?}",
            s.notices()
        );
    }
}

#[test]
fn divergence_marker_and_exports() {
    let (mut s, _) = live_session();
    for i in 0..12 {
        step_wait(&mut s, &act(100.0 + 30.0 * i as f32, 400.0));
    }
    let b = s.active_branch();
    // The fake darkens by one level per step: PSNR falls below 45 dB after a few steps.
    let div = b.first_divergence(45.0).unwrap();
    assert!(div >= 4);
    assert!(b.first_divergence(0.0).is_none());
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("s.gif");
    let style = export::ExportStyle {
        gain: 4.0,
        min_side: 256,
    };
    assert_eq!(export::export_gif(b, &gif, 10.0, &style).unwrap(), 13);
    assert!(std::fs::metadata(&gif).unwrap().len() > 0);
    let png = dir.path().join("s.png");
    assert_eq!(export::export_png_strip(b, &png, 6, &style).unwrap(), 6);
    let img = image::open(&png).unwrap().to_rgb8();
    // 32x32 tiles scaled x8 (nearest) to a readable 256, gaps scaled with them.
    let (tile, gap) = (8 * SIZE, 8);
    assert_eq!(img.width(), 6 * tile + 5 * gap);
    assert_eq!(img.height(), 3 * tile + 2 * gap);
    // The error row is drawn at the gain: the last column's error (the fake darkens by one
    // level per imagined step) shows at 4x.
    let last = s.active_branch().steps.last().unwrap();
    let t = last.truth.as_deref().unwrap();
    let m = last.model.as_deref().unwrap();
    let e = crate::metrics::abs_error(&t.data, &m.data)[0];
    let px = img.get_pixel(5 * (tile + gap), 2 * (tile + gap)).0;
    assert_eq!(
        px,
        crate::metrics::heat_color((f32::from(e) * 4.0).round().min(255.0) as u8)
    );
}

#[test]
fn bad_models_and_incompatible_sources_leave_the_session_running() {
    let (mut s, _) = live_session();
    step_wait(&mut s, &act(1.0, 1.0));
    // A model that fails to load.
    s.load_model(
        ModelWorker::spawn(Box::new(|| {
            anyhow::bail!("no model.safetensors in /nowhere")
        }))
        .unwrap(),
        "/nowhere".into(),
    );
    assert!(s.wait_idle(WAIT));
    assert!(s.notices().last().unwrap().text.contains("/nowhere"));
    // The error replaces the "loading" notice.
    assert!(
        !s.notices()
            .iter()
            .any(|n| n.text.starts_with("loading model")),
        "{:?}",
        s.notices().iter().map(|n| &n.text).collect::<Vec<_>>()
    );
    assert_eq!(s.model_info().unwrap().source, "fake");
    // A discrete model does not fit push-t.
    let (discrete, _) = Fake::new(ActionSpace::Discrete {
        names: vec!["a".into(), "b".into()],
    });
    s.load_model(
        ModelWorker::with_backend(Box::new(discrete)).unwrap(),
        "discrete".into(),
    );
    assert!(s.wait_idle(WAIT));
    assert_eq!(s.notices().last().unwrap().level, Level::Error);
    assert!(s.notices().last().unwrap().text.contains("do not fit"));
    assert_eq!(s.model_info().unwrap().source, "fake");
    assert_eq!(
        s.active_branch().steps.len(),
        2,
        "the session kept its rollout"
    );
    // An episode with discrete actions does not fit the model: it opens with the ground
    // truth only, the model set aside saying why, and back with a ground truth it fits.
    let mut ep = episode(6, false);
    ep.action_space = ActionSpace::Discrete {
        names: vec!["x".into()],
    };
    ep.actions = vec![Action::Discrete(0); 6];
    assert!(s.set_truth(Box::new(Replay::new(ep, None).unwrap())));
    assert!(s.model_info().is_none());
    let why = s.model_set_aside().unwrap().to_owned();
    assert!(why.contains("do not fit"), "{why}");
    assert!(
        s.notices()
            .last()
            .unwrap()
            .text
            .contains("ground truth only")
    );
    step_wait(&mut s, &Action::Discrete(0));
    let rec = s.active_branch().steps.last().unwrap();
    assert_eq!(rec.kind, FrameKind::TruthOnly);
    assert!(rec.truth.is_some());
    assert!(s.set_truth(Box::new(LiveScene::new(push_t(), 0))));
    assert_eq!(s.model_info().unwrap().source, "fake");
    assert!(s.model_set_aside().is_none());
    step_wait(&mut s, &act(1.0, 1.0));
    // Malformed episodes and actions are errors, not panics.
    let mut bad = episode(6, false);
    bad.actions.pop();
    assert!(Replay::new(bad, None).is_err());
    assert!(matches!(
        s.step(&Action::Discrete(3)),
        Err(Refused::Invalid(_))
    ));
    assert!(matches!(
        s.step(&act(f32::NAN, 0.0)),
        Err(Refused::Invalid(_))
    ));
    step_wait(&mut s, &act(1.0, 1.0));
}

#[test]
fn dream_mode_runs_the_model_alone() {
    let (fake, _) = Fake::new(push_t_space());
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "fake".into(),
    );
    assert!(s.wait_idle(WAIT));
    // No ground truth at all: the rollout starts from grey placeholders, marked as such (the
    // panel never calls them real).
    assert_eq!(s.active_branch().steps.len(), 4);
    assert!(s.active_branch().steps.iter().all(|r| r.placeholder));
    for _ in 0..3 {
        step_wait(&mut s, &act(1.0, 1.0));
    }
    let b = s.active_branch();
    assert_eq!(b.steps.len(), 7);
    assert!(b.steps.iter().all(|r| r.truth.is_none()));
    assert_eq!(b.steps[6].kind, FrameKind::Imagined);
    // Entering dream mode in a live session drops the truth from the current step on.
    s.set_truth(Box::new(LiveScene::new(push_t(), 2)));
    for _ in 0..5 {
        step_wait(&mut s, &act(1.0, 1.0));
    }
    s.enter_dream_mode().unwrap();
    step_wait(&mut s, &act(1.0, 1.0));
    let last = s.active_branch().steps.last().unwrap();
    assert!(last.truth.is_none() && last.model.is_some());
    // A reset in dream mode seeds from the last real frames: context, not placeholders.
    s.reset();
    let b = s.active_branch();
    assert_eq!(b.steps.len(), 4);
    assert!(b.steps.iter().all(|r| !r.placeholder && r.truth.is_none()));
}

#[test]
fn play_paces_steps_and_stops_at_the_end_of_an_episode() {
    let (fake, _) = Fake::new(push_t_space());
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "fake".into(),
    );
    assert!(s.wait_idle(WAIT));
    s.set_truth(Box::new(Replay::new(episode(8, false), None).unwrap()));
    s.transport.playing = true;
    s.config.steps_per_sec = 1000.0;
    let start = std::time::Instant::now();
    let mut now = start;
    while s.transport.playing && now.duration_since(start) < WAIT {
        now = std::time::Instant::now();
        let _ = s.tick(now, &act(0.0, 0.0));
        s.poll();
    }
    assert!(!s.transport.playing);
    assert_eq!(s.active_branch().steps.len(), 8);
}

/// The real candle runtime behind the worker: a tiny untrained model at 8x8.
#[test]
fn candle_backend_steps_a_real_model() {
    use dreamyard_model::candle_core::Device;
    use dreamyard_model::config::{ActionSpace as ModelActions, FrameSize};
    use dreamyard_model::train::{EpisodeData, TrainConfig, TrainData, Trainer};

    let data = TrainData {
        frame: FrameSize {
            height: 8,
            width: 8,
        },
        channels: 3,
        action: ModelActions::Continuous {
            dim: 2,
            low: vec![0.0; 2],
            high: vec![512.0; 2],
        },
        fps: Some(10.0),
        episodes: vec![
            EpisodeData {
                frames_hwc: vec![100; 6 * 8 * 8 * 3],
                actions: vec![1.0; 12],
                len: 6,
            };
            2
        ],
    };
    let cfg = TrainConfig::from_toml_str(
        "[model]\ncond_channels = 16\ndepths = [1, 1]\nchannels = [16, 16]\nattn_depths = [false, false]\n\
         [sampler]\nnum_steps_denoising = 1\n\
         [training]\nsteps = 1\nbatch_size = 2\nlearning_rate = 1e-3\nvalidation_episodes = 1\n",
        "test.toml",
    )
    .unwrap();
    let trainer = Trainer::new(&cfg, &data, &Device::Cpu).unwrap();
    let backend = CandleBackend::new(trainer.world_model().unwrap(), "tiny", String::new());
    assert_eq!(backend.info().frame_width, 8);
    let space = backend.info().action_space.clone();
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(backend)).unwrap(),
        "tiny".into(),
    );
    assert!(s.wait_idle(WAIT));
    // A push-t scene rendered at another size is fitted to the model's 8x8.
    assert!(s.set_truth(Box::new(LiveScene::new(push_t(), 0))));
    for _ in 0..6 {
        step_wait(&mut s, &act(256.0, 256.0));
    }
    let b = s.active_branch();
    let last = b.steps.last().unwrap();
    let m = last.model.as_ref().unwrap();
    assert_eq!((m.width, m.height), (8, 8));
    assert_eq!(last.truth.as_ref().unwrap().width, 8);
    assert!(last.metrics.is_some());
    assert!(matches!(space, ActionSpace::Continuous { .. }));
    // A wrong action kind is an error message, not a panic.
    assert!(s.step(&Action::Discrete(0)).is_err());
}

#[test]
fn the_session_can_be_shared_as_an_app_resource() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Session>();
}

#[test]
fn dataset_recorder_writes_lerobot_episodes_that_say_they_are_imagined() {
    use super::recorder::{DatasetRecorder, EpisodeMeta, Recorder, Row};
    use dreamyard_scenes::dataset::{Dataset, EpisodeSource, keys};
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imagined");
    let (mut s, _) = live_session();
    s.start_recording(Box::new(DatasetRecorder::create(&root)))
        .unwrap();
    for _ in 0..5 {
        step_wait(&mut s, &act(300.0, 300.0));
    }
    // What the session showed for the first episode's rows (row t: step t and the action
    // after it).
    let shown: Vec<StepRecord> = s.active_branch().steps[..5].to_vec();
    assert_eq!(s.save_episode().unwrap(), 0);
    step_wait(&mut s, &act(1.0, 1.0));
    step_wait(&mut s, &act(2.0, 3.0));
    s.stop_recording().unwrap();

    let ds = Dataset::open(&root).unwrap();
    ds.validate().unwrap();
    assert_eq!(ds.episodes().len(), 2, "stop saves a non-empty episode");
    assert_eq!(ds.episodes()[0].length, 5);
    assert_eq!(ds.episodes()[1].length, 2);
    let ep = ds.episode(1).unwrap();
    assert_eq!(ep.actions, vec![1.0, 1.0, 2.0, 3.0]);
    // Beside a live scene: the truth is observation.image (what training reads), the model's
    // frame observation.image_model, the scene's state as its own recordings store it, and
    // the metrics the session showed.
    let features = &ds.info().features;
    assert_eq!(ds.default_camera(), Some(keys::IMAGE));
    assert!(features.get(keys::IMAGE_MODEL).is_some());
    assert!(features.get(keys::ENVIRONMENT_STATE).is_some());
    let names = features
        .get(keys::MODEL_METRICS)
        .unwrap()
        .name_list()
        .unwrap();
    assert_eq!(&names[..2], ["psnr_db", "ssim"]);
    assert!(
        names[2..].iter().all(|n| n.starts_with("iou.")),
        "{names:?}"
    );
    assert!(names.len() > 2, "push-t has objects");
    let ep0 = ds.episode(0).unwrap();
    let (dim, metrics) = ds.values(0, keys::MODEL_METRICS).unwrap();
    let (_, imagined) = ds.values(0, keys::MODEL_IMAGINED).unwrap();
    for (t, step) in shown.iter().enumerate() {
        let truth = step.truth.as_deref().unwrap();
        assert_eq!(&ep0.frames[t], truth, "row {t}: the true frame");
        assert_eq!(
            &ds.frame(keys::IMAGE_MODEL, 0, t as u64).unwrap(),
            step.model.as_deref().unwrap(),
            "row {t}"
        );
        let state: Vec<f32> = step
            .truth_state
            .as_ref()
            .unwrap()
            .iter()
            .map(|&v| v as f32)
            .collect();
        assert_eq!(ep0.scene_state(t), &state[..], "row {t}: the scene state");
        assert_eq!(
            imagined[t] == 1.0,
            step.kind == FrameKind::Imagined,
            "row {t}"
        );
        let row = &metrics[t * dim..(t + 1) * dim];
        match &step.metrics {
            Some(m) => {
                assert_eq!(row[0], m.psnr_db.min(crate::metrics::PSNR_CAP_DB) as f32);
                assert_eq!(row[1], m.ssim as f32);
            }
            // Context rows: the model was given the true frame.
            None => assert_eq!(&row[..2], [crate::metrics::PSNR_CAP_DB as f32, 1.0]),
        }
    }
    assert!(shown.iter().any(|r| r.kind == FrameKind::Imagined));
    assert!(shown.iter().any(|r| r.kind == FrameKind::Context));
    match &ds.episodes()[0].source {
        // The fake backend has no weights file to hash.
        Some(EpisodeSource::Model {
            model,
            hash,
            ground_truth,
            cameras,
        }) => {
            assert_eq!((model.as_str(), hash.as_str()), ("fake", ""));
            assert_eq!(ground_truth.as_deref(), Some("push-t"));
            assert_eq!(cameras[keys::IMAGE], "ground truth (push-t)");
            assert_eq!(cameras[keys::IMAGE_MODEL], "model");
        }
        other => panic!("expected an imagined episode's source, got {other:?}"),
    }
    // The scene's task text, as its own recordings (and lerobot/pusht) name it.
    assert_eq!(
        Some(&ds.episodes()[0].tasks[0]),
        push_t().spec().task.as_ref()
    );

    // In dream mode there is no truth: a recording holds the model's frames as
    // observation.image, and says so.
    let dream_root = tmp.path().join("dream");
    s.enter_dream_mode().unwrap();
    s.reset();
    s.start_recording(Box::new(DatasetRecorder::create(&dream_root)))
        .unwrap();
    for _ in 0..3 {
        step_wait(&mut s, &act(5.0, 5.0));
    }
    s.stop_recording().unwrap();
    let dream = Dataset::open(&dream_root).unwrap();
    assert_eq!(dream.camera_keys(), [keys::IMAGE]);
    assert!(dream.info().features.get(keys::MODEL_METRICS).is_none());
    assert!(dream.episodes()[0].tasks[0].starts_with("imagined rollout"));
    match &dream.episodes()[0].source {
        Some(EpisodeSource::Model {
            ground_truth,
            cameras,
            ..
        }) => {
            assert_eq!(*ground_truth, None);
            assert_eq!(cameras[keys::IMAGE], "model");
        }
        other => panic!("expected an imagined episode's source, got {other:?}"),
    }
    let ep = ds.episode(0).unwrap();

    // A later recording appends; a discarded episode leaves nothing behind.
    let mut r = DatasetRecorder::create(&dream_root);
    let meta = EpisodeMeta {
        imagined: true,
        model: "m".into(),
        model_sha256: String::new(),
        ground_truth: None,
        fps: ds.fps(),
        action_space: push_t_space(),
        seed: 0,
        truth: None,
    };
    let frame = &ep.frames[0];
    let (a12, a45) = (act(1.0, 2.0), act(4.0, 5.0));
    let row = |action| Row {
        model: frame,
        action,
        truth: None,
    };
    r.begin_episode(&meta).unwrap();
    r.push(&row(&a12)).unwrap();
    r.discard_episode().unwrap();
    r.begin_episode(&meta).unwrap();
    r.push(&row(&a45)).unwrap();
    assert_eq!(r.save_episode().unwrap(), 1);
    r.finish().unwrap();
    let ds = Dataset::open(&dream_root).unwrap();
    assert_eq!(ds.episodes().len(), 2);
    assert_eq!(ds.episode(1).unwrap().actions, vec![4.0, 5.0]);
    // A dataset with another frame size cannot be appended to: an error, nothing lost.
    let mut r = DatasetRecorder::create(&dream_root);
    r.begin_episode(&meta).unwrap();
    let err = r
        .push(&Row {
            model: &super::frames::solid(4, 4, [1, 2, 3]),
            action: &act(1.0, 2.0),
            truth: None,
        })
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("dreamyard.json") && msg.contains("spec"),
        "{msg}"
    );
    assert_eq!(Dataset::open(&dream_root).unwrap().episodes().len(), 2);
}

#[test]
fn the_dataset_recorder_can_store_video() {
    use super::recorder::{DatasetRecorder, EpisodeMeta, Recorder, Row};
    use dreamyard_scenes::dataset::Dataset;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rec");
    let meta = EpisodeMeta {
        imagined: true,
        model: "m".into(),
        model_sha256: String::new(),
        ground_truth: None,
        fps: 10.0,
        action_space: push_t_space(),
        seed: 0,
        truth: None,
    };
    let frames: Vec<Frame> = (0..6u8)
        .map(|i| super::frames::solid(64, 64, [40 * i, 200 - 30 * i, 90]))
        .collect();
    let mut r = DatasetRecorder::create(&root).with_video(true);
    r.begin_episode(&meta).unwrap();
    for (i, f) in frames.iter().enumerate() {
        r.push(&Row {
            model: f,
            action: &act(i as f32, 1.0),
            truth: None,
        })
        .unwrap();
    }
    assert_eq!(r.save_episode().unwrap(), 0);
    r.finish().unwrap();
    // A later recording without the option appends to the video dataset as video.
    let mut r = DatasetRecorder::create(&root);
    r.begin_episode(&meta).unwrap();
    r.push(&Row {
        model: &frames[0],
        action: &act(0.0, 0.0),
        truth: None,
    })
    .unwrap();
    r.save_episode().unwrap();
    r.finish().unwrap();

    let ds = Dataset::open(&root).unwrap();
    assert_eq!(
        ds.info().features.get("observation.image").unwrap().dtype,
        "video"
    );
    assert!(ds.validate().unwrap().is_valid());
    let ep = ds.episode(0).unwrap();
    for (got, want) in ep.frames.iter().zip(&frames) {
        let worst = got
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(
            worst <= 8,
            "a flat colour survives AV1 within 8 levels: {worst}"
        );
    }
    assert_eq!(ds.episode(1).unwrap().frames.len(), 1);
}

/// A step's truth and model frames.
type StepFrames = (Option<Arc<Frame>>, Option<Arc<Frame>>);

/// Truth and model frames of every step of the active branch.
fn frames_of(s: &Session) -> Vec<StepFrames> {
    s.active_branch()
        .steps
        .iter()
        .map(|r| (r.truth.clone(), r.model.clone()))
        .collect()
}

#[test]
fn a_reset_and_a_deletion_can_be_undone_and_the_branches_go_on_exactly() {
    let actions: Vec<Action> = (0..9)
        .map(|i| act(150.0 + 20.0 * i as f32, 200.0))
        .collect();
    let (mut reference, _) = live_session();
    for a in &actions {
        step_wait(&mut reference, a);
    }

    let (mut s, _) = live_session();
    assert!(!s.can_undo(), "a fresh session has nothing to undo");
    for a in &actions[..6] {
        step_wait(&mut s, a);
    }
    let main = s.active_id();
    let fork = s.fork(5).unwrap();
    step_wait(&mut s, &act(20.0, 20.0));
    // A stray reset drops both branches...
    s.reset();
    assert_eq!(s.branches().len(), 1);
    assert_eq!(s.active_branch().steps.len(), 1);
    // ...and undo brings them back as they were, the fork active.
    s.undo().unwrap();
    assert_eq!(s.branches().len(), 2);
    assert_eq!(s.active_id(), fork);
    assert_eq!(s.active_branch().steps.len(), 7);
    // The main branch goes on exactly as if no reset had happened: its scene and model state
    // came back with it.
    assert!(s.switch_branch(main));
    for a in &actions[6..] {
        step_wait(&mut s, a);
    }
    assert_eq!(frames_of(&s), frames_of(&reference));

    // A deleted branch comes back where it was.
    s.delete_branch(fork).unwrap();
    assert_eq!(s.branches().len(), 1);
    s.undo().unwrap();
    let ids: Vec<BranchId> = s.branches().iter().map(|b| b.id).collect();
    assert_eq!(ids, [main, fork]);
    assert_eq!(
        s.active_id(),
        main,
        "deleting an inactive branch left main active"
    );
    assert!(s.undo().is_err(), "each reset or deletion is undone once");
    // A reset of a session with nothing in it is not worth an undo entry.
    let (mut empty, _) = live_session();
    empty.reset();
    assert!(!empty.can_undo());
}

#[test]
fn a_reset_while_a_step_computes_can_be_undone_without_that_step() {
    let slow = || {
        let (mut fake, _) = Fake::new(push_t_space());
        fake.delay = Duration::from_millis(200);
        let mut s = Session::default();
        s.load_model(
            ModelWorker::with_backend(Box::new(fake)).unwrap(),
            "slow".into(),
        );
        assert!(s.wait_idle(WAIT));
        s.set_truth(Box::new(LiveScene::new(push_t(), 0)));
        s
    };
    let actions: Vec<Action> = (0..7)
        .map(|i| act(100.0 + 15.0 * i as f32, 120.0))
        .collect();
    let mut reference = slow();
    for a in &actions {
        step_wait(&mut reference, a);
    }
    let mut s = slow();
    for a in &actions[..6] {
        step_wait(&mut s, a);
    }
    let done = frames_of(&s);
    s.step(&actions[6]).unwrap();
    assert!(s.is_pending());
    s.reset();
    std::thread::sleep(Duration::from_millis(300));
    s.poll();
    s.undo().unwrap();
    // The abandoned step is gone, its truth step with it: the branch is as it was before,
    // and goes on in step with the scene.
    assert_eq!(frames_of(&s), done);
    step_wait(&mut s, &actions[6]);
    assert_eq!(frames_of(&s), frames_of(&reference));
}

#[test]
fn a_counterfactual_retakes_the_next_steps_perturbed_in_model_and_scene() {
    let (mut s, _) = live_session();
    let actions: Vec<Action> = (0..10)
        .map(|i| act(150.0 + 15.0 * i as f32, 200.0 + 5.0 * i as f32))
        .collect();
    for a in &actions {
        step_wait(&mut s, a);
    }
    let main = s.active_id();
    let main_steps = s.active_branch().steps.clone();
    // The newest step has nothing after it to perturb.
    assert!(
        s.counterfactual(10, 4, crate::perturb::Perturbation::Mirror)
            .is_err()
    );
    s.counterfactual(5, 4, crate::perturb::Perturbation::Mirror)
        .unwrap();
    assert!(s.wait_idle(WAIT));
    let cf = s.active_branch();
    assert_ne!(cf.id, main);
    assert_eq!(cf.parent, Some((main, 5)));
    assert_eq!(cf.steps.len(), 10);
    for (i, (step, orig_step)) in cf.steps.iter().zip(&main_steps).enumerate().skip(6) {
        let Some(Action::Continuous(v)) = &step.action else {
            panic!("step {i} has no action");
        };
        let Some(Action::Continuous(orig)) = &orig_step.action else {
            panic!("main step {i} has no action");
        };
        // Mirrored about the middle of push-t's 0..512 box.
        assert_eq!(*v, vec![512.0 - orig[0], 512.0 - orig[1]]);
        assert_ne!(step.truth, orig_step.truth, "the world responds");
    }
    // The fake model ignores actions: its frames equal the parent's, so its response is 0,
    // while the world's is not.
    let r = s.action_response().unwrap();
    assert_eq!(r.steps, 4);
    assert!(r.world_px > 0.0, "{r:?}");
    assert_eq!(r.model_px, 0.0);
    assert_eq!(r.ratio(), Some(0.0));
    // Objects are checked on every imagined step beside the scene.
    let objects = &cf.steps[9].metrics.as_ref().unwrap().objects;
    let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["goal", "block", "agent", "wall"]);
    assert!(objects.iter().any(|o| o.moving && o.centroid_px.is_some()));
    // A replay cannot show what other actions would have done.
    let (fake, _) = Fake::new(push_t_space());
    let mut r = Session::default();
    r.load_model(
        ModelWorker::with_backend(Box::new(fake)).unwrap(),
        "fake".into(),
    );
    assert!(r.wait_idle(WAIT));
    assert!(r.set_truth(Box::new(Replay::new(episode(20, true), None).unwrap())));
    for _ in 0..8 {
        step_wait(&mut r, &act(0.0, 0.0));
    }
    let err = r
        .counterfactual(4, 2, crate::perturb::Perturbation::Mirror)
        .unwrap_err();
    assert!(err.contains("live scene"), "{err}");
}

#[test]
fn sampled_futures_retake_the_same_actions_with_other_noise_and_restore_the_seed() {
    let (mut s, _) = live_session();
    for i in 0..9 {
        step_wait(&mut s, &act(160.0 + 10.0 * i as f32, 220.0));
    }
    let main = s.active_id();
    let main_steps = s.active_branch().steps.clone();
    assert!(s.sample_futures(4, 3, 1).is_err());
    s.sample_futures(4, 3, 3).unwrap();
    assert!(s.wait_idle(WAIT));
    let futures = s.futures().unwrap().clone();
    assert_eq!(futures.at, 4);
    assert_eq!(futures.branches.len(), 3);
    assert_eq!(futures.branches[0], main);
    assert_eq!(s.active_id(), main, "the original branch is shown again");
    assert_eq!(s.config.seed, 7, "the user's seed is back");
    for id in &futures.branches[1..] {
        let b = s.branches().iter().find(|b| b.id == *id).unwrap();
        assert_eq!(b.parent, Some((main, 4)));
        assert_eq!(b.steps.len(), 8);
        for (step, orig) in b.steps.iter().zip(&main_steps).skip(5) {
            assert_eq!(step.action, orig.action);
            // The same actions: the same world.
            assert_eq!(step.truth, orig.truth);
        }
    }
    // Deleting a sample drops the set.
    s.delete_branch(futures.branches[2]).unwrap();
    assert!(s.futures().is_none());
}

/// DIAMOND's two-stage CS:GO model (the shared fixture's, narrow random weights) dreaming from
/// a spawn as the app runs it: the seed's first-stage frames and actions start the rollout,
/// each step keeps both stages' frames and their times, and a fresh context from the model's
/// own frames (re-anchoring to the model, a fork without its state) carries its own
/// first-stage frames instead of a downscale.
#[test]
fn a_two_stage_model_dreams_from_a_diamond_spawn() {
    let fx =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/diamond-csgo");
    let model = dreamyard_model::WorldModel::load_diamond(
        &fx.join("agent.pt"),
        &fx.join("config.yaml"),
        &dreamyard_model::candle_core::Device::Cpu,
    )
    .unwrap();
    let backend = CandleBackend::new(model, "csgo", String::new());
    let info = backend.info().clone();
    assert_eq!((info.frame_width, info.frame_height), (140, 75));
    assert_eq!(
        info.stages,
        Some(super::backend::Stages {
            low_width: 28,
            low_height: 15,
            factor: 5
        })
    );
    let layout = info.keyboard_mouse.clone().unwrap();
    let mut s = Session::default();
    s.load_model(
        ModelWorker::with_backend(Box::new(backend)).unwrap(),
        "csgo".into(),
    );
    assert!(s.wait_idle(WAIT));

    // A spawn as DIAMOND writes one: the fixture's first environment.
    let inputs = dreamyard_model::candle_core::safetensors::load(
        fx.join("inputs.safetensors"),
        &dreamyard_model::candle_core::Device::Cpu,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = |k: &str| inputs[k].get(0).unwrap();
    first("obs_u8")
        .write_npy(dir.path().join("low_res.npy"))
        .unwrap();
    first("full_obs_u8")
        .write_npy(dir.path().join("full_res.npy"))
        .unwrap();
    first("act").write_npy(dir.path().join("act.npy")).unwrap();
    crate::launch::open_spawn(&mut s, dir.path());
    let b = s.active_branch();
    assert_eq!(b.steps.len(), 4);
    assert!(
        b.steps
            .iter()
            .all(|r| r.model_low.is_some() && !r.placeholder)
    );
    assert!(b.steps[0].action.is_none() && b.steps[1].action.is_some());

    let pad = crate::keyboard_mouse::KeyboardMousePad::new(layout);
    for _ in 0..3 {
        step_wait(&mut s, &pad.action());
    }
    let b = s.active_branch();
    let last = b.steps.last().unwrap();
    let (full, low) = (
        last.model.as_ref().unwrap(),
        last.model_low.as_ref().unwrap(),
    );
    assert_eq!(
        (full.width, full.height, low.width, low.height),
        (140, 75, 28, 15)
    );
    assert!(last.stage_ms.is_some_and(|[a, b]| a > 0.0 && b > 0.0));

    // The context window of the model's own frames carries its first-stage frames.
    let window = context_window(&b.steps, 4, &pad.action(), true);
    assert_eq!((window.frames.len(), window.actions.len()), (4, 4));
    let lows = window.low.unwrap();
    assert!(Arc::ptr_eq(&lows[3], low));
}

#[test]
fn recording_into_a_dataset_another_writer_holds_is_refused_naming_it() {
    use super::recorder::DatasetRecorder;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("busy");
    let held = dreamyard_scenes::dataset::WriterLock::acquire(&root).unwrap();
    let (mut s, _) = live_session();
    let err = s
        .start_recording(Box::new(DatasetRecorder::create(&root)))
        .unwrap_err();
    assert!(
        err.contains("another writer has this dataset open")
            && err.contains(&format!("pid {} (", std::process::id())),
        "{err}"
    );
    assert!(s.recording().is_none());
    drop(held);
    s.start_recording(Box::new(DatasetRecorder::create(&root)))
        .unwrap();
    step_wait(&mut s, &act(10.0, 10.0));
    step_wait(&mut s, &act(20.0, 10.0));
    assert_eq!(s.save_episode().unwrap(), 0);
}
