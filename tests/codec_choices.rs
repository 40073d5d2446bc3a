//! The run's codec: built once from the config, speaking input pixels, refusing the encoder,
//! loss, head and decoder choices that cannot work together (with the keys to change); the keys a
//! run derives are refused when a file sets them to another value; one `arch` default.

use std::path::Path;

use candle_core::{Device, Tensor};
use hmreg::codec::{decode_one, Codec, Decoder, TargetEncoder};
use hmreg::models::Arch;
use hmreg::run::TrainConfig;
use hmreg::Keypoints;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn parse(text: &str) -> TrainConfig {
    TrainConfig::parse(text, Path::new("c.toml")).unwrap()
}

fn resolve_err(text: &str) -> String {
    parse(text).check().unwrap_err().to_string()
}

#[test]
fn binary_targets_need_bce() {
    for enc in ["randomized-rounding", "floor", "round"] {
        let err = resolve_err(&format!(
            "[target.encoder]\nkind = \"{enc}\"\n[loss]\nkind = \"mse\"\n"
        ));
        assert!(
            err.contains("target.encoder") && err.contains("loss.kind"),
            "{enc}: {err}"
        );
    }
    let ok = parse("[target.encoder]\nkind = \"randomized-rounding\"\n[loss]\nkind = \"bce\"\n");
    ok.check().unwrap();
}

#[test]
fn the_two_channel_head_needs_bce() {
    let err = resolve_err("[model]\nhead = \"two-channel\"\n[loss]\nkind = \"mse\"\n");
    assert!(
        err.contains("model.head") && err.contains("loss.kind"),
        "{err}"
    );
}

#[test]
fn dark_takes_the_gaussian_sigma_unless_given() {
    // A config naming `dark` without sigma used to decode with sigma 10 whatever the target.
    let run = parse(
        "[target.encoder]\nkind = \"gaussian\"\nsigma = 3.0\n[metrics.decoder]\nkind = \"dark\"\n",
    )
    .resolve(None)
    .unwrap();
    assert_eq!(run.codec().decoder(), &Decoder::Dark { sigma: Some(3.0) });
    // An explicit sigma wins.
    let codec = run.codec_with("dark:1.5".parse().unwrap()).unwrap();
    assert_eq!(codec.decoder(), &Decoder::Dark { sigma: Some(1.5) });
    // A binary target has no sigma to give: the decoder's must be written.
    let err = resolve_err(
        "[target.encoder]\nkind = \"round\"\n[loss]\nkind = \"bce\"\n[metrics.decoder]\nkind = \"dark\"\n",
    );
    assert!(
        err.contains("metrics.decoder.sigma") && err.contains("target.encoder"),
        "{err}"
    );
    let run = parse(
        "[target.encoder]\nkind = \"round\"\n[loss]\nkind = \"bce\"\n\
         [metrics.decoder]\nkind = \"dark\"\nsigma = 2.0\n",
    )
    .resolve(None)
    .unwrap();
    // The resolved config written to a run directory keeps what the user wrote.
    let again = parse(&run.to_toml().unwrap());
    assert_eq!(again.metrics.decoder, Decoder::Dark { sigma: Some(2.0) });
}

