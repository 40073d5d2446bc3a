//! `data check`: every problem kind is reported with its file (and line for text files), a clean
//! dataset is clean, and the command line maps results to exit codes 0 / 1 / 2.

use std::path::{Path, PathBuf};
use std::process::Command;

use hmreg::data::checks::lapa::{
    check_dataset, check_dataset_with, CheckOptions, CheckReport, ProblemKind,
};
use hmreg::data::PointSelection;

const W: u32 = 12;
const H: u32 = 10;

fn write_png(path: &Path) {
    let img = image::RgbImage::from_fn(W, H, |x, y| image::Rgb([x as u8 * 20, y as u8 * 20, 7]));
    img.save(path).unwrap();
}

fn write_jpeg(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    });
    img.save(path).unwrap();
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A clean dataset: train with a.png, b.png, c.jpg and val with d.png; 3 points per file.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for split in ["train", "val"] {
        std::fs::create_dir_all(r.join(split).join("images")).unwrap();
        std::fs::create_dir_all(r.join(split).join("landmarks")).unwrap();
        // LaPa's labels/ folder must be ignored.
        std::fs::create_dir_all(r.join(split).join("labels")).unwrap();
        write(&r.join(split).join("labels").join("x.png"), "not an image");
    }
    for stem in ["a", "b"] {
        write_png(&r.join(format!("train/images/{stem}.png")));
        write(
            &r.join(format!("train/landmarks/{stem}.txt")),
            "3\n1.5 2.5\n3 4\n5.25 6\n",
        );
    }
    write_jpeg(&r.join("train/images/c.jpg"), 40, 30);
    write(
        &r.join("train/landmarks/c.txt"),
        "3\r\n10 11  \r\n12 13\r\n14 15\r\n\r\n",
    );
    write_png(&r.join("val/images/d.png"));
    write(
        &r.join("val/landmarks/d.pts"),
        "version: 1\nn_points:  3\n{\n1 2\n3 4\n5 6\n}\n",
    );
    dir
}

fn only_problem(report: &CheckReport) -> &hmreg::data::Problem {
    assert_eq!(report.problems.len(), 1, "{}", report.to_text());
    &report.problems[0]
}

/// The problem names the file (in the struct and in the printed line) and the line if given.
fn assert_names(report: &CheckReport, kind: ProblemKind, path: &Path, line: Option<usize>) {
    let p = report
        .problems
        .iter()
        .find(|p| p.kind == kind && p.path == path && p.line == line)
        .unwrap_or_else(|| panic!("no {kind:?} for {}:\n{}", path.display(), report.to_text()));
    assert_eq!(p.line, line, "{p}");
    let printed = report.to_text();
    let expected = match line {
        Some(l) => format!("{}:{l}: ", path.display()),
        None => format!("{}: ", path.display()),
    };
    assert!(printed.contains(&expected), "{expected} not in\n{printed}");
    assert!(!report.is_clean());
}

#[test]
fn clean_fixture_is_clean_with_stats() {
    let d = fixture();
    let r = check_dataset(d.path());
    assert!(r.is_clean(), "{}", r.to_text());
    assert_eq!(r.point_count, Some(3));
    let train = &r.splits[0];
    assert_eq!(
        (train.split.as_str(), train.images, train.annotated),
        ("train", 3, 3)
    );
    assert_eq!(train.width, Some([W, 40]));
    assert_eq!(train.height, Some([H, 30]));
    assert_eq!(train.point_counts.get(&3), Some(&3));
    assert_eq!(r.splits[1].split, "val");
    assert_eq!(r.splits.len(), 2, "a missing split is not a problem");
    assert!(r.to_text().contains("clean"));
}

#[test]
fn image_without_landmarks() {
    let d = fixture();
    std::fs::remove_file(d.path().join("train/landmarks/b.txt")).unwrap();
    let r = check_dataset(d.path());
    assert_names(
        &r,
        ProblemKind::MissingLandmarks,
        &d.path().join("train/images/b.png"),
        None,
    );
    assert_eq!(only_problem(&r).kind, ProblemKind::MissingLandmarks);
    assert_eq!(r.splits[0].annotated, 2);
}

#[test]
fn landmarks_without_image() {
    let d = fixture();
    std::fs::remove_file(d.path().join("train/images/a.png")).unwrap();
    let r = check_dataset(d.path());
    assert_names(
        &r,
        ProblemKind::MissingImage,
        &d.path().join("train/landmarks/a.txt"),
        None,
    );
    only_problem(&r);
}

