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
