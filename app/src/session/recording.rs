//! The recording of a session's active branch: which rows of (model frame, action) are
//! complete and written, and the recorder's episode in progress. The session decides when
//! (after each step, on save / discard / stop); this type decides what is written.

use super::recorder::{EpisodeMeta, Recorder};
use super::timeline::StepRecord;

/// A recording in progress.
#[derive(Debug)]
pub struct Recording {
    recorder: Box<dyn Recorder>,
    meta: EpisodeMeta,
    rows: usize,
    /// Next step of the active branch whose (previous frame, action) row is due.
    next_step: usize,
}

impl Recording {
    /// Begins an episode with `meta`; rows start at step `from` (at least 1: row `t` is the
    /// frame of step `t - 1` and the action that led to step `t`).
    pub fn start(
        mut recorder: Box<dyn Recorder>,
        meta: EpisodeMeta,
        from: usize,
    ) -> Result<Self, String> {
        recorder
            .begin_episode(&meta)
            .map_err(|e| format!("cannot start recording: {e:#}"))?;
        Ok(Self {
            recorder,
            meta,
            rows: 0,
            next_step: from.max(1),
        })
    }

    /// Rows written in the episode in progress.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Where the recorder writes, if to disk.
    pub fn location(&self) -> Option<&std::path::Path> {
        self.recorder.location()
    }

    /// The session restarted its rollout: rows start again after its first step.
    pub fn rewind(&mut self) {
        self.next_step = 1;
        self.rows = 0;
    }

    /// Writes every row of `steps` that is complete (the previous step's model frame and this
    /// step's action, once this step's model frame exists), in order.
    pub fn push_complete_rows(&mut self, steps: &[StepRecord]) -> anyhow::Result<()> {
        while let (Some(prev), Some(cur)) = (
            steps.get(self.next_step.wrapping_sub(1)),
            steps.get(self.next_step),
        ) {
            let (Some(frame), Some(action)) = (prev.model.as_ref(), cur.action.as_ref()) else {
                break;
            };
            if cur.model.is_none() {
                break;
            }
            self.recorder.push(frame, action)?;
            self.rows += 1;
            self.next_step += 1;
        }
        Ok(())
    }

    /// Saves the episode in progress; returns its index in the dataset.
    pub fn save(&mut self) -> Result<usize, String> {
        self.recorder
            .save_episode()
            .map_err(|e| format!("cannot save the episode: {e:#}"))
    }

    /// Drops the episode in progress.
    pub fn discard(&mut self) -> Result<(), String> {
        self.recorder
            .discard_episode()
            .map_err(|e| format!("cannot discard the episode: {e:#}"))
    }

    /// Begins the next episode (same model and ground truth, the session's current `seed`).
    pub fn begin_next(&mut self, seed: u64) -> anyhow::Result<()> {
        self.meta.seed = seed;
        self.recorder.begin_episode(&self.meta)
    }

    /// Saves a non-empty episode in progress, drops an empty one, and closes the recorder.
    /// Returns whether an episode was saved.
    pub fn finish(mut self) -> Result<bool, String> {
        let saved = self.rows > 0;
        if saved {
            self.recorder.save_episode().map(|_| ())
        } else {
            self.recorder.discard_episode()
        }
        .and_then(|()| self.recorder.finish())
        .map_err(|e| format!("stopping the recording failed: {e:#}"))?;
        Ok(saved)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use dreamyard_scenes::{Action, ActionSpace, Frame};

    use super::*;
    use crate::session::FrameKind;
    use crate::session::recorder::MemoryRecorder;

    fn frame(v: u8) -> Arc<Frame> {
        Arc::new(Frame {
            width: 1,
            height: 1,
            data: vec![v; 3],
        })
    }

    fn meta() -> EpisodeMeta {
        EpisodeMeta {
            imagined: true,
            model: "m".into(),
            model_sha256: "h".into(),
            ground_truth: None,
            fps: 10.0,
            action_space: ActionSpace::Discrete {
                names: vec!["0".into(), "1".into()],
            },
            seed: 0,
        }
    }

    /// Step `i`: model frame `i` (none while pending), reached by action `i`.
    fn step(i: u8, done: bool) -> StepRecord {
        StepRecord {
            action: (i > 0).then_some(Action::Discrete(u32::from(i))),
            model: done.then(|| frame(i)),
            kind: FrameKind::Imagined,
            ..StepRecord::context(None, frame(i), true)
        }
    }

    #[test]
    fn rows_are_written_once_complete_and_in_order() {
        let mem = Arc::new(Mutex::new(MemoryRecorder::default()));
        let mut r = Recording::start(Box::new(Arc::clone(&mem)), meta(), 0).unwrap();
        let mut steps = vec![step(0, true), step(1, true), step(2, false)];
        r.push_complete_rows(&steps).unwrap();
        assert_eq!(r.rows(), 1, "step 2 is still pending");
        steps[2] = step(2, true);
        steps.push(step(3, true));
        r.push_complete_rows(&steps).unwrap();
        r.push_complete_rows(&steps).unwrap();
        assert_eq!(r.rows(), 3, "each row once");
        assert_eq!(r.save().unwrap(), 0);
        r.rewind();
        r.begin_next(7).unwrap();
        r.push_complete_rows(&steps[..2]).unwrap();
        assert!(r.finish().unwrap(), "a non-empty episode is saved");
        let m = mem.lock().unwrap();
        assert_eq!(m.saved.len(), 2);
        let ep = &m.saved[0];
        assert_eq!(
            ep.frames.iter().map(|f| f.data[0]).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(
            ep.actions,
            [1, 2, 3].map(Action::Discrete).to_vec(),
            "row t: frame t and the action taken in it"
        );
        assert_eq!((m.saved[1].meta.seed, m.saved[1].frames.len()), (7, 1));
        assert!(m.finished);
    }

    #[test]
    fn an_empty_episode_is_not_saved_on_finish() {
        let mem = Arc::new(Mutex::new(MemoryRecorder::default()));
        let r = Recording::start(Box::new(Arc::clone(&mem)), meta(), 5).unwrap();
        assert!(!r.finish().unwrap());
        let m = mem.lock().unwrap();
        assert!(m.saved.is_empty() && m.finished);
    }
}
