//! Cancelling a run: a token the caller keeps and every thread of the run checks.
//!
//! The threads of a run (downloads, the index pass's readers, the emit pass) check the token
//! between chunks of work and stop with [`ErrorKind::Interrupted`](crate::error::ErrorKind);
//! the run then unwinds as after any failure, so temporary files are removed by the code that
//! owns them. A thread that waits (a retry's backoff) waits on the token itself, so a
//! cancellation ends the wait at once. A thread blocked in a read (a stalled network, a
//! FIFO) notices only when the read returns: the command line backs the token with a hard
//! exit for that case.

use crate::error::{tagged, ErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A cancellation token. Clones share the flag; `Cancel::child` makes a token that the
/// parent cancels too but that can be cancelled on its own (how a stage stops its own
/// threads without cancelling the caller's run).
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    own: Arc<AtomicBool>,
    /// The flags of the token this one is a child of, and of its parents.
    ancestors: Vec<Arc<AtomicBool>>,
    /// Shared by a token and all its descendants: any cancellation in the family wakes
    /// every sleeper, which then checks its own token.
    wake: Arc<Wake>,
}

#[derive(Debug, Default)]
struct Wake {
    lock: Mutex<()>,
    cancelled: Condvar,
}

impl Cancel {
    /// A token not yet cancelled.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Asks every holder of this token (and of its children) to stop.
    pub fn cancel(&self) {
        self.own.store(true, Ordering::SeqCst);
        // Under the lock: a sleeper checks the flag and starts waiting while holding it, so
        // this notification cannot fall between the two.
        let _held = self.wake.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.cancelled.notify_all();
    }

    /// Whether this token, or one it is a child of, was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.own.load(Ordering::SeqCst) || self.ancestors.iter().any(|a| a.load(Ordering::SeqCst))
    }

    /// A token cancelled with this one, or on its own.
    pub(crate) fn child(&self) -> Cancel {
        let mut ancestors = self.ancestors.clone();
        ancestors.push(self.own.clone());
        Cancel {
            own: Arc::new(AtomicBool::new(false)),
            ancestors,
            wake: self.wake.clone(),
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

    /// Waits `wait` (a retry's backoff), or less: a cancellation ends the wait at once, with
    /// the error of [`Cancel::check`].
    pub(crate) fn sleep(&self, wait: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + wait;
        let mut held = self.wake.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            held = self
                .wake
                .cancelled
                .wait_timeout(held, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
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

    #[test]
    fn a_grandchild_stops_with_the_run() {
        let run = Cancel::new();
        let grandchild = run.child().child();
        run.cancel();
        assert!(grandchild.is_cancelled());
    }

    #[test]
    fn a_sleep_ends_with_the_cancellation_of_its_token_or_an_ancestor() {
        let run = Cancel::new();
        let stage = run.child();
        // The sleeper tells when it is about to wait; it is cancelled only then, so the
        // wait can end only by the cancellation (the backoff is far longer than any test).
        let (asleep, started) = std::sync::mpsc::channel();
        let sleeper = {
            let stage = stage.clone();
            std::thread::spawn(move || {
                asleep.send(()).unwrap();
                stage.sleep(Duration::from_secs(3600))
            })
        };
        started.recv().unwrap();
        run.cancel();
        let e = sleeper.join().unwrap().unwrap_err();
        assert_eq!(crate::error::classify(&e), ErrorKind::Interrupted);
        // A token already cancelled does not wait at all, and an uncancelled one waits.
        assert!(stage.sleep(Duration::from_secs(3600)).is_err());
        assert!(Cancel::new().sleep(Duration::ZERO).is_ok());
    }
}
