//! Errors with a stable kind: what a caller (or a JSON front end) can act on.
//!
//! Inside the crate errors are `anyhow` chains, each layer adding context (which image, which
//! layer, which path). Where an error is born, the code that knows what went wrong tags it
//! with an [`ErrorKind`] ([`tagged`], [`Tagged`]); [`Error`] at the library boundary finds the
//! tag again, so the kind survives any amount of added context.

use std::fmt;

/// What kind of failure ended a run. The [`code`](ErrorKind::code)s are stable: front ends
/// and scripts match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The command line or options are wrong (exit status 2 in the CLI).
    Usage,
    /// The registry refused the credentials, or needs some.
    Auth,
    /// The image, tag, platform, file or blob named does not exist.
    NotFound,
    /// The network failed: DNS, connection, TLS, timeouts, a registry's server errors.
    Network,
    /// Bytes do not match their digest or size.
    Integrity,
    /// Input that breaks a rule or a limit: malformed manifests or tars, path escapes,
    /// decompression bombs.
    HostileInput,
    /// The image is valid but not something this program converts (artifacts, Windows
    /// layers, pre-1.10 `docker save` archives).
    Unsupported,
    /// `wsl.exe` is missing, refused the import, or failed.
    Wsl,
    /// The output could not be written.
    Output,
    /// The run was cancelled (Ctrl-C, or the caller's cancellation).
    Interrupted,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The stable code: `usage`, `auth`, `not-found`, `network`, `integrity`,
    /// `hostile-input`, `unsupported`, `wsl`, `output`, `interrupted`, `other`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Auth => "auth",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Network => "network",
            ErrorKind::Integrity => "integrity",
            ErrorKind::HostileInput => "hostile-input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Wsl => "wsl",
            ErrorKind::Output => "output",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Other => "other",
        }
    }

    /// Every kind, for documentation and tests.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Usage,
        ErrorKind::Auth,
        ErrorKind::NotFound,
        ErrorKind::Network,
        ErrorKind::Integrity,
        ErrorKind::HostileInput,
        ErrorKind::Unsupported,
        ErrorKind::Wsl,
        ErrorKind::Output,
        ErrorKind::Interrupted,
        ErrorKind::Other,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The innermost error of a tagged chain: a message with its kind. Displays as the message
/// alone, so tagging never changes what a user reads.
#[derive(Debug)]
pub struct Tagged {
    /// The kind.
    pub kind: ErrorKind,
    message: String,
}

impl Tagged {
    /// A message of this kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Tagged {
        Tagged {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Tagged {}

/// An `anyhow` error of this kind, for `return Err(tagged(…))` and `bail!`-like use.
pub fn tagged(kind: ErrorKind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Tagged::new(kind, message))
}

/// `anyhow::bail!` with a kind: `bail_kind!(NotFound, "no image tagged {tag}")` returns
/// `Err(tagged(ErrorKind::NotFound, format!(…)))`.
macro_rules! bail_kind {
    ($kind:ident, $($arg:tt)+) => {
        return Err($crate::error::tagged($crate::error::ErrorKind::$kind, format!($($arg)+)))
    };
}
pub(crate) use bail_kind;

/// An `anyhow::anyhow!` with a kind, for `ok_or_else(|| kind_err!(…))`.
macro_rules! kind_err {
    ($kind:ident, $($arg:tt)+) => {
        $crate::error::tagged($crate::error::ErrorKind::$kind, format!($($arg)+))
    };
}
pub(crate) use kind_err;

/// An `io::Error` that carries a kind, for code that must speak `io::Error` (readers).
pub fn tagged_io(
    io_kind: std::io::ErrorKind,
    kind: ErrorKind,
    message: impl Into<String>,
) -> std::io::Error {
    std::io::Error::new(io_kind, Tagged::new(kind, message))
}

/// Tags an existing error with a kind, keeping its message and chain: the kind of the
/// outermost tag wins, so code that knows better (an auth failure seen as a 404) can retag.
pub trait ResultExt<T> {
    /// Marks the error, if any, as `kind`.
    fn kind(self, kind: ErrorKind) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn kind(self, kind: ErrorKind) -> anyhow::Result<T> {
        self.map_err(|e| {
            anyhow::Error::new(Kinded {
                kind,
                inner: e.into(),
            })
        })
    }
}

/// An error retagged with a kind. It reads exactly as the error it wraps: its message is
/// that error's outermost message and its causes are that error's causes.
#[derive(Debug)]
struct Kinded {
    kind: ErrorKind,
    inner: anyhow::Error,
}

impl fmt::Display for Kinded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Without `#`, anyhow shows only the outermost message; the causes follow via
        // `source`.
        write!(f, "{}", self.inner)
    }
}

