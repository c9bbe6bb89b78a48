//! gzip decoding that leaves resume points behind, and starts again from one.
//!
//! The emit pass reads every layer a second time, and used to inflate it from its first byte
//! to its last surviving file, through whatever later layers deleted in between (on the
//! benchmark image, 198 MB of the largest layer's 593 MB of tar: its docs, man pages and apt
//! lists). The index pass now copies the inflate state every few MiB ([`ResumePoint`]), and
//! the emit pass restarts from the copy nearest before the next file it needs instead of
//! inflating the stretch in between.
//!
//! A copy of the whole state (zlib's `inflateCopy`) rather than zran's bit offset and window:
//! it can be taken after any call, not only at a deflate block boundary, carries the gzip
//! member's CRC and length along, and restores with one call. It costs about 45 KiB per
//! point, so points are sparse (at least [`SPAN`] of input and of output apart) and few
//! ([`MAX_POINTS`] per layer, thinned to every other one when there are more).
//!
//! flate2 does not expose state copies, so this drives zlib-rs (the same inflate flate2 uses
//! here) through its zlib-compatible API, `libz-rs-sys`. Every `unsafe` block below is a call
//! into that API on a stream this module owns, with buffers that outlive the call.

use libz_rs_sys as z;
use std::io::{self, BufRead, Read};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

/// The least distance between two resume points, in bytes of compressed input and of
/// uncompressed output alike: jumping saves nothing below a few MiB, and each point holds
/// its copy of the inflate window.
pub const SPAN: u64 = 4 << 20;

/// At most this many points per layer (about 2.9 MiB of state); past it every other point
/// goes and the span doubles, so a huge layer keeps evenly spread, sparser points.
pub const MAX_POINTS: usize = 64;

/// An inflate stream, initialised for gzip (every member checked: header, CRC, length).
struct Stream(Box<z::z_stream>);

// The stream's state is owned by this value alone, and zlib-rs keeps no thread-bound data
// in it: moving it to another thread is sound, and `&Stream` is only ever read (copied).
unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

/// A zero-length buffer at a valid, non-null address: zlib's copy refuses a stream whose
/// output pointer is null, and no pointer into a buffer of ours may outlive the call.
fn no_buffer() -> *mut u8 {
    NonNull::<u8>::dangling().as_ptr()
}

impl Stream {
    fn gzip() -> io::Result<Stream> {
        let mut stream = Box::new(z::z_stream::default());
        // SAFETY: a default stream (allocator set, state null) is what init expects; 31 is
        // a 32 KiB window with gzip framing.
        let ret = unsafe {
            z::inflateInit2_(
                &mut *stream,
                31,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as i32,
            )
        };
        let stream = Stream(stream);
        stream.check(ret, "starting the gzip decoder")?;
        Ok(stream.parked())
    }

    /// An independent copy of the state (window, CRC, position in the deflate stream).
    fn copy(&self) -> io::Result<Stream> {
        let mut copy = Box::new(z::z_stream::default());
        // SAFETY: the source was initialised and is parked (no buffer pointers); the
        // destination is ours and is overwritten whole.
        let ret = unsafe { z::inflateCopy(&mut *copy, &*self.0) };
        if ret != z::Z_OK {
            return Err(io::Error::other(format!(
                "cannot copy the gzip decoder's state (zlib code {ret})"
            )));
        }
        Ok(Stream(copy))
    }

    /// Points the stream at no buffer, between calls.
    fn parked(mut self) -> Stream {
        self.park();
        self
    }

    fn park(&mut self) {
        let s = &mut *self.0;
        s.next_in = std::ptr::null();
        s.avail_in = 0;
        s.next_out = no_buffer();
        s.avail_out = 0;
    }

