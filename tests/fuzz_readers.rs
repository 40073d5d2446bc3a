//! Hostile bytes: every reader of a user's files is fed mutations of a valid file (cuts, bit
//! flips, overwritten and inserted bytes, random bytes) and hand-made files whose headers claim
//! absurd counts. Each must return `Ok` or an error naming the file; a panic (caught with
//! `catch_unwind`), a hang or an allocation of what a header claims fails the test (the absurd
//! cases claim terabytes, so an allocation attempt would abort the process).
//!
//! Bounded for the suite (64 cases per reader unless `PROPTEST_CASES` says otherwise); a longer
//! campaign: `PROPTEST_CASES=20000 cargo test --release --test fuzz_readers`.

use std::io::{Cursor, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use hmreg::data::checks::coco::check_coco;
use hmreg::data::checks::lapa::CheckOptions;
use hmreg::data::sources::coco::{load_coco, validate};
use hmreg::data::sources::image_io::{image_header, read_rgb, read_rgb_upright, verify_image};
use hmreg::data::sources::landmarks::{parse_landmark_file, read_landmarks};
use hmreg::data::PointSelection;
use hmreg::models::pretrained::read_weights;
use hmreg::models::{load_pretrained, ParamGroup, ParamKind, ParamStore};
use hmreg::run::checkpoint::{self, TrainState};
use hmreg::run::TrainConfig;
use hmreg::tensorboard::reader::read_events;
use hmreg::tensorboard::record::write_record;
use proptest::prelude::*;

/// Cases per reader: `PROPTEST_CASES` when set (the long campaign), else `default`.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        // The inputs are rebuilt from seeds each run; a regressions file would only go stale.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One change to a file's bytes; positions are fractions of the length so they stay in range.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(f64),
    FlipBits(Vec<(f64, u8)>),
    Overwrite(f64, Vec<u8>),
    Insert(f64, Vec<u8>),
    /// Digits of a huge or odd number written over the bytes at a position (counts in headers).
    Number(f64, &'static str),
    Random(Vec<u8>),
}

const ODD_NUMBERS: [&str; 8] = [
    "1000000000000",
    "18446744073709551615",
    "-1",
    "0",
    "4294967296",
    "1e308",
    "nan",
    "9999999999999999999999",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = 0.0..1.0f64;
    prop_oneof![
        at.clone().prop_map(Mutation::Truncate),
        prop::collection::vec((at.clone(), 0..8u8), 1..8).prop_map(Mutation::FlipBits),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(a, b)| Mutation::Overwrite(a, b)),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
        (at, prop::sample::select(ODD_NUMBERS.to_vec())).prop_map(|(a, n)| Mutation::Number(a, n)),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Mutation::Random),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

fn apply(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let pos = |b: &Vec<u8>, f: f64| ((b.len() as f64) * f) as usize;
    for m in muts {
        match m {
            Mutation::Truncate(f) => {
                let at = pos(&b, *f);
                b.truncate(at);
            }
            Mutation::FlipBits(flips) => {
                for (f, bit) in flips {
                    let at = pos(&b, *f);
                    if let Some(x) = b.get_mut(at) {
                        *x ^= 1 << bit;
                    }
                }
            }
            Mutation::Overwrite(f, bytes) | Mutation::Insert(f, bytes) => {
                let at = pos(&b, *f).min(b.len());
                if matches!(m, Mutation::Insert(..)) {
                    b.splice(at..at, bytes.iter().copied());
                } else {
                    let end = (at + bytes.len()).min(b.len());
                    b.splice(at..end, bytes.iter().copied());
                }
            }
            Mutation::Number(f, digits) => {
                let at = pos(&b, *f).min(b.len());
                let end = (at + digits.len()).min(b.len());
                b.splice(at..end, digits.bytes());
            }
            Mutation::Random(bytes) => b = bytes.clone(),
        }
    }
    b
}

/// Runs a reader; a panic fails, an error must name `names` (the file, or one of the files, it
/// was reading). Returns whether it succeeded.
fn survives<T>(names: &[&str], read: impl FnOnce() -> hmreg::Result<T>) -> bool {
    match catch_unwind(AssertUnwindSafe(read)) {
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("reader panicked: {msg}");
        }
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            let e = e.to_string();
            assert!(
                names.iter().any(|n| e.contains(n)),
                "error does not name {names:?}: {e}"
            );
            false
        }
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------- landmarks

fn txt_seed() -> Vec<u8> {
    let pts: Vec<[f32; 2]> = (0..68)
        .map(|i| [i as f32 * 1.5, 200.0 - i as f32])
        .collect();
    hmreg::data::sources::landmarks::format_landmarks_txt(&pts).into_bytes()
}

fn pts_seed() -> Vec<u8> {
    let mut s = String::from("version: 1\nn_points: 68\n{\n");
    for i in 0..68 {
        s.push_str(&format!("{}.25 {}.5\n", i * 3, 100 + i));
    }
    s.push_str("}\n");
    s.into_bytes()
}

fn check_landmarks(bytes: &[u8], name: &str) {
    let dir = tmp();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    survives(&[name], || read_landmarks(&p));
    survives(&[name], || parse_landmark_file(&p));
}

proptest! {
    #![proptest_config(config(128))]
    #[test]
    fn landmark_txt_mutations(muts in mutations()) {
        check_landmarks(&apply(&txt_seed(), &muts), "face.txt");
    }

    #[test]
    fn landmark_pts_mutations(muts in mutations()) {
        check_landmarks(&apply(&pts_seed(), &muts), "face.pts");
    }
}

#[test]
fn landmark_files_claiming_a_trillion_points_are_refused() {
    let dir = tmp();
    for (name, text) in [
        ("a.pts", "version: 1\nn_points: 1000000000000\n{\n1 2\n}\n"),
        ("b.txt", "1000000000000\n1 2\n"),
        (
            "c.pts",
            "version: 1\nn_points: 99999999999999999999999\n{\n1 2\n}\n",
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        assert!(
            !survives(&[name], || read_landmarks(&p)),
            "{name} was accepted"
        );
    }
}

// ---------------------------------------------------------------- images

fn png_seed() -> Vec<u8> {
    let img = image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77]));
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Png)
        .unwrap();
    buf
}