#[test]
fn derived_keys_set_to_another_value_are_refused() {
    // `[model] input_size` used to be overwritten by the pipeline's, silently.
    let err = resolve_err("[pipeline]\ninput_size = 128\n[model]\ninput_size = 256\n");
    assert!(
        err.contains("model.input_size") && err.contains("pipeline.input_size"),
        "{err}"
    );
    // `[target] stride` used to be overwritten by the architecture's.
    let err = resolve_err("[model]\narch = \"hrnet18\"\n[target]\nstride = 1\n");
    assert!(
        err.contains("target.stride") && err.contains("model.heatmap_stride"),
        "{err}"
    );
    // `[model] points` used to be overwritten by the data's count.
    let err = parse("[model]\npoints = 68\n")
        .resolve(Some(5))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.points") && err.contains("data.points"),
        "{err}"
    );
    // Without the keys the values are derived.
    let cfg = parse(
        "[data]\npoints = \"all\"\n[pipeline]\ninput_size = 128\n[model]\narch = \"hrnet18\"\n",
    );
    let run = cfg.clone().resolve(Some(7)).unwrap();
    assert_eq!(
        (run.model.input_size, run.target.stride, run.model.points),
        (128, 4, 7)
    );
    // Resolving leaves the config as the user wrote it.
    assert_eq!(run.config().to_toml().unwrap(), cfg.to_toml().unwrap());
    // A run directory's config.toml spells them out, agreeing: it loads and resolves again,
    // without the data for the point count.
    let saved = parse(&run.to_toml().unwrap());
    assert_eq!(
        saved.resolve(None).unwrap().to_toml().unwrap(),
        run.to_toml().unwrap()
    );
    // With `all` and no record of the count, nothing can tell it.
    let err = cfg.resolve(None).unwrap_err().to_string();
    assert!(err.contains("model.points"), "{err}");
}

#[test]
fn a_model_table_without_arch_builds_the_documented_default() {
    let cfg = parse("[model]\nwidth = 0.5\n");
    assert_eq!(cfg.model.arch, Arch::UnetResnet18);
    assert_eq!(cfg.model.arch, TrainConfig::default().model.arch);
    assert_eq!(Arch::default(), Arch::UnetResnet18);
    // One decoder default too: validation's argmax.
    assert_eq!(cfg.metrics.decoder, Decoder::default());
    assert_eq!(Decoder::default(), Decoder::Argmax);
}

#[test]
fn the_codec_speaks_input_pixels() {
    // 64x64 input, 16x16 maps: stride 4.
    let kp = Keypoints {
        xy: vec![[10.0, 50.0], [63.0, 1.0], [30.0, 30.0], [70.0, 3.0]],
        visible: vec![true, true, false, true],
    };
    for enc in [
        TargetEncoder::Gaussian {
            sigma: 1.5,
            subpixel: false,
        },
        TargetEncoder::Gaussian {
            sigma: 1.5,
            subpixel: true,
        },
        TargetEncoder::GaussianRound { sigma: 1.5 },
        TargetEncoder::RandomizedRounding,
        TargetEncoder::Floor,
        TargetEncoder::Round,
    ] {
        let codec = Codec::new(64, 16, enc.clone(), Decoder::Argmax).unwrap();
        let mut maps = vec![0f32; codec.target_len(kp.len())];
        let enc_out = codec.encode(&kp, &mut ChaCha8Rng::seed_from_u64(1), &mut maps);
        // Invisible and off-input points are masked.
        assert_eq!(enc_out.mask, vec![true, true, false, false], "{enc}");
        assert_eq!(enc_out.targets.visible, enc_out.mask);
        // The target points are where the maps peak, in input pixels.
        for (p, map) in maps.chunks_exact(16 * 16).enumerate() {
            if enc_out.mask[p] {
                let (xy, _) = decode_one(map, 16, 16, &Decoder::Argmax);
                assert_eq!(
                    enc_out.targets.xy[p],
                    [xy[0] * 4.0, xy[1] * 4.0],
                    "{enc} point {p}"
                );
                // Within one map pixel of the point.
                let d = (enc_out.targets.xy[p][0] - kp.xy[p][0]).abs();
                assert!(d <= 4.0, "{enc} point {p}: {d}");
            }
        }
        let t = Tensor::from_vec(maps, (1, 4, 16, 16), &Device::Cpu).unwrap();
        let pred = codec.decode(&t).unwrap();
        for p in 0..2 {
            assert_eq!(
                pred.points[0].xy[p], enc_out.targets.xy[p],
                "{enc} point {p}"
            );
            // The map's peak: 1, or a little less for a Gaussian centred between pixels.
            assert!(pred.confidence[0][p] > 0.5 && pred.confidence[0][p] <= 1.0);
        }
        // Maps of another size are refused.
        let wrong = Tensor::zeros((1, 4, 8, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(codec.decode(&wrong).is_err());
    }
}
