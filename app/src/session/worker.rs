//! The model runs on its own thread: the session sends a job (the rollout state or the context
//! to start from, the action, the noise seed) and polls for the reply, so the caller (the UI's
//! frame loop) never waits for inference.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use dreamyard_scenes::{Action, Frame};

use super::backend::{Backend, ModelInfo, ModelState, StepOutput};

/// Where a step starts from.
#[derive(Clone, Debug)]
pub enum StartFrom {
    /// The rollout state after the previous step.
    State(ModelState),
    /// A fresh context window (first imagined step, re-anchor, re-sync, fork fallback); a
    /// two-stage model's own first-stage frames too when every frame of the window has one.
    Context {
        frames: Vec<Arc<Frame>>,
        low: Option<Vec<Arc<Frame>>>,
        actions: Vec<Action>,
    },
}

#[derive(Debug)]
struct Job {
    id: u64,
    start: StartFrom,
    action: Action,
    seed: u64,
}

/// A finished step.
#[derive(Debug)]
pub struct StepDone {
    /// The model's frames, stage times and state after the step.
    pub out: StepOutput,
    /// Time the model took for this step (reset included), on the worker.
    pub compute_ms: f64,
    /// Memory in use on the model's device after the step.
    pub memory: Option<crate::device::DeviceMemory>,
}

/// What the worker sends back.
#[derive(Debug)]
pub enum Reply {
    /// Boxed: a model's info is large beside a step's reply.
    Loaded(Result<Box<ModelInfo>, String>),
    Step {
        id: u64,
        result: Result<StepDone, String>,
    },
}

/// Loads a model on a new thread and then serves steps on it.
#[derive(Debug)]
pub struct ModelWorker {
    jobs: Sender<Job>,
    // A `Receiver` is not `Sync`; the lock lets the session be shared as an app resource.
    replies: Mutex<Receiver<Reply>>,
    next_id: u64,
}

type Loader = Box<dyn FnOnce() -> anyhow::Result<Box<dyn Backend>> + Send>;

impl ModelWorker {
    /// Starts a worker whose first act is `load`; its result arrives as [`Reply::Loaded`].
    pub fn spawn(load: Loader) -> anyhow::Result<Self> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (reply_tx, replies) = mpsc::channel();
        thread::Builder::new()
            .name("dreamyard-model".into())
            .spawn(move || serve(load, &job_rx, &reply_tx))?;
        Ok(Self {
            jobs,
            replies: Mutex::new(replies),
            next_id: 0,
        })
    }

    /// A worker over an already built backend.
    pub fn with_backend(backend: Box<dyn Backend>) -> anyhow::Result<Self> {
        Self::spawn(Box::new(move || Ok(backend)))
    }

    /// Queues a step; returns its id.
    pub fn submit(&mut self, start: StartFrom, action: Action, seed: u64) -> anyhow::Result<u64> {
        self.next_id += 1;
        let id = self.next_id;
        self.jobs
            .send(Job {
                id,
                start,
                action,
                seed,
            })
            .map_err(|_| anyhow::anyhow!("the model thread has stopped"))?;
        Ok(id)
    }

    /// The next reply if one is ready.
    pub fn try_recv(&self) -> Option<Reply> {
        match self.receiver().try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Reply::Loaded(Err(
                "the model thread stopped unexpectedly".into(),
            ))),
        }
    }

    /// The next reply, waiting up to `timeout` (tests and headless runs).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Reply> {
        self.receiver().recv_timeout(timeout).ok()
    }

    fn receiver(&self) -> std::sync::MutexGuard<'_, Receiver<Reply>> {
        self.replies.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn serve(load: Loader, jobs: &Receiver<Job>, replies: &Sender<Reply>) {
    let backend = match load() {
        Ok(b) => {
            let _ = replies.send(Reply::Loaded(Ok(Box::new(b.info().clone()))));
            b
        }
        Err(e) => {
            let _ = replies.send(Reply::Loaded(Err(format!("{e:#}"))));
            return;
        }
    };
    // Ends when the session drops its sender.
    while let Ok(job) = jobs.recv() {
        let t0 = Instant::now();
        let result = run_job(backend.as_ref(), &job)
            .map(|out| StepDone {
                out,
                compute_ms: t0.elapsed().as_secs_f64() * 1e3,
                memory: backend.memory(),
            })
            .map_err(|e| format!("{e:#}"));
        if replies.send(Reply::Step { id: job.id, result }).is_err() {
            return;
        }
    }
}

fn run_job(backend: &dyn Backend, job: &Job) -> anyhow::Result<StepOutput> {
    let state = match &job.start {
        StartFrom::State(s) => s.clone(),
        StartFrom::Context {
            frames,
            low,
            actions,
        } => backend.reset(frames, low.as_deref(), actions)?,
    };
    backend.step(&state, &job.action, job.seed)
}
