//! The loader: deterministic batches whatever the thread count, per-epoch shuffles, fastai's
//! drop_last in training, masks for invisible points, targets on the transformed points.

use hmreg::codec::TargetEncoder;
use hmreg::data::{
    load_split, Batch, FilePoints, Loader, LoaderMode, LoaderSpec, PipelineConfig, PointSelection,
    TargetConfig,
};
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// A small LaPa-layout split: `n` images of varied sizes with `points` landmarks each.
fn write_split(root: &Path, split: &str, n: usize, points: usize, seed: u64) {
    let (img_dir, lm_dir) = (
        root.join(split).join("images"),
        root.join(split).join("landmarks"),
    );
    std::fs::create_dir_all(&img_dir).unwrap();
    std::fs::create_dir_all(&lm_dir).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..n {
        let (w, h) = (rng.random_range(60..140u32), rng.random_range(60..140u32));
        let img = RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 3) as u8, (y * 3) as u8, rng.random()])
        });
        img.save(img_dir.join(format!("s{i:03}.png"))).unwrap();
        let mut txt = format!("{points}\n");
        for _ in 0..points {
            let (x, y) = (
                rng.random_range(0.0..w as f32),
                rng.random_range(0.0..h as f32),
            );
            txt.push_str(&format!("{x:.3} {y:.3}\n"));
        }
        std::fs::write(lm_dir.join(format!("s{i:03}.txt")), txt).unwrap();
    }
}

fn pipeline(workers: usize) -> PipelineConfig {
    PipelineConfig {
        input_size: 32,
        item_size: 48,
        workers,
        ..PipelineConfig::default()
    }
}

fn rr_target() -> TargetConfig {
    TargetConfig {
        encoder: TargetEncoder::RandomizedRounding,
        stride: 4,
    }
}

/// A training loader's spec with randomized-rounding targets.
fn train_spec(pipeline: PipelineConfig, batch_size: usize, seed: u64) -> LoaderSpec {
    LoaderSpec {
        pipeline,
        target: rr_target(),
        batch_size,
        mode: LoaderMode::Train,
        seed,
        file_points: None,
    }
}

/// Images, targets, mask and indices of a batch, flattened for comparison.
type Flat = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<usize>);

fn flat(b: &Batch) -> Flat {
    (
        b.images.flatten_all().unwrap().to_vec1().unwrap(),
        b.targets.flatten_all().unwrap().to_vec1().unwrap(),
        b.mask.flatten_all().unwrap().to_vec1().unwrap(),
        b.indices.clone(),
    )
}

#[test]
fn identical_seeds_give_identical_batches_with_1_and_4_threads() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "train", 13, 5, 1);
    let samples = load_split(dir.path(), "train", &PointSelection::All).unwrap();
    let dev = hmreg::device::test_device();
    let mut p1 = pipeline(1);
    p1.cache_mb = 0;
    let l1 = Loader::new(samples.clone(), &train_spec(p1.clone(), 4, 42), &dev).unwrap();
    let l4 = Loader::new(samples.clone(), &train_spec(pipeline(4), 4, 42), &dev).unwrap();
    let other = Loader::new(samples, &train_spec(pipeline(2), 4, 43), &dev).unwrap();
    assert_eq!(l1.batches_per_epoch(), 3, "13 samples, batch 4, drop_last");
    let mut epochs = Vec::new();
    for epoch in 0..2 {
        let a: Vec<_> = l1.epoch(epoch).map(|b| flat(&b.unwrap())).collect();
        let b: Vec<_> = l4.epoch(epoch).map(|b| flat(&b.unwrap())).collect();
        assert_eq!(a.len(), 3);
        assert!(a == b, "epoch {epoch}: 1 and 4 threads disagree");
        // Same again (the 4-thread loader has its cache warm now): still identical.
        let c: Vec<_> = l4.epoch(epoch).map(|b| flat(&b.unwrap())).collect();
        assert!(a == c, "epoch {epoch}: cached images changed a batch");
        let d: Vec<_> = other.epoch(epoch).map(|b| flat(&b.unwrap())).collect();
        assert!(a != d, "a different seed gave the same batches");
        for (imgs, tg, _, ix) in &a {
            assert_eq!(ix.len(), 4);
            assert_eq!(imgs.len(), 4 * 3 * 32 * 32);
            assert_eq!(tg.len(), 4 * 5 * 8 * 8);
        }
        epochs.push(a);
    }
    let order = |e: &Vec<Flat>| e.iter().flat_map(|b| b.3.clone()).collect::<Vec<_>>();
    assert_ne!(
        order(&epochs[0]),
        order(&epochs[1]),
        "no reshuffle between epochs"
    );
    assert!(l4.cache_usage().1 > 0, "nothing was cached");
    // Resuming at epoch 1 needs nothing but the epoch number.
    let fresh = Loader::new(l1.samples().to_vec(), &train_spec(pipeline(2), 4, 42), &dev).unwrap();
    let resumed: Vec<_> = fresh.epoch(1).map(|b| flat(&b.unwrap())).collect();
    assert!(resumed == epochs[1]);
}

#[test]
fn validation_keeps_order_and_the_last_partial_batch() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "val", 7, 3, 2);
    let samples = load_split(dir.path(), "val", &PointSelection::All).unwrap();
    let l = Loader::new(
        samples,
        &LoaderSpec {
            pipeline: pipeline(2),
            target: TargetConfig::default(),
            batch_size: 3,
            mode: LoaderMode::Eval,
            seed: 0,
            file_points: None,
        },
        &hmreg::device::test_device(),
    )
    .unwrap();
    assert_eq!(l.batches_per_epoch(), 3);
    let idx: Vec<Vec<usize>> = l.epoch(0).map(|b| b.unwrap().indices).collect();
    assert_eq!(idx, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    // Without augmentation two epochs give the same Gaussian targets and images.
    let a: Vec<_> = l.epoch(0).map(|b| flat(&b.unwrap())).collect();
    let b: Vec<_> = l.epoch(5).map(|b| flat(&b.unwrap())).collect();
    assert!(a == b);
}

