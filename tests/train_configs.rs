//! The shipped configs parse, validate, and say what the write-up's recipes say.

use std::path::Path;

use hmreg::codec::{Decoder, TargetEncoder};
use hmreg::data::PointSelection;
use hmreg::experiment::trained::{load_config, Method};
use hmreg::hub::WeightsSource;
use hmreg::learn::loss::LossKind;
use hmreg::learn::schedule::ScheduleKind;
use hmreg::models::Arch;
use hmreg::run::TrainConfig;

fn load(name: &str) -> TrainConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(name);
    let c = TrainConfig::load(&path).unwrap();
    c.check().unwrap();
    c
}

#[test]
fn every_config_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        // Experiment configs: a training config plus the grid's [rounding] table; every cell
        // must resolve.
        if name.starts_with("rounding-") {
            let (base, grid) = load_config(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            grid.validate(&base)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            let c = TrainConfig::load(&p).unwrap();
            c.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        n += 1;
    }
    assert!(n >= 4);
}

#[test]
fn the_rounding_grids_cover_the_papers_question() {
    // At least sizes 32, 16 and 8, all five methods and two seeds (issue 12).
    for name in ["rounding-300w.toml", "rounding-lapa-gpu.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("configs")
            .join(name);
        let (base, grid) = load_config(&path).unwrap();
        for s in [32, 16, 8] {
            assert!(grid.sizes.contains(&s), "{name}: size {s}");
        }
        assert_eq!(grid.methods, Method::ALL.to_vec(), "{name}");
        assert!(grid.seeds.len() >= 2, "{name}");
        assert_eq!(base.model.arch, Arch::Hrnet18, "{name}");
    }
}

#[test]
fn lapa_recipes_match_the_write_up() {
    let five = PointSelection::Indices(vec![30, 40, 50, 60, 70]);

    let v1 = load("lapa-unet-resnet18.toml");
    assert_eq!(v1.model.arch, Arch::UnetResnet18);
    assert_eq!(v1.data.points, five);
    assert_eq!((v1.pipeline.input_size, v1.pipeline.item_size), (256, 400));
    assert_eq!(
        v1.target.encoder,
        TargetEncoder::Gaussian {
            sigma: 10.0,
            subpixel: false
        }
    );
    assert_eq!(v1.clone().resolve(None).unwrap().target.stride, 1);
    assert_eq!(v1.loss.kind, LossKind::Mse);
    assert_eq!(v1.schedule.kind, ScheduleKind::FineTune);
    assert_eq!((v1.epochs, v1.schedule.lr, v1.batch_size), (10, 8e-5, 24));
    assert_eq!(v1.data.train_limit, 5000);
    // The write-up fine-tunes torchvision's ImageNet ResNet18, named on the hub; resolving the
    // config downloads nothing (this test has no network).
    assert_eq!(
        v1.init.pretrained,
        "timm/resnet18.tv_in1k".parse::<WeightsSource>().unwrap()
    );
    assert!(matches!(v1.init.pretrained, WeightsSource::Hub(_)));

    let v2 = load("lapa-hrnet18-rr.toml");
    assert_eq!(v2.model.arch, Arch::Hrnet18);
    assert_eq!(v2.data.points, five);
    assert_eq!(v2.target.encoder, TargetEncoder::RandomizedRounding);
    assert_eq!(v2.clone().resolve(None).unwrap().target.stride, 4);
    assert_eq!((v2.loss.kind, v2.loss.pos_weight), (LossKind::Bce, 100.0));
    assert_eq!(v2.schedule.kind, ScheduleKind::OneCycle);
    assert_eq!((v2.epochs, v2.schedule.lr, v2.batch_size), (10, 5e-3, 64));
    assert_eq!(v2.metrics.decoder, Decoder::TopK { k: 9 });
    // fastai's defaults underneath both.
    for c in [&v1, &v2] {
        assert_eq!(
            (c.optim.beta1, c.optim.beta2, c.optim.eps),
            (0.9, 0.99, 1e-5)
        );
        assert_eq!(c.optim.weight_decay, 0.01);
        assert_eq!(c.schedule.moms, [0.95, 0.85, 0.95]);
        assert_eq!((c.schedule.div, c.schedule.div_final), (25.0, 1e5));
        assert_eq!(c.schedule.pct_start, 0.25);
    }
}

/// The GPU recipe of the published HRNet-W18 figures starts from ImageNet weights on the hub; a
/// listed hub repository of another backbone is refused when the config is validated.
#[test]
fn pretrained_hub_weights_fit_the_architecture() {
    let mut c = load("300w-gpu.toml");
    assert_eq!(c.model.arch, Arch::Hrnet18);
    assert_eq!(c.init.pretrained.to_string(), "timm/hrnet_w18.ms_aug_in1k");
    c.validate().unwrap();
    c.model.arch = Arch::Hrnet32;
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("timm/hrnet_w18.ms_aug_in1k") && err.contains("hrnet32"),
        "{err}"
    );
    c.model.arch = Arch::UnetResnet18;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("timm/resnet18.tv_in1k"), "{err}");
}

/// `model.heatmap_stride` is the one setting of the map grid: resolving a config gives the
/// target encoder the same stride, and the resolved config spells it out.
#[test]
fn heatmap_stride_reaches_the_targets_and_the_resolved_config() {
    let mut c = load("lapa-hrnet18-rr.toml");
    assert_eq!(c.model.stride(), 4);
    assert_eq!(c.clone().resolve(None).unwrap().target.stride, 4);
    c.model.heatmap_stride = 16;
    let run = c.clone().resolve(None).unwrap();
    assert_eq!(run.target.stride, 16);
    // Resolving leaves the config as written; the run's record spells out the derived value.
    assert_eq!(run.config().target.stride, c.target.stride);
    assert!(run.to_toml().unwrap().contains("heatmap_stride = 16"));
    assert!(run.to_toml().unwrap().contains("stride = 16"));
    c.model.heatmap_stride = 2;
    let err = c.check().unwrap_err().to_string();
    assert!(err.contains("heatmap_stride 2"), "{err}");
}

/// The two-channel head goes with the cross-entropy (BCE on its log-odds), nothing else.
#[test]
fn the_two_channel_head_needs_the_cross_entropy_loss() {
    let mut c = load("lapa-hrnet18-rr.toml");
    c.model.head = hmreg::models::HeadKind::TwoChannel;
    c.loss.pos_weight = 1.0;
    let run = c.clone().resolve(None).unwrap();
    assert!(run.to_toml().unwrap().contains("head = \"two-channel\""));
    c.loss.kind = LossKind::Mse;
    let err = c.check().unwrap_err().to_string();
    assert!(err.contains("two-channel"), "{err}");
}
