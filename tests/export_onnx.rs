//! `hmreg export`: the ONNX files of tiny UNet-ResNet18 and HRNet models run in tract (a second,
//! independent runtime) and give hmreg's own eval-mode heatmaps within 1e-4 of their scale, at
//! batch 1 and 3, for strides 1 to 8, both heads and opsets 11 and 17; the decoded outputs give
//! hmreg's decoders' points within 1e-3 input pixels; what the exporter cannot express is refused.
//!
//! Every parameter and BatchNorm statistic is drawn at random before export (fresh models have
//! BatchNorm at identity and tiny HRNet weights, which would hide a wrong fold).

mod common;

use candle_core::{Device, Tensor};
use hmreg::codec::{Codec, Decoder, TargetEncoder};
use hmreg::export::{export_model, summarize, to_bytes, ExportMetadata, ExportOptions};
use hmreg::models::{build, Arch, HeadKind, KeypointNet, ModelConfig, ParamKind, ParamStore};
use rand::{Rng, SeedableRng};
use tract_onnx::prelude::*;

/// Sets every tensor of `store` to random values of a sensible scale: weights with variance
/// 2 / fan_in, BatchNorm scales in [0.5, 1.5] and shifts, means and biases around 0, running
/// variances in [0.5, 1.5].
fn randomize(store: &ParamStore, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for p in store.params() {
        let t = p.var.as_tensor();
        let dims = t.dims().to_vec();
        let n = t.elem_count();
        let vals: Vec<f32> = match (p.kind, p.name.rsplit('.').next()) {
            (ParamKind::Weight, _) => {
                let fan_in = (n / dims[0]).max(1) as f32;
                let bound = (6.0 / fan_in).sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            }
            (ParamKind::Norm, Some("weight")) | (ParamKind::Buffer, Some("running_var")) => {
                (0..n).map(|_| rng.random_range(0.5..1.5)).collect()
            }
            (ParamKind::Buffer, Some("num_batches_tracked")) => continue,
            _ => (0..n).map(|_| rng.random_range(-0.2..0.2)).collect(),
        };
        let v = Tensor::from_vec(vals, dims, &Device::Cpu).unwrap();
        p.var.set(&v.to_dtype(t.dtype()).unwrap()).unwrap();
    }
}

fn config(arch: Arch, width: f32, stride: usize, head: HeadKind) -> ModelConfig {
    ModelConfig {
        arch,
        points: 3,
        input_size: 64,
        width,
        heatmap_stride: stride,
        head,
        ..Default::default()
    }
}

fn metadata(cfg: &ModelConfig) -> ExportMetadata {
    ExportMetadata::for_network(cfg, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], "test")
}

/// Runs `bytes` in tract on `x` and returns every output as (shape, values).
fn run_tract(bytes: &[u8], x: &Tensor) -> Vec<(Vec<usize>, Vec<f32>)> {
    let dims = x.dims().to_vec();
    let data: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap()
        .with_input_fact(0, f32::fact(dims.clone()).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_onnx::prelude::Tensor::from_shape(&dims, &data).unwrap();
    let outs = model.run(tvec!(input.into_tvalue())).unwrap();
    outs.iter()
        .map(|o| {
            let o = o.cast_to::<f32>().unwrap();
            let view = o.to_plain_array_view::<f32>().unwrap();
            (o.shape().to_vec(), view.iter().copied().collect())
        })
        .collect()
}

/// `|a - b| <= 1e-4 * max |b|` everywhere (relative to the maps' scale).
fn assert_close_relative(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: sizes");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(
        scale > 1e-3,
        "{what}: degenerate reference (max |v| = {scale})"
    );
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-4 * scale,
        "{what}: max difference {worst} > 1e-4 x {scale}"
    );
}

