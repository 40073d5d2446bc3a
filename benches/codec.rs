//! Encoder and decoder speed: `cargo bench --bench codec` prints a markdown table.
//!
//! The case that matters for training: a batch of 64 images x 106 points encoded at 64x64
//! (27.8 M floats, 111 MB per batch). Median of repeated runs, plain `std::time`.
//! A full-map reference (an `exp` on every pixel) and a bare `fill(0.0)` of the same buffer
//! bracket the encoder: the lower bound is the memory traffic of writing the zeros.

use std::hint::black_box;

use candle_core::{Device, Tensor};
use hmreg::codec::{decode, decode_maps, encode, encode_batch, Decoder, TargetEncoder};
use hmreg::Keypoints;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[path = "shared/measure.rs"]
mod measure;
use measure::{median_ms, random_keypoints};

/// Reference: the Gaussian evaluated on every pixel of every map (what "only touch the window"
/// avoids).
fn naive_gaussian(kps: &[Keypoints], w: usize, h: usize, sigma: f32, out: &mut [f32]) {
    let r = 3.0 * sigma;
    for (kp, maps) in kps.iter().zip(out.chunks_mut(kps[0].len() * w * h)) {
        for (p, map) in kp.xy.iter().zip(maps.chunks_mut(w * h)) {
            let c = [p[0].trunc(), p[1].trunc()];
            for j in 0..h {
                for i in 0..w {
                    let (dx, dy) = (i as f32 - c[0], j as f32 - c[1]);
                    map[j * w + i] = if dx.abs() <= r && dy.abs() <= r {
                        (-(dx * dx + dy * dy) / (2.0 * sigma * sigma)).exp()
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

fn main() {
    let repeats = 15;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    println!(
        "codec bench: median of {repeats} runs, {} rayon threads\n",
        rayon::current_num_threads()
    );
    println!("| case | batch | map | ms per batch | ns per map |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, n: usize, l: usize, w: usize, ms: f64| {
        println!(
            "| {name} | {n}x{l} | {w}x{w} | {ms:.2} | {:.0} |",
            ms * 1e6 / (n * l) as f64
        );
    };

    for (n, l, w, sigma) in [(64usize, 106usize, 64usize, 2.0f32), (24, 5, 256, 10.0)] {
        let kps = random_keypoints(n, l, w, w, &mut rng);
        let mut out = vec![0f32; n * l * w * w];
        let ms = median_ms(1, repeats, || {
            out.fill(0.0);
            black_box(&out);
        });
        row("fill(0.0) only (lower bound)", n, l, w, ms);
        let ms = median_ms(1, repeats.min(5), || {
            naive_gaussian(&kps, w, w, sigma, &mut out)
        });
        row(
            &format!("naive Gaussian sigma {sigma}, exp per pixel"),
            n,
            l,
            w,
            ms,
        );
        let encoders = [
            TargetEncoder::Gaussian {
                sigma,
                subpixel: false,
            },
            TargetEncoder::Gaussian {
                sigma,
                subpixel: true,
            },
            TargetEncoder::RandomizedRounding,
            TargetEncoder::Floor,
        ];
        for enc in &encoders {
            let mut r = ChaCha8Rng::seed_from_u64(1);
            let ms = median_ms(1, repeats, || {
                let per = l * w * w;
                for (kp, o) in kps.iter().zip(out.chunks_mut(per)) {
                    black_box(encode(enc, kp, w, w, &mut r, o));
                }
            });
            row(&format!("encode {enc}, per sample"), n, l, w, ms);
            let ms = median_ms(1, repeats, || {
                black_box(encode_batch(enc, &kps, w, w, &mut r, &mut out));
            });
            row(&format!("encode_batch {enc} (rayon)"), n, l, w, ms);
        }

        // Decoders on Gaussian maps held in a CPU tensor.
        encode_batch(&encoders[1], &kps, w, w, &mut rng, &mut out);
        let t = Tensor::from_slice(&out, (n, l, w, w), &Device::Cpu).unwrap();
        let ms = median_ms(1, repeats.min(7), || {
            black_box(t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        });
        row("tensor -> Vec<f32> copy only", n, l, w, ms);
        let ms = median_ms(1, repeats.min(7), || {
            black_box(decode_maps(&out, n, l, w, w, &Decoder::Argmax).unwrap());
        });
        row("decode_maps argmax (CPU slice)", n, l, w, ms);
        for dec in [
            Decoder::Argmax,
            Decoder::TopK { k: 9 },
            Decoder::SoftArgmax { temperature: 0.05 },
            Decoder::Dark { sigma: Some(sigma) },
            Decoder::QuarterOffset,
        ] {
            let ms = median_ms(1, repeats.min(7), || {
                black_box(decode(&t, &dec).unwrap());
            });
            row(&format!("decode {dec} (tensor -> points)"), n, l, w, ms);
        }
    }
}
