//! Runtime behaviour beyond the DIAMOND fixture: continuous actions, odd frame sizes, attention
//! levels, Heun + churn, determinism, forking, input validation and native save/load.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use dreamyard_model::{
    ActionMap, ActionSpace, Checkpoint, FrameSize, ModelConfig, ModelError, SeededNoise, WorldModel,
};

use crate::{Net, model_config, sampler};

fn config(action: ActionSpace, order: u8, s_churn: f64) -> ModelConfig {
    let net = Net {
        context: 3,
        cond_channels: 48,
        depths: vec![1, 1, 2],
        channels: vec![16, 32, 32],
        attn_depths: vec![false, true, false],
    };
    let frame = FrameSize {
        height: 21,
        width: 30,
    };
    model_config(
        net,
        action,
        sampler(2, order, s_churn),
        Some(frame),
        Some(10.0),
    )
}

fn continuous() -> ActionSpace {
    ActionSpace::Continuous {
        dim: 2,
        low: vec![-1.0, -1.0],
        high: vec![1.0, 1.0],
    }
}

/// A model with random weights, and its tensors by name.
fn random_model(cfg: &ModelConfig) -> (WorldModel, HashMap<String, Tensor>) {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    WorldModel::new(cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev)).unwrap();
    let mut tensors = HashMap::new();
    for (name, var) in vm.data().lock().unwrap().iter() {
        let t = (Tensor::randn(0f32, 1f32, var.shape(), &dev).unwrap() * 0.2).unwrap();
        var.set(&t).unwrap();
        tensors.insert(name.clone(), t);
    }
    let model = Checkpoint {
        config: cfg.clone(),
        tensors: tensors.clone(),
    }
    .build(&dev)
    .unwrap();
    (model, tensors)
}

fn context(b: usize, t: usize, h: usize, w: usize) -> (Tensor, Tensor) {
    let dev = Device::Cpu;
    let frames = Tensor::rand(-1f32, 1f32, (b, t, 3, h, w), &dev).unwrap();
    let actions = Tensor::rand(-1f32, 1f32, (b, t, 2), &dev).unwrap();
    (frames, actions)
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.dims() == b.dims()
        && (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            == 0.0
}

#[test]
fn continuous_rollout_any_size_is_deterministic_and_forks() {
    let (model, _) = random_model(&config(continuous(), 1, 0.0));
    let (frames, actions) = context(2, 3, 21, 30);
    let mut state = model.reset(&frames, &actions).unwrap();
    let a = Tensor::new(&[[0.5f32, -0.25], [1.0, 0.0]], &Device::Cpu).unwrap();
    let f1 = model
        .step(&mut state, &a, &mut SeededNoise::new(1))
        .unwrap();
    assert_eq!(f1.dims(), &[2, 3, 21, 30]);
    // The newest context frame is the generated one.
    assert!(same(
        &state.frames().narrow(1, 2, 1).unwrap().squeeze(1).unwrap(),
        &f1
    ));

    let mut fork = state.clone();
    let x = model
        .step(&mut state, &a, &mut SeededNoise::new(9))
        .unwrap();
    let y = model.step(&mut fork, &a, &mut SeededNoise::new(9)).unwrap();
    assert!(same(&x, &y), "same state + noise must give the same frame");
    let z = model
        .step(&mut fork, &a, &mut SeededNoise::new(10))
        .unwrap();
    assert!(!same(&x, &z));
    let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|p| (-1.0001..=1.0001).contains(p)));
}

#[test]
fn heun_with_churn_runs() {
    let (model, _) = random_model(&config(ActionSpace::Discrete { num_actions: 5 }, 2, 0.5));
    let (frames, _) = context(1, 3, 16, 16);
    let actions = Tensor::new(&[[0u32, 4, 2]], &Device::Cpu).unwrap();
    let mut state = model.reset(&frames, &actions).unwrap();
    let a = Tensor::new(&[3u32], &Device::Cpu).unwrap();
    let f1 = model
        .step(&mut state.clone(), &a, &mut SeededNoise::new(3))
        .unwrap();
    let f2 = model
        .step(&mut state, &a, &mut SeededNoise::new(3))
        .unwrap();
    assert!(same(&f1, &f2));
}

#[test]
fn invalid_inputs_are_errors() {
    let (model, _) = random_model(&config(ActionSpace::Discrete { num_actions: 5 }, 1, 0.0));
    let dev = Device::Cpu;
    let (frames, _) = context(1, 3, 8, 8);
    let bad_ids = Tensor::new(&[[0u32, 5, 2]], &dev).unwrap();
    assert!(matches!(
        model.reset(&frames, &bad_ids),
        Err(ModelError::InvalidInput { .. })
    ));
    let ids = Tensor::new(&[[0u32, 1, 2]], &dev).unwrap();
    let (wrong_t, _) = context(1, 2, 8, 8);
    assert!(model.reset(&wrong_t, &ids).is_err());
    let mut state = model.reset(&frames, &ids).unwrap();
    let float_action = Tensor::new(&[0.5f32], &dev).unwrap();
    assert!(
        model
            .step(&mut state, &float_action, &mut SeededNoise::new(0))
            .is_err()
    );
}