impl std::error::Error for Kinded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.chain().nth(1)
    }
}

/// The errors of a chain, including the one a kind tag wraps (a [`ResultExt::kind`] tag shows
/// that error's message but is not that error's type), for `downcast_ref` and `is`.
pub fn causes(e: &anyhow::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut all = Vec::new();
    for cause in e.chain() {
        match cause.downcast_ref::<Kinded>() {
            Some(k) => all.extend(causes(&k.inner)),
            None => all.push(cause),
        }
    }
    all
}

/// The kind of an error chain: the outermost tag, else what the causes reveal.
pub fn classify(e: &anyhow::Error) -> ErrorKind {
    for cause in e.chain() {
        if let Some(k) = cause.downcast_ref::<Kinded>() {
            return k.kind;
        }
        if let Some(t) = cause.downcast_ref::<Tagged>() {
            return t.kind;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<Tagged>()) {
                return t.kind;
            }
        }
    }
    for cause in e.chain() {
        if cause.downcast_ref::<ureq::Error>().is_some() {
            return ErrorKind::Network;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::NotFound => return ErrorKind::NotFound,
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => {
                    return ErrorKind::HostileInput
                }
                std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted => return ErrorKind::Network,
                _ => {}
            }
        }
    }
    ErrorKind::Other
}

/// A failed run: its kind and the whole message (every context, outermost first).
pub struct Error {
    kind: ErrorKind,
    inner: anyhow::Error,
}

impl Error {
    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable code of its kind.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The underlying chain, for callers that want to walk the causes.
    pub fn chain(&self) -> anyhow::Chain<'_> {
        self.inner.chain()
    }

    /// An error of a given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            inner: tagged(kind, message),
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(inner: anyhow::Error) -> Error {
        Error {
            kind: classify(&inner),
            inner,
        }
    }
}

impl fmt::Display for Error {
    /// One line: the contexts, outermost first, as "a: b: c".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format!("{:#}", self.inner).replace('\n', " "))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {self}", self.kind.code())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_kind_survives_added_context() {
        let e = Err::<(), _>(tagged(ErrorKind::Integrity, "digest mismatch"))
            .context("layer 2/3")
            .context("docker.io/library/x")
            .unwrap_err();
        let e = Error::from(e);
        assert_eq!(e.kind(), ErrorKind::Integrity);
        assert_eq!(
            e.to_string(),
            "docker.io/library/x: layer 2/3: digest mismatch"
        );
    }

    #[test]
    fn an_outer_tag_overrides_an_inner_one_and_changes_no_text() {
        let e = Err::<(), _>(tagged(ErrorKind::NotFound, "404"))
            .kind(ErrorKind::Auth)
            .context("pulling x")
            .unwrap_err();
        let e = Error::from(e);
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert_eq!(e.to_string(), "pulling x: 404");
    }

    #[test]
    fn a_tag_inside_an_io_error_is_found() {
        let io = tagged_io(
            std::io::ErrorKind::InvalidData,
            ErrorKind::Integrity,
            "blob digest mismatch",
        );
        let e = Error::from(anyhow::Error::new(io).context("reading layer"));
        assert_eq!(e.kind(), ErrorKind::Integrity);
        assert_eq!(e.to_string(), "reading layer: blob digest mismatch");
    }

    #[test]
    fn untagged_io_errors_are_classified_by_their_kind() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(classify(&e), ErrorKind::NotFound);
        assert_eq!(classify(&anyhow::anyhow!("plain")), ErrorKind::Other);
    }

    #[test]
    fn a_tagged_error_keeps_its_type_for_causes() {
        let inner = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let e = Err::<(), _>(inner)
            .kind(ErrorKind::Wsl)
            .context("writing")
            .unwrap_err();
        assert!(e.chain().all(|c| !c.is::<std::io::Error>()));
        assert!(causes(&e).iter().any(|c| c.is::<std::io::Error>()));
        assert_eq!(classify(&e), ErrorKind::Wsl);
    }

    #[test]
    fn codes_are_distinct() {
        let codes: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
    }
}