#[test]
fn unreadable_and_truncated_images() {
    let d = fixture();
    let a = d.path().join("train/images/a.png");
    write(&a, "this is not a png");
    let c = d.path().join("train/images/c.jpg");
    let bytes = std::fs::read(&c).unwrap();
    std::fs::write(&c, &bytes[..bytes.len() / 2]).unwrap();
    let b = d.path().join("train/images/b.png");
    let bytes = std::fs::read(&b).unwrap();
    std::fs::write(&b, &bytes[..bytes.len() - 20]).unwrap();
    let r = check_dataset(d.path());
    assert_names(&r, ProblemKind::BadImage, &a, None);
    assert_names(&r, ProblemKind::BadImage, &b, None);
    assert_names(&r, ProblemKind::BadImage, &c, None);
    let msg = &r.problems.iter().find(|p| p.path == c).unwrap().message;
    assert!(msg.contains("truncated"), "{msg}");
    assert_eq!(r.problems.len(), 3, "{}", r.to_text());
}

#[test]
fn count_line_disagrees() {
    let d = fixture();
    let f = d.path().join("train/landmarks/a.txt");
    write(&f, "4\n1 2\n3 4\n5 6\n");
    let r = check_dataset(d.path());
    assert_names(&r, ProblemKind::CountMismatch, &f, Some(1));
    assert!(only_problem(&r).message.contains("declares 4 points but 3"));
    // A missing count line is the same kind of problem.
    write(&f, "1 2\n3 4\n5 6\n");
    let r = check_dataset(d.path());
    assert_names(&r, ProblemKind::CountMismatch, &f, Some(1));
}

#[test]
fn non_numeric_nan_and_inf_values() {
    let d = fixture();
    let f = d.path().join("train/landmarks/a.txt");
    write(&f, "3\n1 2\nabc 4\n5 inf\n");
    let g = d.path().join("train/landmarks/b.txt");
    write(&g, "3\n1 NaN\n3 4\n5 6 7\n");
    let r = check_dataset(d.path());
    assert_names(&r, ProblemKind::BadValue, &f, Some(3));
    assert_names(&r, ProblemKind::BadValue, &f, Some(4));
    assert_names(&r, ProblemKind::BadValue, &g, Some(2));
    assert_names(&r, ProblemKind::BadValue, &g, Some(4));
    assert_eq!(r.problems.len(), 4, "{}", r.to_text());
    assert!(r.to_text().contains("x is not a number: \"abc\""));
}

#[test]
fn inconsistent_point_counts() {
    let d = fixture();
    let f = d.path().join("train/landmarks/b.txt");
    write(&f, "2\n1 2\n3 4\n");
    let r = check_dataset(d.path());
    assert_names(&r, ProblemKind::InconsistentCount, &f, Some(1));
    let p = only_problem(&r);
    assert!(
        p.message.contains("has 2 points, but 3 of 4"),
        "{}",
        p.message
    );
}

#[test]
fn empty_split_and_no_splits() {
    let d = fixture();
    let t = d.path().join("test");
    std::fs::create_dir_all(t.join("images")).unwrap();
    let r = check_dataset(d.path());
    assert_names(&r, ProblemKind::EmptySplit, &t, None);
    only_problem(&r);

    let e = tempfile::tempdir().unwrap();
    let r = check_dataset(e.path());
    assert_names(&r, ProblemKind::NoSplits, e.path(), None);
    // Pointing at a split folder instead of the root gets a hint.
    let r = check_dataset(&d.path().join("train"));
    assert!(only_problem(&r).message.contains("give its parent"));
}

#[test]
fn headers_only_reads_sizes_without_decoding() {
    let d = fixture();
    let c = d.path().join("train/images/c.jpg");
    let bytes = std::fs::read(&c).unwrap();
    std::fs::write(&c, &bytes[..bytes.len() - 40]).unwrap();
    let fast = CheckOptions {
        decode_images: false,
        ..Default::default()
    };
    let r = check_dataset_with(d.path(), &fast);
    assert!(r.is_clean(), "{}", r.to_text());
    assert_eq!(r.splits[0].width, Some([W, 40]));
    assert_names(&check_dataset(d.path()), ProblemKind::BadImage, &c, None);
}