/// Exports a randomised model of `cfg` as `opts` ask and checks it in tract at each batch size.
fn check(cfg: &ModelConfig, opts: &ExportOptions, batches: &[usize], seed: u64) {
    let what = format!(
        "{} stride {} {:?} opset {} decode {:?}",
        cfg.arch,
        cfg.stride(),
        cfg.head,
        opts.opset,
        opts.decoder
    );
    let mut store = ParamStore::new(&Device::Cpu, seed);
    let net = build(cfg, &mut store).unwrap();
    randomize(&store, seed + 1);
    let model = export_model(net.as_ref(), cfg, opts, &metadata(cfg)).unwrap();
    let bytes = to_bytes(&model);
    let summary = summarize(&bytes).unwrap();
    let outputs = 1 + 2 * opts.decoder.is_some() as usize;
    assert_eq!(summary.outputs.len(), outputs, "{what}");
    let map = cfg.input_size / cfg.stride();
    for &n in batches {
        let x = Tensor::randn(
            0f32,
            1.0,
            (n, 3, cfg.input_size, cfg.input_size),
            &Device::Cpu,
        )
        .unwrap();
        let want = net.forward_t(&x, false).unwrap();
        let outs = run_tract(&bytes, &x);
        assert_eq!(outs.len(), outputs, "{what}");
        assert_eq!(
            outs[0].0,
            vec![n, cfg.points, map, map],
            "{what}: heatmap shape"
        );
        let want_v: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        assert_close_relative(&outs[0].1, &want_v, &format!("{what}, batch {n}"));
        if let Some(dec) = &opts.decoder {
            let codec = Codec::new(cfg.input_size, map, TargetEncoder::Round, dec.clone()).unwrap();
            let pred = codec.decode(&want).unwrap();
            let (shape, pts) = &outs[1];
            assert_eq!(shape, &vec![n, cfg.points, 2], "{what}: points shape");
            let (sshape, scores) = &outs[2];
            assert_eq!(sshape, &vec![n, cfg.points], "{what}: scores shape");
            for i in 0..n {
                for p in 0..cfg.points {
                    let got = [
                        pts[(i * cfg.points + p) * 2],
                        pts[(i * cfg.points + p) * 2 + 1],
                    ];
                    let exp = pred.points[i].xy[p];
                    let err = (got[0] - exp[0]).abs().max((got[1] - exp[1]).abs());
                    assert!(
                        err <= 1e-3,
                        "{what}, batch {n}: sample {i} point {p} at {got:?}, hmreg {exp:?}"
                    );
                    let s = scores[i * cfg.points + p];
                    let conf = pred.confidence[i][p];
                    assert!(
                        (s - conf).abs() <= 1e-4 * conf.abs().max(1.0),
                        "{what}: score"
                    );
                }
            }
        }
    }
}

fn opts(opset: i64, decoder: Option<Decoder>) -> ExportOptions {
    ExportOptions {
        opset,
        batch: None,
        decoder,
    }
}

#[test]
fn unet_heatmaps_match_at_strides_1_4_8_with_both_heads() {
    check(
        &config(Arch::UnetResnet18, 0.0625, 1, HeadKind::Binary),
        &opts(17, None),
        &[1, 3],
        1,
    );
    check(
        &config(Arch::UnetResnet18, 0.0625, 4, HeadKind::TwoChannel),
        &opts(11, Some(Decoder::TopK { k: 9 })),
        &[1, 3],
        2,
    );
    check(
        &config(Arch::UnetResnet18, 0.0625, 8, HeadKind::Binary),
        &opts(17, Some(Decoder::SoftArgmax { temperature: 0.5 })),
        &[3],
        3,
    );
}

#[test]
fn hrnet_heatmaps_match_at_strides_4_and_8_with_both_heads() {
    check(
        &config(Arch::Hrnet18, 0.125, 4, HeadKind::Binary),
        &opts(17, Some(Decoder::Argmax)),
        &[1, 3],
        4,
    );
    check(
        &config(Arch::Hrnet18, 0.125, 8, HeadKind::TwoChannel),
        &opts(11, Some(Decoder::SoftArgmax { temperature: 1.0 })),
        &[1, 3],
        5,
    );
    check(
        &config(Arch::Hrnet32, 0.0625, 4, HeadKind::TwoChannel),
        &opts(17, Some(Decoder::TopK { k: 5 })),
        &[3],
        6,
    );
}

#[test]
fn a_fixed_batch_is_written_into_the_graph() {
    let cfg = config(Arch::Hrnet18, 0.125, 8, HeadKind::Binary);
    let opts = ExportOptions {
        batch: Some(3),
        ..opts(17, Some(Decoder::Argmax))
    };
    check(&cfg, &opts, &[3], 7);
    let mut store = ParamStore::new(&Device::Cpu, 7);
    let net = build(&cfg, &mut store).unwrap();
    let s = summarize(&to_bytes(
        &export_model(net.as_ref(), &cfg, &opts, &metadata(&cfg)).unwrap(),
    ))
    .unwrap();
    assert_eq!(s.inputs[0].dims, ["3", "3", "64", "64"]);
    assert_eq!(s.outputs[1].dims, ["3", "3", "2"]);
}

/// A network without a description (any other `KeypointNet`) is refused, never written wrong.
struct Opaque(Box<dyn KeypointNet>);

impl KeypointNet for Opaque {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        (self.0.forward_t(x, train)? * 2.0)?.exp()
    }
    fn stride(&self) -> usize {
        self.0.stride()
    }
}

