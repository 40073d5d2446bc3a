//! Landmark files: LaPa `.txt` (count line, then `x y` lines) and iBUG/300-W `.pts`
//! (`version: 1`, `n_points: N`, `{`, `x y` lines, `}`).
//!
//! Parsing collects every problem of a file with its 1-based line, so `data check` can list them
//! all; [`read_landmarks`] turns the first one into an error. Real files come with CRLF line ends,
//! trailing whitespace, a UTF-8 byte order mark and blank lines at the end: all of these are
//! accepted. Coordinates are kept exactly as written (300-W counts pixels from 1; we do not shift).

use std::fmt::Write as _;
use std::path::Path;

use crate::{Error, Result};

/// The two landmark file formats, chosen by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LandmarkFormat {
    /// LaPa: first line the point count, then one `x y` line per point.
    Txt,
    /// iBUG / 300-W: `version: 1`, `n_points: N`, `{`, points, `}`.
    Pts,
}

impl LandmarkFormat {
    /// The format for a path's extension (case-insensitive), `None` if it is not a landmark file.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "txt" => Some(LandmarkFormat::Txt),
            "pts" => Some(LandmarkFormat::Pts),
            _ => None,
        }
    }
}

/// What a problem in a landmark file is about; `data check` groups problems by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineProblemKind {
    /// The declared point count disagrees with the point lines that follow (or is missing).
    CountMismatch,
    /// A value is not a number, or is NaN or infinite, or a line has the wrong number of values.
    BadValue,
    /// The file structure is wrong (bad header, missing braces, text after the end).
    Malformed,
}

/// One problem in a landmark file, at a 1-based line.
#[derive(Clone, Debug, PartialEq)]
pub struct LineProblem {
    pub line: usize,
    pub kind: LineProblemKind,
    pub msg: String,
}

/// The result of parsing a landmark file: the points that could be read and every problem found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedLandmarks {
    pub points: Vec<[f32; 2]>,
    /// The count the file declares (first line of `.txt`, `n_points` of `.pts`), if readable.
    pub declared: Option<usize>,
    pub problems: Vec<LineProblem>,
}

impl ParsedLandmarks {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, line: usize, kind: LineProblemKind, msg: impl Into<String>) {
        self.problems.push(LineProblem {
            line,
            kind,
            msg: msg.into(),
        });
    }
}

/// Reads a `.txt` or `.pts` landmark file (chosen by extension; anything else is read as `.txt`).
/// The first problem becomes `Error::Parse` naming the file and line.
pub fn read_landmarks(path: &Path) -> Result<Vec<[f32; 2]>> {
    let parsed = parse_landmark_file(path)?;
    match parsed.problems.into_iter().next() {
        None => Ok(parsed.points),
        Some(p) => Err(Error::parse(path, p.line, p.msg)),
    }
}

/// Reads and parses a landmark file, collecting all line problems. `Err` only when the file cannot
/// be read at all or is not text.
pub fn parse_landmark_file(path: &Path) -> Result<ParsedLandmarks> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Error::file(
            path,
            format!(
                "not a text file (invalid UTF-8 at byte {})",
                e.valid_up_to()
            ),
        )
    })?;
    let format = LandmarkFormat::from_path(path).unwrap_or(LandmarkFormat::Txt);
    Ok(parse_landmarks(text, format))
}

/// Parses landmark text in the given format.
pub fn parse_landmarks(text: &str, format: LandmarkFormat) -> ParsedLandmarks {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // `lines()` drops the '\n' and a '\r' before it; trimming also removes trailing blanks.
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // Blank lines at the end are harmless (editors add them); blank lines inside are reported.
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let lines = &lines[..end];
    match format {
        LandmarkFormat::Txt => parse_txt(lines),
        LandmarkFormat::Pts => parse_pts(lines),
    }
}