#[test]
fn garbage_files_never_stop_the_report() {
    use rand::{Rng, SeedableRng};
    let d = fixture();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut garbage = Vec::new();
    for i in 0..40 {
        let n = rng.random_range(0..300);
        let mut bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        // Some start like real files so the parsers get further in.
        let prefix: &[u8] = match i % 4 {
            0 => &[0xFF, 0xD8, 0xFF, 0xE0],
            1 => b"\x89PNG\r\n\x1a\n",
            2 => b"3\n1 2\n",
            _ => b"version: 1\nn_points: 3\n{\n",
        };
        bytes.splice(0..0, prefix.iter().copied());
        let (sub, ext) = if i % 4 < 2 {
            ("images", "png")
        } else {
            ("landmarks", "txt")
        };
        let ext = if i % 4 == 3 { "pts" } else { ext };
        let p = d.path().join(format!("train/{sub}/g{i:02}.{ext}"));
        std::fs::write(&p, bytes).unwrap();
        garbage.push(p);
    }
    let r = check_dataset(d.path());
    for p in &garbage {
        assert!(
            r.problems.iter().any(|q| &q.path == p),
            "{} not reported",
            p.display()
        );
    }
    // The good files are still counted.
    assert_eq!(r.splits[0].annotated, 3, "{}", r.to_text());
}

#[test]
fn pts_next_to_txt_must_agree() {
    let d = fixture();
    let pts = d.path().join("train/landmarks/a.pts");
    write(
        &pts,
        "version: 1\nn_points: 3\n{\n1.5 2.5\n3 4\n5.25 6\n}\n",
    );
    let r = check_dataset(d.path());
    assert!(r.is_clean(), "{}", r.to_text());
    write(&pts, "version: 1\nn_points: 3\n{\n1.5 2.5\n3 4\n9 6\n}\n");
    let r = check_dataset(d.path());
    assert_names(&r, ProblemKind::FormatsDisagree, &pts, None);
    assert!(only_problem(&r).message.contains("point 2"));
}

#[test]
fn malformed_pts() {
    let d = fixture();
    let f = d.path().join("val/landmarks/d.pts");
    write(&f, "version: 1\nn_points: 3\n{\n1 2\n3 4\n");
    let r = check_dataset(d.path());
    // Line 6 is where the missing '}' should be; line 2 declares 3 points but 2 follow.
    assert_names(&r, ProblemKind::Malformed, &f, Some(6));
    assert_names(&r, ProblemKind::CountMismatch, &f, Some(2));
}

#[test]
fn unreadable_landmark_file() {
    let d = fixture();
    let f = d.path().join("train/landmarks/a.txt");
    std::fs::write(&f, [0xffu8, 0xfe, 0x00, 0x31]).unwrap();
    let r = check_dataset(d.path());
    assert_names(&r, ProblemKind::UnreadableLandmarks, &f, None);
}

#[test]
fn duplicate_stems() {
    let d = fixture();
    let dup = d.path().join("train/images/a.jpg");
    write_jpeg(&dup, 8, 8);
    let r = check_dataset(d.path());
    // Reported once, on the first of the sorted names, listing both.
    assert_names(&r, ProblemKind::DuplicateStem, &dup, None);
    assert!(only_problem(&r).message.contains("a.png"));
}

#[test]
fn points_outside_are_counted_not_problems() {
    let d = fixture();
    // x = W is just outside [0, W); y = -0.5 is above the image.
    write(
        &d.path().join("train/landmarks/a.txt"),
        &format!("3\n{W} 2\n3 -0.5\n1 1\n"),
    );
    let r = check_dataset(d.path());
    assert!(r.is_clean(), "{}", r.to_text());
    assert_eq!(r.splits[0].points_outside, 2);
    assert_eq!(r.splits[0].images_with_points_outside, 1);
}

#[test]
fn point_selection_is_validated() {
    let d = fixture();
    let opts = |s: &str| CheckOptions {
        selection: Some(s.parse::<PointSelection>().unwrap()),
        ..Default::default()
    };
    assert!(check_dataset_with(d.path(), &opts("2,0")).is_clean());
    let r = check_dataset_with(d.path(), &opts("0,3"));
    let p = only_problem(&r);
    assert_eq!(p.kind, ProblemKind::PointSelection);
    assert!(
        p.message.contains("point index 3 does not exist"),
        "{}",
        p.message
    );
}

#[test]
fn damaged_copy_reports_every_damage_and_the_rest() {
    let d = fixture();
    let r0 = d.path();
    std::fs::remove_file(r0.join("train/landmarks/b.txt")).unwrap();
    write(&r0.join("train/landmarks/a.txt"), "3\n1 2\n3 x\n5 6\n");
    write(&r0.join("train/landmarks/orphan.txt"), "3\n1 2\n3 4\n5 6\n");
    write(&r0.join("val/images/d.png"), "");
    std::fs::create_dir_all(r0.join("test")).unwrap();
    let r = check_dataset(r0);
    let kinds: Vec<ProblemKind> = r.problems.iter().map(|p| p.kind).collect();
    for k in [
        ProblemKind::MissingLandmarks,
        ProblemKind::BadValue,
        ProblemKind::MissingImage,
        ProblemKind::BadImage,
        ProblemKind::EmptySplit,
    ] {
        assert!(kinds.contains(&k), "{k:?} missing:\n{}", r.to_text());
    }
    assert_eq!(r.problems.len(), 5, "{}", r.to_text());
    // The good file c.jpg still counts as annotated.
    assert_eq!(r.splits[0].annotated, 1);
    // The JSON form carries the same problems with path and line.
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["clean"], false);
    assert_eq!(v["problems"].as_array().unwrap().len(), 5);
    assert!(v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["line"] == 3 && p["kind"] == "bad_value"));
}

