//! Just enough HTTP/1.1 to ask a Docker engine for one resource: a GET over a unix socket,
//! a named pipe or TCP, and a response body framed by Content-Length, chunked encoding or
//! the end of the connection. The registry client (ureq) speaks TCP only, and the engine's
//! API needs nothing more than this.

use super::endpoint::Endpoint;
use crate::cancel::Cancel;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// Longest status line or header line accepted, and most header lines: an engine's response
/// head is small, so anything bigger is not an engine.
const MAX_LINE: usize = 16 << 10;
const MAX_HEADERS: usize = 200;

/// How long the engine may stay silent. Generous: podman writes a whole export to a file of
/// its own before it sends the first byte; but a stalled engine must not hang us forever.
pub const IDLE_LIMIT: Duration = Duration::from_secs(600);

/// A socket read waits this long at most, so that a cancelled run notices during the
/// engine's long silences too; the silence is timed across these waits.
const POLL: Duration = Duration::from_millis(200);

/// A socket whose silences are timed against `limit` and cut short by `cancel`.
struct IdleLimited<S> {
    inner: S,
    limit: Duration,
    cancel: Cancel,
}

impl<S> IdleLimited<S> {
    fn new(inner: S, cancel: &Cancel) -> IdleLimited<S> {
        IdleLimited {
            inner,
            limit: IDLE_LIMIT,
            cancel: cancel.clone(),
        }
    }
}

impl<S: Read> Read for IdleLimited<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let silent_since = Instant::now();
        loop {
            match self.inner.read(buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.cancel.is_cancelled() {
                        return Err(io::Error::other("cancelled"));
                    }
                    if silent_since.elapsed() >= self.limit {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "the engine sent nothing for {} seconds",
                                self.limit.as_secs()
                            ),
                        ));
                    }
                }
                other => return other,
            }
        }
    }
}

impl<S: Write> Write for IdleLimited<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a connection to the engine. Reads from a socket end soon after `cancel` is
/// cancelled; a named pipe has no read timeout, so there the caller notices between reads.
pub fn connect(endpoint: &Endpoint, cancel: &Cancel) -> io::Result<Box<dyn Stream>> {
    match endpoint {
        #[cfg(unix)]
        Endpoint::Unix(path) => {
            let socket = std::os::unix::net::UnixStream::connect(path)?;
            socket.set_read_timeout(Some(POLL))?;
            Ok(Box::new(IdleLimited::new(socket, cancel)))
        }
        #[cfg(not(unix))]
        Endpoint::Unix(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix sockets are not supported on this platform; use npipe:// or tcp://",
        )),
        Endpoint::Tcp(addr) => {
            use std::net::ToSocketAddrs;
            let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
            for sa in addr.to_socket_addrs()? {
                match std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(10)) {
                    Ok(s) => {
                        s.set_read_timeout(Some(POLL))?;
                        return Ok(Box::new(IdleLimited::new(s, cancel)));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        Endpoint::NamedPipe(pipe) => open_pipe(pipe),
    }
}

/// A named pipe opens as a file; a busy pipe (all server instances taken) is retried for a
/// while, as docker's client waits for it.
#[cfg(windows)]
fn open_pipe(pipe: &str) -> io::Result<Box<dyn Stream>> {
    const ERROR_PIPE_BUSY: i32 = 231;
    let mut tries = 0;
    loop {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(pipe)
        {
            Ok(file) => return Ok(Box::new(file)),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && tries < 40 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(not(windows))]
fn open_pipe(_pipe: &str) -> io::Result<Box<dyn Stream>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "named pipes exist on Windows only; use unix:// or tcp://",
    ))
}

pub struct Response {
    pub status: u16,
    pub reason: String,
    pub body: Body,
}

/// Sends `GET path` and reads the response head.
pub fn get(mut stream: Box<dyn Stream>, host: &str, path: &str) -> io::Result<Response> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: oci2wsl/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    read_response(BufReader::with_capacity(1 << 20, stream))
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_line(r: &mut dyn BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if line.len() > MAX_LINE {
        return Err(bad("an HTTP line longer than 16 KiB".into()));
    }
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed in the middle of the HTTP response",
        ));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| bad("an HTTP line that is not UTF-8".into()))
}