fn parse_txt(lines: &[&str]) -> ParsedLandmarks {
    let mut out = ParsedLandmarks::default();
    let Some(first) = lines.first() else {
        out.problem(
            1,
            LineProblemKind::CountMismatch,
            "empty file: expected the point count on the first line",
        );
        return out;
    };
    match first.parse::<usize>() {
        Ok(n) => out.declared = Some(n),
        Err(_) => out.problem(
            1,
            LineProblemKind::CountMismatch,
            format!("expected the point count (a whole number), found {first:?}"),
        ),
    }
    let body = &lines[1..];
    let n_lines = parse_point_lines(body, 2, &mut out);
    if let Some(n) = out.declared {
        if n != n_lines {
            out.problem(
                1,
                LineProblemKind::CountMismatch,
                format!("declares {n} points but {n_lines} point lines follow"),
            );
        }
    }
    out.problems.sort_by_key(|p| p.line);
    out
}

fn parse_pts(lines: &[&str]) -> ParsedLandmarks {
    let mut out = ParsedLandmarks::default();
    let Some(open) = lines.iter().position(|l| *l == "{") else {
        out.problem(
            lines.len().max(1),
            LineProblemKind::Malformed,
            "no '{' line: not a .pts file (expected `version: 1`, `n_points: N`, `{`)",
        );
        return out;
    };
    for (i, l) in lines[..open].iter().enumerate() {
        let line = i + 1;
        if l.is_empty() {
            continue;
        }
        let Some((key, value)) = l.split_once(':') else {
            out.problem(
                line,
                LineProblemKind::Malformed,
                format!("expected a `key: value` header line, found {l:?}"),
            );
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        // `version` and any other header keys carry nothing we use.
        if key == "n_points" {
            match value.parse::<usize>() {
                Ok(n) => out.declared = Some(n),
                Err(_) => out.problem(
                    line,
                    LineProblemKind::CountMismatch,
                    format!("n_points must be a whole number, found {value:?}"),
                ),
            }
        }
    }
    let close = lines[open + 1..]
        .iter()
        .position(|l| *l == "}")
        .map(|i| open + 1 + i);
    let body_end = close.unwrap_or(lines.len());
    let n_lines = parse_point_lines(&lines[open + 1..body_end], open + 2, &mut out);
    match close {
        None => out.problem(
            lines.len() + 1,
            LineProblemKind::Malformed,
            "missing closing '}' (file truncated?)",
        ),
        Some(c) if c + 1 < lines.len() => out.problem(
            c + 2,
            LineProblemKind::Malformed,
            "unexpected text after the closing '}'",
        ),
        Some(_) => {}
    }
    match out.declared {
        Some(n) if n != n_lines => {
            let line = lines[..open]
                .iter()
                .position(|l| l.starts_with("n_points"))
                .map_or(1, |i| i + 1);
            out.problem(
                line,
                LineProblemKind::CountMismatch,
                format!("n_points is {n} but {n_lines} point lines follow"),
            );
        }
        Some(_) => {}
        None if !out
            .problems
            .iter()
            .any(|p| p.kind == LineProblemKind::CountMismatch) =>
        {
            out.problem(1, LineProblemKind::Malformed, "no `n_points:` header line");
        }
        None => {}
    }
    out.problems.sort_by_key(|p| p.line);
    out
}

/// Parses `x y` lines; `first_line` is the 1-based line number of `body[0]`. Returns the number of
/// non-empty point lines (good or bad), which is what a declared count must match (a stray blank
/// line is reported on its own, not as a count mismatch too).
fn parse_point_lines(body: &[&str], first_line: usize, out: &mut ParsedLandmarks) -> usize {
    for (i, l) in body.iter().enumerate() {
        let line = first_line + i;
        if l.is_empty() {
            out.problem(
                line,
                LineProblemKind::BadValue,
                "empty line among the points",
            );
            continue;
        }
        match parse_xy(l) {
            Ok(p) => out.points.push(p),
            Err(msg) => out.problem(line, LineProblemKind::BadValue, msg),
        }
    }
    body.iter().filter(|l| !l.is_empty()).count()
}

fn parse_xy(line: &str) -> std::result::Result<[f32; 2], String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != 2 {
        return Err(format!(
            "expected 2 values `x y`, found {} in {line:?}",
            fields.len()
        ));
    }
    let mut xy = [0f32; 2];
    for (k, f) in fields.iter().enumerate() {
        let axis = ["x", "y"][k];
        let v: f32 = f
            .parse()
            .map_err(|_| format!("{axis} is not a number: {f:?}"))?;
        if !v.is_finite() {
            return Err(format!("{axis} is not finite: {f:?}"));
        }
        xy[k] = v;
    }
    Ok(xy)
}

