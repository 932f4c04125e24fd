//! Checkpoints: a directory `<name>/` holding `model.safetensors` (weights and AdamW moments)
//! and `state.json` (step, model shape, recipe, seed, tokenizer fingerprint, the safetensors
//! file's sha256, and whatever else the caller records).
//!
//! Writing is crash-safe: both files go into `<name>.tmp/`, are fsynced, and the directory is
//! renamed to `<name>/` (then the parent is fsynced). A crash leaves either the old checkpoint
//! set or the new one complete, never a half-written one under a checkpoint name. Reading
//! verifies the sha256, the tensor names and the shapes, so a corrupt, truncated or foreign
//! checkpoint is refused with one line.

use std::fs;
use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{GptConfig, GptParams, TrainHyper};

/// Version of the checkpoint layout.
pub const CHECKPOINT_VERSION: u32 = 1;
const MODEL_FILE: &str = "model.safetensors";
/// The JSON sidecar's file name in a checkpoint directory (its presence marks one).
pub const STATE_FILE: &str = "state.json";

/// The JSON sidecar of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// Optimiser steps completed.
    pub step: u64,
    /// Model shape.
    pub model: GptConfig,
    /// Training recipe.
    pub hyper: TrainHyper,
    /// The run's seed (initialisation and data sampling; the batch of step `s` depends only on
    /// seed and `s`, so `step` is the whole sampler state).
    pub seed: u64,
    /// sha256 of the tokenizer the model was trained with.
    pub tokenizer_sha256: String,
    /// sha256 of `model.safetensors`.
    pub weights_sha256: String,
    /// Anything else the caller wants back on resume (the CLI stores its resolved config).
    pub extra: serde_json::Value,
    /// The validation loss measured at `step`, where the checkpoint records it (the CLI's
    /// best-so-far checkpoint does); `None` otherwise and in checkpoints written before it
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f32>,
}

/// A loaded checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The sidecar.
    pub state: CheckpointState,
    /// Flat weights, laid out by `GptParams::new(&state.model).layout`.
    pub weights: Vec<f32>,
    /// AdamW first moments, same layout.
    pub m: Vec<f32>,
    /// AdamW second moments, same layout.
    pub v: Vec<f32>,
}

/// A checkpoint that cannot be written or used. `Display` is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The files are damaged or not a checkpoint.
    #[error("{path}: not a usable checkpoint: {reason}")]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io<'p>(
    path: &'p Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> CheckpointError + 'p {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn to_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes a checkpoint directory `dir/name` (replacing one of that name) and returns its path.
/// `weights`, `m`, `v` are flat buffers laid out by `params.layout`; padding is not stored.
#[allow(clippy::too_many_arguments)]
pub fn save(
    dir: &Path,
    name: &str,
    params: &GptParams,
    state: CheckpointState,
    weights: &[f32],
    m: &[f32],
    v: &[f32],
) -> Result<PathBuf, CheckpointError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let _ = fs::remove_dir_all(&tmp);
    let written = write_into(&tmp, params, state, weights, m, v);
    if written.is_err() {
        // A failed write (a full disk, say) leaves nothing behind: the space it took is given
        // back, and the checkpoints already there are untouched.
        let _ = fs::remove_dir_all(&tmp);
    }
    written?;
    // A checkpoint replaced (one that keeps its name, as a best-so-far one) is moved aside
    // first, so that at every moment one complete copy exists under `name` or `name.old`.
    let old = dir.join(format!("{name}.old"));
    if target.exists() {
        let _ = fs::remove_dir_all(&old);
        fs::rename(&target, &old).map_err(io(&target, "moving aside"))?;
    }
    fs::rename(&tmp, &target).map_err(io(&target, "renaming into"))?;
    sync_dir(dir)?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old, "removing"))?;
    }
    Ok(target)
}

/// Writes both files of a checkpoint into `tmp` (created) and fsyncs them and it.
fn write_into(
    tmp: &Path,
    params: &GptParams,
    mut state: CheckpointState,
    weights: &[f32],
    m: &[f32],
    v: &[f32],
) -> Result<(), CheckpointError> {
    fs::create_dir_all(tmp).map_err(io(tmp, "creating"))?;
    let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (prefix, buf) in [("param", weights), ("adam_m", m), ("adam_v", v)] {
        for e in params.layout.entries() {
            blobs.push((
                format!("{prefix}/{}", e.name),
                e.shape.clone(),
                to_bytes(&buf[e.range()]),
            ));
        }
    }
    let views = blobs
        .iter()
        .map(|(n, shape, bytes)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| corrupt(tmp, e.to_string()))?;
    let bytes = safetensors::serialize(views, &None).map_err(|e| corrupt(tmp, e.to_string()))?;
    state.weights_sha256 = hex(&Sha256::digest(&bytes));
    state.version = CHECKPOINT_VERSION;
    write_synced(&tmp.join(MODEL_FILE), &bytes)?;
    let json = serde_json::to_vec_pretty(&state).expect("checkpoint state serialises");
    write_synced(&tmp.join(STATE_FILE), &json)?;
    sync_dir(tmp)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(io(path, "creating"))?;
    f.write_all(bytes).map_err(io(path, "writing"))?;
    f.sync_all().map_err(io(path, "syncing"))
}