fn read_response(mut r: BufReader<Box<dyn Stream>>) -> io::Result<Response> {
    let status_line = read_line(&mut r)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let (true, Some(status)) = (version.starts_with("HTTP/1."), status) else {
        return Err(bad(format!("not an HTTP response: {status_line:?}")));
    };
    let reason = parts.next().unwrap_or_default().to_string();
    let mut length = None;
    let mut chunked = false;
    for n in 0.. {
        if n == MAX_HEADERS {
            return Err(bad("more than 200 HTTP header lines".into()));
        }
        let line = read_line(&mut r)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("malformed HTTP header {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| bad(format!("bad Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let framing = if chunked {
        Framing::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Response {
        status,
        reason,
        body: Body { r, framing },
    })
}

enum Framing {
    Length(u64),
    /// `left` bytes remain of the current chunk.
    Chunked {
        left: u64,
        done: bool,
    },
    UntilClose,
}

/// A response body with its transfer framing removed. A body cut short is an error, never a
/// silent end: a truncated image must not look like a complete one.
pub struct Body {
    r: BufReader<Box<dyn Stream>>,
    framing: Framing,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match &mut self.framing {
            Framing::UntilClose => self.r.read(buf),
            Framing::Length(left) => {
                if *left == 0 {
                    return Ok(0);
                }
                let want = (*left).min(buf.len() as u64) as usize;
                let n = self.r.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(truncated());
                }
                *left -= n as u64;
                Ok(n)
            }
            Framing::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let line = read_line(&mut self.r)?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(size, 16)
                        .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
                    if size == 0 {
                        // Trailers, then the blank line that ends the message.
                        while !read_line(&mut self.r)?.is_empty() {}
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let want = (*left).min(buf.len() as u64) as usize;
                let n = self.r.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(truncated());
                }
                *left -= n as u64;
                if *left == 0 && !read_line(&mut self.r)?.is_empty() {
                    return Err(bad("a chunk not followed by CRLF".into()));
                }
                Ok(n)
            }
        }
    }
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the connection closed before the whole response arrived",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::sync::{Arc, Mutex};

    /// A canned connection: what the engine "sends", and where the request goes.
    struct Canned(Cursor<Vec<u8>>, Arc<Mutex<Vec<u8>>>);
    impl Read for Canned {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl Write for Canned {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.1.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn exchange(raw: &[u8]) -> (io::Result<(u16, Vec<u8>)>, String) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stream: Box<dyn Stream> = Box::new(Canned(Cursor::new(raw.to_vec()), sent.clone()));
        let result = get(stream, "docker", "/images/a:1/get").and_then(|mut resp| {
            let mut body = Vec::new();
            resp.body.read_to_end(&mut body)?;
            Ok((resp.status, body))
        });
        let request = String::from_utf8(sent.lock().unwrap().clone()).unwrap();
        (result, request)
    }

    fn respond(raw: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        exchange(raw).0
    }

    #[test]
    fn chunked_length_and_close_framed_bodies_decode() {
        assert_eq!(
            respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nTrailer: t\r\n\r\n")
                .unwrap(),
            (200, b"hello!".to_vec())
        );
        assert_eq!(
            respond(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}extra").unwrap(),
            (404, b"{}".to_vec())
        );
        assert_eq!(
            respond(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap(),
            (200, b"all of it".to_vec())
        );
    }

    #[test]
    fn cut_off_bodies_and_non_http_answers_are_errors() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Le",
        ] {
            assert!(respond(raw).is_err(), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn request_is_one_get_that_closes_the_connection() {
        let (result, request) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(result.unwrap(), (200, Vec::new()));
        assert!(
            request.starts_with("GET /images/a:1/get HTTP/1.1\r\nHost: docker\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n"), "{request}");
    }

    #[test]
    fn a_silent_engine_is_a_timeout_that_says_so() {
        struct Stalled;
        impl Read for Stalled {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                // What a socket read timeout returns on Unix.
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
        let mut silent = IdleLimited::new(Stalled, &Cancel::new());
        silent.limit = Duration::ZERO;
        let err = silent.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            err.to_string().contains("sent nothing for 0 seconds"),
            "{err}"
        );

        // Cancelled, a silence ends at the next poll, not after the idle limit (an hour
        // here: reaching it would hang the test).
        let cancel = Cancel::new();
        cancel.cancel();
        let mut silent = IdleLimited::new(Stalled, &cancel);
        silent.limit = Duration::from_secs(3600);
        let err = silent.read(&mut [0u8; 8]).unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }
}