fn jpeg_seed() -> Vec<u8> {
    let img = image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77]));
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Jpeg)
        .unwrap();
    buf
}

fn check_image(bytes: &[u8], name: &str) {
    let dir = tmp();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    survives(&[name], || read_rgb(&p));
    survives(&[name], || read_rgb_upright(&p));
    survives(&[name], || image_header(&p));
    survives(&[name], || verify_image(&p));
}

proptest! {
    #![proptest_config(config(96))]
    #[test]
    fn png_mutations(muts in mutations()) {
        check_image(&apply(&png_seed(), &muts), "photo.png");
    }

    #[test]
    fn jpeg_mutations(muts in mutations()) {
        check_image(&apply(&jpeg_seed(), &muts), "photo.jpg");
    }
}

/// CRC-32 (IEEE) as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG whose IHDR claims `w` x `h` (with a correct CRC) over the seed's pixel data.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut b = png_seed();
    // Signature (8), length (4), "IHDR" (4), then width and height.
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A JPEG whose SOF0 frame header claims `w` x `h`.
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut b = jpeg_seed();
    let sof = b
        .windows(2)
        .position(|x| x == [0xFF, 0xC0])
        .expect("baseline JPEG has SOF0");
    // FF C0, length (2), precision (1), height (2), width (2).
    b[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    b[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    b
}

#[test]
fn image_headers_claiming_huge_sizes_are_refused_naming_the_file() {
    let dir = tmp();
    let cases = [
        ("wide.png", png_claiming(100_000, 100_000)),
        ("tall.png", png_claiming(1, 0x7fff_ffff)),
        ("zero.png", png_claiming(0, 16)),
        ("big.jpg", jpeg_claiming(65_000, 65_000)),
        ("zero.jpg", jpeg_claiming(0, 16)),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        assert!(!survives(&[name], || read_rgb(&p)), "{name} decoded");
        assert!(
            !survives(&[name], || read_rgb_upright(&p)),
            "{name} decoded"
        );
        assert!(!survives(&[name], || verify_image(&p)), "{name} decoded");
        survives(&[name], || image_header(&p));
    }
    let p = dir.path().join("wide.png");
    let e = read_rgb(&p).unwrap_err().to_string();
    assert!(e.contains("100000x100000"), "{e}");
}

// ---------------------------------------------------------------- COCO

fn coco_seed() -> Vec<u8> {
    let kp: Vec<f32> = (0..5)
        .flat_map(|i| [3.0 + i as f32, 4.0 + i as f32, 2.0])
        .collect();
    let doc = serde_json::json!({
        "images": [{"id": 1, "file_name": "a.png", "width": 24, "height": 16},
                   {"id": 2, "file_name": "b.png"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "keypoints": kp, "num_keypoints": 5,
             "bbox": [1, 1, 10, 10]},
            {"id": 11, "image_id": 2, "category_id": 1, "keypoints": kp, "bbox": [0, 0, 8, 8]}],
        "categories": [{"id": 1, "name": "face",
                        "keypoints": ["a", "b", "c", "d", "e"], "skeleton": [[1, 2], [2, 3]]}],
    });
    serde_json::to_vec_pretty(&doc).unwrap()
}

fn check_coco_bytes(bytes: &[u8]) {
    let dir = tmp();
    std::fs::write(dir.path().join("a.png"), png_seed()).unwrap();
    std::fs::write(dir.path().join("b.png"), png_seed()).unwrap();
    let p = dir.path().join("train.json");
    std::fs::write(&p, bytes).unwrap();
    survives(&["train.json"], || validate(&p));
    survives(&["train.json", ".png"], || {
        load_coco(&p, &PointSelection::All)
    });
    let sel = PointSelection::from_indices(vec![0, 4]).unwrap();
    survives(&["train.json", ".png"], || load_coco(&p, &sel));
    catch_unwind(AssertUnwindSafe(|| {
        check_coco(&p, &CheckOptions::default())
    }))
    .expect("check_coco panicked");
}

proptest! {
    #![proptest_config(config(128))]
    #[test]
    fn coco_mutations(muts in mutations()) {
        check_coco_bytes(&apply(&coco_seed(), &muts));
    }
}

// ---------------------------------------------------------------- TOML configs

fn config_seed() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.toml")).unwrap()
}

