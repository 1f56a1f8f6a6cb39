//! AdamW with decoupled weight decay (PyTorch's update rule), global gradient-norm clipping and
//! the warmup / cosine learning-rate schedule.
//!
//! Written here rather than using `candle_nn::AdamW` because a resumable run must save and
//! restore the moment estimates, which candle's optimiser does not expose.

use std::collections::HashMap;

use candle_core::{Tensor, Var, backprop::GradStore};

use crate::error::{ModelError, Result};
use crate::train::config::{LrSchedule, TrainingSection};

/// One trainable parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// State-dict key.
    pub name: String,
    /// The variable.
    pub var: Var,
    /// Whether weight decay applies (conv and linear weights).
    pub decay: bool,
}

/// AdamW state: first and second moment per parameter, and the number of updates made.
#[derive(Debug)]
pub struct AdamW {
    params: Vec<Param>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates applied so far (bias correction uses it).
    pub updates: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
}

impl AdamW {
    /// Zero moments for `params`.
    pub fn new(params: Vec<Param>, cfg: &TrainingSection) -> Result<Self> {
        let zeros = |p: &Param| p.var.as_tensor().zeros_like();
        let m = params
            .iter()
            .map(zeros)
            .collect::<candle_core::Result<_>>()?;
        let v = params
            .iter()
            .map(zeros)
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            params,
            m,
            v,
            updates: 0,
            beta1: cfg.adam_beta1,
            beta2: cfg.adam_beta2,
            eps: cfg.adam_eps,
            weight_decay: cfg.weight_decay,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Global L2 norm of the gradients of the parameters (missing gradients count as zero).
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sum = 0f64;
        for p in &self.params {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        Ok(sum.sqrt())
    }

    /// One AdamW update with learning rate `lr`, gradients multiplied by `grad_scale` first (the
    /// clipping factor).
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.updates += 1;
        let t = self.updates as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        for (i, p) in self.params.iter().enumerate() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            // Detached: a gradient computed from variables carries the step's whole graph, and
            // moments built from it would keep every past step's graph alive.
            let g = (g.detach() * grad_scale)?;
            let m = ((&self.m[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let theta = p.var.as_tensor();
            let theta = if p.decay {
                (theta * (1.0 - lr * self.weight_decay))?
            } else {
                theta.clone()
            };
            // PyTorch: denom = sqrt(v) / sqrt(bc2) + eps; theta -= lr / bc1 * m / denom.
            let denom = ((v.sqrt()? / bc2_sqrt)? + self.eps)?;
            let update = (m.div(&denom)? * (lr / bc1))?;
            p.var.set(&(theta - update)?.detach())?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments as named tensors (`m.<name>`, `v.<name>`) for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::with_capacity(2 * self.params.len());
        for (i, p) in self.params.iter().enumerate() {
            out.insert(format!("m.{}", p.name), self.m[i].clone());
            out.insert(format!("v.{}", p.name), self.v[i].clone());
        }
        out
    }

    /// Restores the moments saved by [`Self::state_tensors`]; `origin` names the file in errors.
    pub fn load_state_tensors(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        updates: u64,
        origin: &str,
    ) -> Result<()> {
        let device = self
            .params
            .first()
            .map(|p| p.var.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        for (i, p) in self.params.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{}", p.name);
                let t = tensors.get(&key).ok_or_else(|| ModelError::MissingTensor {
                    name: format!("{origin}: {key}"),
                    expected: p.var.dims().to_vec(),
                })?;
                if t.dims() != p.var.dims() {
                    return Err(ModelError::ShapeMismatch {
                        name: format!("{origin}: {key}"),
                        expected: p.var.dims().to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                *slot = t.to_device(&device)?;
            }
        }
        self.updates = updates;
        Ok(())
    }
}

/// Learning rate at optimiser step `step` (0-based): linear warmup over `warmup_steps`, then
/// constant or cosine decay to `min_lr_ratio` at the last step.
pub fn learning_rate(cfg: &TrainingSection, step: u64) -> f64 {
    let peak = cfg.learning_rate;
    if step < cfg.warmup_steps {
        return peak * (step + 1) as f64 / cfg.warmup_steps as f64;
    }
    match cfg.lr_schedule {
        LrSchedule::Constant => peak,
        LrSchedule::Cosine => {
            let span = cfg.steps.saturating_sub(cfg.warmup_steps).max(1) as f64;
            let progress = ((step - cfg.warmup_steps) as f64 / span).min(1.0);
            let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
            peak * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cos)
        }
    }
}

/// Factor that brings a gradient of norm `norm` down to `max_norm` (PyTorch's
/// `clip_grad_norm_`: `max_norm / (norm + 1e-6)`, at most 1).
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn section() -> TrainingSection {
        let cfg = crate::train::TrainConfig::from_toml_str(
            "[model]\ncond_channels = 8\ndepths = [1]\nchannels = [8]\nattn_depths = [false]\n\
             [sampler]\nnum_steps_denoising = 1\n\
             [training]\nsteps = 100\nbatch_size = 1\nlearning_rate = 0.1\nwarmup_steps = 10\n\
             weight_decay = 0.0\n",
            "test",
        )
        .unwrap();
        cfg.training
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let mut s = section();
        assert!((learning_rate(&s, 0) - 0.01).abs() < 1e-12);
        assert!((learning_rate(&s, 9) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&s, 50) - 0.1).abs() < 1e-12);
        s.lr_schedule = LrSchedule::Cosine;
        assert!((learning_rate(&s, 10) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&s, 100) - 0.01).abs() < 1e-9);
        assert!(learning_rate(&s, 55) < 0.1 && learning_rate(&s, 55) > 0.01);
    }

    #[test]
    fn adamw_first_step_moves_by_lr_against_the_gradient() {
        // With bias correction the first Adam step is lr * sign(g) (up to eps).
        let x = Var::new(&[1f32, -2.0, 3.0], &Device::Cpu).unwrap();
        let loss = (x.as_tensor() * 2.0).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = AdamW::new(
            vec![Param {
                name: "x".into(),
                var: x.clone(),
                decay: false,
            }],
            &section(),
        )
        .unwrap();
        assert!((opt.grad_norm(&grads).unwrap() - 12f64.sqrt()).abs() < 1e-5);
        opt.step(&grads, 0.1, 1.0).unwrap();
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        for (got, want) in v.iter().zip([0.9f32, -2.1, 2.9]) {
            assert!((got - want).abs() < 1e-5, "{v:?}");
        }
        assert!((clip_factor(10.0, 1.0) - 0.1).abs() < 1e-6);
        assert_eq!(clip_factor(0.5, 1.0), 1.0);
    }
}