#[test]
fn invisible_points_are_masked_and_their_maps_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (img_dir, lm_dir) = (
        dir.path().join("val/images"),
        dir.path().join("val/landmarks"),
    );
    std::fs::create_dir_all(&img_dir).unwrap();
    std::fs::create_dir_all(&lm_dir).unwrap();
    // A 200x100 image: the centre crop keeps x in [50, 150).
    RgbImage::new(200, 100).save(img_dir.join("a.png")).unwrap();
    std::fs::write(lm_dir.join("a.txt"), "3\n10 50\n100 50\n190 20\n").unwrap();
    let samples = load_split(dir.path(), "val", &PointSelection::All).unwrap();
    for target in [rr_target(), TargetConfig::default()] {
        let l = Loader::new(
            samples.clone(),
            &LoaderSpec {
                pipeline: pipeline(1),
                target: target.clone(),
                batch_size: 1,
                mode: LoaderMode::Eval,
                seed: 0,
                file_points: None,
            },
            &hmreg::device::test_device(),
        )
        .unwrap();
        let b = l.epoch(0).next().unwrap().unwrap();
        assert_eq!(b.mask.to_vec2::<f32>().unwrap(), vec![vec![0.0, 1.0, 0.0]]);
        assert_eq!(b.points[0].visible, vec![false, true, false]);
        // Coordinates are kept (not clamped): x = (10 - 50) * 32 / 100.
        assert!((b.points[0].xy[0][0] + 12.8).abs() < 1e-3);
        let maps = b.targets.to_vec3::<f32>().ok();
        let t: Vec<f32> = b.targets.flatten_all().unwrap().to_vec1().unwrap();
        let m = l.map_size() * l.map_size();
        assert!(t[..m].iter().all(|&v| v == 0.0) && t[2 * m..].iter().all(|&v| v == 0.0));
        // The visible point's map peaks at the transformed point (centre of the crop).
        let (arg, _) = t[m..2 * m]
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        let side = l.map_size();
        let expect = 16.0 / target.stride as f32;
        assert!(
            ((arg % side) as f32 - expect).abs() <= 1.0
                && ((arg / side) as f32 - expect).abs() <= 1.0
        );
        drop(maps);
    }
}

#[test]
fn targets_follow_the_augmented_points() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "train", 6, 4, 3);
    let samples = load_split(dir.path(), "train", &PointSelection::All).unwrap();
    let target = TargetConfig {
        encoder: TargetEncoder::Floor,
        stride: 4,
    };
    let l = Loader::new(
        samples,
        &LoaderSpec {
            pipeline: pipeline(2),
            target: target.clone(),
            batch_size: 2,
            mode: LoaderMode::Train,
            seed: 7,
            file_points: None,
        },
        &hmreg::device::test_device(),
    )
    .unwrap();
    for b in l.epoch(0) {
        let b = b.unwrap();
        let t: Vec<f32> = b.targets.flatten_all().unwrap().to_vec1().unwrap();
        let mask: Vec<f32> = b.mask.flatten_all().unwrap().to_vec1().unwrap();
        let (side, lpts) = (l.map_size(), l.n_points());
        for (n, kp) in b.points.iter().enumerate() {
            for (k, (p, &vis)) in kp.xy.iter().zip(kp.visible.iter()).enumerate() {
                let map = &t[(n * lpts + k) * side * side..(n * lpts + k + 1) * side * side];
                assert_eq!(mask[n * lpts + k], if vis { 1.0 } else { 0.0 });
                if vis {
                    let (x, y) = ((p[0] / 4.0).floor() as usize, (p[1] / 4.0).floor() as usize);
                    assert_eq!(map[y * side + x], 1.0, "sample {n} point {k} at {p:?}");
                } else {
                    assert!(map.iter().all(|&v| v == 0.0));
                }
            }
        }
    }
}

#[test]
fn flips_need_a_known_permutation() {
    let dir = tempfile::tempdir().unwrap();
    write_split(dir.path(), "train", 2, 5, 4);
    let samples = load_split(dir.path(), "train", &PointSelection::All).unwrap();
    let mut p = pipeline(1);
    p.flip.p = 0.5;
    let err = Loader::new(
        samples.clone(),
        &train_spec(p.clone(), 1, 0),
        &hmreg::device::test_device(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("no known left/right permutation"),
        "{err}"
    );
    p.flip.permutation = Some(vec![1, 0, 2, 4, 3]);
    Loader::new(
        samples.clone(),
        &train_spec(p.clone(), 1, 0),
        &hmreg::device::test_device(),
    )
    .unwrap();
    // Five points chosen from 68-point files: [8, 30, 36, 45, 57] is closed under the mirror.
    p.flip.permutation = None;
    let sel = PointSelection::Indices(vec![8, 30, 36, 45, 57]);
    let spec = |selection: PointSelection| LoaderSpec {
        pipeline: p.clone(),
        target: rr_target(),
        batch_size: 1,
        mode: LoaderMode::Train,
        seed: 0,
        file_points: Some(FilePoints {
            count: 68,
            selection,
        }),
    };
    Loader::new(samples.clone(), &spec(sel), &hmreg::device::test_device()).unwrap();
    let sel = PointSelection::Indices(vec![8, 30, 36, 44, 57]);
    assert!(Loader::new(samples, &spec(sel), &hmreg::device::test_device()).is_err());
}
