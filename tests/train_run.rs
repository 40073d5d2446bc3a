//! End-to-end training runs on a handful of tiny synthetic images: the run directory's files,
//! a falling loss, loading the model back, and the NaN stop.

mod common;

use std::path::Path;

use candle_core::Tensor;
use hmreg::learn::schedule::ScheduleKind;
use hmreg::metrics::Figure;
use hmreg::run::checkpoint;
use hmreg::run::history::{read_jsonl, METRICS_CSV, METRICS_JSONL};
use hmreg::run::{load_model, ModelSource, TrainConfig};
use hmreg::train::train;

fn tiny(root: &Path) -> TrainConfig {
    common::tiny_config(root, 3, 5)
}

#[test]
fn run_directory_has_every_file_and_they_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let summary = train(tiny(&tmp.path().join("data")), &common::quiet(&run)).unwrap();
    assert!(summary.finished);
    assert_eq!(summary.epochs_done, 2);

    // The resolved config parses back and has the data's point count and the resolved sizes.
    let cfg = TrainConfig::load(&run.join("config.toml")).unwrap();
    assert_eq!(cfg.model.points, 5);
    assert_eq!(cfg.model.input_size, 64);
    assert_eq!(cfg.target.stride, 1);
    let text = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for key in [
        "[optim]",
        "beta2 = 0.99",
        "[schedule]",
        "div_final",
        "[checkpoint]",
        "[lr_find]",
    ] {
        assert!(text.contains(key), "config.toml lacks `{key}`");
    }

    // Metrics: one record per epoch in both files, with every figure.
    let recs = read_jsonl(&run.join(METRICS_JSONL)).unwrap();
    assert_eq!(recs.len(), 2);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.epoch, i + 1);
        assert!(r.train_loss.is_finite() && r.valid_loss.is_finite());
        for f in Figure::ALL {
            assert!(r.metrics.contains(f), "missing {f}");
        }
        assert!(r.lr > 0.0 && r.seconds > 0.0);
    }
    let csv = std::fs::read_to_string(run.join(METRICS_CSV)).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    let header: Vec<&str> = lines[0].split(',').collect();
    for col in ["epoch", "train_loss", "valid_loss", "nmae", "lr", "seconds"] {
        assert!(header.contains(&col), "csv lacks {col}");
    }
    for l in &lines[1..] {
        assert_eq!(l.split(',').count(), header.len());
    }

    // The curves are a real PNG.
    let img = image::open(run.join("curves.png")).unwrap();
    assert!(img.width() > 100 && img.height() > 100);

    // Summary with the mean-shape baseline.
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert!(s["baseline"]["nmae"].as_f64().unwrap() > 0.0);
    assert_eq!(s["epochs_done"], 2);

    // Every checkpoint verifies; best.json names one of them.
    let root = run.join("checkpoints");
    let all = checkpoint::list(&root).unwrap();
    assert_eq!(all.len(), 2);
    for (dir, _) in &all {
        checkpoint::read_state(dir).unwrap();
    }
    let best = checkpoint::read_best(&root).unwrap().unwrap();
    assert!(root.join(&best.tag).join("manifest.json").exists());

    // The model loads back for inference and predicts maps of the right shape.
    let loaded = load_model(
        &ModelSource::Run(run.clone()),
        &hmreg::device::test_device(),
    )
    .unwrap();
    let (cfg, model) = (&loaded.cfg, &loaded.model);
    let x = Tensor::zeros(
        (1, 3, 64, 64),
        candle_core::DType::F32,
        &hmreg::device::test_device(),
    )
    .unwrap();
    let y = model.forward_t(&x, false).unwrap();
    assert_eq!(y.dims(), &[1, cfg.model.points, 64, 64]);
}

#[test]
fn loss_decreases_over_a_short_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(&tmp.path().join("data"));
    cfg.epochs = 4;
    let run = tmp.path().join("run");
    train(cfg, &common::quiet(&run)).unwrap();
    let recs = read_jsonl(&run.join(METRICS_JSONL)).unwrap();
    let first = &recs[0];
    let last = recs.last().unwrap();
    assert!(
        last.train_loss < 0.7 * first.train_loss,
        "train loss {} -> {}",
        first.train_loss,
        last.train_loss
    );
    assert!(
        last.valid_loss < first.valid_loss,
        "valid loss {} -> {}",
        first.valid_loss,
        last.valid_loss
    );
}

#[test]
fn non_finite_loss_stops_with_a_clear_error_and_keeps_the_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = tiny(&tmp.path().join("data"));
    // Adam moves every weight by about lr per step: 1e30 overflows the outputs' squares.
    cfg.schedule.kind = ScheduleKind::Constant;
    cfg.schedule.lr = 1e30;
    cfg.optim.weight_decay = 0.0;
    cfg.checkpoint.every_steps = 1;
    let run = tmp.path().join("run");
    let err = train(cfg, &common::quiet(&run)).unwrap_err().to_string();
    assert!(err.contains("training loss is"), "{err}");
    assert!(err.contains("epoch 1 batch 2"), "{err}");
    assert!(err.contains("epoch-0000-batch-000001"), "{err}");
    // The checkpoint written before the failure is complete and valid.
    let last = checkpoint::latest(&run.join("checkpoints"))
        .unwrap()
        .unwrap();
    let st = checkpoint::read_state(&last).unwrap();
    assert_eq!(st.progress.global_step, 1);
}

#[test]
fn init_weights_start_a_run_from_a_trained_network_and_refuse_another() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = tmp.path().join("run");
    let mut first = tiny(&data);
    first.epochs = 1;
    train(first, &common::quiet(&run)).unwrap();
    let weights = checkpoint::latest(&run.join("checkpoints"))
        .unwrap()
        .unwrap()
        .join(checkpoint::MODEL_FILE);
    let device = hmreg::device::test_device();
    let trained = load_model(&ModelSource::Run(run.clone()), &device).unwrap();

    // Another seed would draw other initial weights: the loaded ones replace them all.
    let mut cfg = common::tiny_config(&data, 11, 5);
    cfg.init.weights = Some(weights.clone());
    let notes = std::sync::Mutex::new(Vec::new());
    let setup =
        hmreg::train::Setup::new(cfg, &|m| notes.lock().unwrap().push(m.to_string())).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &device).unwrap();
    let a = trained.model.forward_t(&x, false).unwrap();
    let b = setup.model.forward_t(&x, false).unwrap();
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    assert!(notes
        .lock()
        .unwrap()
        .iter()
        .any(|n| n.contains("init.weights")));

    // A wider network has other shapes: refused, naming the file.
    let mut cfg = common::tiny_config(&data, 11, 5);
    cfg.model.width *= 2.0;
    cfg.init.weights = Some(weights.clone());
    let err = hmreg::train::Setup::new(cfg, &|_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}
