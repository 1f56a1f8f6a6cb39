//! Evaluation reports: aggregation of per-window records into per-step means, the files of a
//! report directory (`report.json`, `per_step.csv`, `windows.csv`, `report.md`, plots), and the
//! merge of shard reports.
//!
//! `windows.csv` keeps every window's per-step metrics, with numbers written in Rust's shortest
//! round-trip form, so that a merge re-reads them bit for bit and aggregates them in window
//! order exactly as a single run does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use dreamyard_model::config::ActionSpace as ModelActionSpace;
use serde::{Deserialize, Serialize};

use super::interval::{self, StepIntervals};
use super::plot::{self, Series};
use super::{FrameMetrics, Protocol, Shard, Window, WindowRecord};

/// File names inside a report directory.
pub const REPORT_JSON: &str = "report.json";
/// Per-step means, one row per horizon step.
pub const PER_STEP_CSV: &str = "per_step.csv";
/// Every window's per-step metrics.
pub const WINDOWS_CSV: &str = "windows.csv";
/// The human-readable summary.
pub const REPORT_MD: &str = "report.md";
/// Folder of the example strips.
pub const EXAMPLES_DIR: &str = "examples";
/// Every window's physics series (see `physics.rs`).
pub const PHYSICS_CSV: &str = "physics.csv";

/// The model evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `--model` as given.
    pub path: String,
    /// SHA-256 of the weights file.
    pub weights_sha256: String,
    /// SHA-256 of the config file, where there is one.
    pub config_sha256: Option<String>,
    /// Context frames.
    pub context: usize,
    /// Action space.
    pub action: ModelActionSpace,
    /// Frame size the model was trained at `[width, height]`, if recorded.
    pub frame: Option<[usize; 2]>,
}

/// The dataset evaluated on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// `--dataset` as given.
    pub path: String,
    /// SHA-256 over the files under `meta/` (see `data::dataset_fingerprint`).
    pub fingerprint: String,
    /// Stored frame size `[width, height]`.
    pub frame: [usize; 2],
    /// The size frames were resized to, when it differs.
    pub resized_to: Option<[usize; 2]>,
    /// Frames per second.
    pub fps: f64,
}

/// Means of one series at one step (or over all steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesEntry {
    /// Mean PSNR (dB) over windows, per-frame PSNR capped.
    pub psnr: f64,
    /// PSNR (dB) of the mean squared error over windows: not swayed by windows where nothing
    /// moves (copy-last is exact there, so its capped PSNR of 100 dB dominates the mean).
    /// Absent in reports written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psnr_pooled: Option<f64>,
    /// Mean SSIM over windows.
    pub ssim: f64,
    /// Mean mask IoU per object, over the windows where the object is in either frame.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub iou: BTreeMap<String, f64>,
}

/// One horizon step of the report: the model's means and the other series'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEntry {
    /// Horizon step, 1..=H.
    pub step: usize,
    /// The model (protocol's regime, mean over samples): mean PSNR (dB).
    pub psnr: f64,
    /// The model: PSNR (dB) of the mean squared error over windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psnr_pooled: Option<f64>,
    /// The model: mean SSIM.
    pub ssim: f64,
    /// The model: mean mask IoU per object (objects absent from every window are left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub iou: BTreeMap<String, f64>,
    /// Copy-last-frame baseline.
    pub baseline: SeriesEntry,
    /// The model teacher-forced (autoregressive runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_forced: Option<SeriesEntry>,
    /// Best of K samples by PSNR (K > 1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of_k: Option<SeriesEntry>,
    /// 95 % intervals of the model's means from a bootstrap over episodes (absent with fewer
    /// than two episodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<StepIntervals>,
    /// Object physics and action response: the mean over windows of each key of
    /// `physics.rs` where defined, plus `response.pixel_ratio` / `response.pose_ratio` (the
    /// model's mean divergence over the simulator's) and `<object>.first_lost` (the share of
    /// rollouts whose first loss is at this step).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub physics: BTreeMap<String, f64>,
}

impl StepEntry {
    /// The model's means at this step.
    fn model(&self) -> SeriesEntry {
        SeriesEntry {
            psnr: self.psnr,
            psnr_pooled: self.psnr_pooled,
            ssim: self.ssim,
            iou: self.iou.clone(),
        }
    }

    /// The means of one series at this step.
    fn series(&self, kind: SeriesKind) -> Option<SeriesEntry> {
        match kind {
            SeriesKind::Model => Some(self.model()),
            SeriesKind::Baseline => Some(self.baseline.clone()),
            SeriesKind::TeacherForced => self.teacher_forced.clone(),
            SeriesKind::BestOfK => self.best_of_k.clone(),
        }
    }
}

/// Means over all horizon steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The model.
    pub model: SeriesEntry,
    /// Copy-last-frame baseline.
    pub baseline: SeriesEntry,
    /// Teacher-forced model (autoregressive runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_forced: Option<SeriesEntry>,
    /// Best of K (K > 1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of_k: Option<SeriesEntry>,
    /// Physics over the horizon: the mean over steps of each per-step value, except the
    /// cumulative `*_by` shares (their value at the last step: by the horizon) and the
    /// ratios (of the means over steps); `first_lost` is left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub physics: BTreeMap<String, f64>,
}

/// A shard a merged report was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedShard {
    /// The shard's report directory.
    pub dir: String,
    /// Which shard.
    pub shard: Shard,
    /// The shard's command.
    pub command: Vec<String>,
}

/// `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Version of dreamyard that wrote the report.
    pub dreamyard_version: String,
    /// The exact command line.
    pub command: Vec<String>,
    /// The model.
    pub model: ModelInfo,
    /// The dataset.
    pub dataset: DatasetInfo,
    /// The protocol.
    pub protocol: Protocol,
    /// Windows in the whole evaluation.
    pub windows: usize,
    /// Windows scored in this report (fewer than `windows` in a shard).
    pub windows_scored: usize,
    /// The shard this report covers, if it is one.
    pub shard: Option<Shard>,
    /// The shards this report was merged from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<MergedShard>,
    /// Objects of the scene's palette (IoU keys); empty without scene colours.
    pub objects: Vec<String>,
    /// Things a reader must know (resizing, ...).
    pub notes: Vec<String>,
    /// One entry per horizon step.
    pub per_step: Vec<StepEntry>,
    /// Means over steps.
    pub summary: Summary,
}

/// Which series of a [`WindowRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeriesKind {
    Model,
    BestOfK,
    Baseline,
    TeacherForced,
}

impl SeriesKind {
    const ALL: [Self; 4] = [
        Self::Model,
        Self::BestOfK,
        Self::Baseline,
        Self::TeacherForced,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::BestOfK => "best_of_k",
            Self::Baseline => "baseline",
            Self::TeacherForced => "teacher_forced",
        }
    }

    fn of(self, r: &WindowRecord) -> Option<&Vec<FrameMetrics>> {
        match self {
            Self::Model => Some(&r.model),
            Self::BestOfK => r.best_of_k.as_ref(),
            Self::Baseline => Some(&r.baseline),
            Self::TeacherForced => r.teacher_forced.as_ref(),
        }
    }
}

