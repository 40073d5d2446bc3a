//! An event file being written: one new file per sitting in a run's `tb/` directory, buffered,
//! flushed (and synced) when asked. Opened over a directory that already holds event files (a
//! resumed run), it skips every value whose step its tag has already logged, so the files
//! together never hold a step twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use image::RgbImage;
use prost::Message;

use super::proto::{self, Event, Summary, Value};
use super::reader::last_steps;
use super::record::write_record;
use crate::{Error, Result};

pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Highest step written so far under each tag, this sitting's and earlier ones'.
    last: BTreeMap<String, i64>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EventWriter {
    /// Starts a new event file in `dir` (created if needed), after the steps its earlier files
    /// logged.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e.to_string()))?;
        let last = last_steps(dir)?;
        let wall = now();
        // TensorBoard's own pattern (`events.out.tfevents.<seconds>.<host>`), with the process
        // and a counter so that two sittings in one second get files of their own.
        let mut n = 0u32;
        let (path, file) = loop {
            let path = dir.join(format!(
                "events.out.tfevents.{:010}.hmreg.{}.{n}",
                wall as u64,
                std::process::id()
            ));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(Error::file(&path, e.to_string())),
            }
        };
        let mut w = EventWriter {
            path,
            out: BufWriter::new(file),
            last,
        };
        w.write_event(&Event {
            wall_time: wall,
            step: 0,
            file_version: Some(proto::FILE_VERSION.into()),
            summary: None,
        })?;
        w.flush()?;
        Ok(w)
    }

    /// The file this sitting writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `tag` has not logged `step` or a later step yet.
    pub fn is_new(&self, tag: &str, step: i64) -> bool {
        self.last.get(tag).is_none_or(|&s| step > s)
    }

    /// A scalar (TensorBoard keeps 32-bit floats).
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) -> Result<()> {
        self.value(
            step,
            Value {
                tag: tag.into(),
                simple_value: Some(value as f32),
                ..Default::default()
            },
        )
    }

    /// A picture, PNG-encoded.
    pub fn image(&mut self, tag: &str, step: i64, img: &RgbImage) -> Result<()> {
        if !self.is_new(tag, step) {
            return Ok(());
        }
        let png = crate::viz::png::encode_png(img).map_err(|msg| Error::file(&self.path, msg))?;
        self.value(
            step,
            Value {
                tag: tag.into(),
                image: Some(proto::Image {
                    height: img.height() as i32,
                    width: img.width() as i32,
                    colorspace: proto::COLORSPACE_RGB,
                    encoded_image_string: png,
                }),
                ..Default::default()
            },
        )
    }

    /// Markdown text (TensorBoard's text plugin: a string tensor of one element).
    pub fn text(&mut self, tag: &str, step: i64, markdown: &str) -> Result<()> {
        self.value(
            step,
            Value {
                tag: tag.into(),
                tensor: Some(proto::TensorProto {
                    dtype: proto::DT_STRING,
                    tensor_shape: Some(proto::TensorShape {
                        dim: vec![proto::Dim { size: 1 }],
                    }),
                    string_val: vec![markdown.as_bytes().to_vec()],
                }),
                metadata: Some(proto::SummaryMetadata {
                    plugin_data: Some(proto::PluginData {
                        plugin_name: proto::TEXT_PLUGIN.into(),
                        content: Vec::new(),
                    }),
                }),
                ..Default::default()
            },
        )
    }

    /// Buffered data to the file and the file to disk: what a kill after this leaves readable.
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .and_then(|_| self.out.get_ref().sync_data())
            .map_err(|e| Error::file(&self.path, e.to_string()))
    }

    fn value(&mut self, step: i64, value: Value) -> Result<()> {
        if !self.is_new(&value.tag, step) {
            return Ok(());
        }
        self.last.insert(value.tag.clone(), step);
        self.write_event(&Event {
            wall_time: now(),
            step,
            file_version: None,
            summary: Some(Summary { value: vec![value] }),
        })
    }

    fn write_event(&mut self, ev: &Event) -> Result<()> {
        write_record(&mut self.out, &ev.encode_to_vec())
            .map_err(|e| Error::file(&self.path, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensorboard::reader::{event_files, read_events};

    #[test]
    fn a_second_sitting_skips_logged_steps() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::open(dir.path()).unwrap();
        for step in 1..=3 {
            w.scalar("loss", step, step as f64).unwrap();
        }
        w.text("config", 0, "a = 1").unwrap();
        drop(w);
        let mut w = EventWriter::open(dir.path()).unwrap();
        for step in 2..=5 {
            w.scalar("loss", step, 10.0 * step as f64).unwrap();
        }
        w.text("config", 0, "a = 1").unwrap();
        w.flush().unwrap();
        let files = event_files(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let mut seen = Vec::new();
        for f in &files {
            let evs = read_events(f).unwrap();
            assert_eq!(evs[0].file_version.as_deref(), Some(proto::FILE_VERSION));
            for ev in &evs {
                for v in ev.summary.iter().flat_map(|s| &s.value) {
                    seen.push((v.tag.clone(), ev.step, v.simple_value));
                }
            }
        }
        let loss: Vec<(i64, Option<f32>)> = seen
            .iter()
            .filter(|s| s.0 == "loss")
            .map(|s| (s.1, s.2))
            .collect();
        assert_eq!(
            loss,
            vec![
                (1, Some(1.0)),
                (2, Some(2.0)),
                (3, Some(3.0)),
                (4, Some(40.0)),
                (5, Some(50.0))
            ]
        );
        assert_eq!(seen.iter().filter(|s| s.0 == "config").count(), 1);
    }
}
