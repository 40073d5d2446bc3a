//! fine_tune: during the frozen epoch the encoder's weights and biases do not move (its BatchNorm
//! parameters, the decoder and the head do); after unfreezing everything trains.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use hmreg::learn::schedule::ScheduleKind;
use hmreg::models::{build, ParamGroup, ParamKind, ParamStore};
use hmreg::run::TrainConfig;
use hmreg::train::progress::OutputMode;
use hmreg::train::{train, RunOptions};

/// fine_tune(1, 1e-2): one frozen epoch, then one unfrozen epoch.
fn tiny(root: &Path) -> TrainConfig {
    let mut c = common::tiny_config(root, 4, 9);
    c.epochs = 1;
    c.schedule.kind = ScheduleKind::FineTune;
    c.schedule.freeze_epochs = 1;
    c
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &hmreg::device::test_device()).unwrap()
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    a == b
}

#[test]
fn frozen_encoder_weights_stay_put_until_unfrozen() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny(&tmp.path().join("data"));
    let run = tmp.path().join("run");
    let summary = train(
        cfg,
        &RunOptions {
            run_dir: run.clone(),
            output: OutputMode::Quiet,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(summary.total_epochs, 2);

    // The initial weights: the same seeded store the run built.
    let resolved = TrainConfig::load(&run.join("config.toml")).unwrap();
    let mut init = ParamStore::new(&hmreg::device::test_device(), resolved.seed);
    build(&resolved.model, &mut init).unwrap();
    let after1 = load(&run.join("checkpoints/epoch-0001/model.safetensors"));
    let after2 = load(&run.join("checkpoints/epoch-0002/model.safetensors"));

    let (mut frozen, mut norms_moved, mut others_moved) = (0, 0, 0);
    let mut encoder_moved_later = 0;
    for p in init.params() {
        let t0 = p.var.as_tensor();
        let t1 = &after1[&p.name];
        match (p.group, p.kind) {
            (ParamGroup::Encoder, ParamKind::Weight | ParamKind::Bias) => {
                assert!(
                    same(t0, t1),
                    "frozen `{}` changed in the frozen epoch",
                    p.name
                );
                frozen += 1;
                if !same(t1, &after2[&p.name]) {
                    encoder_moved_later += 1;
                }
            }
            (ParamGroup::Encoder, ParamKind::Norm) => norms_moved += !same(t0, t1) as usize,
            (_, ParamKind::Buffer) => {}
            _ => others_moved += !same(t0, t1) as usize,
        }
    }
    assert!(frozen > 10, "only {frozen} frozen tensors checked");
    assert!(
        norms_moved > 0,
        "encoder BatchNorm parameters must train while frozen"
    );
    assert!(others_moved > 0, "decoder and head must train while frozen");
    assert!(
        encoder_moved_later * 2 > frozen,
        "after unfreezing the encoder must train ({encoder_moved_later} of {frozen} moved)"
    );
}
