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
    #[error("{0}")]
    Msg(String),
}

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
}

pub type Result<T> = std::result::Result<T, Error>;
