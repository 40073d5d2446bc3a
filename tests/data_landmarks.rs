//! Landmark files in both formats, point selection, and the strict split loader.

use std::path::Path;

use hmreg::data::sources::landmarks::{parse_landmarks, write_landmarks_pts, LandmarkFormat};
use hmreg::data::{
    load_split, present_splits, read_landmarks, write_landmarks_txt, PointSelection,
};
use hmreg::Error;
use proptest::prelude::*;

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// Asserts an `Error::Parse` at `line` of `path` whose message contains `needle`.
fn assert_parse_error(e: Error, path: &Path, line: usize, needle: &str) {
    let text = e.to_string();
    match e {
        Error::Parse {
            path: p,
            line: l,
            msg,
        } => {
            assert_eq!((p.as_path(), l), (path, line), "{text}");
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            assert!(text.starts_with(&format!("{}:{line}: ", path.display())));
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn txt_format_as_lapa_writes_it() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("a.txt");
    write(&f, "3\n406.0000 644.0000\n402.0000 682.0000\n1e2 -3.5\n");
    assert_eq!(
        read_landmarks(&f).unwrap(),
        vec![[406.0, 644.0], [402.0, 682.0], [100.0, -3.5]]
    );
    // CRLF, trailing blanks, tabs and a final blank line are accepted.
    write(&f, "2\r\n 1\t2 \r\n3 4\r\n\r\n");
    assert_eq!(read_landmarks(&f).unwrap(), vec![[1.0, 2.0], [3.0, 4.0]]);
}

#[test]
fn pts_format_as_300w_writes_it() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("a.pts");
    write(
        &f,
        "version: 1\r\nn_points:  3\r\n{\r\n307.5 481\r\n309 520.25\r\n1 1\r\n}\r\n",
    );
    // 300-W coordinates count from 1 and are kept exactly as written.
    assert_eq!(
        read_landmarks(&f).unwrap(),
        vec![[307.5, 481.0], [309.0, 520.25], [1.0, 1.0]]
    );
    let g = d.path().join("b.PTS");
    write_landmarks_pts(&g, &[[1.25, 2.0], [3.0, 4.5]]).unwrap();
    assert_eq!(read_landmarks(&g).unwrap(), vec![[1.25, 2.0], [3.0, 4.5]]);
}

#[test]
fn bad_lines_name_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("a.txt");
    write(&f, "3\n1 2\n3 four\n5 6\n");
    assert_parse_error(read_landmarks(&f).unwrap_err(), &f, 3, "y is not a number");
    write(&f, "3\n1 2\n3 4\n");
    assert_parse_error(
        read_landmarks(&f).unwrap_err(),
        &f,
        1,
        "declares 3 points but 2",
    );
    write(&f, "2\n1 2\n\n3 4\n");
    assert_parse_error(read_landmarks(&f).unwrap_err(), &f, 3, "empty line");
    write(&f, "1\n-inf 2\n");
    assert_parse_error(read_landmarks(&f).unwrap_err(), &f, 2, "not finite");
    write(&f, "");
    assert_parse_error(read_landmarks(&f).unwrap_err(), &f, 1, "empty file");
    let p = d.path().join("a.pts");
    write(&p, "version: 1\nn_points: 2\n{\n1 2\n3 4\n}\n5 6\n");
    assert_parse_error(read_landmarks(&p).unwrap_err(), &p, 7, "after the closing");
    write(&p, "version: 1\nn_points: two\n{\n1 2\n}\n");
    assert_parse_error(read_landmarks(&p).unwrap_err(), &p, 2, "whole number");
    // A missing file is an error naming it.
    let missing = d.path().join("missing.txt");
    let e = read_landmarks(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.txt"), "{e}");
}

#[test]
fn txt_write_read_round_trip_is_bit_exact() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("r.txt");
    let pts = vec![[0.1f32, 255.999_98], [1.0 / 3.0, 1e-6], [-0.0, 12345.678]];
    write_landmarks_txt(&f, &pts).unwrap();
    assert_eq!(read_landmarks(&f).unwrap(), pts);
    assert!(write_landmarks_txt(&f, &[[f32::NAN, 0.0]]).is_err());
}

