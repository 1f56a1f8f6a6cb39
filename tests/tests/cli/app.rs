//! The app's core against the rest of the binary, without a window: the metrics the app shows
//! for a step are `eval`'s for the same frames.

/// The app's metrics for a step equal `eval`'s for the same frames: the app fits a truth
/// frame to the model's size and scores it with `session::frame_metrics`; `eval` resizes
/// the dataset's frames and scores them with `FrameMetrics::of`.
#[test]
fn the_app_scores_a_step_as_eval_does() {
    use dreamyard_scenes::{Action, Frame, SceneSource, load_scene};

    use dreamyard::eval::{FrameMetrics, PSNR_CAP_DB};
    use dreamyard::metrics::{DEFAULT_TOLERANCE, Palette};
    // push-t at a dataset's 96x96, a model at 64x64.
    let mut scene = load_scene(&SceneSource::parse("push-t"), Some((96, 96))).unwrap();
    let palette = Palette::from_spec(scene.spec(), DEFAULT_TOLERANCE);
    let first = scene.reset(3).frame;
    let mut later = first.clone();
    for _ in 0..8 {
        later = scene
            .step(&Action::Continuous(vec![400.0, 100.0]))
            .unwrap()
            .frame;
    }
    let model = dreamyard::bridge::fit(later, 64, 64); // stands for the model's frame
    let truth_app = dreamyard::bridge::fit(first.clone(), 64, 64);
    let truth_eval = dreamyard::bridge::resize_area(&first.data, 96, 96, 64, 64);
    assert_eq!(truth_app.data, truth_eval);
    for (truth, pred) in [(&truth_app, &model), (&truth_app, &truth_app)] {
        let app = dreamyard::session::frame_metrics(truth, pred, Some(&palette));
        let ev = FrameMetrics::of(&pred.data, &truth.data, 64, 64, Some(&palette));
        assert_eq!(app.psnr_db, ev.psnr);
        assert_eq!(app.ssim, ev.ssim);
        let app_iou: Vec<Option<f64>> = app.iou.iter().map(|(_, v)| *v).collect();
        assert_eq!(app_iou, ev.iou);
    }
    // Identical frames: both capped, not infinite.
    let same = dreamyard::session::frame_metrics(&truth_app, &truth_app, None);
    assert_eq!(same.psnr_db, PSNR_CAP_DB);
    let blank = Frame {
        width: 64,
        height: 64,
        data: vec![0; 64 * 64 * 3],
    };
    let app = dreamyard::session::frame_metrics(&truth_app, &blank, Some(&palette));
    assert!(app.psnr_db < 20.0, "{}", app.psnr_db);
}

/// The module order ARCHITECTURE.md writes down holds in the source: no app module but the CLI
/// dispatcher imports a subcommand module, `eval/` and `session/` do not import each other, and
/// the dataset reader does not import the writer.
#[test]
fn the_module_order_holds() {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    /// Lines of `file` that name `what` in a path (`crate::what` or `super::what`).
    fn uses(file: &Path, what: &str) -> Vec<String> {
        std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .filter(|l| {
                l.contains(&format!("crate::{what}")) || l.contains(&format!("super::{what}"))
            })
            .map(str::to_owned)
            .collect()
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let app = root.join("app/src");
    let mut files = Vec::new();
    rust_files(&app, &mut files);
    let commands = [
        "scene_cmd",
        "dataset_cmd",
        "model_cmd",
        "predict_cmd",
        "train_cmd",
        "eval_cmd",
    ];
    for f in &files {
        let rel = f.strip_prefix(&app).unwrap().to_string_lossy().into_owned();
        if rel != "cli.rs" && rel != "lib.rs" {
            for c in commands {
                assert!(uses(f, c).is_empty(), "{rel} imports {c}: {:?}", uses(f, c));
            }
        }
        if rel.starts_with("eval/") {
            assert!(uses(f, "session").is_empty(), "{rel} imports session");
        }
        if rel.starts_with("session/") {
            assert!(uses(f, "eval").is_empty(), "{rel} imports eval");
        }
    }
    let mut reader = Vec::new();
    rust_files(&root.join("scenes/src/dataset/reader"), &mut reader);
    assert!(!reader.is_empty());
    for f in &reader {
        assert!(
            uses(f, "writer").is_empty(),
            "{} imports the writer",
            f.display()
        );
        assert!(
            uses(f, "super::writer").is_empty(),
            "{} imports the writer",
            f.display()
        );
    }
}
