//! Ground truth the model is compared with: a live scene stepped in lockstep with the model, or
//! a recorded episode replayed with its own actions. Dream mode is the absence of a source.

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use dreamyard_scenes::{Action, ActionSpace, Frame, Scene, SceneSpec};

/// What a ground-truth source looks like from outside.
#[derive(Clone, Debug, PartialEq)]
pub struct TruthSpec {
    /// Scene or dataset name, for labels and recordings.
    pub name: String,
    pub action_space: ActionSpace,
    /// Object colours for mask IoU (empty when unknown).
    pub scene: Option<SceneSpec>,
    pub fps: f64,
    pub frame_width: u32,
    pub frame_height: u32,
}

/// Where a ground truth was opened from, as the user named it: enough to open it again (a
/// saved session does).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TruthSource {
    /// A built-in scene's name or a scene file's path.
    Scene { scene: String },
    /// Episode `episode` of the LeRobot dataset in `dir`.
    Dataset {
        dir: std::path::PathBuf,
        episode: usize,
    },
}

/// Whether a source is driven by the user or replays recorded actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TruthKind {
    Live,
    Replay,
}

/// A source of real frames, positioned at a step. Implementations are cheap to fork.
pub trait GroundTruth: Send + Sync {
    fn spec(&self) -> &TruthSpec;

    fn kind(&self) -> TruthKind;

    /// Goes back to the first frame of the episode and returns it.
    fn reset(&mut self) -> anyhow::Result<Frame>;

    /// The recorded action to take next (replay); `None` when the user drives.
    fn scripted_action(&self) -> Option<Action>;

    /// Advances one step with `action`; `Ok(None)` when a replayed episode has ended.
    fn step(&mut self, action: &Action) -> anyhow::Result<Option<Frame>>;

    /// Uses `seed` for the next reset's episode (live scenes; replays ignore it).
    fn reseed(&mut self, _seed: u64) {}

    /// Steps taken since the last reset.
    fn position(&self) -> usize;

    /// The scene's full state now (what `reset_to` takes), when the source knows it: a live
    /// scene always, a replay when its episode has states.
    fn state(&self) -> Option<Vec<f64>>;

    /// A new source positioned after `steps` steps of this episode (same actions as taken here,
    /// which requires `steps <= position()` for live scenes).
    fn fork_at(&self, steps: usize) -> anyhow::Result<Box<dyn GroundTruth>>;

    /// A live source that continues from the current step under user control, if this source
    /// can produce one (a replay whose episode has states and whose scene is known).
    fn take_over(&self) -> anyhow::Result<Box<dyn GroundTruth>>;

    /// Where it was opened from, when that is known (sources built in code have none).
    fn source(&self) -> Option<&TruthSource> {
        None
    }

    /// The recorded episode a replay plays (its frames beyond the current step can be shown
    /// before the model reaches them; its actions and states plotted).
    fn recorded(&self) -> Option<&Episode> {
        None
    }
}

impl std::fmt::Debug for dyn GroundTruth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroundTruth")
            .field("name", &self.spec().name)
            .field("kind", &self.kind())
            .field("position", &self.position())
            .finish()
    }
}

/// How a live episode started: from a seed or from an explicit state (take-over).
#[derive(Clone, Debug, PartialEq)]
enum Origin {
    Seed(u64),
    State(Vec<f64>),
}

/// A scene stepped in lockstep with the model. It remembers how it started and the actions
/// since, so a fork at any earlier step is rebuilt exactly (scenes are deterministic).
pub struct LiveScene {
    // Scenes are `Send` only; the mutex makes the source shareable as an app resource.
    scene: Mutex<Box<dyn Scene>>,
    spec: TruthSpec,
    origin: Origin,
    actions: Vec<Action>,
    source: Option<TruthSource>,
}

impl std::fmt::Debug for LiveScene {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveScene")
            .field("name", &self.spec.name)
            .field("origin", &self.origin)
            .field("steps", &self.actions.len())
            .finish()
    }
}

impl LiveScene {
    /// A live source over `scene`, whose episodes start from `seed`.
    pub fn new(scene: Box<dyn Scene>, seed: u64) -> Self {
        Self::with_origin(scene, Origin::Seed(seed))
    }

