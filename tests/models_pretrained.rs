//! Loading weights by name: torchvision `.pth`, safetensors with torchvision / timm / fastai names,
//! and refusing shape mismatches.
//!
//! `tests/fixtures/resnet18_thin_subset*.pth` were written with PyTorch (`torch.save`, zip
//! format): a subset of a torchvision ResNet18 state dict at 1/16 width where tensor number `k`
//! (in the order listed in `FIXTURE`) holds `(i + 1) / 1000 + k` at flat index `i`, plus
//! `bn1.num_batches_tracked` (ignored, not unused); the `_nested` file wraps the same dict as
//! `{"state_dict": ...}`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use hmreg::models::{
    build, load_pretrained, load_pretrained_with, Arch, LoadOptions, ModelConfig, ParamGroup,
    ParamStore,
};

const FIXTURE: [&str; 10] = [
    "conv1.weight",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "layer1.0.conv1.weight",
    "layer2.0.downsample.0.weight",
    "layer2.0.downsample.1.running_var",
    "fc.weight",
    "fc.bias",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn thin(arch: Arch, seed: u64) -> ParamStore {
    let mut store = ParamStore::new(&hmreg::device::test_device(), seed);
    let cfg = ModelConfig {
        arch,
        points: 2,
        input_size: 64,
        width: 0.0625,
        heatmap_stride: 0,
        head: hmreg::models::HeadKind::Binary,
        ..Default::default()
    };
    build(&cfg, &mut store).unwrap();
    store
}

fn values(store: &ParamStore, name: &str) -> Vec<f32> {
    store
        .get(name)
        .unwrap()
        .var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn torchvision_pth_loads_by_name() {
    for file in [
        "resnet18_thin_subset.pth",
        "resnet18_thin_subset_nested.pth",
    ] {
        let store = thin(Arch::UnetResnet18, 1);
        let before_decoder = values(&store, "layers.3.0.0.weight");
        let report = load_pretrained(&store, &fixture(file)).unwrap();
        let mut loaded = report.loaded.clone();
        loaded.sort();
        let mut want: Vec<String> = FIXTURE[..8].iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(loaded, want, "{file}");
        assert_eq!(report.unused, vec!["fc.bias", "fc.weight"], "{file}");
        assert_eq!(report.ignored, vec!["bn1.num_batches_tracked"], "{file}");
        assert_eq!(report.missing.len(), store.params().len() - 8);
        assert!(report
            .missing
            .contains(&"layer1.0.conv2.weight".to_string()));
        for (k, name) in FIXTURE[..8].iter().enumerate() {
            let v = values(&store, name);
            for (i, x) in v.iter().enumerate() {
                let want = (i as f32 + 1.0) / 1000.0 + k as f32;
                assert!((x - want).abs() < 1e-6, "{name}[{i}] = {x}, want {want}");
            }
        }
        assert_eq!(values(&store, "layers.3.0.0.weight"), before_decoder);
    }
}

/// The encoder tensors of `src` under other names.
fn encoder_tensors(src: &ParamStore, rename: impl Fn(&str) -> String) -> HashMap<String, Tensor> {
    src.params()
        .iter()
        .filter(|p| p.group == ParamGroup::Encoder)
        .map(|p| (rename(&p.name), p.var.as_tensor().clone()))
        .collect()
}

#[test]
fn safetensors_with_torchvision_timm_and_fastai_names_restore_exact_values() {
    let src = thin(Arch::UnetResnet18, 11);
    let dir = tempfile::tempdir().unwrap();
    let fastai = |n: &str| {
        let (head, tail) = n.split_once('.').unwrap();
        let idx = match head {
            "conv1" => "0",
            "bn1" => "1",
            "layer1" => "4",
            "layer2" => "5",
            "layer3" => "6",
            "layer4" => "7",
            _ => "8", // not part of fastai's body: stays unused
        };
        format!("layers.0.{idx}.{tail}")
    };
    type Rename = Box<dyn Fn(&str) -> String>;
    let cases: Vec<(&str, Rename)> = vec![
        ("torchvision", Box::new(|n: &str| n.to_string())),
        ("timm", Box::new(|n: &str| format!("model.{n}"))),
        ("dataparallel", Box::new(|n: &str| format!("module.{n}"))),
        ("fastai", Box::new(fastai)),
    ];
    for (label, rename) in cases {
        let mut map = encoder_tensors(&src, &rename);
        map.insert(
            rename("fc.weight"),
            Tensor::zeros(
                (10, 32),
                candle_core::DType::F32,
                &hmreg::device::test_device(),
            )
            .unwrap(),
        );
        let path = dir.path().join(format!("{label}.safetensors"));
        candle_core::safetensors::save(&map, &path).unwrap();
        let dst = thin(Arch::UnetResnet18, 12);
        assert_ne!(values(&dst, "conv1.weight"), values(&src, "conv1.weight"));
        let before: Vec<Vec<f32>> = src.params().iter().map(|p| values(&dst, &p.name)).collect();
        let report = load_pretrained(&dst, &path).unwrap();
        let n_enc = src
            .params()
            .iter()
            .filter(|p| p.group == ParamGroup::Encoder)
            .count();
        assert_eq!(report.loaded.len(), n_enc, "{label}");
        assert_eq!(report.unused, vec![rename("fc.weight")], "{label}");
        for (p, before) in src.params().iter().zip(before) {
            let want = if p.group == ParamGroup::Encoder {
                values(&src, &p.name)
            } else {
                before
            };
            assert_eq!(values(&dst, &p.name), want, "{label}: {}", p.name);
        }
    }
}

#[test]
fn shape_mismatch_is_refused_and_changes_nothing() {
    let full_width = {
        let mut store = ParamStore::new(&hmreg::device::test_device(), 3);
        let cfg = ModelConfig {
            arch: Arch::Hrnet18,
            points: 2,
            input_size: 64,
            width: 0.125,
            heatmap_stride: 0,
            head: hmreg::models::HeadKind::Binary,
            ..Default::default()
        };
        build(&cfg, &mut store).unwrap();
        store
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.safetensors");
    full_width.save_safetensors(&path).unwrap();
    let dst = thin(Arch::Hrnet18, 4);
    let before = values(&dst, "conv1.weight");
    let err = load_pretrained(&dst, &path).unwrap_err().to_string();
    assert!(
        err.contains("wide.safetensors") && err.contains("shape"),
        "{err}"
    );
    assert_eq!(values(&dst, "conv1.weight"), before);
}

#[test]
fn hrnet_checkpoint_loads_backbone_only_when_head_differs() {
    // A reference checkpoint with the paper's 2L-channel head: full load refuses, a load restricted
    // to the encoder group takes the backbone and reports the head as unused.
    let src = thin(Arch::Hrnet18, 5);
    let mut map: HashMap<String, Tensor> = src
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (format!("module.{n}"), t))
        .collect();
    map.insert(
        "module.head.3.weight".into(),
        Tensor::zeros(
            (4, 15, 1, 1),
            candle_core::DType::F32,
            &hmreg::device::test_device(),
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h3r.safetensors");
    candle_core::safetensors::save(&map, &path).unwrap();
    let dst = thin(Arch::Hrnet18, 6);
    assert!(load_pretrained(&dst, &path).is_err());
    let opts = LoadOptions {
        groups: Some(vec![ParamGroup::Encoder]),
    };
    let report = load_pretrained_with(&dst, &path, &opts).unwrap();
    assert!(
        report.missing.iter().all(|n| n.starts_with("head.")),
        "{:?}",
        report.missing
    );
    // head.0, head.1.{weight,bias,running_mean,running_var}, head.3
    assert_eq!(report.unused.len(), 6);
    assert_eq!(
        values(&dst, "stage4.2.fuse_layers.3.0.2.0.weight"),
        values(&src, "stage4.2.fuse_layers.3.0.2.0.weight")
    );
}

#[test]
fn unreadable_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = thin(Arch::Hrnet18, 7);
    let missing = dir.path().join("nope.pth");
    assert!(load_pretrained(&store, &missing)
        .unwrap_err()
        .to_string()
        .contains("nope.pth"));
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"this is not a weights file").unwrap();
    let e = load_pretrained(&store, &junk).unwrap_err().to_string();
    assert!(e.contains("junk.safetensors"), "{e}");
    let zip = dir.path().join("bad.pth");
    std::fs::write(&zip, b"PK\x03\x04garbage").unwrap();
    let e = load_pretrained(&store, &zip).unwrap_err().to_string();
    assert!(e.contains("bad.pth"), "{e}");
}
