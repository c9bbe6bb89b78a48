//! What a run tells its caller while it works: phases, progress and warnings.
//!
//! Library code never prints. Every stage reports through the [`Observer`] the caller hands to
//! [`crate::pipeline::run`]; the command line's progress display and its JSON event stream are
//! two implementations, and an embedding program supplies its own (or [`Silent`]).
//!
//! Progress events are cumulative (bytes done so far, not increments), so an observer that
//! drops some, or samples them, still shows the truth.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Receives the events of a run. Called from several threads at once (downloads and the
/// index pass run in parallel), so implementations synchronise themselves, and must return
/// quickly: a slow observer slows the run.
pub trait Observer: Send + Sync {
    /// One event. Progress events may arrive thousands of times a second.
    fn event(&self, event: &Event);
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _event: &Event) {}
}

/// Forwards to any number of observers in turn.
#[derive(Clone, Default)]
pub struct Fanout(pub Vec<Arc<dyn Observer>>);

impl Observer for Fanout {
    fn event(&self, event: &Event) {
        for o in &self.0 {
            o.event(event);
        }
    }
}

/// Collects the warnings of a run (and nothing else); handy for tests and for callers that
/// show warnings at the end.
#[derive(Default, Debug)]
pub struct Warnings(pub std::sync::Mutex<Vec<String>>);

impl Observer for Warnings {
    fn event(&self, event: &Event) {
        if let Event::Warning { message } = event {
            self.0.lock().unwrap().push(message.clone());
        }
    }
}

/// A shared observer, as stages hold it.
pub type SharedObserver = Arc<dyn Observer>;

/// The silent observer, shared.
pub fn silent() -> SharedObserver {
    Arc::new(Silent)
}

/// One layer of the resolved image, as the front end shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSummary {
    /// Position, 0 = bottom.
    pub index: usize,
    /// The blob digest, if the source has one (a legacy `docker save` layer has none).
    pub digest: Option<String>,
    /// The uncompressed tar's digest.
    pub diff_id: String,
    /// Compressed size, when the manifest states it.
    pub size: Option<u64>,
    /// The layer's media type.
    pub media_type: String,
}

/// What the reference resolved to, before any layer is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The image as the user named it.
    pub image: String,
    /// Digest of the index (manifest list) the tag points at, when there is one: the digest a
    /// user pins.
    pub index_digest: Option<String>,
    /// Digest of the single-platform manifest chosen, when the source has manifest bytes.
    pub manifest_digest: Option<String>,
    /// Digest of the image config.
    pub config_digest: String,
    /// The platform of the chosen image, `os/arch[/variant]`.
    pub platform: String,
    /// Its layers, bottom first.
    pub layers: Vec<LayerSummary>,
}

impl Resolved {
    /// Sum of the layer sizes the manifest states (what a full download costs).
    pub fn download_bytes(&self) -> u64 {
        self.layers.iter().filter_map(|l| l.size).sum()
    }
}

/// Which stretch of work a [`Event::Progress`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Layer blob bytes arriving from the network (registry or engine).
    Download,
    /// The index pass: compressed layer bytes read and checked.
    Index,
    /// The emit pass: bytes of tar written (before compression).
    Emit,
}

impl Phase {
    /// A stable lower-case name (`download`, `index`, `emit`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Download => "download",
            Phase::Index => "index",
            Phase::Emit => "emit",
        }
    }
}