    /// One inflate call: (zlib's return code, bytes consumed, bytes produced).
    fn inflate(&mut self, input: &[u8], output: &mut [u8]) -> (i32, usize, usize) {
        let in_len = input.len().min(u32::MAX as usize);
        let out_len = output.len().min(u32::MAX as usize);
        let s = &mut *self.0;
        s.next_in = input.as_ptr();
        s.avail_in = in_len as u32;
        s.next_out = output.as_mut_ptr();
        s.avail_out = out_len as u32;
        // SAFETY: both buffers are valid for their lengths for the whole call; `park` clears
        // the pointers before they can dangle.
        let ret = unsafe { z::inflate(s, z::Z_NO_FLUSH) };
        let consumed = in_len - s.avail_in as usize;
        let produced = out_len - s.avail_out as usize;
        self.park();
        (ret, consumed, produced)
    }

    /// Ready for the next gzip member, keeping the allocated window.
    fn reset(&mut self) -> io::Result<()> {
        // SAFETY: an initialised, parked stream.
        let ret = unsafe { z::inflateReset(&mut *self.0) };
        self.check(ret, "starting the next gzip member")
    }

    /// Stops computing the CRC: for a stream the index pass verified already (its diff_id
    /// covers every byte), the CRC would be work that proves nothing new.
    fn skip_crc(&mut self) -> io::Result<()> {
        // SAFETY: an initialised, parked stream.
        let ret = unsafe { z::inflateValidate(&mut *self.0, 0) };
        self.check(ret, "configuring the gzip decoder")
    }

    /// zlib's own message for the last error, if it left one.
    fn message(&self) -> Option<String> {
        let msg = self.0.msg;
        // SAFETY: zlib sets msg to null or to a static NUL-terminated string.
        (!msg.is_null()).then(|| {
            unsafe { std::ffi::CStr::from_ptr(msg) }
                .to_string_lossy()
                .into_owned()
        })
    }

    fn check(&self, ret: i32, doing: &str) -> io::Result<()> {
        match ret {
            z::Z_OK => Ok(()),
            z::Z_MEM_ERROR => Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("out of memory {doing}"),
            )),
            _ => Err(io::Error::other(format!(
                "{doing} failed (zlib code {ret})"
            ))),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: an initialised stream (or one whose init failed, which end refuses).
        unsafe { z::inflateEnd(&mut *self.0) };
    }
}

/// Where the emit pass can start inflating a layer again: the decoder's state after
/// `uncompressed` bytes of output, having consumed `compressed` bytes of the blob.
pub struct ResumePoint {
    pub compressed: u64,
    pub uncompressed: u64,
    state: Stream,
    /// The first tar entry that starts at or after `uncompressed`: where (in the
    /// uncompressed tar) and its ordinal. The index pass fills it in as it reaches that
    /// entry; a point without one is dropped.
    pub boundary: Option<(u64, u64)>,
}

/// The points a decoder records, shared with the index pass that gives them boundaries.
pub type ResumePoints = Arc<Mutex<Vec<ResumePoint>>>;

struct Recorder {
    points: ResumePoints,
    span: u64,
    next_compressed: u64,
    next_uncompressed: u64,
}

/// A gzip stream of one or more members, decoded with zlib-rs.
pub struct GzipDecoder<R: BufRead> {
    input: R,
    stream: Stream,
    compressed: u64,
    uncompressed: u64,
    member_ended: bool,
    finished: bool,
    recorder: Option<Recorder>,
}

impl<R: BufRead> GzipDecoder<R> {
    /// Decodes `input` from its start.
    pub fn new(input: R) -> io::Result<GzipDecoder<R>> {
        Ok(GzipDecoder {
            input,
            stream: Stream::gzip()?,
            compressed: 0,
            uncompressed: 0,
            member_ended: false,
            finished: false,
            recorder: None,
        })
    }

    /// Also records resume points into `points` as it goes, at least `span` bytes apart
    /// (normally [`SPAN`]).
    pub fn recording(input: R, points: ResumePoints, span: u64) -> io::Result<GzipDecoder<R>> {
        let mut decoder = GzipDecoder::new(input)?;
        decoder.recorder = Some(Recorder {
            points,
            span,
            next_compressed: span,
            next_uncompressed: span,
        });
        Ok(decoder)
    }

