//! The synthetic face generator: byte-identical output per seed, a clean LaPa-layout dataset,
//! landmarks with iBUG-68 meaning, and landmarks sitting on visible features.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hmreg::data::checks::lapa::check_dataset;
use hmreg::data::synthesis::generate::{generate, synth_sample, SynthConfig};
use hmreg::data::{load_split, read_landmarks, read_rgb, PointSelection};

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn small(seed: u64) -> SynthConfig {
    SynthConfig {
        train: 6,
        val: 3,
        test: 2,
        size: 96,
        seed,
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_images() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(a.path(), &small(7)).unwrap();
    generate(b.path(), &small(7)).unwrap();
    generate(c.path(), &small(8)).unwrap();
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    // 11 images + 11 landmark files + synth.json.
    assert_eq!(fa.len(), 23);
    assert!(fa.contains_key(Path::new("train/images/train_00005.jpg")));
    assert!(fa.contains_key(Path::new("test/landmarks/test_00001.txt")));
    assert_eq!(fa, fb, "same seed must give byte-identical files");
    let differing = fa
        .iter()
        .filter(|(k, v)| k.extension().is_some_and(|e| e == "jpg") && fc.get(*k) != Some(v))
        .count();
    assert_eq!(differing, 11, "another seed must give other images");
    // Every image differs from every other one within a dataset.
    let imgs: Vec<&Vec<u8>> = fa
        .iter()
        .filter(|(k, _)| k.extension().is_some_and(|e| e == "jpg"))
        .map(|(_, v)| v)
        .collect();
    for i in 0..imgs.len() {
        for j in i + 1..imgs.len() {
            assert_ne!(imgs[i], imgs[j]);
        }
    }
}

#[test]
fn synth_then_check_is_clean_and_loads() {
    let d = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        train: 20,
        val: 5,
        test: 0,
        size: 128,
        seed: 3,
    };
    generate(d.path(), &cfg).unwrap();
    let r = check_dataset(d.path());
    assert!(r.is_clean(), "{}", r.to_text());
    assert_eq!(r.point_count, Some(68));
    assert_eq!(r.splits.len(), 2, "a split with 0 images is not created");
    assert_eq!((r.splits[0].images, r.splits[0].annotated), (20, 20));
    assert_eq!(r.splits[0].width, Some([128, 128]));
    assert_eq!(r.splits[0].points_outside, 0);
    let sel: PointSelection = "8,30,36,45,57".parse().unwrap();
    let s = load_split(d.path(), "val", &sel).unwrap();
    assert_eq!(s.len(), 5);
    let full = read_landmarks(&s[0].landmarks_path).unwrap();
    assert_eq!(s[0].points.xy[2], full[36]);
    // The files hold exactly what the generator drew.
    assert_eq!(full, synth_sample(&cfg, "val", 0).points);
    let cfg_back: SynthConfig =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("synth.json")).unwrap())
            .unwrap();
    assert_eq!(cfg_back, cfg);
}

const FLIP_PAIRS: [(usize, usize); 29] = [
    (0, 16),
    (1, 15),
    (2, 14),
    (3, 13),
    (4, 12),
    (5, 11),
    (6, 10),
    (7, 9),
    (17, 26),
    (18, 25),
    (19, 24),
    (20, 23),
    (21, 22),
    (31, 35),
    (32, 34),
    (36, 45),
    (37, 44),
    (38, 43),
    (39, 42),
    (40, 47),
    (41, 46),
    (48, 54),
    (49, 53),
    (50, 52),
    (59, 55),
    (58, 56),
    (60, 64),
    (61, 63),
    (67, 65),
];

/// Coordinates in the face's own upright frame: x along the outer eye corners 36 -> 45,
/// y perpendicular to it (down the face).
fn upright(p: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let (a, b) = (p[36], p[45]);
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let n = (dx * dx + dy * dy).sqrt();
    let (ux, uy) = (dx / n, dy / n);
    p.iter()
        .map(|q| {
            let (x, y) = (q[0] - a[0], q[1] - a[1]);
            [x * ux + y * uy, -x * uy + y * ux]
        })
        .collect()
}