proptest! {
    #![proptest_config(config(128))]
    #[test]
    fn config_mutations(muts in mutations()) {
        let dir = tmp();
        let p = dir.path().join("run.toml");
        std::fs::write(&p, apply(&config_seed(), &muts)).unwrap();
        // Reading and parsing errors name the file; a value refused by validation names its key
        // (`checkpoint.keep_last must be ...`), as it may come from a command-line override.
        survives(&["run.toml"], || {
            let cfg = TrainConfig::load(&p)?;
            // `check` runs the validation, the derived keys and the codec's refusals.
            let checked = cfg.check();
            match checked {
                Err(hmreg::Error::Config(msg)) => {
                    assert!(!msg.is_empty());
                    Ok(())
                }
                other => other,
            }
        });
    }
}

// ---------------------------------------------------------------- safetensors and .pth

fn small_store() -> ParamStore {
    let dev = hmreg::device::test_device();
    let mut s = ParamStore::new(&dev, 0);
    let w = Tensor::arange(0f32, 24.0, &dev)
        .unwrap()
        .reshape((2, 3, 2, 2))
        .unwrap();
    let b = Tensor::from_slice(&[0.5f32, -1.0], 2, &dev).unwrap();
    s.add("conv1.weight", w, ParamGroup::Encoder, ParamKind::Weight)
        .unwrap();
    s.add("bn1.bias", b, ParamGroup::Encoder, ParamKind::Weight)
        .unwrap();
    s
}

fn safetensors_seed() -> Vec<u8> {
    let dir = tmp();
    let p = dir.path().join("w.safetensors");
    small_store().save_safetensors(&p).unwrap();
    std::fs::read(p).unwrap()
}

fn check_weights(bytes: &[u8], name: &str) {
    let dir = tmp();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    let store = small_store();
    survives(&[name], || read_weights(&p));
    survives(&[name], || load_pretrained(&store, &p));
    survives(&[name], || store.load_safetensors(&p));
}