    /// Decodes from `point` on: `input` must yield the blob's bytes from
    /// `point.compressed`. The stream was verified by the pass that recorded the point, so
    /// its CRC is not computed again.
    pub fn resume(input: R, point: &ResumePoint) -> io::Result<GzipDecoder<R>> {
        let mut stream = point.state.copy()?;
        stream.skip_crc()?;
        Ok(GzipDecoder {
            input,
            stream,
            compressed: point.compressed,
            uncompressed: point.uncompressed,
            member_ended: false,
            finished: false,
            recorder: None,
        })
    }

    /// Stops computing the CRC of the members, for a stream verified before (see
    /// [`GzipDecoder::resume`]).
    pub fn skip_crc(&mut self) -> io::Result<()> {
        self.stream.skip_crc()
    }

    /// Bytes of the blob consumed so far (from its start, also after a resume).
    pub fn compressed(&self) -> u64 {
        self.compressed
    }

    /// Bytes of output so far (from the start of the blob, also after a resume).
    pub fn uncompressed(&self) -> u64 {
        self.uncompressed
    }

    pub fn into_inner(self) -> R {
        self.input
    }

    fn record(&mut self) -> io::Result<()> {
        let Some(recorder) = &mut self.recorder else {
            return Ok(());
        };
        if self.compressed < recorder.next_compressed
            || self.uncompressed < recorder.next_uncompressed
        {
            return Ok(());
        }
        let point = ResumePoint {
            compressed: self.compressed,
            uncompressed: self.uncompressed,
            state: self.stream.copy()?,
            boundary: None,
        };
        let mut points = recorder.points.lock().unwrap_or_else(|e| e.into_inner());
        points.push(point);
        if points.len() > MAX_POINTS {
            let mut keep = false;
            points.retain(|_| {
                keep = !keep;
                keep
            });
            recorder.span *= 2;
        }
        recorder.next_compressed = self.compressed + recorder.span;
        recorder.next_uncompressed = self.uncompressed + recorder.span;
        Ok(())
    }
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: BufRead> Read for GzipDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.finished {
            return Ok(0);
        }
        loop {
            let input = self.input.fill_buf()?;
            if self.member_ended {
                // Another member may follow (pigz and concatenated files write several);
                // anything else after a member is an error, as for flate2's MultiGzDecoder.
                if input.is_empty() {
                    self.finished = true;
                    return Ok(0);
                }
                self.stream.reset()?;
                self.member_ended = false;
            }
            let at_end = input.is_empty();
            let (ret, consumed, produced) = self.stream.inflate(input, buf);
            self.input.consume(consumed);
            self.compressed += consumed as u64;
            self.uncompressed += produced as u64;
            match ret {
                z::Z_STREAM_END => {
                    self.member_ended = true;
                    if produced > 0 {
                        return Ok(produced);
                    }
                }
                z::Z_OK | z::Z_BUF_ERROR => {
                    if produced > 0 {
                        self.record()?;
                        return Ok(produced);
                    }
                    if at_end {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the gzip stream ends early (truncated blob)",
                        ));
                    }
                    if consumed == 0 {
                        return Err(corrupt(
                            "the gzip decoder made no progress (corrupt gzip stream)".into(),
                        ));
                    }
                }
                z::Z_DATA_ERROR | z::Z_NEED_DICT => {
                    let why = self
                        .stream
                        .message()
                        .unwrap_or_else(|| "invalid data".into());
                    return Err(corrupt(format!(
                        "corrupt gzip stream at byte {} of the blob: {why}",
                        self.compressed
                    )));
                }
                z::Z_MEM_ERROR => {
                    return Err(io::Error::new(
                        io::ErrorKind::OutOfMemory,
                        "out of memory decoding gzip",
                    ))
                }
                other => {
                    return Err(io::Error::other(format!(
                        "the gzip decoder failed (zlib code {other})"
                    )))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::{BufReader, Write};

    /// Compressible but not trivially: text-like lines with a counter.
    fn data(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(
                format!("line {i} of {} {}\n", i * 7919 % 1009, i ^ 0x5a5a).as_bytes(),
            );
            i += 1;
        }
        out.truncate(len);
        out
    }

    fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn read_all(r: &mut impl Read, piece: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn decodes_what_flate2_encodes_in_any_piece_size() {
        let plain = data(300_000);
        let gz = gzip(&plain, 6);
        for piece in [1, 512, 4096, 1 << 20] {
            let mut d = GzipDecoder::new(BufReader::with_capacity(1000, &gz[..])).unwrap();
            assert_eq!(read_all(&mut d, piece).unwrap(), plain, "piece {piece}");
            assert_eq!(d.uncompressed(), plain.len() as u64);
        }
    }

    #[test]
    fn several_members_are_one_stream() {
        let (a, b) = (data(70_000), data(5_000));
        let mut gz = gzip(&a, 1);
        gz.extend(gzip(b"", 6));
        gz.extend(gzip(&b, 9));
        let mut d = GzipDecoder::new(&gz[..]).unwrap();
        assert_eq!(read_all(&mut d, 777).unwrap(), [a, b].concat());
    }

    #[test]
    fn truncated_corrupt_and_trailing_garbage_are_errors() {
        let plain = data(100_000);
        let gz = gzip(&plain, 6);
        let err = read_all(&mut GzipDecoder::new(&gz[..gz.len() - 5]).unwrap(), 4096).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        // A changed byte in the CRC trailer.
        let mut bad = gz.clone();
        let at = bad.len() - 6;
        bad[at] ^= 1;
        let err = read_all(&mut GzipDecoder::new(&bad[..]).unwrap(), 4096).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("corrupt gzip stream"), "{err}");
        // Garbage after a complete member.
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"not gzip");
        let err = read_all(&mut GzipDecoder::new(&trailing[..]).unwrap(), 4096).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        // Not gzip at all.
        let err = read_all(&mut GzipDecoder::new(&b"plain text"[..]).unwrap(), 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    /// Every recorded point restarts the stream at exactly its offset, in every member,
    /// whatever the read sizes.
    #[test]
    fn every_point_resumes_at_its_offset() {
        const SPAN: u64 = 50_000;
        let first = data(900_000);
        let second = data(300_000 + 12_345);
        let plain = [first.as_slice(), second.as_slice()].concat();
        // Stored and compressed members, so that points fall both in stored blocks and
        // between Huffman codes.
        let gz = [gzip(&first, 0), gzip(&second, 1)].concat();
        let points = ResumePoints::default();
        let mut d = GzipDecoder::recording(&gz[..], points.clone(), SPAN).unwrap();
        assert_eq!(read_all(&mut d, 10_003).unwrap(), plain);
        let points = points.lock().unwrap();
        assert!(points.len() >= 8, "{} points", points.len());
        let mut last = (0, 0);
        for p in points.iter() {
            assert!(p.compressed >= last.0 + SPAN && p.uncompressed >= last.1 + SPAN);
            last = (p.compressed, p.uncompressed);
            let mut resumed = GzipDecoder::resume(&gz[p.compressed as usize..], p).unwrap();
            let rest = read_all(&mut resumed, 65_536).unwrap();
            assert_eq!(rest.len(), plain.len() - p.uncompressed as usize);
            assert!(
                rest == plain[p.uncompressed as usize..],
                "point at {}",
                p.uncompressed
            );
        }
    }

    #[test]
    fn points_thin_out_past_the_maximum() {
        const SPAN: u64 = 10_000;
        let plain = data((MAX_POINTS + 10) * SPAN as usize);
        let gz = gzip(&plain, 0);
        let points = ResumePoints::default();
        let mut d = GzipDecoder::recording(&gz[..], points.clone(), SPAN).unwrap();
        read_all(&mut d, 1000).unwrap();
        let points = points.lock().unwrap();
        assert!(points.len() <= MAX_POINTS && points.len() >= MAX_POINTS / 2);
        // Still spread over the whole stream, not bunched at its start.
        assert!(points.last().unwrap().uncompressed > plain.len() as u64 - 4 * SPAN);
    }
}