/// Mean of `kind` at step index `h` over `records` (in order); `None` if the series is absent.
fn series_at(
    records: &[WindowRecord],
    kind: SeriesKind,
    h: usize,
    objects: &[String],
) -> Option<SeriesEntry> {
    let mut rows = records.iter().filter_map(|r| kind.of(r).map(|s| &s[h]));
    let first = rows.next()?;
    let (mut psnr, mut ssim, mut n) = (first.psnr, first.ssim, 1usize);
    let mut mse = relative_mse(first.psnr);
    let mut iou_sum = vec![0.0; objects.len()];
    let mut iou_n = vec![0usize; objects.len()];
    let mut add_iou = |m: &FrameMetrics| {
        for (k, v) in m.iou.iter().enumerate() {
            if let (Some(v), Some(s)) = (v, iou_sum.get_mut(k)) {
                *s += v;
                iou_n[k] += 1;
            }
        }
    };
    add_iou(first);
    for m in rows {
        psnr += m.psnr;
        mse += relative_mse(m.psnr);
        ssim += m.ssim;
        n += 1;
        add_iou(m);
    }
    let iou = objects
        .iter()
        .enumerate()
        .filter(|&(k, _)| iou_n[k] > 0)
        .map(|(k, name)| (name.clone(), iou_sum[k] / iou_n[k] as f64))
        .collect();
    Some(SeriesEntry {
        psnr: psnr / n as f64,
        psnr_pooled: Some(-10.0 * (mse / n as f64).log10()),
        ssim: ssim / n as f64,
        iou,
    })
}

/// A frame's mean squared error relative to the 8-bit peak (255²), from its PSNR: the
/// inverse of `10 log10(255² / mse)`. A capped PSNR gives the cap's (negligible) error.
fn relative_mse(psnr: f64) -> f64 {
    10f64.powf(-psnr / 10.0)
}

/// Mean of entries over steps (IoU per object over the steps where it is defined).
fn mean_over_steps<'a>(entries: impl Iterator<Item = &'a SeriesEntry>) -> Option<SeriesEntry> {
    let entries: Vec<&SeriesEntry> = entries.collect();
    if entries.is_empty() {
        return None;
    }
    let n = entries.len() as f64;
    let mut iou: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for e in &entries {
        for (k, v) in &e.iou {
            let slot = iou.entry(k.clone()).or_default();
            slot.0 += v;
            slot.1 += 1;
        }
    }
    let pooled: Option<Vec<f64>> = entries.iter().map(|e| e.psnr_pooled).collect();
    Some(SeriesEntry {
        psnr: entries.iter().map(|e| e.psnr).sum::<f64>() / n,
        psnr_pooled: pooled.map(|p| p.iter().sum::<f64>() / n),
        ssim: entries.iter().map(|e| e.ssim).sum::<f64>() / n,
        iou: iou
            .into_iter()
            .map(|(k, (s, c))| (k, s / c as f64))
            .collect(),
    })
}

/// Per-step entries and summary of `records` (sorted by window id); `seed` draws the bootstrap
/// resamples of the intervals.
pub fn aggregate(
    records: &[WindowRecord],
    objects: &[String],
    horizon: usize,
    seed: u64,
) -> anyhow::Result<(Vec<StepEntry>, Summary)> {
    if records.is_empty() {
        bail!("no window was scored");
    }
    let mut intervals =
        interval::step_intervals(records, objects, horizon, seed).map(Vec::into_iter);
    let physics = physics_means(records, horizon);
    let mut per_step = Vec::with_capacity(horizon);
    for h in 0..horizon {
        let at = |k| series_at(records, k, h, objects);
        let model = at(SeriesKind::Model).context("no model series")?;
        per_step.push(StepEntry {
            step: h + 1,
            psnr: model.psnr,
            psnr_pooled: model.psnr_pooled,
            ssim: model.ssim,
            iou: model.iou,
            baseline: at(SeriesKind::Baseline).context("no baseline series")?,
            teacher_forced: at(SeriesKind::TeacherForced),
            best_of_k: at(SeriesKind::BestOfK),
            interval: intervals.as_mut().and_then(Iterator::next),
            physics: physics.get(h).cloned().unwrap_or_default(),
        });
    }
    let model_entries: Vec<SeriesEntry> = per_step.iter().map(StepEntry::model).collect();
    let summary = Summary {
        model: mean_over_steps(model_entries.iter()).context("empty horizon")?,
        baseline: mean_over_steps(per_step.iter().map(|e| &e.baseline)).context("empty horizon")?,
        teacher_forced: mean_over_steps(per_step.iter().filter_map(|e| e.teacher_forced.as_ref())),
        best_of_k: mean_over_steps(per_step.iter().filter_map(|e| e.best_of_k.as_ref())),
        physics: physics_summary(&physics),
    };
    Ok((per_step, summary))
}

/// Per step, the mean over windows of every physics key where defined, and the derived keys.
fn physics_means(records: &[WindowRecord], horizon: usize) -> Vec<BTreeMap<String, f64>> {
    let mut sums: BTreeMap<&str, Vec<(f64, usize)>> = BTreeMap::new();
    for r in records {
        for (key, values) in &r.physics {
            let slot = sums
                .entry(key.as_str())
                .or_insert_with(|| vec![(0.0, 0); horizon]);
            for (h, v) in values.iter().enumerate().take(horizon) {
                if let Some(v) = v {
                    slot[h].0 += v;
                    slot[h].1 += 1;
                }
            }
        }
    }
    let mut steps: Vec<BTreeMap<String, f64>> = (0..horizon)
        .map(|h| {
            sums.iter()
                .filter(|(_, v)| v[h].1 > 0)
                .map(|(k, v)| ((*k).to_owned(), v[h].0 / v[h].1 as f64))
                .collect()
        })
        .collect();
    for h in 0..horizon {
        for (name, num, den) in interval::RATIOS {
            if let (Some(n), Some(d)) = (steps[h].get(num), steps[h].get(den))
                && *d > 0.0
            {
                let r = n / d;
                steps[h].insert(name.to_owned(), r);
            }
        }
        let lost_by: Vec<(String, f64)> = steps[h]
            .iter()
            .filter_map(|(k, v)| Some((k.strip_suffix(".lost_by")?.to_owned(), *v)))
            .collect();
        for (object, now) in lost_by {
            let before = h
                .checked_sub(1)
                .and_then(|p| steps[p].get(&format!("{object}.lost_by")).copied())
                .unwrap_or(0.0);
            steps[h].insert(format!("{object}.first_lost"), (now - before).max(0.0));
        }
    }
    steps
}