proptest! {
    #![proptest_config(config(128))]
    #[test]
    fn safetensors_mutations(muts in mutations()) {
        check_weights(&apply(&safetensors_seed(), &muts), "weights.safetensors");
    }

    #[test]
    fn pth_mutations(muts in mutations(), nested in any::<bool>()) {
        let name = if nested { "resnet18_thin_subset_nested.pth" } else { "resnet18_thin_subset.pth" };
        let seed = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap();
        check_weights(&apply(&seed, &muts), "model.pth");
    }
}

/// A safetensors file of one tensor with the given header fields (`data` follows the header).
fn safetensors_with(header: &str, header_len: Option<u64>, data: &[u8]) -> Vec<u8> {
    let mut b = header_len
        .unwrap_or(header.len() as u64)
        .to_le_bytes()
        .to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn safetensors_headers_claiming_absurd_sizes_are_refused() {
    let ok = r#"{"conv1.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let cases = [
        (
            "len60.safetensors",
            safetensors_with(ok, Some(1 << 60), &[0; 8]),
        ),
        (
            "lenmax.safetensors",
            safetensors_with(ok, Some(u64::MAX), &[0; 8]),
        ),
        (
            "overflow.safetensors",
            safetensors_with(
                r#"{"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
                None,
                &[0; 8],
            ),
        ),
        (
            "trillion.safetensors",
            safetensors_with(
                r#"{"t":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4000000000000]}}"#,
                None,
                &[0; 8],
            ),
        ),
        (
            "f4.safetensors",
            safetensors_with(
                r#"{"bn1.bias":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#,
                None,
                &[0; 1],
            ),
        ),
        (
            "f8.safetensors",
            safetensors_with(
                r#"{"bn1.bias":{"dtype":"F8_E8M0","shape":[2],"data_offsets":[0,2]}}"#,
                None,
                &[0; 2],
            ),
        ),
    ];
    let dir = tmp();
    for (name, bytes) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let store = small_store();
        let before = store.named_tensors()[1].1.to_vec1::<f32>().unwrap();
        let loaded = survives(&[name], || store.load_safetensors(&p));
        survives(&[name], || read_weights(&p));
        if name.starts_with('f') {
            // Sub-byte float types cannot become f32: refused, and nothing changed.
            assert!(!loaded, "{name} was loaded");
            assert_eq!(store.named_tensors()[1].1.to_vec1::<f32>().unwrap(), before);
        } else {
            assert!(!loaded, "{name} was loaded");
        }
    }
}

// Pickle opcodes (protocol 2) used to build hostile `data.pkl` files.
const PROTO2: [u8; 2] = [0x80, 2];
const STOP: u8 = b'.';

fn pickle_str(s: &str) -> Vec<u8> {
    let mut b = vec![b'X'];
    b.extend_from_slice(&(s.len() as u32).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
    b
}

fn pickle_global(module: &str, name: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n").into_bytes()
}

fn pickle_int(i: i32) -> Vec<u8> {
    let mut b = vec![b'J'];
    b.extend_from_slice(&i.to_le_bytes());
    b
}

/// `{name: _rebuild_tensor_v2(storage, offset, size, stride)}` with the given pieces.
fn pickle_tensor_dict(
    name: &str,
    size: &[i32],
    stride: &[i32],
    offset: i32,
    storage: i32,
) -> Vec<u8> {
    let mut b = PROTO2.to_vec();
    b.push(b'}');
    b.extend(pickle_str(name));
    b.extend(pickle_global("torch._utils", "_rebuild_tensor_v2"));
    b.push(b'(');
    // Persistent id: ('storage', FloatStorage, key, 'cpu', numel).
    b.push(b'(');
    b.extend(pickle_str("storage"));
    b.extend(pickle_global("torch", "FloatStorage"));
    b.extend(pickle_str("0"));
    b.extend(pickle_str("cpu"));
    b.extend(pickle_int(storage));
    b.push(b't');
    b.push(b'Q');
    b.extend(pickle_int(offset));
    b.push(b'(');
    for &d in size {
        b.extend(pickle_int(d));
    }
    b.push(b't');
    b.push(b'(');
    for &d in stride {
        b.extend(pickle_int(d));
    }
    b.push(b't');
    b.push(b't');
    b.push(b'R');
    b.push(b's');
    b.push(STOP);
    b
}

/// A torch-style zip: `archive/data.pkl` and `archive/data/0` holding `storage`.
fn pth_zip(pickle: &[u8], storage: &[u8]) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", opts).unwrap();
        z.write_all(pickle).unwrap();
        z.start_file("archive/data/0", opts).unwrap();
        z.write_all(storage).unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn a_valid_hand_made_pth_is_read() {
    let dir = tmp();
    let p = dir.path().join("ok.pth");
    let data: Vec<u8> = [0.5f32, -1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(
        &p,
        pth_zip(&pickle_tensor_dict("bn1.bias", &[2], &[1], 0, 2), &data),
    )
    .unwrap();
    let w = read_weights(&p).unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].1.to_vec1::<f32>().unwrap(), vec![0.5, -1.0]);
}

