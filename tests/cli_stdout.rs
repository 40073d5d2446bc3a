//! A reader that stops early (`hmreg ... | head -1`) ends the command quietly: exit 0 and
//! nothing on stderr, where `println!` used to panic ("failed printing to stdout: Broken pipe",
//! exit 101). Each command here prints more than a pipe holds (64 KiB), so the write after the
//! reader has gone is certain to meet the closed pipe.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::hmreg;

/// Runs `cmd`, reads one line of its stdout, closes the pipe and waits: (exit code, stderr).
fn first_line_then_close(mut cmd: Command) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader (and with it the pipe's read end) is dropped here.
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        first,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn predict_json_into_a_closed_pipe_exits_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    // 12 images x 68 points of pretty JSON: about 120 KB.
    for i in 0..12u32 {
        image::RgbImage::from_fn(40, 40, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 6) as u8, (i * 20) as u8])
        })
        .save(tmp.path().join(format!("{i:02}.png")))
        .unwrap();
    }
    let mut cmd = hmreg();
    cmd.args(["predict", "--json", "--no-detect"])
        .arg(tmp.path());
    let (code, first, stderr) = first_line_then_close(cmd);
    assert_eq!(first, "{\n");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn a_long_text_report_into_a_closed_pipe_exits_quietly() {
    // HRNet-18's layer table as JSON: about 125 KB.
    let mut cmd = hmreg();
    cmd.args(["summary", "--arch", "hrnet18", "--json"]);
    let (code, first, stderr) = first_line_then_close(cmd);
    assert_eq!(first, "{\n");
    assert_eq!(stderr, "");
    assert_eq!(code, Some(0));
}