/// The physics summary over steps (see [`Summary::physics`]).
fn physics_summary(steps: &[BTreeMap<String, f64>]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let keys: std::collections::BTreeSet<&String> = steps.iter().flat_map(|s| s.keys()).collect();
    for key in keys {
        if key.ends_with(".first_lost") || key.ends_with("_ratio") {
            continue;
        }
        let value = if key.ends_with("_by") {
            steps.iter().rev().find_map(|s| s.get(key)).copied()
        } else {
            let vals: Vec<f64> = steps.iter().filter_map(|s| s.get(key)).copied().collect();
            (!vals.is_empty()).then(|| vals.iter().sum::<f64>() / vals.len() as f64)
        };
        if let Some(v) = value {
            out.insert(key.clone(), v);
        }
    }
    for (name, num, den) in interval::RATIOS {
        if let (Some(n), Some(d)) = (out.get(num), out.get(den))
            && *d > 0.0
        {
            let r = n / d;
            out.insert(name.to_owned(), r);
        }
    }
    out
}

/// `physics.csv`: one row per window and step, one column per physics key (the union over
/// windows, sorted); empty where undefined. Numbers in shortest round-trip form.
pub fn physics_csv(records: &[WindowRecord]) -> String {
    let keys = super::physics::physics_keys(records);
    let mut out = String::from("window,episode,start,step");
    for k in &keys {
        let _ = write!(out, ",{k}");
    }
    out.push('\n');
    for r in records {
        let steps = r.physics.values().map(Vec::len).max().unwrap_or(0);
        for h in 0..steps {
            let _ = write!(
                out,
                "{},{},{},{}",
                r.window.id,
                r.window.episode,
                r.window.start,
                h + 1
            );
            for k in &keys {
                let v = r.physics.get(*k).and_then(|v| v.get(h).copied().flatten());
                let _ = write!(out, ",{}", csv_opt(v));
            }
            out.push('\n');
        }
    }
    out
}

/// Reads `physics.csv` (see [`physics_csv`]) into `records` (matched by window id).
pub fn parse_physics_csv(
    text: &str,
    file: &Path,
    records: &mut [WindowRecord],
    horizon: usize,
) -> anyhow::Result<()> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l).unwrap_or_default();
    let cols: Vec<&str> = header.split(',').collect();
    if cols.len() < 4 || cols[..4] != ["window", "episode", "start", "step"] {
        bail!(
            "{}: header is `{header}`, expected `window,episode,start,step,<keys>`",
            file.display()
        );
    }
    let keys: Vec<String> = cols[4..].iter().map(|k| (*k).to_owned()).collect();
    for (i, line) in lines {
        let at = || format!("{} line {}", file.display(), i + 1);
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != cols.len() {
            bail!("{}: {} columns, expected {}", at(), cells.len(), cols.len());
        }
        let int = |c: usize| -> anyhow::Result<usize> {
            cells[c]
                .parse()
                .with_context(|| format!("{}: column `{}` is not an integer", at(), cols[c]))
        };
        let (id, step) = (int(0)?, int(3)?);
        if step == 0 || step > horizon {
            bail!("{}: step {step} outside the horizon 1..={horizon}", at());
        }
        let rec = records
            .iter_mut()
            .find(|r| r.window.id == id)
            .with_context(|| format!("{}: window {id} is not in windows.csv", at()))?;
        for (c, key) in keys.iter().enumerate() {
            let cell = cells[4 + c];
            let v = if cell.is_empty() {
                None
            } else {
                Some(
                    cell.parse::<f64>()
                        .with_context(|| format!("{}: column `{key}` is not a number", at()))?,
                )
            };
            rec.physics
                .entry(key.clone())
                .or_insert_with(|| vec![None; horizon])[step - 1] = v;
        }
    }
    Ok(())
}