#[test]
fn what_cannot_be_expressed_is_refused_with_a_message() {
    let cfg = config(Arch::Hrnet18, 0.125, 4, HeadKind::Binary);
    let mut store = ParamStore::new(&Device::Cpu, 8);
    let net = build(&cfg, &mut store).unwrap();
    let meta = metadata(&cfg);
    let err = |net: &dyn KeypointNet, cfg: &ModelConfig, o: ExportOptions| {
        export_model(net, cfg, &o, &meta).unwrap_err().to_string()
    };
    let e = err(net.as_ref(), &cfg, opts(10, None));
    assert!(e.contains("opset 10") && e.contains("11 to 17"), "{e}");
    let e = err(net.as_ref(), &cfg, opts(17, Some(Decoder::QuarterOffset)));
    assert!(e.contains("no in-graph form"), "{e}");
    let e = err(
        net.as_ref(),
        &cfg,
        opts(17, Some(Decoder::Dark { sigma: Some(1.5) })),
    );
    assert!(e.contains("--decode none"), "{e}");
    let opaque = Opaque(net);
    let e = err(&opaque, &cfg, opts(17, None));
    assert!(e.contains("cannot describe"), "{e}");
    // A stride the model's config does not allow (HRNet's grid is at least 4 input pixels).
    let bad = ModelConfig {
        heatmap_stride: 2,
        ..cfg.clone()
    };
    let e = err(opaque.0.as_ref(), &bad, opts(17, None));
    assert!(e.contains("heatmap_stride 2"), "{e}");
    // The network and the config must agree (a stride-4 network under a stride-8 config).
    let other = ModelConfig {
        heatmap_stride: 8,
        ..cfg.clone()
    };
    let e = err(opaque.0.as_ref(), &other, opts(17, None));
    assert!(e.contains("stride 8"), "{e}");
}

/// The command on the built-in face68 model (HRNet-W18 at width 1/4, 68 points, its config's
/// input size): the file it writes gives the model's maps and its top-k points in tract, carries
/// the metadata, and a decoder without an in-graph form is a usage error that writes nothing.
#[test]
fn the_command_exports_the_builtin_model() {
    let loaded = hmreg::run::load_model(&hmreg::run::ModelSource::Builtin, &Device::Cpu).unwrap();
    let (input, map) = (
        loaded.cfg.codec().input_size(),
        loaded.cfg.codec().map_size(),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("face68.onnx");
    let o = common::hmreg()
        .args(["export", "--out"])
        .arg(&out)
        .args(["--decode", "topk:9", "--opset", "11"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for want in [
        format!("image (N, 3, {input}, {input})"),
        format!("heatmaps (N, 68, {map}, {map})"),
        "points (N, 68, 2)".to_string(),
    ] {
        assert!(stdout.contains(want.as_str()), "`{want}` not in:\n{stdout}");
    }
    assert!(
        stdout.contains("nodes:") && stdout.contains("bytes"),
        "{stdout}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let s = summarize(&bytes).unwrap();
    let meta: std::collections::BTreeMap<_, _> = s.metadata.iter().cloned().collect();
    assert_eq!(meta["input_size"], input.to_string());
    assert_eq!(meta["heatmap_stride"], "4");
    assert_eq!(meta["points"], "68");
    assert_eq!(meta["layout"], "iBUG-68");
    assert_eq!(meta["decoder"], "topk:9");
    assert_eq!(meta["mean"], "[0.485, 0.456, 0.406]");
    assert!(
        meta["flip_pairs"].starts_with("[[0, 16], [1, 15]"),
        "{}",
        meta["flip_pairs"]
    );
    assert_eq!(meta["hmreg_version"], env!("CARGO_PKG_VERSION"));

    let x = Tensor::randn(0f32, 1.0, (1, 3, input, input), &Device::Cpu).unwrap();
    let want = loaded.model.forward_t(&x, false).unwrap();
    let outs = run_tract(&bytes, &x);
    let want_v: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
    assert_close_relative(&outs[0].1, &want_v, "face68");
    let codec = loaded.cfg.codec_with(Decoder::TopK { k: 9 }).unwrap();
    let pred = codec.decode(&want).unwrap();
    // The graph's points carry the model's calibration, as `hmreg predict`'s do.
    let offset = codec.point_offset();
    assert_eq!(
        meta["point_offset"],
        format!("[{}, {}]", offset[0], offset[1])
    );
    for (p, exp) in pred.points[0].xy.iter().enumerate() {
        let exp = [exp[0] + offset[0], exp[1] + offset[1]];
        let got = [outs[1].1[2 * p], outs[1].1[2 * p + 1]];
        let err = (got[0] - exp[0]).abs().max((got[1] - exp[1]).abs());
        assert!(err <= 1e-3, "point {p}: {got:?} vs {exp:?}");
    }

    let refused = dir.path().join("dark.onnx");
    let o = common::hmreg()
        .args(["export", "--out"])
        .arg(&refused)
        .args(["--decode", "dark"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("no in-graph form"), "{stderr}");
    assert!(!refused.exists());
}