/// Formats points as a LaPa `.txt` landmark file. Values use Rust's shortest round-trip form, so
/// reading the file back gives the same `f32`s bit for bit.
pub fn format_landmarks_txt(pts: &[[f32; 2]]) -> String {
    let mut s = String::with_capacity(16 + pts.len() * 20);
    let _ = writeln!(s, "{}", pts.len());
    for p in pts {
        let _ = writeln!(s, "{} {}", p[0], p[1]);
    }
    s
}

/// Writes a LaPa `.txt` landmark file. Non-finite points are refused: they could not be read back.
pub fn write_landmarks_txt(path: &Path, pts: &[[f32; 2]]) -> Result<()> {
    if let Some(i) = pts
        .iter()
        .position(|p| !p[0].is_finite() || !p[1].is_finite())
    {
        return Err(Error::file(
            path,
            format!("refusing to write point {i}: {:?} is not finite", pts[i]),
        ));
    }
    crate::atomic::write_atomic(path, format_landmarks_txt(pts).as_bytes())
}

/// Writes an iBUG `.pts` landmark file.
pub fn write_landmarks_pts(path: &Path, pts: &[[f32; 2]]) -> Result<()> {
    let mut s = format!("version: 1\nn_points: {}\n{{\n", pts.len());
    for p in pts {
        let _ = writeln!(s, "{} {}", p[0], p[1]);
    }
    s.push_str("}\n");
    crate::atomic::write_atomic(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_with_crlf_trailing_space_and_bom() {
        let p = parse_landmarks(
            "\u{feff}2\r\n1.5 2.25  \r\n3 4\r\n\r\n",
            LandmarkFormat::Txt,
        );
        assert!(p.is_ok(), "{:?}", p.problems);
        assert_eq!(p.points, vec![[1.5, 2.25], [3.0, 4.0]]);
    }

    #[test]
    fn txt_reports_every_bad_line() {
        let p = parse_landmarks("3\n1 2\nx 2\n1 nan\n", LandmarkFormat::Txt);
        let lines: Vec<usize> = p.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 4]);
        assert!(p.problems[0].msg.contains("x is not a number"));
        assert!(p.problems[1].msg.contains("not finite"));
    }

    #[test]
    fn pts_header_and_truncation() {
        let ok = parse_landmarks(
            "version: 1\nn_points: 2\n{\n1 2\n3 4\n}\n",
            LandmarkFormat::Pts,
        );
        assert!(ok.is_ok(), "{:?}", ok.problems);
        assert_eq!(ok.points, vec![[1.0, 2.0], [3.0, 4.0]]);
        let cut = parse_landmarks("version: 1\nn_points: 2\n{\n1 2\n", LandmarkFormat::Pts);
        assert!(cut
            .problems
            .iter()
            .any(|p| p.kind == LineProblemKind::Malformed && p.line == 5));
        assert!(cut
            .problems
            .iter()
            .any(|p| p.kind == LineProblemKind::CountMismatch && p.line == 2));
    }

    #[test]
    fn txt_round_trip_is_exact() {
        let pts = vec![[0.1f32, 1e-7], [123.456_79, 1.0 / 3.0]];
        let p = parse_landmarks(&format_landmarks_txt(&pts), LandmarkFormat::Txt);
        assert_eq!(p.points, pts);
    }
}
