//! Malformed scene files give errors that name the file and the field.

use std::io::Write as _;

use dreamyard_scenes::{SceneError, SceneSource, builtin_toml, load_scene, load_scene_file};

fn load_modified(name: &str, from: &str, to: &str) -> (String, SceneError) {
    let text = builtin_toml(name).unwrap();
    assert!(text.contains(from), "fixture text `{from}` not in {name}");
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.replacen(from, to, 1).as_bytes())
        .unwrap();
    let path = file.path().display().to_string();
    let err = match load_scene_file(file.path(), None) {
        Ok(_) => panic!("{from} -> {to} loaded"),
        Err(e) => e,
    };
    (path, err)
}

fn assert_names(name: &str, from: &str, to: &str, needles: &[&str]) {
    let (path, err) = load_modified(name, from, to);
    let msg = err.to_string();
    assert!(msg.contains(&path), "error does not name the file: {msg}");
    for needle in needles {
        assert!(
            msg.contains(needle),
            "error does not mention `{needle}`: {msg}"
        );
    }
}

#[test]
fn invalid_values_name_the_field_and_the_expectation() {
    assert_names(
        "push-t",
        "radius = 15.0",
        "radius = -15.0",
        &["agent.radius", "> 0", "-15"],
    );
    assert_names(
        "push-t",
        "sim_hz = 100.0",
        "sim_hz = 95.0",
        &["world.sim_hz", "multiple of fps"],
    );
    assert_names("push-t", "width = 96", "width = 0", &["frame.width"]);
    assert_names(
        "push-t",
        "success_threshold = 0.95",
        "success_threshold = 1.5",
        &["goal.success_threshold", "[0.000001, 1]"],
    );
    assert_names(
        "push-t",
        "agent_x = [50.0, 450.0]",
        "agent_x = [450.0, 50.0]",
        &["reset.agent_x", "low < high"],
    );
    assert_names(
        "arm-push",
        "limits = [-2.6, 2.6]",
        "limits = [2.6, -2.6]",
        &["links[1].limits"],
    );
    assert_names(
        "arm-push",
        "joints = [[-1.0, 1.0], [-1.6, 1.6], [-1.2, 1.2]]",
        "joints = [[-1.0, 1.0]]",
        &["reset.joints", "one range per link"],
    );
    assert_names(
        "arm-push",
        "radius = 40.0",
        "radius = 10.0",
        &["goal.radius", "puck.radius"],
    );
}

#[test]
fn syntax_type_missing_and_unknown_fields_are_reported() {
    // Wrong type: the field's whole path and what serde expected.
    assert_names(
        "push-t",
        "kp = 100.0",
        "kp = \"fast\"",
        &["field `agent.kp`", "expected f64"],
    );
    // Inside an array of tables: the index is in the path.
    assert_names(
        "arm-push",
        "length = 130.0",
        "length = \"long\"",
        &["field `links[1].length`", "expected f64"],
    );
    // Lengths beyond what the renderer and the physics handle (found by fuzzing).
    assert_names(
        "arm-push",
        "length = 130.0",
        "length = 1.0e19",
        &["links[1].length", "at most 100000"],
    );
    // Missing field.
    assert_names("push-t", "kd = 20.0\n", "", &["missing field `kd`"]);
    // Unknown field (a typo).
    assert_names(
        "push-t",
        "kd = 20.0",
        "kd = 20.0\nkdd = 3.0",
        &["unknown field `kdd`"],
    );
    // Broken syntax.
    assert_names("push-t", "[goal]", "[goal", &["line"]);
    // Unknown kind.
    assert_names(
        "push-t",
        "kind = \"push-t\"",
        "kind = \"push-q\"",
        &["kind", "push-q", "arm-push"],
    );
    // Colour component out of u8 range.
    assert_names(
        "arm-push",
        "color = [214, 39, 40]",
        "color = [314, 39, 40]",
        &["314"],
    );
}

#[test]
fn missing_files_and_unknown_names_are_errors() {
    let err = load_scene(&SceneSource::parse("no/such/scene.toml"), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no/such/scene.toml") && err.contains("cannot read"),
        "{err}"
    );
    let err = load_scene(&SceneSource::Builtin("push-q".into()), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("push-q") && err.contains("push-t, arm-push"),
        "{err}"
    );
    let err = load_scene(&SceneSource::parse("push-t"), Some((4, 4)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("frame.width"), "{err}");
}

#[test]
fn frame_size_is_configurable() {
    for name in ["push-t", "arm-push"] {
        let mut scene = load_scene(&SceneSource::parse(name), Some((200, 120))).unwrap();
        let obs = scene.reset(0);
        assert_eq!((obs.frame.width, obs.frame.height), (200, 120));
        assert_eq!(obs.frame.data.len(), 200 * 120 * 3);
        assert_eq!(
            (scene.spec().frame_width, scene.spec().frame_height),
            (200, 120)
        );
    }
}