#[test]
fn hostile_pickles_are_refused_naming_the_file() {
    let data = vec![0u8; 64];
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        // A tensor of 10^12 floats over a 64-byte storage.
        (
            "trillion.pth",
            pickle_tensor_dict("t", &[1_000_000, 1_000_000], &[1_000_000, 1], 0, 16),
        ),
        // Storage that claims the elements but whose entry is 64 bytes.
        (
            "storage.pth",
            pickle_tensor_dict("t", &[1 << 30], &[1], 0, 1 << 30),
        ),
        // A shape whose product overflows usize.
        (
            "overflow.pth",
            pickle_tensor_dict(
                "t",
                &[i32::MAX, i32::MAX, i32::MAX, 8],
                &[1, 1, 1, 1],
                0,
                16,
            ),
        ),
        ("negative.pth", pickle_tensor_dict("t", &[4], &[1], -3, 16)),
        ("rank.pth", pickle_tensor_dict("t", &[2, 2], &[1], 0, 16)),
        (
            "strided.pth",
            pickle_tensor_dict("t", &[2, 2], &[5, 7], 0, 16),
        ),
    ];
    // A string opcode claiming 4 GB.
    let mut huge = PROTO2.to_vec();
    huge.extend_from_slice(&[b'X', 0xff, 0xff, 0xff, 0xff, b'a']);
    cases.push(("string.pth", huge));
    // Memo doubling: L = [L, L] forty times asks for 2^40 objects.
    let mut bomb = PROTO2.to_vec();
    bomb.extend_from_slice(&[b']', b'q', 0]);
    for _ in 0..40 {
        bomb.extend_from_slice(&[b']', b'h', 0, b'a', b'h', 0, b'a', b'q', 0]);
    }
    bomb.push(STOP);
    cases.push(("bomb.pth", bomb));
    // Nesting 200000 deep (dropping it recursively would overflow the stack).
    let mut deep = PROTO2.to_vec();
    deep.extend(std::iter::repeat_n(b']', 200_000));
    deep.extend(std::iter::repeat_n(b'a', 199_999));
    deep.push(STOP);
    cases.push(("deep.pth", deep));
    // LONG1 of 200 bytes (Candle's shift would overflow).
    let mut long = PROTO2.to_vec();
    long.extend_from_slice(&[0x8a, 200]);
    long.extend(std::iter::repeat_n(1u8, 200));
    long.push(STOP);
    cases.push(("long.pth", long));
    // A tensor rebuild with too few arguments (Candle's `Vec::remove` would panic).
    let mut short = PROTO2.to_vec();
    short.push(b'}');
    short.extend(pickle_str("t"));
    short.extend(pickle_global("torch._utils", "_rebuild_tensor_v2"));
    short.extend_from_slice(&[b'(', b'N', b't', b'R', b's', STOP]);
    cases.push(("short.pth", short));
    let mut short2 = PROTO2.to_vec();
    short2.push(b'}');
    short2.extend(pickle_str("t"));
    short2.extend(pickle_global("torch._tensor", "_rebuild_from_type_v2"));
    short2.extend_from_slice(&[b'(', b'N', b't', b'R', b's', STOP]);
    cases.push(("short2.pth", short2));
    cases.push(("empty.pth", Vec::new()));
    cases.push(("nostop.pth", PROTO2.to_vec()));
    let dir = tmp();
    for (name, pickle) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, pth_zip(&pickle, &data)).unwrap();
        assert!(!survives(&[name], || read_weights(&p)), "{name} was read");
    }
}

