//! Save then load gives back identical buffers and identical logits; damaged, truncated and
//! foreign checkpoints are refused with one line.

use std::fs;

use cllm_autograd::Tape;
use cllm_model::checkpoint::{self, CheckpointState};
use cllm_model::{Gpt, GptConfig, preset};

fn setup() -> (Gpt, Vec<f32>, Vec<f32>, Vec<f32>, CheckpointState) {
    let cfg = GptConfig {
        vocab_size: 17,
        seq_len: 8,
        embed_dim: 16,
        num_layers: 2,
        num_heads: 4,
        bias: true,
    };
    let gpt = Gpt::new(cfg).unwrap();
    let w = gpt.params.init(&cfg, 5);
    let m: Vec<f32> = w.iter().map(|x| x * 0.5).collect();
    let v: Vec<f32> = w.iter().map(|x| x * x).collect();
    let state = CheckpointState {
        version: 0,
        step: 123,
        model: cfg,
        hyper: preset("tiny").unwrap().train,
        seed: 7,
        tokenizer_sha256: "abc".into(),
        weights_sha256: String::new(),
        extra: serde_json::json!({"note": "test"}),
        val_loss: None,
    };
    (gpt, w, m, v, state)
}

fn logits(gpt: &Gpt, w: &[f32]) -> Vec<f32> {
    let mut tape = Tape::new();
    let mut g = tape.graph(w, &gpt.params.layout);
    let out = gpt.forward(&mut g, &[1, 5, 9, 16, 0, 3, 3, 2], 8);
    g.value(out).to_vec()
}

#[test]
fn save_then_load_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (gpt, w, m, v, state) = setup();
    let path = checkpoint::save(
        dir.path(),
        &checkpoint::step_name(123),
        &gpt.params,
        state.clone(),
        &w,
        &m,
        &v,
    )
    .unwrap();
    assert!(!dir.path().join("step-00000123.tmp").exists());
    let ck = checkpoint::load(&path).unwrap();
    assert_eq!(ck.weights, w);
    assert_eq!(ck.m, m);
    assert_eq!(ck.v, v);
    assert_eq!(ck.state.step, 123);
    assert_eq!(ck.state.extra, state.extra);
    let loaded = Gpt::new(ck.state.model).unwrap();
    assert_eq!(logits(&loaded, &ck.weights), logits(&gpt, &w));
    assert_eq!(checkpoint::latest(dir.path()), Some(path));
}

/// A checkpoint saved again under its name (a best-so-far one) replaces the old one whole,
/// keeps its recorded validation loss, leaves nothing aside, and is not a step for `latest`.
#[test]
fn a_named_checkpoint_is_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (gpt, w, m, v, state) = setup();
    for (step, loss) in [(10, 2.5f32), (20, 2.25)] {
        let state = CheckpointState {
            step,
            val_loss: Some(loss),
            ..state.clone()
        };
        let w: Vec<f32> = w.iter().map(|x| x * step as f32).collect();
        checkpoint::save(dir.path(), "best", &gpt.params, state, &w, &m, &v).unwrap();
    }
    let ck = checkpoint::load(&dir.path().join("best")).unwrap();
    assert_eq!((ck.state.step, ck.state.val_loss), (20, Some(2.25)));
    assert_eq!(ck.weights, w.iter().map(|x| x * 20.0).collect::<Vec<_>>());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["best"]);
    assert_eq!(checkpoint::latest(dir.path()), None);
}

#[test]
fn latest_picks_the_highest_complete_step() {
    let dir = tempfile::tempdir().unwrap();
    let (gpt, w, m, v, state) = setup();
    for step in [5, 40, 12] {
        checkpoint::save(
            dir.path(),
            &checkpoint::step_name(step),
            &gpt.params,
            state.clone(),
            &w,
            &m,
            &v,
        )
        .unwrap();
    }
    // An interrupted write leaves only a .tmp directory, which is never picked.
    fs::create_dir_all(dir.path().join("step-00000099.tmp")).unwrap();
    assert_eq!(
        checkpoint::latest(dir.path()).unwrap(),
        dir.path().join("step-00000040")
    );
}

#[test]
fn damaged_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (gpt, w, m, v, state) = setup();
    let path = checkpoint::save(dir.path(), "ck", &gpt.params, state, &w, &m, &v).unwrap();
    let model = path.join("model.safetensors");
    let bytes = fs::read(&model).unwrap();

    fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let err = checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("sha256"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);

    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    fs::write(&model, &flipped).unwrap();
    assert!(
        checkpoint::load(&path)
            .unwrap_err()
            .to_string()
            .contains("sha256")
    );

    fs::write(&model, &bytes).unwrap();
    fs::write(path.join("state.json"), "{not json").unwrap();
    assert!(
        checkpoint::load(&path)
            .unwrap_err()
            .to_string()
            .contains("state.json")
    );

    assert!(
        checkpoint::load(&dir.path().join("nowhere"))
            .unwrap_err()
            .to_string()
            .contains("no such checkpoint")
    );
}

/// A sidecar whose model does not match the weights file is refused from the file's header,
/// before a buffer of the sidecar's size is allocated (these would need terabytes).
#[test]
fn a_sidecar_larger_than_its_weights_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let (gpt, w, m, v, state) = setup();
    for (field, value) in [
        ("num_layers", 1u64 << 40),
        ("embed_dim", 1 << 24),
        ("vocab_size", 1 << 40),
        ("seq_len", 1 << 40),
        ("num_layers", 3),
        ("seq_len", 4),
    ] {
        let path =
            checkpoint::save(dir.path(), "ck", &gpt.params, state.clone(), &w, &m, &v).unwrap();
        let state_path = path.join("state.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&fs::read(&state_path).unwrap()).unwrap();
        json["model"][field] = value.into();
        fs::write(&state_path, json.to_string()).unwrap();
        let err = checkpoint::load(&path).unwrap_err().to_string();
        // A smaller model is allocated and its first differing tensor named.
        let said = if field == "seq_len" && value < 8 {
            "tensor param/wpe.weight is F32 [8, 16], expected F32 [4, 16]"
        } else {
            "the model in state.json has"
        };
        assert!(
            err.contains("model.safetensors") && err.contains(said),
            "{field}: {err}"
        );
        assert_eq!(err.lines().count(), 1);
        fs::remove_dir_all(&path).unwrap();
    }
}
