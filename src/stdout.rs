//! What commands print for the user on standard output. A reader that stops early
//! (`hmreg predict --json DIR | head -1`) closes the pipe; `println!` would then panic
//! ("failed printing to stdout"). Writing through here turns that into
//! [`Error::StdoutClosed`], which ends the command quietly with exit code 0 (ripgrep's
//! behaviour): nobody is left to read the rest, and nothing went wrong.

use std::fmt::Display;
use std::io::{ErrorKind, Write};

use crate::{Error, Result};

/// Prints `text` and a newline.
pub fn line(text: impl Display) -> Result<()> {
    write(format_args!("{text}\n"))
}

/// Prints `text` as it is (text that ends its own lines, such as a rendered report).
pub fn text(text: impl Display) -> Result<()> {
    write(format_args!("{text}"))
}

fn write(args: std::fmt::Arguments) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            ErrorKind::BrokenPipe => Error::StdoutClosed,
            _ => Error::Msg(format!("cannot write to standard output: {e}")),
        })
}
