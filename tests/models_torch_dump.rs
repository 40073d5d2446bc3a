//! Writes thin models' weights, an input and the outputs (eval and train mode) to a directory so
//! that an independent PyTorch implementation can check them. Ignored by default; run with
//! `HMREG_DUMP_DIR=/some/dir cargo test --test models_torch_dump -- --ignored`.

use std::collections::HashMap;

use candle_core::Tensor;
use hmreg::models::{build, Arch, ModelConfig, ParamStore};
use rand::{Rng, SeedableRng};

#[test]
#[ignore]
fn dump_for_pytorch() {
    let dir = std::path::PathBuf::from(std::env::var("HMREG_DUMP_DIR").expect("HMREG_DUMP_DIR"));
    for (arch, width) in [(Arch::UnetResnet18, 0.125), (Arch::Hrnet18, 0.25)] {
        let mut store = ParamStore::new(&hmreg::device::test_device(), 1);
        let cfg = ModelConfig {
            arch,
            points: 3,
            input_size: 64,
            width,
            heatmap_stride: 0,
            head: hmreg::models::HeadKind::Binary,
            ..Default::default()
        };
        let net = build(&cfg, &mut store).unwrap();
        // Non-trivial running statistics and BN affine values, so eval mode is tested too.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for p in store.params() {
            let n = &p.name;
            let v = if n.ends_with("running_var")
                || n.ends_with("bn1.weight")
                || n.ends_with(".1.weight")
            {
                Some(0.5 + rng.random::<f32>())
            } else if n.ends_with("running_mean") || n.ends_with(".1.bias") {
                Some(rng.random::<f32>() - 0.5)
            } else {
                None
            };
            if let Some(base) = v {
                let c = p.var.elem_count();
                let vals: Vec<f32> = (0..c).map(|i| base + 0.01 * i as f32).collect();
                p.var
                    .set(&Tensor::from_vec(vals, c, &hmreg::device::test_device()).unwrap())
                    .unwrap();
            }
        }
        store
            .save_safetensors(&dir.join(format!("{arch}_params.safetensors")))
            .unwrap();
        let xv: Vec<f32> = (0..2 * 3 * 64 * 96)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let x = Tensor::from_vec(xv, (2, 3, 64, 96), &hmreg::device::test_device()).unwrap();
        let y_eval = net.forward_t(&x, false).unwrap();
        let y_train = net.forward_t(&x, true).unwrap();
        store
            .save_safetensors(&dir.join(format!("{arch}_params_after.safetensors")))
            .unwrap();
        let io: HashMap<String, Tensor> = [
            ("x".to_string(), x),
            ("y_eval".to_string(), y_eval),
            ("y_train".to_string(), y_train),
        ]
        .into_iter()
        .collect();
        candle_core::safetensors::save(&io, dir.join(format!("{arch}_io.safetensors"))).unwrap();
    }
}
