//! The command line's own parts (not the library's): how a run looks on a terminal.

pub mod progress;
