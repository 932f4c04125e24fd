//! The process-wide matmul precision: `matmul` follows `set_precision`, which refuses what the
//! CPU cannot do. (Its own test binary: the setting is process-wide, and the unit tests run in
//! parallel threads of another process.)

use cllm_tensor::kernels::matmul::{
    Backend, GemmSpec, Precision, UnsupportedPrecision, matmul, matmul_with, precision,
    set_precision,
};

#[test]
fn matmul_follows_the_precision_that_was_set() {
    let spec = GemmSpec::nt(9, 40, 7);
    let a: Vec<f32> = (0..9 * 40).map(|i| (i as f32 * 0.37).sin()).collect();
    let b: Vec<f32> = (0..7 * 40).map(|i| (i as f32 * 0.11).cos()).collect();
    let with = |backend| {
        let mut c = vec![0.0; 63];
        matmul_with(backend, &spec, &a, &b, &mut c);
        c
    };
    let now = || {
        let mut c = vec![0.0; 63];
        matmul(&spec, &a, &b, &mut c);
        c
    };
    assert_eq!(precision(), Precision::F32, "the default");
    assert_eq!(now(), with(Backend::DEFAULT));

    if Precision::Bf16.supported() {
        set_precision(Precision::Bf16).unwrap();
        assert_eq!(precision(), Precision::Bf16);
        assert_eq!(now(), with(Precision::Bf16.backend()));
        assert_ne!(
            now(),
            with(Backend::DEFAULT),
            "bf16 rounding changed nothing"
        );
    } else {
        assert_eq!(
            set_precision(Precision::Bf16),
            Err(UnsupportedPrecision(Precision::Bf16))
        );
        assert_eq!(
            precision(),
            Precision::F32,
            "a refused setting changes nothing"
        );
    }
    set_precision(Precision::F32).unwrap();
    assert_eq!(now(), with(Backend::DEFAULT));

    assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
    assert_eq!("f32".parse::<Precision>(), Ok(Precision::F32));
    assert!(
        "fp8"
            .parse::<Precision>()
            .unwrap_err()
            .contains("expected f32 or bf16")
    );
}
