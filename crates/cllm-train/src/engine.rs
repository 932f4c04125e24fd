//! [`Engine`]: what computes one optimiser step. The training loop drives an engine and
//! never touches gradients itself, so the single-threaded [`SerialEngine`] and the
//! lattice-parallel engine are interchangeable.

use std::time::Instant;

use cllm_autograd::Tape;
use cllm_data::Batch;
use cllm_model::adamw::{clip_scale, sum_of_squares};
use cllm_model::{AdamW, Gpt, StepScalars, TrainHyper};
use serde::Serialize;

/// Seconds spent in each phase of one step (zero where an engine has no such phase).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PhaseTimes {
    /// Forward and backward.
    pub compute: f64,
    /// Waiting at barriers.
    pub wait: f64,
    /// Summing gradients across workers.
    pub reduce: f64,
    /// Gradient norm, clipping and AdamW.
    pub optimizer: f64,
}

/// The result of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutput {
    /// Mean training loss of the batch (before the update).
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Where the time went.
    pub phases: PhaseTimes,
}

/// Computes optimiser steps and evaluations over a model's flat buffers.
pub trait Engine {
    /// One step on `batch`: gradients of the mean loss, clipping, AdamW update number `t`
    /// (1-based) at learning rate `lr`.
    fn step(&mut self, batch: &Batch, t: u64, lr: f32) -> Result<StepOutput, String>;
    /// Mean loss on `batch`, forward only.
    fn eval_loss(&mut self, batch: &Batch) -> Result<f32, String>;
    /// The weights.
    fn weights(&self) -> &[f32];
    /// The AdamW moments (m, v).
    fn moments(&self) -> (&[f32], &[f32]);
}

/// One thread does everything.
pub struct SerialEngine {
    gpt: Gpt,
    adamw: AdamW,
    grad_clip: f32,
    tape: Tape,
    weights: Vec<f32>,
    grads: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl SerialEngine {
    /// An engine over `weights` and moments `m`, `v` (all laid out by `gpt.params.layout`).
    pub fn new(gpt: Gpt, hyper: &TrainHyper, weights: Vec<f32>, m: Vec<f32>, v: Vec<f32>) -> Self {
        let adamw = AdamW::new(&gpt.params, hyper);
        let grads = gpt.params.layout.zeros();
        SerialEngine {
            gpt,
            adamw,
            grad_clip: hyper.grad_clip,
            tape: Tape::new(),
            weights,
            grads,
            m,
            v,
        }
    }
}

impl Engine for SerialEngine {
    fn step(&mut self, batch: &Batch, t: u64, lr: f32) -> Result<StepOutput, String> {
        let started = Instant::now();
        self.grads.fill(0.0);
        let loss = self.gpt.loss_and_grad(
            &mut self.tape,
            &self.weights,
            &batch.inputs,
            &batch.targets,
            batch.seq_len,
            1.0,
            &mut self.grads,
        );
        let compute = started.elapsed().as_secs_f64();
        let norm = sum_of_squares(&self.grads).sqrt();
        let scalars = StepScalars {
            t,
            lr,
            grad_scale: clip_scale(norm, self.grad_clip),
        };
        let n = self.weights.len();
        self.adamw.update(
            0..n,
            scalars,
            &mut self.weights,
            &self.grads,
            &mut self.m,
            &mut self.v,
        );
        let optimizer = started.elapsed().as_secs_f64() - compute;
        Ok(StepOutput {
            loss,
            grad_norm: norm as f32,
            phases: PhaseTimes {
                compute,
                optimizer,
                ..Default::default()
            },
        })
    }

    fn eval_loss(&mut self, batch: &Batch) -> Result<f32, String> {
        Ok(self.gpt.eval_loss(
            &mut self.tape,
            &self.weights,
            &batch.inputs,
            &batch.targets,
            batch.seq_len,
        ))
    }

    fn weights(&self) -> &[f32] {
        &self.weights
    }

    fn moments(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }
}