fn csv_opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `windows.csv`: one row per window, series and step; IoU columns empty where undefined.
pub fn windows_csv(records: &[WindowRecord], objects: &[String]) -> String {
    let mut out = String::from("window,episode,start,series,step,psnr,ssim");
    for o in objects {
        let _ = write!(out, ",iou:{o}");
    }
    out.push('\n');
    for r in records {
        for kind in SeriesKind::ALL {
            let Some(series) = kind.of(r) else { continue };
            for (h, m) in series.iter().enumerate() {
                let _ = write!(
                    out,
                    "{},{},{},{},{},{},{}",
                    r.window.id,
                    r.window.episode,
                    r.window.start,
                    kind.name(),
                    h + 1,
                    m.psnr,
                    m.ssim
                );
                for k in 0..objects.len() {
                    let _ = write!(out, ",{}", csv_opt(m.iou.get(k).copied().flatten()));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Reads `windows.csv` back (see [`windows_csv`]).
pub fn parse_windows_csv(
    text: &str,
    file: &Path,
    objects: &[String],
    horizon: usize,
) -> anyhow::Result<Vec<WindowRecord>> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l).unwrap_or_default();
    let want = windows_csv(&[], objects);
    if header != want.trim_end() {
        bail!(
            "{}: header is `{header}`, expected `{}`",
            file.display(),
            want.trim_end()
        );
    }
    let mut records: BTreeMap<usize, WindowRecord> = BTreeMap::new();
    for (i, line) in lines {
        let at = || format!("{} line {}", file.display(), i + 1);
        let cols: Vec<&str> = line.split(',').collect();
        if cols.len() != 7 + objects.len() {
            bail!(
                "{}: {} columns, expected {}",
                at(),
                cols.len(),
                7 + objects.len()
            );
        }
        let int = |c: usize| -> anyhow::Result<u64> {
            cols[c]
                .parse()
                .with_context(|| format!("{}: column {} is not an integer", at(), c + 1))
        };
        let num = |c: usize| -> anyhow::Result<f64> {
            cols[c]
                .parse()
                .with_context(|| format!("{}: column {} is not a number", at(), c + 1))
        };
        let id = int(0)? as usize;
        let window = Window {
            id,
            episode: int(1)?,
            start: int(2)? as usize,
        };
        let kind = SeriesKind::ALL
            .into_iter()
            .find(|k| k.name() == cols[3])
            .with_context(|| format!("{}: unknown series `{}`", at(), cols[3]))?;
        let step = int(4)? as usize;
        let metrics = FrameMetrics {
            psnr: num(5)?,
            ssim: num(6)?,
            iou: (0..objects.len())
                .map(|k| {
                    let c = 7 + k;
                    if cols[c].is_empty() {
                        Ok(None)
                    } else {
                        num(c).map(Some)
                    }
                })
                .collect::<anyhow::Result<_>>()?,
        };
        let rec = records.entry(id).or_insert_with(|| WindowRecord {
            window,
            model: Vec::new(),
            best_of_k: None,
            baseline: Vec::new(),
            teacher_forced: None,
            physics: BTreeMap::new(),
        });
        if rec.window != window {
            bail!("{}: window {id} appears with two different starts", at());
        }
        let series = match kind {
            SeriesKind::Model => &mut rec.model,
            SeriesKind::Baseline => &mut rec.baseline,
            SeriesKind::BestOfK => rec.best_of_k.get_or_insert_with(Vec::new),
            SeriesKind::TeacherForced => rec.teacher_forced.get_or_insert_with(Vec::new),
        };
        if step != series.len() + 1 {
            bail!(
                "{}: step {step} of series `{}` out of order",
                at(),
                kind.name()
            );
        }
        series.push(metrics);
    }
    for r in records.values() {
        let complete = SeriesKind::ALL
            .iter()
            .filter_map(|k| k.of(r))
            .all(|s| s.len() == horizon);
        if !complete || r.model.len() != horizon || r.baseline.len() != horizon {
            bail!(
                "{}: window {} does not have all {horizon} steps of each series",
                file.display(),
                r.window.id
            );
        }
    }
    Ok(records.into_values().collect())
}

/// `per_step.csv`: the per-step means, one column per series and metric.
pub fn per_step_csv(report: &Report) -> String {
    let objects = &report.objects;
    let kinds = [
        SeriesKind::Model,
        SeriesKind::Baseline,
        SeriesKind::TeacherForced,
        SeriesKind::BestOfK,
    ];
    let present: Vec<SeriesKind> = kinds
        .into_iter()
        .filter(|&k| {
            report
                .per_step
                .first()
                .is_some_and(|e| e.series(k).is_some())
        })
        .collect();
    let has_interval = report.per_step.iter().any(|e| e.interval.is_some());
    let mut out = String::from("step");
    for name in present.iter().map(|k| k.name()) {
        let _ = write!(out, ",{name}_psnr,{name}_ssim");
        for o in objects {
            let _ = write!(out, ",{name}_iou:{o}");
        }
        let _ = write!(out, ",{name}_psnr_pooled");
    }
    if has_interval {
        out.push_str(",model_psnr_lo,model_psnr_hi,psnr_gain_lo,psnr_gain_hi");
        for o in objects {
            let _ = write!(out, ",model_iou:{o}_lo,model_iou:{o}_hi");
        }
    }
    let phys_keys: Vec<&String> = report
        .per_step
        .iter()
        .flat_map(|e| e.physics.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let phys_iv_keys: Vec<&String> = report
        .per_step
        .iter()
        .filter_map(|e| e.interval.as_ref())
        .flat_map(|iv| iv.physics.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for k in &phys_keys {
        let _ = write!(out, ",physics:{k}");
    }
    for k in &phys_iv_keys {
        let _ = write!(out, ",physics:{k}_lo,physics:{k}_hi");
    }
    out.push('\n');
    for e in &report.per_step {
        let _ = write!(out, "{}", e.step);
        for &k in &present {
            let s = e.series(k).unwrap_or(SeriesEntry {
                psnr: f64::NAN,
                psnr_pooled: None,
                ssim: f64::NAN,
                iou: BTreeMap::new(),
            });
            let _ = write!(out, ",{},{}", s.psnr, s.ssim);
            for o in objects {
                let _ = write!(out, ",{}", csv_opt(s.iou.get(o).copied()));
            }
            let _ = write!(out, ",{}", csv_opt(s.psnr_pooled));
        }
        if has_interval {
            let iv = e.interval.as_ref();
            let pair = |v: Option<[f64; 2]>| {
                format!("{},{}", csv_opt(v.map(|v| v[0])), csv_opt(v.map(|v| v[1])))
            };
            let _ = write!(out, ",{}", pair(iv.map(|i| i.psnr)));
            let _ = write!(out, ",{}", pair(iv.map(|i| i.psnr_gain)));
            for o in objects {
                let _ = write!(out, ",{}", pair(iv.and_then(|i| i.iou.get(o).copied())));
            }
        }
        for k in &phys_keys {
            let _ = write!(out, ",{}", csv_opt(e.physics.get(*k).copied()));
        }
        for k in &phys_iv_keys {
            let v = e.interval.as_ref().and_then(|i| i.physics.get(*k).copied());
            let _ = write!(
                out,
                ",{},{}",
                csv_opt(v.map(|v| v[0])),
                csv_opt(v.map(|v| v[1]))
            );
        }
        out.push('\n');
    }
    out
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

/// `report.md`: what was run, the headline numbers at a few horizons, and the definitions.
pub fn report_md(report: &Report, plots: &[String], examples: &[String]) -> String {
    let p = &report.protocol;
    let mut md = String::new();
    let _ = writeln!(md, "# Dreamyard evaluation report\n");
    let _ = writeln!(md, "```\n{}\n```\n", report.command.join(" "));
    let _ = writeln!(
        md,
        "- Model: `{}` (weights SHA-256 `{}`)",
        report.model.path, report.model.weights_sha256
    );
    let _ = writeln!(
        md,
        "- Dataset: `{}` (fingerprint `{}`), episodes {}",
        report.dataset.path,
        report.dataset.fingerprint,
        episode_ranges(&p.episodes)
    );
    let _ = writeln!(
        md,
        "- Protocol: {} regime, context {}, horizon {}, stride {}, {} sample(s) per window, seed \
         {}, {} windows at {}x{}",
        p.regime.name(),
        p.context,
        p.horizon,
        p.stride,
        p.samples,
        p.seed,
        report.windows,
        p.frame[0],
        p.frame[1]
    );
    if let Some(s) = report.shard {
        let _ = writeln!(
            md,
            "- Shard {}/{}: {} of {} windows; combine shards with `dreamyard eval merge`",
            s.index, s.count, report.windows_scored, report.windows
        );
    }
    if !report.merged_from.is_empty() {
        let _ = writeln!(
            md,
            "- Merged from {} shard reports",
            report.merged_from.len()
        );
    }
    for n in &report.notes {
        let _ = writeln!(md, "- **Note:** {n}");
    }

    let _ = writeln!(md, "\n## Results\n");
    let has_tf = report.summary.teacher_forced.is_some();
    let has_best = report.summary.best_of_k.is_some();
    let mut head = String::from("| step | PSNR (dB) | SSIM |");
    let mut rule = String::from("|---:|---:|---:|");
    if has_best {
        head.push_str(" best-of-K PSNR |");
        rule.push_str("---:|");
    }
    if has_tf {
        head.push_str(" teacher-forced PSNR |");
        rule.push_str("---:|");
    }
    head.push_str(" copy-last PSNR | copy-last SSIM | pooled PSNR | pooled copy-last PSNR |");
    rule.push_str("---:|---:|---:|---:|");
    for o in &report.objects {
        let _ = write!(head, " IoU {o} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    let h = p.horizon;
    let mut shown: Vec<usize> = [1, 2, 4, 8, 16, 32, 64, 128]
        .into_iter()
        .filter(|&s| s <= h)
        .collect();
    if !shown.contains(&h) {
        shown.push(h);
    }
    let rows = report
        .per_step
        .iter()
        .filter(|e| shown.contains(&e.step))
        .map(|e| {
            (
                e.step.to_string(),
                e.model(),
                e.best_of_k.as_ref(),
                e.teacher_forced.as_ref(),
                &e.baseline,
            )
        })
        .chain(std::iter::once((
            "mean".to_owned(),
            report.summary.model.clone(),
            report.summary.best_of_k.as_ref(),
            report.summary.teacher_forced.as_ref(),
            &report.summary.baseline,
        )));
    for (step, m, best, tf, base) in rows {
        let _ = write!(md, "| {step} | {:.2} | {:.4} |", m.psnr, m.ssim);
        if has_best {
            let _ = write!(md, " {} |", fmt_opt(best.map(|b| b.psnr), 2));
        }
        if has_tf {
            let _ = write!(md, " {} |", fmt_opt(tf.map(|t| t.psnr), 2));
        }
        let _ = write!(
            md,
            " {:.2} | {:.4} | {} | {} |",
            base.psnr,
            base.ssim,
            fmt_opt(m.psnr_pooled, 2),
            fmt_opt(base.psnr_pooled, 2)
        );
        for o in &report.objects {
            let _ = write!(md, " {} |", fmt_opt(m.iou.get(o).copied(), 3));
        }
        md.push('\n');
    }
    let intervals: Vec<(usize, &StepIntervals)> = report
        .per_step
        .iter()
        .filter(|e| shown.contains(&e.step))
        .filter_map(|e| e.interval.as_ref().map(|iv| (e.step, iv)))
        .collect();
    if !intervals.is_empty() {
        let _ = writeln!(
            md,
            "\n95 % intervals of the model's means: percentile bootstrap, {} resamples of the \
             scored episodes (whole episodes, since windows of one episode are alike). The gain \
             is the model's PSNR minus copy-last's, window by window.\n",
            interval::RESAMPLES
        );
        let mut head = String::from("| step | PSNR (dB) | gain over copy-last (dB) |");
        let mut rule = String::from("|---:|---:|---:|");
        let objects: Vec<&String> = report
            .objects
            .iter()
            .filter(|o| intervals.iter().any(|(_, iv)| iv.iou.contains_key(*o)))
            .collect();
        for o in &objects {
            let _ = write!(head, " IoU {o} |");
            rule.push_str("---:|");
        }
        let _ = writeln!(md, "{head}\n{rule}");
        let range = |v: Option<[f64; 2]>, digits: usize| {
            v.map_or_else(
                || "–".to_owned(),
                |[lo, hi]| format!("{lo:.digits$} – {hi:.digits$}"),
            )
        };
        for (step, iv) in intervals {
            let _ = write!(
                md,
                "| {step} | {} | {} |",
                range(Some(iv.psnr), 2),
                range(Some(iv.psnr_gain), 2)
            );
            for o in &objects {
                let _ = write!(md, " {} |", range(iv.iou.get(*o).copied(), 3));
            }
            md.push('\n');
        }
    }
    physics_md(&mut md, report, &shown);
    let _ = writeln!(
        md,
        "\nAll steps: `per_step.csv` and `report.json` (`per_step`); every window: `windows.csv`, \
         and its physics `physics.csv`."
    );
    if !plots.is_empty() {
        let _ = writeln!(md, "\n## Plots\n");
        for f in plots {
            let _ = writeln!(md, "![{f}]({f})");
        }
    }
    if !examples.is_empty() {
        let _ = writeln!(
            md,
            "\n## Examples\n\nRows: truth, model (sample 1), absolute error; columns: horizon steps.\n"
        );
        for f in examples {
            let _ = writeln!(md, "![{f}]({f})");
        }
    }
    let _ = writeln!(
        md,
        "\n## Definitions\n\n\
         - Windows: from each episode, windows of context + horizon frames start every `stride` \
         frames from frame 0 while they fit. Step h scores frame start + context + h - 1, \
         predicted with the recorded action of the frame before it.\n\
         - Autoregressive: only the context frames are real; the model feeds on its own \
         outputs. Teacher-forced: each step starts from the real previous {} frames and actions \
         and predicts one frame.\n\
         - PSNR on the 8-bit scale over all channels; a frame's PSNR is capped at {} dB \
         (identical frames would be infinite) before the mean over windows. Pooled PSNR is \
         the PSNR of the mean squared error over windows (the mean over steps in the `mean` \
         row): where nothing moves, copy-last is exact and its capped 100 dB sways the mean \
         PSNR far more than a few dB of error elsewhere; the pooled figure weighs each \
         window's error instead.\n\
         - SSIM (Wang et al. 2004): 11x11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, per \
         channel, valid positions, mean over channels.\n\
         - IoU: each pixel takes the label of the nearest scene colour within RGB distance {}; \
         per object, averaged over the windows where the object is in the truth or the \
         prediction.\n\
         - With K samples, `psnr`/`ssim`/`iou` are means over the K samples; best-of-K takes, per \
         window and step, the sample with the highest PSNR and reports all its metrics.\n\
         - Copy-last-frame baseline: predicts the newest real frame the model had (the last \
         context frame when autoregressive, the previous frame when teacher-forced).\n\
         - Noise: each window and sample has its own generator seeded from (seed, window, \
         sample, regime), so numbers do not depend on batching or sharding.",
        p.context, p.psnr_cap_db, p.iou_tolerance
    );
    md
}

/// The physics section of `report.md`: per object, pose, shape, permanence and motion at the
/// shown steps; the action response; the spread of K samples.
fn physics_md(md: &mut String, report: &Report, shown: &[usize]) {
    if report.summary.physics.is_empty() {
        return;
    }
    let rows: Vec<&StepEntry> = report
        .per_step
        .iter()
        .filter(|e| shown.contains(&e.step))
        .collect();
    let get = |e: &StepEntry, k: &str| e.physics.get(k).copied();
    let with_iv = |e: &StepEntry, k: &str, digits: usize| -> String {
        let v = fmt_opt(get(e, k), digits);
        match e.interval.as_ref().and_then(|iv| iv.physics.get(k)) {
            Some([lo, hi]) if get(e, k).is_some() => {
                format!("{v} ({lo:.digits$} – {hi:.digits$})")
            }
            _ => v,
        }
    };
    let _ = writeln!(
        md,
        "\n## Physics and controls\n\nObjects are read from the scene's colours (the IoU \
         masks, specks apart from the body dropped). Centroid and heading errors are in pixels \
         and degrees at the evaluated size; \"lost by\" is the share of rollouts that have lost \
         the object (model area below half the true area) at or before the step; \"teleport by\" \
         the share whose object moved farther than the scene's dynamics allow; 95 % intervals \
         in brackets where the windows come from several episodes."
    );
    let columns: [(&str, &str, usize); 9] = [
        ("centroid_px", "centroid error (px)", 2),
        ("copy_last.centroid_px", "copy-last centroid (px)", 2),
        ("angle_deg", "heading error (°)", 1),
        ("copy_last.angle_deg", "copy-last heading (°)", 1),
        ("area_ratio", "area ratio", 3),
        ("shape_iou", "aligned shape IoU", 3),
        ("lost_by", "lost by", 3),
        ("phantom", "phantom", 3),
        ("teleport_by", "teleport by", 3),
    ];
    let key = |o: &str, c: &str| match c.strip_prefix("copy_last.") {
        Some(rest) => format!("copy_last.{o}.{rest}"),
        None => format!("{o}.{c}"),
    };
    for o in &report.objects {
        let present: Vec<&(&str, &str, usize)> = columns
            .iter()
            .filter(|(c, _, _)| rows.iter().any(|e| get(e, &key(o, c)).is_some()))
            .collect();
        if present.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\n### {o}\n");
        let mut head = String::from("| step |");
        let mut rule = String::from("|---:|");
        for (_, label, _) in &present {
            let _ = write!(head, " {label} |");
            rule.push_str("---:|");
        }
        let _ = writeln!(md, "{head}\n{rule}");
        for e in &rows {
            let _ = write!(md, "| {} |", e.step);
            for (c, _, digits) in &present {
                let k = key(o, c);
                let cell = if c.starts_with("copy_last") {
                    fmt_opt(get(e, &k), *digits)
                } else {
                    with_iv(e, &k, *digits)
                };
                let _ = write!(md, " {cell} |");
            }
            md.push('\n');
        }
        let first: Vec<String> = report
            .per_step
            .iter()
            .filter_map(|e| {
                get(e, &format!("{o}.first_lost"))
                    .filter(|v| *v > 0.0)
                    .map(|v| format!("{}: {v:.3}", e.step))
            })
            .collect();
        if !first.is_empty() {
            let _ = writeln!(
                md,
                "\nFirst loss (step: share of rollouts): {}.",
                first.join(", ")
            );
        }
    }
    if rows.iter().any(|e| get(e, "response.world_px").is_some()) {
        let pert = report
            .protocol
            .counterfactual
            .map_or_else(String::new, |p| format!(" (`{p}`)"));
        let _ = writeln!(
            md,
            "\n### Action response\n\nEach window rolled out twice from the same context and \
             noise, with the recorded actions and with perturbed ones{pert}, in the model and \
             in the simulator from the stored state. Divergence between the two futures: mean \
             absolute pixel difference (8-bit) and mean centroid distance of the moving objects \
             (px). Ratio = model / simulator: 0 = the model ignores the actions, 1 = it responds \
             as the world does.\n\n\
             | step | model (px) | simulator (px) | pixel ratio | model pose (px) | simulator \
             pose (px) | pose ratio |\n|---:|---:|---:|---:|---:|---:|---:|"
        );
        for e in &rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                e.step,
                fmt_opt(get(e, "response.model_px"), 2),
                fmt_opt(get(e, "response.world_px"), 2),
                with_iv(e, "response.pixel_ratio", 3),
                fmt_opt(get(e, "response.model_pose"), 2),
                fmt_opt(get(e, "response.world_pose"), 2),
                with_iv(e, "response.pose_ratio", 3),
            );
        }
    }
    if rows.iter().any(|e| get(e, "samples.coverage").is_some()) {
        let k = report.protocol.samples;
        let _ = writeln!(
            md,
            "\n### {k} sampled futures\n\nSpread: the per-pixel standard deviation across the \
             samples (8-bit), averaged. Coverage: the share of pixel values where the truth lies \
             within the samples' range; {k} calibrated samples cover a true draw with \
             probability (K - 1) / (K + 1) = {:.3}: more is over-dispersed, less over-confident. \
             Still background is covered trivially (every sample draws it), so the moving \
             coverage counts only the pixel values where the truth differs from the last context \
             frame.\n\n\
             | step | spread | coverage | moving coverage |\n|---:|---:|---:|---:|",
            crate::objects::ideal_coverage(k)
        );
        for e in &rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                e.step,
                with_iv(e, "samples.spread", 2),
                with_iv(e, "samples.coverage", 3),
                with_iv(e, "samples.coverage_moving", 3)
            );
        }
    }
}

/// `0-9, 12` style list of episode indices.
fn episode_ranges(eps: &[u64]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < eps.len() {
        let mut j = i;
        while j + 1 < eps.len() && eps[j + 1] == eps[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            eps[i].to_string()
        } else {
            format!("{}-{}", eps[i], eps[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Writes a report's files into `out`: `report.json`, `per_step.csv`, `windows.csv`, the
/// plots and `report.md` (which links the example strips already in `out/examples`).
pub fn write_report_dir(
    out: &Path,
    report: &Report,
    records: &[WindowRecord],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        let path = out.join(name);
        std::fs::write(&path, text).with_context(|| format!("{}: cannot write", path.display()))
    };
    write(REPORT_JSON, &serde_json::to_string_pretty(report)?)?;
    write(PER_STEP_CSV, &per_step_csv(report))?;
    write(WINDOWS_CSV, &windows_csv(records, &report.objects))?;
    let physics_path = out.join(PHYSICS_CSV);
    if records.iter().any(|r| !r.physics.is_empty()) {
        write(PHYSICS_CSV, &physics_csv(records))?;
    } else if physics_path.exists() {
        // An earlier run's file would be merged as this run's.
        std::fs::remove_file(&physics_path)
            .with_context(|| format!("{}: cannot remove", physics_path.display()))?;
    }
    let plots = write_plots(out, report)?;
    let mut examples: Vec<String> = match std::fs::read_dir(out.join(EXAMPLES_DIR)) {
        Ok(dir) => dir
            .filter_map(Result::ok)
            .map(|e| format!("{EXAMPLES_DIR}/{}", e.file_name().to_string_lossy()))
            .filter(|n| n.ends_with(".png"))
            .collect(),
        Err(_) => Vec::new(),
    };
    examples.sort();
    write(REPORT_MD, &report_md(report, &plots, &examples))
}

/// The metric curves over the horizon as PNGs; returns their file names.
fn write_plots(out: &Path, report: &Report) -> anyhow::Result<Vec<String>> {
    // IoU plots of an earlier report in `out` whose objects this one lacks would be stale.
    if let Ok(dir) = std::fs::read_dir(out) {
        for entry in dir.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if (name.starts_with("iou_") || name.starts_with("physics_")) && name.ends_with(".png")
            {
                let path = entry.path();
                std::fs::remove_file(&path)
                    .with_context(|| format!("{}: cannot remove the old plot", path.display()))?;
            }
        }
    }
    let steps: Vec<f64> = report.per_step.iter().map(|e| e.step as f64).collect();
    let regime = report.protocol.regime.name();
    let model_label = match report.protocol.samples {
        1 => format!("model ({regime})"),
        k => format!("model ({regime}, mean of {k})"),
    };
    let collect = |f: &dyn Fn(&StepEntry) -> Option<f64>| -> Vec<(f64, f64)> {
        report
            .per_step
            .iter()
            .zip(&steps)
            .filter_map(|(e, &x)| f(e).filter(|v| v.is_finite()).map(|v| (x, v)))
            .collect()
    };
    let series_for = |metric: &dyn Fn(&SeriesEntry) -> Option<f64>| -> Vec<Series> {
        let model = |e: &StepEntry| metric(&e.model());
        let mut s = vec![Series {
            label: model_label.clone(),
            color: plot::COLORS[0],
            points: collect(&model),
        }];
        if report.summary.best_of_k.is_some() {
            s.push(Series {
                label: format!("best of {}", report.protocol.samples),
                color: plot::COLORS[1],
                points: collect(&|e| e.best_of_k.as_ref().and_then(metric)),
            });
        }
        if report.summary.teacher_forced.is_some() {
            s.push(Series {
                label: "model (teacher-forced)".to_owned(),
                color: plot::COLORS[2],
                points: collect(&|e| e.teacher_forced.as_ref().and_then(metric)),
            });
        }
        s.push(Series {
            label: "copy last frame".to_owned(),
            color: plot::COLORS[3],
            points: collect(&|e| metric(&e.baseline)),
        });
        s.retain(|s| !s.points.is_empty());
        s
    };
    let mut files = Vec::new();
    let mut plot_one = |name: String, y_label: &str, series: &[Series]| -> anyhow::Result<()> {
        if series.is_empty() {
            return Ok(());
        }
        plot::line_plot(&out.join(&name), "horizon step", y_label, series)?;
        files.push(name);
        Ok(())
    };
    plot_one(
        "psnr.png".into(),
        "PSNR (dB)",
        &series_for(&|s| Some(s.psnr)),
    )?;
    plot_one("ssim.png".into(), "SSIM", &series_for(&|s| Some(s.ssim)))?;
    for o in &report.objects {
        let safe: String = o
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        plot_one(
            format!("iou_{safe}.png"),
            &format!("IoU {o}"),
            &series_for(&|s| s.iou.get(o).copied()),
        )?;
    }
    // Physics: one curve per object (or quantity) and its colour.
    let phys = |key: &str| collect(&|e: &StepEntry| e.physics.get(key).copied());
    let curves = |keys: &[(String, String)]| -> Vec<Series> {
        keys.iter()
            .enumerate()
            .map(|(i, (key, label))| Series {
                label: label.clone(),
                color: plot::COLORS[i % plot::COLORS.len()],
                points: phys(key),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let moving: Vec<&String> = report
        .objects
        .iter()
        .filter(|o| {
            report
                .summary
                .physics
                .contains_key(&format!("{o}.teleport"))
        })
        .collect();
    let lost: Vec<(String, String)> = report
        .objects
        .iter()
        .filter(|o| report.summary.physics.contains_key(&format!("{o}.lost_by")))
        .map(|o| (format!("{o}.lost_by"), format!("{o} lost")))
        .chain(
            moving
                .iter()
                .map(|o| (format!("{o}.teleport_by"), format!("{o} teleported"))),
        )
        .collect();
    plot_one(
        "physics_lost.png".into(),
        "share of rollouts, by step",
        &curves(&lost),
    )?;
    let centroid: Vec<(String, String)> = moving
        .iter()
        .flat_map(|o| {
            [
                (format!("{o}.centroid_px"), format!("{o} (model)")),
                (
                    format!("copy_last.{o}.centroid_px"),
                    format!("{o} (copy last)"),
                ),
            ]
        })
        .collect();
    plot_one(
        "physics_centroid.png".into(),
        "centroid error (px)",
        &curves(&centroid),
    )?;
    plot_one(
        "physics_response.png".into(),
        "model / simulator divergence",
        &curves(&[
            ("response.pixel_ratio".into(), "pixels".into()),
            ("response.pose_ratio".into(), "object positions".into()),
        ]),
    )?;
    if report.protocol.samples > 1 {
        let mut cov = curves(&[
            ("samples.coverage".into(), "truth within the samples".into()),
            (
                "samples.coverage_moving".into(),
                "… where the truth moved".into(),
            ),
        ]);
        if let Some(first) = cov.first() {
            let ideal = crate::objects::ideal_coverage(report.protocol.samples);
            let xs: Vec<f64> = first.points.iter().map(|p| p.0).collect();
            cov.push(Series {
                label: format!("calibrated ({ideal:.2})"),
                color: plot::COLORS[3],
                points: xs.into_iter().map(|x| (x, ideal)).collect(),
            });
        }
        plot_one("physics_coverage.png".into(), "coverage", &cov)?;
    }
    Ok(files)
}

/// Reads a report directory's `report.json` and `windows.csv`.
pub fn read_report_dir(dir: &Path) -> anyhow::Result<(Report, Vec<WindowRecord>)> {
    let path = dir.join(REPORT_JSON);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let report: Report = dreamyard_fieldpath::from_json_str(&text)
        .with_context(|| format!("{}: not a dreamyard eval report", path.display()))?;
    let csv_path = dir.join(WINDOWS_CSV);
    let csv = std::fs::read_to_string(&csv_path)
        .with_context(|| format!("{}: cannot read", csv_path.display()))?;
    let mut records = parse_windows_csv(&csv, &csv_path, &report.objects, report.protocol.horizon)?;
    let physics_path = dir.join(PHYSICS_CSV);
    if physics_path.exists() {
        let text = std::fs::read_to_string(&physics_path)
            .with_context(|| format!("{}: cannot read", physics_path.display()))?;
        parse_physics_csv(&text, &physics_path, &mut records, report.protocol.horizon)?;
    }
    Ok((report, records))
}

/// Combines shard report directories into one report in `out`, equal to a single run's
/// (`command` and `merged_from` aside). Every shard `0..n` of one evaluation must be given once.
pub fn merge(dirs: &[PathBuf], out: &Path, command: Vec<String>) -> anyhow::Result<Report> {
    let Some(first_dir) = dirs.first() else {
        bail!("eval merge: give the shard report directories to merge");
    };
    let mut shards = Vec::with_capacity(dirs.len());
    for d in dirs {
        shards.push((d, read_report_dir(d)?));
    }
    let (_, (base, _)) = &shards[0];
    let n = dirs.len();
    let mut seen = vec![false; n];
    for (d, (r, _)) in &shards {
        let name = d.join(REPORT_JSON);
        let Some(s) = r.shard else {
            bail!(
                "{}: field `shard` is null: a full run, not a shard",
                name.display()
            );
        };
        if s.count != n {
            bail!(
                "{}: field `shard` is {}/{}, but {n} shard directories were given",
                name.display(),
                s.index,
                s.count
            );
        }
        if std::mem::replace(&mut seen[s.index], true) {
            bail!(
                "{}: shard {}/{} is given twice",
                name.display(),
                s.index,
                s.count
            );
        }
        let differs = |field: &str| -> anyhow::Result<()> {
            bail!(
                "{}: field `{field}` differs from {}'s; shards must come from one evaluation",
                name.display(),
                first_dir.join(REPORT_JSON).display()
            )
        };
        if r.model.weights_sha256 != base.model.weights_sha256
            || r.model.config_sha256 != base.model.config_sha256
        {
            differs("model.weights_sha256")?;
        }
        if r.dataset.fingerprint != base.dataset.fingerprint {
            differs("dataset.fingerprint")?;
        }
        if r.protocol != base.protocol {
            differs("protocol")?;
        }
        if r.windows != base.windows {
            differs("windows")?;
        }
        if r.objects != base.objects {
            differs("objects")?;
        }
    }
    let mut records: Vec<WindowRecord> = shards
        .iter()
        .flat_map(|(_, (_, recs))| recs.iter().cloned())
        .collect();
    records.sort_by_key(|r| r.window.id);
    let ids_ok =
        records.len() == base.windows && records.iter().enumerate().all(|(i, r)| r.window.id == i);
    if !ids_ok {
        bail!(
            "eval merge: the shards hold {} windows, the evaluation has {} (ids 0..{}); a shard \
             is incomplete or overlaps another",
            records.len(),
            base.windows,
            base.windows
        );
    }
    let (per_step, summary) = aggregate(
        &records,
        &base.objects,
        base.protocol.horizon,
        base.protocol.seed,
    )?;
    let merged_from = shards
        .iter()
        .map(|(d, (r, _))| MergedShard {
            dir: d.display().to_string(),
            shard: r.shard.unwrap_or(Shard { index: 0, count: 1 }),
            command: r.command.clone(),
        })
        .collect();
    let report = Report {
        dreamyard_version: env!("CARGO_PKG_VERSION").to_owned(),
        command,
        model: base.model.clone(),
        dataset: base.dataset.clone(),
        protocol: base.protocol.clone(),
        windows: base.windows,
        windows_scored: records.len(),
        shard: None,
        merged_from,
        objects: base.objects.clone(),
        notes: base.notes.clone(),
        per_step,
        summary,
    };
    // Example strips: each shard wrote the examples among its windows.
    let ex_out = out.join(EXAMPLES_DIR);
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d.join(EXAMPLES_DIR)) else {
            continue;
        };
        std::fs::create_dir_all(&ex_out)
            .with_context(|| format!("{}: cannot create", ex_out.display()))?;
        for e in entries.filter_map(Result::ok) {
            let to = ex_out.join(e.file_name());
            std::fs::copy(e.path(), &to).with_context(|| {
                format!("{}: cannot copy to {}", e.path().display(), to.display())
            })?;
        }
    }
    write_report_dir(out, &report, &records)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: usize, seed: f64, tf: bool) -> WindowRecord {
        let m = |h: usize, k: f64| FrameMetrics {
            // Values with long binary expansions, so a lossy round trip would show.
            psnr: seed * 10.0 / 3.0 + h as f64 * 0.1 + k,
            ssim: (seed + h as f64).sin().abs() / 7.0,
            iou: vec![Some(1.0 / (seed + 3.0)), None],
        };
        WindowRecord {
            window: Window {
                id,
                episode: id as u64 / 2,
                start: id % 2 * 5,
            },
            model: (0..3).map(|h| m(h, 0.0)).collect(),
            best_of_k: Some((0..3).map(|h| m(h, 0.7)).collect()),
            baseline: (0..3).map(|h| m(h, 2.2)).collect(),
            teacher_forced: tf.then(|| (0..3).map(|h| m(h, 1.1)).collect()),
            physics: BTreeMap::new(),
        }
    }

    #[test]
    fn windows_csv_round_trips_exactly_and_aggregates_in_window_order() {
        let objects = vec!["block".to_owned(), "agent".to_owned()];
        let recs: Vec<_> = (0..5).map(|i| record(i, i as f64 * 1.37, true)).collect();
        let text = windows_csv(&recs, &objects);
        let back = parse_windows_csv(&text, Path::new("w.csv"), &objects, 3).unwrap();
        assert_eq!(back, recs);

        let (steps, summary) = aggregate(&recs, &objects, 3, 0).unwrap();
        assert_eq!(steps.len(), 3);
        let want: f64 = recs.iter().map(|r| r.model[1].psnr).sum::<f64>() / 5.0;
        assert_eq!(steps[1].psnr, want);
        // IoU: "agent" is never defined, so it is left out rather than reported as 0.
        assert!(steps[0].iou.contains_key("block") && !steps[0].iou.contains_key("agent"));
        assert!(summary.teacher_forced.is_some() && summary.best_of_k.is_some());

        // A truncated file is an error that names the file and window.
        let short: String = text.lines().take(4).collect::<Vec<_>>().join("\n");
        let err = parse_windows_csv(&short, Path::new("w.csv"), &objects, 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("w.csv") && err.contains("window 0"), "{err}");
    }

    #[test]
    fn pooled_psnr_weighs_errors_not_the_cap_of_still_windows() {
        // Window 0: nothing moves, copy-last is exact (capped at 100 dB); window 1: copy-last
        // is off by 20 dB. The model is at 40 dB in both.
        let m = |psnr| FrameMetrics {
            psnr,
            ssim: 1.0,
            iou: vec![],
        };
        let rec = |id, base| WindowRecord {
            window: Window {
                id,
                episode: id as u64,
                start: 0,
            },
            model: vec![m(40.0)],
            best_of_k: None,
            baseline: vec![m(base)],
            teacher_forced: None,
            physics: BTreeMap::new(),
        };
        let recs = [rec(0, crate::metrics::PSNR_CAP_DB), rec(1, 20.0)];
        let (steps, summary) = aggregate(&recs, &[], 1, 0).unwrap();
        // The mean of PSNRs favours copy-last by 20 dB...
        assert_eq!(steps[0].baseline.psnr, 60.0);
        assert_eq!(steps[0].psnr, 40.0);
        // ...the PSNR of the mean error puts it 17 dB below the model: 10 log10(2 / 0.01).
        let pooled_base = steps[0].baseline.psnr_pooled.unwrap();
        assert!((pooled_base - 23.0103).abs() < 1e-3, "{pooled_base}");
        assert!((steps[0].psnr_pooled.unwrap() - 40.0).abs() < 1e-9);
        assert_eq!(summary.baseline.psnr_pooled, Some(pooled_base));
        // Reports written before the field existed still read.
        let old = r#"{"psnr": 30.0, "ssim": 0.9}"#;
        let entry: SeriesEntry = serde_json::from_str(old).unwrap();
        assert_eq!(entry.psnr_pooled, None);
    }
}