#[test]
fn landmarks_have_ibug68_meaning() {
    let cfg = SynthConfig {
        size: 128,
        ..Default::default()
    };
    let mut tips = Vec::new();
    let mut iods = Vec::new();
    for i in 0..60 {
        let pts = synth_sample(&cfg, "train", i).points;
        tips.push(pts[30]);
        assert_eq!(pts.len(), 68);
        // Rotations stay within +-30 degrees, so the image-left side is the face's right side.
        for (l, r) in [
            (0, 16),
            (17, 26),
            (36, 45),
            (39, 42),
            (31, 35),
            (48, 54),
            (60, 64),
        ] {
            assert!(
                pts[l][0] < pts[r][0],
                "image {i}: {l} should be left of {r}"
            );
        }
        let u = upright(&pts);
        // Every left/right pair of /work/shared/data/README.md (the flip permutation), written
        // here image-left first, lies on its own side of the face's own frame.
        for (l, r) in FLIP_PAIRS {
            assert!(
                u[l][0] < u[r][0],
                "image {i}: pair {l}-{r} on the wrong sides"
            );
        }
        let y = |k: usize| u[k][1];
        let mean_y = |r: std::ops::Range<usize>| r.clone().map(y).sum::<f32>() / r.len() as f32;
        assert!(mean_y(17..27) < mean_y(36..48), "brows above eyes");
        assert!(mean_y(36..48) < y(30), "eyes above the nose tip");
        assert!(
            y(27) < y(30) && y(30) < y(33),
            "bridge runs down to the base"
        );
        assert!(y(33) < y(51) && y(51) <= y(62) && y(62) <= y(66) && y(66) < y(57));
        assert!(y(57) < y(8), "chin below the mouth");
        // Upper lids above lower lids, in both eyes.
        for (up, lo) in [(37, 41), (38, 40), (43, 47), (44, 46)] {
            assert!(y(up) < y(lo), "image {i}: {up} over {lo}");
        }
        // Inter-ocular distance is a sensible fraction of the image.
        let iod = u[45][0];
        assert!(
            iod > 0.1 * 128.0 && iod < 0.5 * 128.0,
            "image {i}: iod {iod}"
        );
        iods.push(iod);
    }
    // Faces move and change size: a model has to find them.
    let spread = |v: Vec<f32>| {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
    };
    assert!(spread(tips.iter().map(|p| p[0]).collect()) > 6.0);
    assert!(spread(tips.iter().map(|p| p[1]).collect()) > 6.0);
    assert!(spread(iods.clone()) > 3.0, "{iods:?}");
}

