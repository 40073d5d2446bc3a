//! The library's error type. Every error about a file names the file, and the line where there is one.

use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A problem at a given line of a text file (1-based line numbers).
    #[error("{}:{line}: {msg}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// A problem with a whole file (unreadable, truncated, wrong shapes...).
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// Invalid configuration or arguments.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Serialising a report, state or summary (in practice only a map with non-string keys
    /// fails, which would be a bug).
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("TOML: {0}")]
    Toml(#[from] toml::ser::Error),
    /// Initialisation parameters out of range (a negative std, an empty interval).
    #[error("normal distribution: {0}")]
    Normal(#[from] rand_distr::NormalError),
    #[error("uniform distribution: {0}")]
    Uniform(#[from] rand_distr::uniform::Error),
    #[error("{0}")]
    Msg(String),
    /// The command ran to the end, but some of its inputs had problems (each one already
    /// reported on its own, e.g. an image `predict` could not read, a file `data check` flagged).
    #[error("{0}")]
    Problems(String),
    /// Standard output was closed by its reader (`| head`): the command stops, quietly and
    /// successfully (see [`crate::stdout`]).
    #[error("standard output closed")]
    StdoutClosed,
}

/// Exit code for a problem found in the input (a file, named with its line where there is one),
/// and for a command that finished with some inputs failing.
pub const EXIT_PROBLEMS: i32 = 1;
/// Exit code for usage errors: bad arguments, an invalid configuration value.
pub const EXIT_USAGE: i32 = 2;

impl Error {
    pub fn parse(path: impl Into<PathBuf>, line: usize, msg: impl Into<String>) -> Self {
        Error::Parse {
            path: path.into(),
            line,
            msg: msg.into(),
        }
    }

    pub fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            msg: msg.into(),
        }
    }

    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    /// The process exit code for this error: [`EXIT_USAGE`] (2) for [`Error::Config`], else
    /// [`EXIT_PROBLEMS`] (1): files that cannot be read or parsed, failed computations, and
    /// [`Error::Problems`]; 0 for [`Error::StdoutClosed`].
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::StdoutClosed => 0,
            Error::Config(_) => EXIT_USAGE,
            Error::Parse { .. }
            | Error::File { .. }
            | Error::Candle(_)
            | Error::Io(_)
            | Error::Json(_)
            | Error::Toml(_)
            | Error::Normal(_)
            | Error::Uniform(_)
            | Error::Msg(_)
            | Error::Problems(_) => EXIT_PROBLEMS,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
