//! Exact parameter counts of the full-size models (method.md figures) and parameter names that
//! match the reference checkpoints.

use hmreg::models::{build, Arch, ModelConfig, ParamGroup, ParamKind, ParamStore};

fn store_for(arch: Arch, points: usize) -> (ParamStore, Box<dyn hmreg::models::KeypointNet>) {
    let mut store = ParamStore::new(&hmreg::device::test_device(), 0);
    let cfg = ModelConfig {
        arch,
        points,
        input_size: 256,
        width: 1.0,
        heatmap_stride: 0,
        head: hmreg::models::HeadKind::Binary,
        ..Default::default()
    };
    let net = build(&cfg, &mut store).unwrap();
    (store, net)
}

fn group_params(store: &ParamStore, g: ParamGroup) -> usize {
    store
        .params()
        .iter()
        .filter(|p| p.group == g && p.is_trainable())
        .map(|p| p.var.elem_count())
        .sum()
}

#[test]
fn hrnet18_counts_match_method() {
    let (store, net) = store_for(Arch::Hrnet18, 5);
    assert_eq!(store.num_parameters(), 9_637_050);
    assert_eq!(group_params(&store, ParamGroup::Encoder), 9_562_260);
    assert_eq!(
        group_params(&store, ParamGroup::Head),
        9_637_050 - 9_562_260
    );
    // The summary rows add up to the same total.
    let rows: usize = net.layers().iter().map(|r| r.params).sum();
    assert_eq!(rows, 9_637_050);
    let last = net.layers().last().unwrap().clone();
    assert_eq!(last.output, [5, 64, 64]);
    for name in [
        "conv1.weight",
        "bn1.running_var",
        "conv2.weight",
        "bn2.bias",
        "layer1.0.conv3.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_mean",
        "transition1.0.0.weight",
        "transition1.1.0.0.weight",
        "transition1.1.0.1.weight",
        "transition2.2.0.0.weight",
        "transition3.3.0.0.weight",
        "stage2.0.branches.0.0.conv1.weight",
        "stage2.0.fuse_layers.0.1.0.weight",
        "stage2.0.fuse_layers.1.0.0.0.weight",
        "stage3.3.fuse_layers.2.0.1.1.running_var",
        "stage4.2.branches.3.3.bn2.weight",
        "stage4.2.fuse_layers.3.0.2.0.weight",
        "head.0.weight",
        "head.1.weight",
        "head.3.weight",
    ] {
        assert!(store.get(name).is_some(), "missing {name}");
    }
    assert_eq!(
        store.get("head.3.weight").unwrap().var.dims(),
        &[5, 270, 1, 1]
    );
    assert!(store.get("head.0.bias").is_none());
    assert!(store.get("transition2.0.0.weight").is_none());
}

/// Closed-form count of the HRNet backbone from its published description (independent of the
/// builder): checks W18 against the method figure, then W32.
fn hrnet_backbone_count(c: usize) -> usize {
    let conv = |i: usize, o: usize, k: usize| i * o * k * k;
    let bn = |c: usize| 2 * c;
    let basic = |c: usize| 2 * (conv(c, c, 3) + bn(c));
    let stem = conv(3, 64, 3) + bn(64) + conv(64, 64, 3) + bn(64);
    let bottleneck =
        |i: usize| conv(i, 64, 1) + bn(64) + conv(64, 64, 3) + bn(64) + conv(64, 256, 1) + bn(256);
    let layer1 = bottleneck(64) + conv(64, 256, 1) + bn(256) + 3 * bottleneck(256);
    let w: Vec<usize> = (0..4).map(|i| c << i).collect();
    let module = |n: usize| {
        let mut t: usize = (0..n).map(|i| 4 * basic(w[i])).sum();
        for i in 0..n {
            for j in 0..n {
                if j > i {
                    t += conv(w[j], w[i], 1) + bn(w[i]);
                } else if j < i {
                    t += (i - j - 1) * (conv(w[j], w[j], 3) + bn(w[j]))
                        + conv(w[j], w[i], 3)
                        + bn(w[i]);
                }
            }
        }
        t
    };
    let trans1 = conv(256, w[0], 3) + bn(w[0]) + conv(256, w[1], 3) + bn(w[1]);
    let trans2 = conv(w[1], w[2], 3) + bn(w[2]);
    let trans3 = conv(w[2], w[3], 3) + bn(w[3]);
    stem + layer1 + trans1 + module(2) + trans2 + 4 * module(3) + trans3 + 3 * module(4)
}