#[test]
fn point_selection_picks_in_the_given_order() {
    let pts: Vec<[f32; 2]> = (0..106).map(|i| [i as f32, -(i as f32)]).collect();
    let p = Path::new("x.txt");
    let sel: PointSelection = "30,40,50,60,70".parse().unwrap();
    assert_eq!(sel.count(106), 5);
    assert_eq!(sel.apply(&pts, p).unwrap()[4], [70.0, -70.0]);
    let rev: PointSelection = "70, 8".parse().unwrap();
    assert_eq!(
        rev.apply(&pts, p).unwrap(),
        vec![[70.0, -70.0], [8.0, -8.0]]
    );
    assert_eq!(rev.indices(106), vec![70, 8]);
    let all: PointSelection = "all".parse().unwrap();
    assert_eq!(all, PointSelection::default());
    assert_eq!(all.count(68), 68);
    assert_eq!(all.apply(&pts, p).unwrap(), pts);
    assert_eq!(all.indices(3), vec![0, 1, 2]);
    // Validated against the file's count, naming the file.
    let e = sel
        .apply(&pts[..68], Path::new("f/a.txt"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("f/a.txt: point index 70 does not exist"),
        "{e}"
    );
    assert_eq!(sel.to_string(), "30,40,50,60,70");
    // Config files: a string or a list.
    #[derive(serde::Deserialize)]
    struct C {
        points: PointSelection,
    }
    let c: C = toml::from_str("points = [30, 40]").unwrap();
    assert_eq!(c.points, PointSelection::Indices(vec![30, 40]));
    let c: C = toml::from_str("points = \"all\"").unwrap();
    assert_eq!(c.points, PointSelection::All);
    assert!(toml::from_str::<C>("points = \"30,x\"").is_err());
}

fn dataset() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    for (split, stems) in [("train", &["b", "a", "c"][..]), ("test", &["z"][..])] {
        for (k, stem) in stems.iter().enumerate() {
            let img = image::RgbImage::new(8, 6);
            let ip = r.join(split).join("images").join(format!("{stem}.png"));
            std::fs::create_dir_all(ip.parent().unwrap()).unwrap();
            img.save(&ip).unwrap();
            let pts: Vec<[f32; 2]> = (0..4).map(|i| [k as f32 + i as f32, 1.0]).collect();
            let lp = r.join(split).join("landmarks");
            std::fs::create_dir_all(&lp).unwrap();
            if *stem == "c" {
                write_landmarks_pts(&lp.join("c.pts"), &pts).unwrap();
            } else {
                write_landmarks_txt(&lp.join(format!("{stem}.txt")), &pts).unwrap();
            }
        }
    }
    d
}

#[test]
fn load_split_is_sorted_selected_and_mixes_formats() {
    let d = dataset();
    assert_eq!(present_splits(d.path()), vec!["train", "test"]);
    let sel: PointSelection = "3,0".parse().unwrap();
    let s = load_split(d.path(), "train", &sel).unwrap();
    let stems: Vec<&str> = s.iter().map(|s| s.stem.as_str()).collect();
    assert_eq!(stems, vec!["a", "b", "c"]);
    // "b" was written second (k = 0 for b, 1 for a, 2 for c).
    assert_eq!(s[1].points.xy, vec![[3.0, 1.0], [0.0, 1.0]]);
    assert_eq!(s[0].points.xy, vec![[4.0, 1.0], [1.0, 1.0]]);
    assert!(s[2].landmarks_path.ends_with("c.pts"));
    assert!(s[0].image_path.ends_with("train/images/a.png"));
    assert_eq!(s[0].points.visible, vec![true, true]);
    let e = load_split(d.path(), "val", &sel).unwrap_err().to_string();
    assert!(e.contains("val") && e.contains("not found"), "{e}");
}

#[test]
fn load_split_stops_at_the_first_problem_naming_it() {
    let d = dataset();
    let r = d.path();
    let all = PointSelection::All;
    std::fs::remove_file(r.join("train/landmarks/b.txt")).unwrap();
    let e = load_split(r, "train", &all).unwrap_err().to_string();
    assert!(
        e.contains("train/images/b.png") && e.contains("without landmarks"),
        "{e}"
    );

    write(&r.join("train/landmarks/b.txt"), "4\n0 1\n1 1\n2 1\n3 zz\n");
    let e = load_split(r, "train", &all).unwrap_err();
    assert_parse_error(e, &r.join("train/landmarks/b.txt"), 5, "not a number");

    write(&r.join("train/landmarks/b.txt"), "3\n0 1\n1 1\n2 1\n");
    let e = load_split(r, "train", &all).unwrap_err().to_string();
    assert!(
        e.contains("b.txt: has 3 points but") && e.contains("a.txt has 4"),
        "{e}"
    );

    write(&r.join("train/landmarks/b.txt"), "4\n0 1\n1 1\n2 1\n3 1\n");
    write(&r.join("train/landmarks/d.txt"), "4\n0 1\n1 1\n2 1\n3 1\n");
    let e = load_split(r, "train", &all).unwrap_err().to_string();
    assert!(e.contains("d.txt") && e.contains("without an image"), "{e}");
    std::fs::remove_file(r.join("train/landmarks/d.txt")).unwrap();

    let e = load_split(r, "train", &"4".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("a.txt: point index 4 does not exist"), "{e}");
    assert_eq!(load_split(r, "train", &all).unwrap().len(), 3);

    std::fs::create_dir_all(r.join("val/images")).unwrap();
    let e = load_split(r, "val", &all).unwrap_err().to_string();
    assert!(e.contains("no images"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Parsing never panics, and a file accepted as clean reads back exactly what a writer put in.
    #[test]
    fn parsing_never_panics(text in "[0-9a-z .:{}\\-\r\n\t]{0,200}", pts in prop::bool::ANY) {
        let fmt = if pts { LandmarkFormat::Pts } else { LandmarkFormat::Txt };
        let p = parse_landmarks(&text, fmt);
        if p.is_ok() {
            prop_assert_eq!(Some(p.points.len()), p.declared);
        }
        for prob in &p.problems {
            prop_assert!(prob.line >= 1);
        }
    }

    #[test]
    fn written_points_read_back(v in prop::collection::vec((-1e4f32..1e4, -1e4f32..1e4), 0..50)) {
        let pts: Vec<[f32; 2]> = v.into_iter().map(|(x, y)| [x, y]).collect();
        let text = hmreg::data::sources::landmarks::format_landmarks_txt(&pts);
        let p = parse_landmarks(&text, LandmarkFormat::Txt);
        prop_assert!(p.is_ok());
        prop_assert_eq!(p.points, pts);
    }
}