fn hmreg(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hmreg"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn cli_exit_codes_and_json() {
    let d = fixture();
    let root = s(d.path());
    let (code, out, _) = hmreg(&["data", "check", &root]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("train") && out.contains("3 images"), "{out}");

    let (code, out, _) = hmreg(&["data", "check", &root, "--points", "0,1"]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = hmreg(&["data", "check", &root, "--points", "0,x"]);
    assert_eq!(code, 2, "{err}");
    let missing: PathBuf = d.path().join("nope");
    let (code, _, err) = hmreg(&["data", "check", &s(&missing)]);
    assert_eq!(code, 2);
    assert!(err.contains("nope"), "{err}");

    let bad = d.path().join("train/landmarks/a.txt");
    write(&bad, "3\n1 2\n3 4\n");
    let (code, out, _) = hmreg(&["data", "check", &root]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!("{}:1: declares 3 points but 2", s(&bad))),
        "{out}"
    );
    let (code, out, _) = hmreg(&["data", "check", &root, "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["problems"][0]["path"], s(&bad));
    assert_eq!(v["problems"][0]["line"], 1);
    assert_eq!(v["problems"][0]["kind"], "count_mismatch");
    assert_eq!(v["splits"][0]["images"], 3);
}

#[test]
fn cli_checks_every_source_of_a_mixed_run() {
    let (a, b) = (fixture(), fixture());
    let (code, out, _) = hmreg(&["data", "check", &s(a.path()), &s(b.path())]);
    assert_eq!(code, 0, "{out}");
    let bad = b.path().join("train/landmarks/a.txt");
    write(&bad, "3\n1 2\n3 4\n");
    let (code, out, err) = hmreg(&["data", "check", &s(a.path()), &s(b.path())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&s(&bad)), "{out}");
    assert!(
        err.contains(&s(b.path())) && !err.contains(&s(a.path())),
        "{err}"
    );
    let (code, out, _) = hmreg(&["data", "check", &s(a.path()), &s(b.path()), "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["clean"], true);
    assert_eq!(v[1]["clean"], false);
}

#[path = "common/exif.rs"]
mod exif;

/// A phone-style orientation tag (JPEG APP1 Exif or PNG eXIf) is a warning for its file, decoding
/// or reading headers only: the dataset stays clean (exit 0), since its annotations may well be
/// in the stored frame. The stored size is what the report counts: the loader keeps stored pixels.
#[test]
fn exif_orientation_is_reported_by_file() {
    let d = fixture();
    let jpg = d.path().join("train/images/c.jpg");
    let stored = image::open(&jpg).unwrap().to_rgb8();
    std::fs::write(&jpg, exif::jpeg_with_orientation(&stored, 6)).unwrap();
    let png = d.path().join("val/images/d.png");
    let stored_png = image::open(&png).unwrap().to_rgb8();
    std::fs::write(&png, exif::png_with_orientation(&stored_png, 3)).unwrap();
    for decode_images in [true, false] {
        let opts = CheckOptions {
            decode_images,
            ..Default::default()
        };
        let r = check_dataset_with(d.path(), &opts);
        let warned: Vec<_> = r
            .warnings
            .iter()
            .map(|w| (w.kind, w.path.clone()))
            .collect();
        assert_eq!(
            warned,
            [
                (ProblemKind::ExifOrientation, jpg.clone()),
                (ProblemKind::ExifOrientation, png.clone())
            ],
            "{}",
            r.to_text()
        );
        assert!(r.problems.is_empty() && r.is_clean(), "{}", r.to_text());
        assert!(
            r.to_text().contains("EXIF orientation 6"),
            "{}",
            r.to_text()
        );
        assert_eq!(r.splits[0].width, Some([W, 40]), "stored width, not turned");
        assert_eq!(r.splits[0].annotated, 3);
    }
    assert_eq!(hmreg::data::read_rgb(&jpg).unwrap().dimensions(), (40, 30));
    let (code, out, _) = hmreg(&["data", "check", &s(d.path())]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("warning: {}: EXIF orientation 6", s(&jpg))),
        "{out}"
    );
}
