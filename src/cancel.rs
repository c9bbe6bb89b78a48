//! Cancelling a run: a token the caller keeps and every thread of the run checks.
//!
//! The threads of a run (downloads, the index pass's readers, the emit pass) check the token
//! between chunks of work and stop with [`ErrorKind::Interrupted`](crate::error::ErrorKind);
//! the run then unwinds as after any failure, so temporary files are removed by the code that
//! owns them. A thread blocked in a read (a stalled network, a FIFO) notices only when the
//! read returns: the command line backs the token with a hard exit for that case.

use crate::error::{tagged, ErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation token. Clones share the flag; `Cancel::child` makes a token that the
/// parent cancels too but that can be cancelled on its own (how a stage stops its own
/// threads without cancelling the caller's run).
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    own: Arc<AtomicBool>,
    parent: Option<Arc<AtomicBool>>,
}

impl Cancel {
    /// A token not yet cancelled.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every holder of this token (and of its children) to stop.
    pub fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
    }

    /// Whether this token, or the one it is a child of, was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::Relaxed)
            || self
                .parent
                .as_ref()
                .is_some_and(|p| p.load(Ordering::Relaxed))
    }

    /// A token cancelled with this one, or on its own.
    pub(crate) fn child(&self) -> Cancel {
        Cancel {
            own: Arc::new(AtomicBool::new(false)),
            parent: Some(self.own.clone()),
        }
    }

    /// `Err` of kind `Interrupted` once cancelled: for `?` where work can stop.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.is_cancelled() {
            Err(tagged(ErrorKind::Interrupted, "cancelled"))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_stops_with_its_parent_but_not_the_parent_with_it() {
        let run = Cancel::new();
        let stage = run.child();
        stage.cancel();
        assert!(stage.is_cancelled() && !run.is_cancelled());
        let stage = run.child();
        assert!(stage.check().is_ok());
        run.clone().cancel();
        assert!(stage.is_cancelled());
        let e = stage.check().unwrap_err();
        assert_eq!(crate::error::classify(&e), ErrorKind::Interrupted);
    }
}
