//! TensorBoard event files written by hmreg itself: the TFRecord framing ([`record`]), the
//! `Event`/`Summary` protobuf messages ([`proto`]), an append-only writer that continues a
//! directory's earlier files without repeating a step ([`writer`]) and a reader ([`reader`]) for
//! that and for tools.
//!
//! Event files are logs that TensorBoard tails while they grow, so they are appended to (not
//! written through [`crate::atomic`]): each record carries CRCs of its length and its data, so a
//! record torn by a kill is recognised and dropped by every reader, and the records before it
//! stay readable.

pub mod proto;
pub mod reader;
pub mod record;
pub mod writer;

pub use writer::EventWriter;