#[test]
fn native_save_load_round_trip() {
    native_round_trip(&config(continuous(), 1, 0.0));
}

#[test]
fn a_model_with_an_action_map_round_trips_and_reads_where_actions_point() {
    let mut cfg = config(continuous(), 1, 0.0);
    cfg.denoiser.inner_model.action_map = Some(ActionMap { sigma: 1.5 });
    native_round_trip(&cfg);
    // The same weights with actions elsewhere on the frame predict another frame, even with
    // the global action embedding's weights zeroed: the map alone carries them.
    let (_, mut tensors) = random_model(&cfg);
    for (name, t) in &mut tensors {
        if name.contains("act_emb") {
            *t = t.zeros_like().unwrap();
        }
    }
    let model = Checkpoint {
        config: cfg,
        tensors,
    }
    .build(&Device::Cpu)
    .unwrap();
    let (frames, actions) = context(1, 3, 21, 30);
    let predict = |a: [f32; 2]| {
        let a = Tensor::new(&[a], &Device::Cpu).unwrap();
        let mut state = model.reset(&frames, &actions).unwrap();
        model
            .step(&mut state, &a, &mut SeededNoise::new(4))
            .unwrap()
    };
    assert!(same(&predict([0.5, 0.5]), &predict([0.5, 0.5])));
    assert!(!same(&predict([0.5, 0.5]), &predict([-0.5, 0.5])));
}

fn native_round_trip(cfg: &ModelConfig) {
    let (model, tensors) = random_model(cfg);
    let dir = tempfile::tempdir().unwrap();
    Checkpoint {
        config: cfg.clone(),
        tensors,
    }
    .save_native(dir.path())
    .unwrap();
    let loaded = WorldModel::load_native(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(loaded.config(), cfg);
    assert_eq!(loaded.spec().fps, Some(10.0));
    let (frames, actions) = context(1, 3, 12, 10);
    let a = Tensor::new(&[[0.1f32, 0.2]], &Device::Cpu).unwrap();
    let x = model
        .step(
            &mut model.reset(&frames, &actions).unwrap(),
            &a,
            &mut SeededNoise::new(4),
        )
        .unwrap();
    let y = loaded
        .step(
            &mut loaded.reset(&frames, &actions).unwrap(),
            &a,
            &mut SeededNoise::new(4),
        )
        .unwrap();
    assert!(same(&x, &y));
}

#[test]
fn config_errors_name_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let native =
        serde_json::to_value(config(ActionSpace::Discrete { num_actions: 5 }, 1, 0.0)).unwrap();
    let json_err = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = native.clone();
        edit(&mut v);
        let p = dir.path().join("config.json");
        std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        dreamyard_model::Checkpoint::config_from_file(&p)
            .unwrap_err()
            .to_string()
    };
    let err = json_err(&|v| v["denoiser"]["sigma_data"] = "ten".into());
    assert!(
        err.contains("field `denoiser.sigma_data`")
            && err.contains("invalid type: string \"ten\", expected f64")
            && err.contains(" at line "),
        "{err}"
    );
    let err = json_err(&|v| v["denoiser"]["inner_model"]["channels"][1] = (-3).into());
    assert!(
        err.contains("field `denoiser.inner_model.channels[1]`"),
        "{err}"
    );

    // DIAMOND's yaml: the path inside the section read.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/diamond/config.yaml");
    let yaml = std::fs::read_to_string(fixture).unwrap();
    assert!(yaml.contains("      channels: [64,64,64,64]"));
    let p = dir.path().join("config.yaml");
    std::fs::write(
        &p,
        yaml.replacen(
            "      channels: [64,64,64,64]",
            "      channels: [64,x,64,64]",
            1,
        ),
    )
    .unwrap();
    let err = dreamyard_model::Checkpoint::config_from_file(&p)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("field `agent.denoiser.inner_model.channels[1]`"),
        "{err}"
    );

    // Train configs (TOML).
    let toml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/models/push-t/train.toml"),
    )
    .unwrap();
    let bad = toml.replacen("learning_rate = 3e-4", "learning_rate = \"fast\"", 1);
    let err = dreamyard_model::train::TrainConfig::from_toml_str(&bad, "train.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("field `training.learning_rate`") && err.contains("expected f64"),
        "{err}"
    );
    let bad = toml.replacen(
        "channels = [16, 32, 64, 64]",
        "channels = [16, 32, \"a\", 64]",
        1,
    );
    let err = dreamyard_model::train::TrainConfig::from_toml_str(&bad, "train.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("field `model.channels[2]`"), "{err}");
}