/// Fsyncs a directory so a rename inside it is durable (a no-op where directories cannot be
/// opened).
fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    match fs::File::open(dir) {
        Ok(f) => f.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the sidecar (`state.json`) of the checkpoint directory `path` alone: its step,
/// config and recorded validation loss, without reading or verifying the weights.
pub fn read_state(path: &Path) -> Result<CheckpointState, CheckpointError> {
    if !path.is_dir() {
        return Err(corrupt(path, "no such checkpoint directory"));
    }
    let state_path = path.join(STATE_FILE);
    let json = fs::read(&state_path).map_err(io(&state_path, "reading"))?;
    serde_json::from_slice(&json).map_err(|e| corrupt(&state_path, format!("bad state.json: {e}")))
}

/// Reads and verifies the checkpoint directory `path`.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let state_path = path.join(STATE_FILE);
    let model_path = path.join(MODEL_FILE);
    let state = read_state(path)?;
    if state.version != CHECKPOINT_VERSION {
        return Err(corrupt(
            path,
            format!(
                "checkpoint version {}, this build reads {CHECKPOINT_VERSION}",
                state.version
            ),
        ));
    }
    state
        .model
        .validate()
        .map_err(|e| corrupt(&state_path, e))?;
    let bytes = fs::read(&model_path).map_err(io(&model_path, "reading"))?;
    let sha = hex(&Sha256::digest(&bytes));
    if sha != state.weights_sha256 {
        return Err(corrupt(
            &model_path,
            "sha256 does not match state.json (truncated or modified)",
        ));
    }
    let tensors =
        SafeTensors::deserialize(&bytes).map_err(|e| corrupt(&model_path, e.to_string()))?;
    // Before anything of the config's size is allocated: the file must hold as much as the
    // config says (which tensor differs is told below, once the sizes are known to be sane).
    let held = tensors.iter().try_fold(0u128, |sum, (_, t)| {
        let n = t
            .shape()
            .iter()
            .try_fold(1u128, |n, &d| n.checked_mul(d as u128));
        n.and_then(|n| sum.checked_add(n))
    });
    let (count, values) = (
        3 * state.model.num_tensors(),
        3 * state.model.num_params() as u128,
    );
    if tensors.len() != count || held.is_none_or(|held| held < values) {
        return Err(corrupt(
            &model_path,
            format!(
                "holds {} tensors of {} values, but the model in state.json has {count} of \
                 {values} (weights and two AdamW moments)",
                tensors.len(),
                held.map_or("too many".to_string(), |n| n.to_string())
            ),
        ));
    }
    let params = GptParams::new(&state.model);
    let read = |prefix: &str| -> Result<Vec<f32>, CheckpointError> {
        let mut buf = params.layout.zeros();
        for e in params.layout.entries() {
            let name = format!("{prefix}/{}", e.name);
            let t = tensors
                .tensor(&name)
                .map_err(|_| corrupt(&model_path, format!("missing tensor {name}")))?;
            if t.dtype() != Dtype::F32 || t.shape() != e.shape.as_slice() {
                return Err(corrupt(
                    &model_path,
                    format!(
                        "tensor {name} is {:?} {:?}, expected F32 {:?}",
                        t.dtype(),
                        t.shape(),
                        e.shape
                    ),
                ));
            }
            for (dst, src) in buf[e.range()].iter_mut().zip(t.data().chunks_exact(4)) {
                *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
            }
        }
        Ok(buf)
    };
    let weights = read("param")?;
    let m = read("adam_m")?;
    let v = read("adam_v")?;
    Ok(Checkpoint {
        state,
        weights,
        m,
        v,
    })
}

/// The newest complete checkpoint under `dir` (directories `step-NNNNNNNN` holding a
/// `state.json`), if any.
pub fn latest(dir: &Path) -> Option<PathBuf> {
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.path().join(STATE_FILE).is_file() && best.as_ref().is_none_or(|(b, _)| step > *b) {
            best = Some((step, entry.path()));
        }
    }
    best.map(|(_, p)| p)
}

/// The directory name of the checkpoint at `step`.
pub fn step_name(step: u64) -> String {
    format!("step-{step:08}")
}