/// Something a run reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The reference is resolved: the digests, the platform and the layers to read.
    Resolved(Resolved),
    /// Cumulative progress. `layer` is the layer's position for [`Phase::Download`] and
    /// [`Phase::Index`], `None` for the emit pass (the whole tar). `total` is what the
    /// manifest states, or, for the emit pass, the tar size the index pass computed.
    Progress {
        /// What is being counted.
        phase: Phase,
        /// Which layer, if the count is per layer.
        layer: Option<usize>,
        /// Bytes done so far.
        done: u64,
        /// Bytes expected, when known.
        total: Option<u64>,
    },
    /// A layer's blob is complete and verified (downloads) or indexed (index pass).
    LayerDone {
        /// What finished.
        phase: Phase,
        /// Which layer.
        layer: usize,
        /// Its bytes.
        bytes: u64,
    },
    /// The emit pass starts: every layer is verified, and the output is about to be written.
    EmitStarted {
        /// Bytes of tar the emit pass will write (before compression), as far as the index
        /// pass can tell; the final figure is in the summary.
        tar_bytes: u64,
        /// Paths in the flattened tree.
        paths: u64,
    },
    /// A request failed and will be tried again.
    Retry {
        /// What was being done ("GET https://…/blobs/sha256:…").
        what: String,
        /// Which retry this is, from 1.
        attempt: u32,
        /// Why the previous attempt failed.
        reason: String,
        /// How long the run waits before the retry.
        wait: Duration,
    },
    /// One HTTP exchange, for `--debug`-style logs. Never carries credentials.
    Request {
        /// The method.
        method: String,
        /// The URL, without credentials.
        url: String,
        /// The status, or `None` when no response came.
        status: Option<u16>,
        /// How long the exchange took.
        elapsed: Duration,
    },
    /// `wsl --import` started.
    ImportStarted {
        /// The distribution's name.
        name: String,
    },
    /// `wsl --import` finished successfully.
    ImportFinished {
        /// The distribution's name.
        name: String,
        /// Where its disk lives.
        dir: PathBuf,
    },
    /// Something the user should know that does not stop the run.
    Warning {
        /// One line, without the `warning:` prefix.
        message: String,
    },
}

/// Reports a warning (the common case, shortened).
pub fn warn(observer: &dyn Observer, message: impl Into<String>) {
    observer.event(&Event::Warning {
        message: message.into(),
    });
}

/// How often cumulative progress is reported: often enough for a smooth display, rarely
/// enough that an observer costs nothing measurable.
pub const PROGRESS_STEP: u64 = 1 << 20;

/// Counts the bytes read through it and reports them as [`Event::Progress`] every
/// [`PROGRESS_STEP`] bytes and at the end.
pub struct ProgressReader<R> {
    inner: R,
    observer: SharedObserver,
    phase: Phase,
    layer: Option<usize>,
    total: Option<u64>,
    done: u64,
    reported: u64,
}

impl<R> ProgressReader<R> {
    /// Reports reads of `inner` as `phase` progress of `layer`.
    pub fn new(
        inner: R,
        observer: SharedObserver,
        phase: Phase,
        layer: Option<usize>,
        total: Option<u64>,
    ) -> ProgressReader<R> {
        ProgressReader {
            inner,
            observer,
            phase,
            layer,
            total,
            done: 0,
            reported: 0,
        }
    }

    fn report(&mut self) {
        self.reported = self.done;
        self.observer.event(&Event::Progress {
            phase: self.phase,
            layer: self.layer,
            done: self.done,
            total: self.total,
        });
    }
}

impl<R: std::io::Read> std::io::Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if (n == 0 && self.done != self.reported) || self.done - self.reported >= PROGRESS_STEP {
            self.report();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_collects_only_warnings() {
        let w = Warnings::default();
        warn(&w, "one");
        w.event(&Event::Progress {
            phase: Phase::Emit,
            layer: None,
            done: 1,
            total: None,
        });
        warn(&w, "two");
        assert_eq!(*w.0.lock().unwrap(), ["one", "two"]);
    }

    #[derive(Default)]
    struct Log(std::sync::Mutex<Vec<Event>>);
    impl Observer for Log {
        fn event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn progress_reader_reports_in_steps_and_at_the_end() {
        use std::io::Read;
        let log = Arc::new(Log::default());
        let data = vec![7u8; (PROGRESS_STEP * 2 + 10) as usize];
        let mut r = ProgressReader::new(
            data.as_slice(),
            log.clone(),
            Phase::Index,
            Some(3),
            Some(data.len() as u64),
        );
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        let done: Vec<u64> = log
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                Event::Progress {
                    phase: Phase::Index,
                    layer: Some(3),
                    done,
                    ..
                } => *done,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(done.last(), Some(&(data.len() as u64)));
        assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
        assert!(done.len() >= 3, "{done:?}");
    }

    #[test]
    fn fanout_reaches_every_observer() {
        let a = Arc::new(Warnings::default());
        let b = Arc::new(Warnings::default());
        let fan = Fanout(vec![a.clone(), b.clone()]);
        warn(&fan, "x");
        assert_eq!(a.0.lock().unwrap().len(), 1);
        assert_eq!(b.0.lock().unwrap().len(), 1);
    }
}