/// Pickle opcodes Candle knows, with random operands: the guarded machine never panics.
fn pickle_program() -> impl Strategy<Value = Vec<u8>> {
    let op = prop_oneof![
        Just(vec![b'}']),
        Just(vec![b']']),
        Just(vec![b')']),
        Just(vec![b'(']),
        Just(vec![b'N']),
        Just(vec![0x88]),
        Just(vec![b'a']),
        Just(vec![b'e']),
        Just(vec![b's']),
        Just(vec![b'u']),
        Just(vec![b't']),
        Just(vec![0x85]),
        Just(vec![0x86]),
        Just(vec![0x87]),
        Just(vec![b'R']),
        Just(vec![b'b']),
        Just(vec![b'Q']),
        Just(vec![0x81]),
        Just(pickle_global("torch._utils", "_rebuild_tensor_v2")),
        Just(pickle_global("torch._utils", "_rebuild_parameter")),
        Just(pickle_global("torch._tensor", "_rebuild_from_type_v2")),
        Just(pickle_global("torch", "FloatStorage")),
        Just(pickle_global("collections", "OrderedDict")),
        any::<u8>().prop_map(|m| vec![b'q', m % 4]),
        any::<u8>().prop_map(|m| vec![b'h', m % 4]),
        any::<i32>().prop_map(pickle_int),
        any::<u8>().prop_map(|v| vec![b'K', v]),
        "[a-z0-9]{0,6}".prop_map(|s| pickle_str(&s)),
        (0..12u8, any::<u64>()).prop_map(|(n, v)| {
            let mut b = vec![0x8a, n];
            b.extend(v.to_le_bytes().iter().cycle().take(n as usize));
            b
        }),
        prop::collection::vec(any::<u8>(), 1..6),
    ];
    prop::collection::vec(op, 0..80).prop_map(|ops| {
        let mut b = PROTO2.to_vec();
        b.extend(ops.into_iter().flatten());
        b.push(STOP);
        b
    })
}

proptest! {
    #![proptest_config(config(256))]
    #[test]
    fn random_pickle_programs(pickle in pickle_program()) {
        let dir = tmp();
        let p = dir.path().join("prog.pth");
        std::fs::write(&p, pth_zip(&pickle, &[0u8; 64])).unwrap();
        survives(&["prog.pth"], || read_weights(&p));
    }

    #[test]
    fn mutated_tensor_pickles(muts in mutations()) {
        let dir = tmp();
        let p = dir.path().join("t.pth");
        let pickle = apply(&pickle_tensor_dict("bn1.bias", &[2], &[1], 0, 2), &muts);
        std::fs::write(&p, pth_zip(&pickle, &[0u8; 8])).unwrap();
        let store = small_store();
        survives(&["t.pth"], || load_pretrained(&store, &p));
    }
}

// ---------------------------------------------------------------- checkpoints, state, events

/// A weights-only checkpoint of [`small_store`] under `root`.
fn checkpoint_dir(root: &Path) -> PathBuf {
    checkpoint::write(root, &small_store(), None, &TrainState::default()).unwrap()
}

/// Rewrites the manifest entry of `name` to match its (mutated) content, so that the reader
/// behind the manifest check is what gets tested.
fn refresh_manifest(dir: &Path, name: &str) {
    let mut m = checkpoint::read_manifest(dir).unwrap();
    let (bytes, hash) = checkpoint::fnv1a64_file(&dir.join(name)).unwrap();
    for f in &mut m.files {
        if f.name == name {
            f.bytes = bytes;
            f.fnv1a64 = format!("{hash:016x}");
        }
    }
    let text = serde_json::to_vec_pretty(&m).unwrap();
    std::fs::write(dir.join(checkpoint::MANIFEST_FILE), text).unwrap();
}

