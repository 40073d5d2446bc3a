//! A tiny run's TensorBoard event files, read by a decoder written here from the formats alone
//! (TFRecord framing with masked CRC-32C, protobuf wire format): the scalars equal
//! `metrics.jsonl`, the faces picture is a PNG of the size the summary states, and a resumed run
//! logs no step twice.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use hmreg::run::history::{read_jsonl, METRICS_JSONL};
use hmreg::train::tb_log::{epoch_scalars, FACES, STEP_LOSS};
use hmreg::train::train;

fn masked(b: &[u8]) -> u32 {
    crc32c::crc32c(b).rotate_right(15).wrapping_add(0xa282_ead8)
}

fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = &bytes[at..at + 8];
        let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(masked(len), crc, "length CRC at byte {at}");
        let n = u64::from_le_bytes(len.try_into().unwrap()) as usize;
        let data = &bytes[at + 12..at + 12 + n];
        let crc = u32::from_le_bytes(bytes[at + 12 + n..at + 16 + n].try_into().unwrap());
        assert_eq!(masked(data), crc, "data CRC at byte {at}");
        out.push(data.to_vec());
        at += 16 + n;
    }
    out
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[*at];
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

/// Protobuf fields: (number, wire type, varint value or fixed bits, length-delimited bytes).
fn fields(b: &[u8]) -> Vec<(u64, u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = varint(b, &mut at);
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, 0, varint(b, &mut at), vec![])),
            1 => {
                let v = u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
                at += 8;
                out.push((num, 1, v, vec![]));
            }
            2 => {
                let n = varint(b, &mut at) as usize;
                out.push((num, 2, 0, b[at..at + n].to_vec()));
                at += n;
            }
            5 => {
                let v = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as u64;
                at += 4;
                out.push((num, 5, v, vec![]));
            }
            w => panic!("wire type {w}"),
        }
    }
    out
}

#[derive(Default)]
struct Logged {
    /// (tag, step) -> scalar, counting how often each was written.
    scalars: BTreeMap<(String, i64), Vec<f32>>,
    /// (step, height, width, PNG bytes).
    images: Vec<(i64, i32, i32, Vec<u8>)>,
}

fn read_dir(dir: &Path) -> Logged {
    let mut logged = Logged::default();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("tfevents"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        for rec in records(&std::fs::read(&f).unwrap()) {
            let ev = fields(&rec);
            let step = ev.iter().find(|f| f.0 == 2).map_or(0, |f| f.2 as i64);
            for summary in ev.iter().filter(|f| f.0 == 5) {
                for value in fields(&summary.3).iter().filter(|f| f.0 == 1) {
                    let v = fields(&value.3);
                    let tag =
                        String::from_utf8(v.iter().find(|f| f.0 == 1).unwrap().3.clone()).unwrap();
                    if let Some(s) = v.iter().find(|f| f.0 == 2) {
                        let x = f32::from_bits(s.2 as u32);
                        logged.scalars.entry((tag, step)).or_default().push(x);
                    } else if let Some(img) = v.iter().find(|f| f.0 == 4) {
                        assert_eq!(tag, FACES);
                        let im = fields(&img.3);
                        let get = |n| im.iter().find(|f| f.0 == n).unwrap();
                        logged.images.push((
                            step,
                            get(1).2 as i32,
                            get(2).2 as i32,
                            get(4).3.clone(),
                        ));
                    }
                }
            }
        }
    }
    logged
}

#[test]
fn event_files_hold_the_metrics_pictures_and_no_step_twice() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let mut cfg = common::tiny_config(&data.path().join("faces"), 3, 7);
    cfg.logging.every_steps = 1;
    cfg.logging.image_faces = 2;
    let mut opts = common::quiet(&run);
    opts.stop_after_epochs = Some(1);
    train(cfg.clone(), &opts).unwrap();
    opts.stop_after_epochs = None;
    opts.resume = true;
    train(cfg, &opts).unwrap();

    let logged = read_dir(&run.join("tb"));
    for (key, values) in &logged.scalars {
        assert_eq!(values.len(), 1, "{key:?} logged {} times", values.len());
    }
    let records = read_jsonl(&run.join(METRICS_JSONL)).unwrap();
    assert_eq!(records.len(), 2);
    for r in &records {
        for (tag, v) in epoch_scalars(r) {
            let got = logged.scalars.get(&(tag.clone(), r.epoch as i64));
            assert_eq!(got, Some(&vec![v as f32]), "{tag} at epoch {}", r.epoch);
        }
    }
    // Two batches of 4 out of 8 items per epoch, every step logged once.
    let steps: Vec<i64> = logged
        .scalars
        .keys()
        .filter(|k| k.0 == STEP_LOSS)
        .map(|k| k.1)
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
    let epochs: Vec<i64> = logged.images.iter().map(|i| i.0).collect();
    assert_eq!(epochs, vec![1, 2]);
    for (_, h, w, png) in &logged.images {
        let img = image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap();
        assert_eq!((img.width() as i32, img.height() as i32), (*w, *h));
        // Three columns of 160-pixel cells (target, prediction, heatmaps), one row per face.
        assert!(*w > 3 * 160 && *w < 3 * 200, "{w}");
        assert!(*h > 2 * 160 && *h < 2 * 220, "{h}");
    }
}