    fn with_origin(scene: Box<dyn Scene>, origin: Origin) -> Self {
        let s = scene.spec().clone();
        let spec = TruthSpec {
            name: s.name.clone(),
            action_space: s.action_space.clone(),
            fps: s.fps,
            frame_width: s.frame_width,
            frame_height: s.frame_height,
            scene: Some(s),
        };
        Self {
            scene: Mutex::new(scene),
            spec,
            origin,
            actions: Vec::new(),
            source: None,
        }
    }

    /// Says where the scene was opened from (see [`GroundTruth::source`]).
    pub fn with_source(mut self, source: TruthSource) -> Self {
        self.source = Some(source);
        self
    }

    fn with_scene<R>(&self, f: impl FnOnce(&mut dyn Scene) -> R) -> R {
        let mut guard = self.scene.lock().unwrap_or_else(PoisonError::into_inner);
        f(guard.as_mut())
    }

    fn restart(scene: &mut dyn Scene, origin: &Origin) -> anyhow::Result<Frame> {
        Ok(match origin {
            Origin::Seed(seed) => scene.reset(*seed).frame,
            Origin::State(state) => scene.reset_to(state)?.frame,
        })
    }
}

impl GroundTruth for LiveScene {
    fn spec(&self) -> &TruthSpec {
        &self.spec
    }

    fn kind(&self) -> TruthKind {
        TruthKind::Live
    }

    fn reset(&mut self) -> anyhow::Result<Frame> {
        self.actions.clear();
        let origin = self.origin.clone();
        self.with_scene(|s| Self::restart(s, &origin))
    }

    fn scripted_action(&self) -> Option<Action> {
        None
    }

    fn reseed(&mut self, seed: u64) {
        if let Origin::Seed(_) = self.origin {
            self.origin = Origin::Seed(seed);
        }
    }

    fn step(&mut self, action: &Action) -> anyhow::Result<Option<Frame>> {
        let obs = self.with_scene(|s| s.step(action))?;
        self.actions.push(action.clone());
        Ok(Some(obs.frame))
    }

    fn position(&self) -> usize {
        self.actions.len()
    }

    fn state(&self) -> Option<Vec<f64>> {
        Some(self.with_scene(|s| s.observe().state))
    }

    fn fork_at(&self, steps: usize) -> anyhow::Result<Box<dyn GroundTruth>> {
        let actions = self.actions.get(..steps).with_context(|| {
            format!(
                "cannot fork the scene at step {steps}: it has taken {} steps",
                self.actions.len()
            )
        })?;
        let mut scene = self.with_scene(|s| s.boxed_clone());
        Self::restart(scene.as_mut(), &self.origin)?;
        for a in actions {
            scene.step(a)?;
        }
        let mut fork = Self::with_origin(scene, self.origin.clone());
        fork.actions = actions.to_vec();
        fork.source = self.source.clone();
        Ok(Box::new(fork))
    }

    fn source(&self) -> Option<&TruthSource> {
        self.source.as_ref()
    }

    fn take_over(&self) -> anyhow::Result<Box<dyn GroundTruth>> {
        self.fork_at(self.actions.len())
    }
}

/// A recorded episode: frames with the action taken at each frame (LeRobot's convention: row
/// `t` holds the observation at `t` and the action applied after it), and optionally the state.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    pub name: String,
    pub frames: Vec<Frame>,
    pub actions: Vec<Action>,
    /// State vectors per frame, when the dataset has them (needed for take-over).
    pub states: Option<Vec<Vec<f64>>>,
    pub action_space: ActionSpace,
    pub fps: f64,
}

impl Episode {
    /// The action recorded at frame `index` (LeRobot's row: the one applied after it), except
    /// at the last frame, whose action leads to no frame the episode shows.
    pub fn next_action(&self, index: usize) -> Option<&Action> {
        (index + 1 < self.frames.len())
            .then(|| self.actions.get(index))
            .flatten()
    }

    /// Checks lengths and action kinds.
    pub fn validate(&self) -> anyhow::Result<()> {
        let n = self.frames.len();
        anyhow::ensure!(n > 0, "episode `{}` has no frames", self.name);
        anyhow::ensure!(
            self.actions.len() == n,
            "episode `{}`: expected one action per frame ({n}), found {}",
            self.name,
            self.actions.len()
        );
        if let Some(states) = &self.states {
            anyhow::ensure!(
                states.len() == n,
                "episode `{}`: expected one state per frame ({n}), found {}",
                self.name,
                states.len()
            );
        }
        let (w, h) = (self.frames[0].width, self.frames[0].height);
        if let Some((i, f)) =
            self.frames.iter().enumerate().find(|(_, f)| {
                (f.width, f.height) != (w, h) || f.data.len() != (w * h * 3) as usize
            })
        {
            anyhow::bail!(
                "episode `{}`: frame {i} is {}x{} ({} bytes), expected {w}x{h} RGB8",
                self.name,
                f.width,
                f.height,
                f.data.len()
            );
        }
        for (i, a) in self.actions.iter().enumerate() {
            self.action_space
                .check(&self.name, a)
                .with_context(|| format!("episode `{}`: action {i}", self.name))?;
        }
        Ok(())
    }
}