fn luma(img: &image::RgbImage, x: i64, y: i64) -> Option<f32> {
    if x < 0 || y < 0 || x >= img.width() as i64 || y >= img.height() as i64 {
        return None;
    }
    let p = img.get_pixel(x as u32, y as u32).0;
    Some(0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
}

/// Largest minus smallest luminance in the 5x5 window around a point: high on edges and strokes.
fn local_contrast(img: &image::RgbImage, p: [f32; 2]) -> f32 {
    let (cx, cy) = (p[0].round() as i64, p[1].round() as i64);
    let mut lo = f32::MAX;
    let mut hi = f32::MIN;
    for dy in -2..=2 {
        for dx in -2..=2 {
            if let Some(v) = luma(img, cx + dx, cy + dy) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    (hi - lo).max(0.0)
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
fn landmarks_sit_on_visible_features() {
    let d = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        train: 40,
        val: 0,
        test: 0,
        size: 160,
        seed: 11,
    };
    generate(d.path(), &cfg).unwrap();
    let groups = [
        ("jaw", 0..17),
        ("brows", 17..27),
        ("nose", 27..36),
        ("eyes", 36..48),
        ("mouth", 48..68),
    ];
    let mut by_group: Vec<Vec<f32>> = vec![Vec::new(); groups.len()];
    let mut random = Vec::new();
    let mut lcg = 12345u64;
    for s in load_split(d.path(), "train", &PointSelection::All).unwrap() {
        let img = read_rgb(&s.image_path).unwrap();
        for (g, (_, r)) in groups.iter().enumerate() {
            for k in r.clone() {
                by_group[g].push(local_contrast(&img, s.points.xy[k]));
            }
        }
        for _ in 0..68 {
            lcg = lcg
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = (lcg >> 33) % 160;
            let y = (lcg >> 17) % 160;
            random.push(local_contrast(&img, [x as f32, y as f32]));
        }
    }
    let base = median(random);
    for (g, (name, _)) in groups.iter().enumerate() {
        let m = median(by_group[g].clone());
        eprintln!("{name}: median local contrast {m:.1} (random pixels {base:.1})");
        assert!(
            m > 2.5 * base && m > 25.0,
            "{name}: landmarks not on visible features ({m:.1} vs random {base:.1})"
        );
    }
}

fn hmreg(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hmreg"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_synth_refuses_to_mix_with_old_files() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("set");
    let o = out.display().to_string();
    let args = [
        "data", "synth", "--out", &o, "--train", "3", "--val", "1", "--test", "0", "--size", "64",
    ];
    let (code, err) = hmreg(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_dir(out.join("train/images")).unwrap().count(),
        3
    );
    let (code, err) = hmreg(&args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--force"), "{err}");
    let mut forced = args.to_vec();
    forced[5] = "2";
    forced.push("--force");
    let (code, err) = hmreg(&forced);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_dir(out.join("train/images")).unwrap().count(),
        2
    );
    let (code, _) = hmreg(&["data", "synth", "--out", &o, "--size", "8", "--force"]);
    assert_eq!(code, 2);
    let (code, _) = hmreg(&["data", "synth"]);
    assert_eq!(code, 2);
}

#[test]
fn damaged_synthetic_copy_reports_each_damage() {
    use hmreg::data::ProblemKind as K;
    let d = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        train: 8,
        val: 2,
        test: 0,
        size: 64,
        seed: 1,
    };
    generate(d.path(), &cfg).unwrap();
    let t = d.path().join("train");
    let lm = |i: usize| t.join(format!("landmarks/train_{i:05}.txt"));
    let im = |i: usize| t.join(format!("images/train_{i:05}.jpg"));
    // 0: truncated image; 1: landmarks deleted; 2: image deleted; 3: NaN on point 5 (line 7);
    // 4: count line says 67; 5: one point line dropped and the count fixed (inconsistent count).
    let bytes = std::fs::read(im(0)).unwrap();
    std::fs::write(im(0), &bytes[..bytes.len() * 3 / 4]).unwrap();
    std::fs::remove_file(lm(1)).unwrap();
    std::fs::remove_file(im(2)).unwrap();
    let edit = |i: usize, f: &dyn Fn(&mut Vec<String>)| {
        let mut lines: Vec<String> = std::fs::read_to_string(lm(i))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        f(&mut lines);
        std::fs::write(lm(i), lines.join("\n") + "\n").unwrap();
    };
    edit(3, &|l| l[6] = "12.5 NaN".into());
    edit(4, &|l| l[0] = "67".into());
    edit(5, &|l| {
        l.pop();
        l[0] = "67".into();
    });
    let r = check_dataset(d.path());
    let expect = [
        (im(0), None, K::BadImage),
        (im(1), None, K::MissingLandmarks),
        (lm(2), None, K::MissingImage),
        (lm(3), Some(7), K::BadValue),
        (lm(4), Some(1), K::CountMismatch),
        (lm(5), Some(1), K::InconsistentCount),
    ];
    for (path, line, kind) in &expect {
        assert!(
            r.problems
                .iter()
                .any(|p| &p.path == path && p.line == *line && p.kind == *kind),
            "{kind:?} at {}:{line:?} missing:\n{}",
            path.display(),
            r.to_text()
        );
    }
    assert_eq!(r.problems.len(), expect.len(), "{}", r.to_text());
    assert_eq!(r.splits[0].annotated, 8 - 4);
}
