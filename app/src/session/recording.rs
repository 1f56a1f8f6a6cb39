//! The recording of a session's active branch: which rows (model frame, action and, beside a
//! ground truth, the true frame, state and metrics) are complete and written, and the
//! recorder's episode in progress. The session decides when (after each step, on save /
//! discard / stop); this type decides what is written.

use super::recorder::{EpisodeMeta, Recorder, Row, TruthColumns, TruthRow};
use super::timeline::{StepMetrics, StepRecord};
use crate::metrics::{PSNR_CAP_DB, Palette};

/// A recording in progress.
#[derive(Debug)]
pub struct Recording {
    recorder: Box<dyn Recorder>,
    meta: EpisodeMeta,
    /// The scene's objects, for the IoU metrics of rows beside a ground truth.
    palette: Option<Palette>,
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
        palette: Option<Palette>,
        from: usize,
    ) -> Result<Self, String> {
        recorder
            .begin_episode(&meta)
            .map_err(|e| explain("cannot start recording", &e))?;
        Ok(Self {
            recorder,
            meta,
            palette,
            rows: 0,
            next_step: from.max(1),
        })
    }

    /// The names of the metrics a row beside a ground truth stores, for `palette`'s objects.
    pub fn metric_names(palette: Option<&Palette>) -> Vec<String> {
        let mut names = vec!["psnr_db".to_owned(), "ssim".to_owned()];
        if let Some(p) = palette {
            names.extend(p.names.iter().map(|n| format!("iou.{n}")));
        }
        names
    }

    /// Whether rows hold the ground truth too.
    pub fn has_truth(&self) -> bool {
        self.meta.truth.is_some()
    }

    /// What the rows hold, for the UI.
    pub fn describe(&self) -> String {
        match &self.meta.truth {
            Some(TruthColumns { scene, .. }) => format!(
                "ground truth and model frames, action, {}metrics",
                if scene.is_some() { "state, " } else { "" }
            ),
            None => "model frames and action".to_owned(),
        }
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

    /// Writes every row of `steps` that is complete (the previous step's frames and this
    /// step's action, once this step's model frame exists), in order. Beside a ground truth,
    /// a step without a true frame is an error (the session stops such a recording first).
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
            let metrics;
            let truth = match (&self.meta.truth, &prev.truth) {
                (None, _) => None,
                (Some(_), None) => anyhow::bail!(
                    "step {} has no ground truth frame, which this recording stores",
                    self.next_step - 1
                ),
                (Some(_), Some(t)) => {
                    metrics = self.metric_values(prev, t, frame);
                    Some(TruthRow {
                        frame: t,
                        state: prev.truth_state.as_deref(),
                        metrics: &metrics,
                        imagined: prev.kind == super::FrameKind::Imagined,
                    })
                }
            };
            self.recorder.push(&Row {
                model: frame,
                action,
                truth,
            })?;
            self.rows += 1;
            self.next_step += 1;
        }
        Ok(())
    }

    /// A row's metric values in [`Self::metric_names`] order: the step's own, or (a context
    /// step, where the model was given the true frame) those of the two frames. An object in
    /// neither frame has IoU 1 (nothing to miss), so every value is a number.
    fn metric_values(
        &self,
        step: &StepRecord,
        truth: &dreamyard_scenes::Frame,
        model: &dreamyard_scenes::Frame,
    ) -> Vec<f64> {
        let computed;
        let m: &StepMetrics = match &step.metrics {
            Some(m) => m,
            None => {
                computed = super::frame_metrics(truth, model, self.palette.as_ref());
                &computed
            }
        };
        let mut out = vec![m.psnr_db.min(PSNR_CAP_DB), m.ssim];
        if let Some(p) = &self.palette {
            for name in &p.names {
                let iou = m.iou.iter().find(|(n, _)| n == name).and_then(|(_, v)| *v);
                out.push(iou.unwrap_or(1.0));
            }
        }
        out
    }

    /// Saves the episode in progress; returns its index in the dataset.
    pub fn save(&mut self) -> Result<usize, String> {
        self.recorder
            .save_episode()
            .map_err(|e| explain("cannot save the episode", &e))
    }

    /// Drops the episode in progress.
    pub fn discard(&mut self) -> Result<(), String> {
        self.recorder
            .discard_episode()
            .map_err(|e| explain("cannot discard the episode", &e))
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
        .map_err(|e| explain("stopping the recording failed", &e))?;
        Ok(saved)
    }
}

/// `what: causes`, each cause once (an IO error is in its file's message and is its source
/// too), and `what` left out when a cause already says it.
fn explain(what: &str, e: &anyhow::Error) -> String {
    let chain = crate::error_chain(e.as_ref());
    if chain.contains(what) {
        chain
    } else {
        format!("{what}: {chain}")
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
            truth: None,
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
        let mut r = Recording::start(Box::new(Arc::clone(&mem)), meta(), None, 0).unwrap();
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
        let r = Recording::start(Box::new(Arc::clone(&mem)), meta(), None, 5).unwrap();
        assert!(!r.finish().unwrap());
        let m = mem.lock().unwrap();
        assert!(m.saved.is_empty() && m.finished);
    }
}