/// Replays an [`Episode`]; `scene` (the episode's scene, if known) enables take-over.
pub struct Replay {
    episode: Arc<Episode>,
    cursor: usize,
    spec: TruthSpec,
    scene: Option<Mutex<Box<dyn Scene>>>,
    source: Option<TruthSource>,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("episode", &self.episode.name)
            .field("cursor", &self.cursor)
            .field("has_scene", &self.scene.is_some())
            .finish()
    }
}

impl Replay {
    pub fn new(episode: Episode, scene: Option<Box<dyn Scene>>) -> anyhow::Result<Self> {
        episode.validate()?;
        let spec = TruthSpec {
            name: episode.name.clone(),
            action_space: episode.action_space.clone(),
            scene: scene.as_ref().map(|s| s.spec().clone()),
            fps: episode.fps,
            frame_width: episode.frames[0].width,
            frame_height: episode.frames[0].height,
        };
        Ok(Self {
            episode: Arc::new(episode),
            cursor: 0,
            spec,
            scene: scene.map(Mutex::new),
            source: None,
        })
    }

    /// Says where the episode was read from (see [`GroundTruth::source`]).
    pub fn with_source(mut self, source: TruthSource) -> Self {
        self.source = Some(source);
        self
    }

    pub fn episode(&self) -> &Episode {
        &self.episode
    }
}

impl GroundTruth for Replay {
    fn spec(&self) -> &TruthSpec {
        &self.spec
    }

    fn kind(&self) -> TruthKind {
        TruthKind::Replay
    }

    fn reset(&mut self) -> anyhow::Result<Frame> {
        self.cursor = 0;
        Ok(self.episode.frames[0].clone())
    }

    fn scripted_action(&self) -> Option<Action> {
        self.episode.next_action(self.cursor).cloned()
    }

    fn step(&mut self, _action: &Action) -> anyhow::Result<Option<Frame>> {
        let Some(frame) = self.episode.frames.get(self.cursor + 1) else {
            return Ok(None);
        };
        self.cursor += 1;
        Ok(Some(frame.clone()))
    }

    fn position(&self) -> usize {
        self.cursor
    }

    fn state(&self) -> Option<Vec<f64>> {
        self.episode.states.as_ref()?.get(self.cursor).cloned()
    }

    fn fork_at(&self, steps: usize) -> anyhow::Result<Box<dyn GroundTruth>> {
        anyhow::ensure!(
            steps < self.episode.frames.len(),
            "cannot fork episode `{}` at step {steps}: it has {} frames",
            self.episode.name,
            self.episode.frames.len()
        );
        Ok(Box::new(Self {
            episode: Arc::clone(&self.episode),
            cursor: steps,
            spec: self.spec.clone(),
            scene: self.scene.as_ref().map(|m| {
                Mutex::new(
                    m.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .boxed_clone(),
                )
            }),
            source: self.source.clone(),
        }))
    }

    fn source(&self) -> Option<&TruthSource> {
        self.source.as_ref()
    }

    fn recorded(&self) -> Option<&Episode> {
        Some(&self.episode)
    }

    fn take_over(&self) -> anyhow::Result<Box<dyn GroundTruth>> {
        let scene = self.scene.as_ref().with_context(|| {
            format!(
                "episode `{}` has no known scene to continue in",
                self.episode.name
            )
        })?;
        let state = self
            .episode
            .states
            .as_ref()
            .and_then(|s| s.get(self.cursor))
            .with_context(|| {
                format!(
                    "episode `{}` has no state at step {} to continue from",
                    self.episode.name, self.cursor
                )
            })?;
        let mut scene = scene
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .boxed_clone();
        scene.reset_to(state)?;
        Ok(Box::new(LiveScene::with_origin(
            scene,
            Origin::State(state.clone()),
        )))
    }
}