fn check_checkpoint_file(name: &str, muts: &[Mutation], refresh: bool) {
    let root = tmp();
    let dir = checkpoint_dir(root.path());
    let p = dir.join(name);
    let seed = std::fs::read(&p).unwrap();
    std::fs::write(&p, apply(&seed, muts)).unwrap();
    if refresh {
        refresh_manifest(&dir, name);
    }
    // A changed manifest may make another file of the checkpoint fail its check: any of them.
    let names = [
        name,
        checkpoint::MANIFEST_FILE,
        checkpoint::STATE_FILE,
        checkpoint::MODEL_FILE,
    ];
    survives(&names, || checkpoint::read_state(&dir));
    let store = small_store();
    survives(&names, || checkpoint::load(&dir, &store, None));
    survives(&names, || checkpoint::latest(root.path()));
}

proptest! {
    #![proptest_config(config(64))]
    #[test]
    fn state_json_mutations(muts in mutations()) {
        check_checkpoint_file(checkpoint::STATE_FILE, &muts, true);
    }

    #[test]
    fn checkpoint_model_mutations(muts in mutations(), refresh in any::<bool>()) {
        check_checkpoint_file(checkpoint::MODEL_FILE, &muts, refresh);
    }

    #[test]
    fn manifest_mutations(muts in mutations()) {
        check_checkpoint_file(checkpoint::MANIFEST_FILE, &muts, false);
    }

    #[test]
    fn best_json_mutations(muts in mutations()) {
        let root = tmp();
        let best = checkpoint::Best {
            tag: "epoch-0001".into(),
            epoch: 1,
            metric: "nmae".parse().unwrap(),
            value: 0.25,
        };
        checkpoint::write_best(root.path(), &best).unwrap();
        let p = root.path().join(checkpoint::BEST_FILE);
        let seed = std::fs::read(&p).unwrap();
        std::fs::write(&p, apply(&seed, &muts)).unwrap();
        survives(&[checkpoint::BEST_FILE], || checkpoint::read_best(root.path()));
    }

    #[test]
    fn history_mutations(muts in mutations()) {
        let dir = tmp();
        let p = dir.path().join("metrics.jsonl");
        let seed = concat!(
            r#"{"epoch":1,"frozen":false,"train_loss":0.5,"valid_loss":0.4,"metrics":{"nmae":0.1},"lr":0.001,"images":8,"seconds":1.0}"#,
            "\n",
            r#"{"epoch":2,"frozen":false,"train_loss":"NaN","valid_loss":0.3,"metrics":{},"lr":0.001,"images":8,"seconds":1.0}"#,
            "\n"
        );
        std::fs::write(&p, apply(seed.as_bytes(), &muts)).unwrap();
        survives(&["metrics.jsonl"], || hmreg::run::history::read_jsonl(&p));
    }

    #[test]
    fn tensorboard_event_mutations(muts in mutations()) {
        let dir = tmp();
        let p = dir.path().join("events.out.tfevents.1.host");
        let mut seed = Vec::new();
        for payload in [&b"\x10\x01"[..], b"\x10\x02\x2a\x00", b"\x09\0\0\0\0\0\0\xf0\x3f"] {
            write_record(&mut seed, payload).unwrap();
        }
        std::fs::write(&p, apply(&seed, &muts)).unwrap();
        survives(&["tfevents"], || read_events(&p));
    }
}

#[test]
fn an_event_record_claiming_2_to_the_64_bytes_is_not_read_past_the_end() {
    let dir = tmp();
    let p = dir.path().join("events.out.tfevents.2.host");
    // A length whose masked CRC matches, so only the bounds check stands in the way.
    let mut bytes = Vec::new();
    for len in [u64::MAX - 11, u64::MAX - 13, 1 << 60] {
        let len = len.to_le_bytes();
        bytes.clear();
        bytes.extend_from_slice(&len);
        bytes.extend_from_slice(&hmreg::tensorboard::record::masked_crc(&len).to_le_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        std::fs::write(&p, &bytes).unwrap();
        survives(&["tfevents"], || read_events(&p));
    }
}