#[test]
fn hrnet32_counts_follow_the_architecture() {
    assert_eq!(hrnet_backbone_count(18), 9_562_260);
    let (store, net) = store_for(Arch::Hrnet32, 5);
    let backbone = hrnet_backbone_count(32);
    assert_eq!(group_params(&store, ParamGroup::Encoder), backbone);
    let head = 480 * 480 + 2 * 480 + 480 * 5;
    assert_eq!(store.num_parameters(), backbone + head);
    assert_eq!(net.layers().last().unwrap().output, [5, 64, 64]);
    assert_eq!(net.stride(), 4);
}

#[test]
fn unet_resnet18_counts_match_fastai() {
    let (store, net) = store_for(Arch::UnetResnet18, 5);
    assert_eq!(store.num_parameters(), 31_113_308);
    let frozen = store.num_parameters() - store.num_trainable_values(true);
    assert_eq!(frozen, 11_166_912);
    // The encoder alone is torchvision's ResNet18 without its classifier.
    assert_eq!(
        group_params(&store, ParamGroup::Encoder),
        11_689_512 - 513_000
    );
    let rows = net.layers();
    assert_eq!(rows.iter().map(|r| r.params).sum::<usize>(), 31_113_308);
    assert_eq!(
        rows.iter()
            .map(|r| r.params - r.trainable_frozen)
            .sum::<usize>(),
        11_166_912
    );
    assert_eq!(rows.last().unwrap().output, [5, 256, 256]);
    assert_eq!(net.stride(), 1);
    for name in [
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.bias",
        "layer4.1.bn2.running_var",
        "layers.1.weight",
        "layers.3.0.0.weight",
        "layers.4.shuf.0.0.weight",
        "layers.7.conv2.0.bias",
        "layers.8.0.0.weight",
        "layers.11.convpath.1.0.weight",
        "layers.12.0.weight",
    ] {
        assert!(store.get(name).is_some(), "missing {name}");
    }
    // Encoder norms stay trainable while frozen; encoder convs do not.
    let p = store.get("layer1.0.bn1.weight").unwrap();
    assert!(p.kind == ParamKind::Norm && p.is_trainable_when_frozen());
    assert!(!store
        .get("layer1.0.conv1.weight")
        .unwrap()
        .is_trainable_when_frozen());
    assert_eq!(
        store.get("layers.12.0.weight").unwrap().group,
        ParamGroup::Head
    );
}

#[test]
fn counts_scale_with_points() {
    let (store, _) = store_for(Arch::Hrnet18, 106);
    assert_eq!(store.num_parameters(), 9_637_050 + 270 * 101);
}

/// A coarser heatmap grid pools the features the head reads: the reference configurations keep
/// their exact parameter counts at every stride, and the summary shows the coarser maps.
#[test]
fn heatmap_stride_keeps_the_parameter_counts() {
    for (arch, total, strides) in [
        (Arch::Hrnet18, 9_637_050, vec![4, 8, 16, 32]),
        (Arch::UnetResnet18, 31_113_308, vec![1, 2, 4, 8, 16, 32]),
    ] {
        for s in strides {
            let mut store = ParamStore::new(&hmreg::device::test_device(), 0);
            let cfg = ModelConfig {
                arch,
                points: 5,
                input_size: 256,
                width: 1.0,
                heatmap_stride: s,
                head: hmreg::models::HeadKind::Binary,
                ..Default::default()
            };
            let net = build(&cfg, &mut store).unwrap();
            assert_eq!(store.num_parameters(), total, "{arch} stride {s}");
            assert_eq!(net.stride(), s);
            let last = net.layers().last().unwrap().output;
            assert_eq!(last, [5, 256 / s, 256 / s], "{arch} stride {s}");
        }
    }
}
