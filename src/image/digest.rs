//! Content digests (`sha256:…`, `sha512:…`) and a reader that verifies them on the bytes read.
//!
//! Verification happens inside `read`: the call that observes end-of-stream fails with
//! `InvalidData` when the digest or the length is wrong, and a stream that runs past the length
//! the descriptor promised fails as soon as it does. Whoever drains the stream therefore cannot
//! forget the check, and a hostile endless blob is cut off early.

use crate::error::{tagged_io, ErrorKind};
use sha2::{Digest as _, Sha256, Sha512};
use std::fmt;
use std::io::{self, Read};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A parsed, validated digest. Only algorithms we can verify are representable, so holding a
/// `Digest` means the bytes it names can be checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn parse(text: &str) -> Result<Digest, String> {
        let (alg, hex) = text
            .split_once(':')
            .ok_or_else(|| format!("digest {text:?} has no algorithm prefix"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(format!(
                    "digest {text:?} uses unsupported algorithm {other:?}"
                ))
            }
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "digest {text:?} is not {} lowercase hex characters",
                algorithm.hex_len()
            ));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The digest of `data` computed with `algorithm`.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(data);
        hasher.finish()
    }

    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, data)
    }

    /// Checks in-memory bytes (manifests, configs) against this digest.
    pub fn verify(&self, data: &[u8]) -> Result<(), String> {
        let actual = Digest::of(self.algorithm, data);
        if &actual == self {
            Ok(())
        } else {
            Err(format!("digest mismatch: expected {self}, got {actual}"))
        }
    }

    /// The 12-hex-digit form people recognise from `docker images`.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm.name(), &self.hex[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        let mut hex = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            hex.push_str(&format!("{b:02x}"));
        }
        Digest { algorithm, hex }
    }
}

/// What a verified stream must turn out to be. Either part may be unknown (a `docker save`
/// layer has no blob digest, only the diff_id that covers its uncompressed form).
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    /// A ceiling for streams of unknown exact size (decompressed layers), with the error to
    /// give when it is passed.
    pub max: Option<(u64, String)>,
    /// Names the stream in error messages: "blob sha256:…", "uncompressed layer".
    pub what: String,
}

/// Hashes everything read through it and checks digest and size at end of stream.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Expected,
    read: u64,
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Expected) -> Self {
        VerifyingReader {
            hasher: expected.digest.as_ref().map(|d| Hasher::new(d.algorithm())),
            inner,
            expected,
            read: 0,
            verified: false,
        }
    }

    /// True once end-of-stream was reached and everything matched.
    pub fn verified(&self) -> bool {
        self.verified
    }

    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn check_at_end(&mut self) -> io::Result<()> {
        if let Some(size) = self.expected.size {
            if self.read != size {
                return Err(mismatch(format!(
                    "{} is {} bytes, but its descriptor says {size} (truncated or wrong size)",
                    self.expected.what, self.read
                )));
            }
        }
        if let (Some(hasher), Some(expected)) = (self.hasher.take(), &self.expected.digest) {
            let actual = hasher.finish();
            if &actual != expected {
                return Err(mismatch(format!(
                    "{} has digest {actual}, expected {expected} (corrupted or tampered)",
                    self.expected.what
                )));
            }
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified || buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.check_at_end()?;
            return Ok(0);
        }
        self.read += n as u64;
        if let Some(size) = self.expected.size {
            if self.read > size {
                return Err(mismatch(format!(
                    "{} is longer than the size its descriptor says ({size} bytes): wrong size or tampered",
                    self.expected.what
                )));
            }
        }
        if let Some((max, why)) = &self.expected.max {
            if self.read > *max {
                return Err(tagged_io(
                    io::ErrorKind::InvalidData,
                    ErrorKind::HostileInput,
                    format!(
                        "{} is larger than {}: {why}",
                        self.expected.what,
                        crate::terminal::human_size(*max)
                    ),
                ));
            }
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Bytes that are not the ones the descriptor names: an integrity failure, whatever layer
/// of readers it travels through.
fn mismatch(msg: String) -> io::Error {
    tagged_io(io::ErrorKind::InvalidData, ErrorKind::Integrity, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_rejects() {
        assert!(Digest::parse(EMPTY_SHA256).is_ok());
        assert!(Digest::parse("sha256:E3B0").is_err());
        assert!(Digest::parse("md5:abc").is_err());
        assert!(Digest::parse("e3b0c442").is_err());
        let upper = EMPTY_SHA256.to_uppercase().replace("SHA256", "sha256");
        assert!(Digest::parse(&upper).is_err());
    }

    #[test]
    fn sha512_roundtrip() {
        let d = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
        assert!(d.to_string().starts_with("sha512:ddaf35a1"));
    }

    fn drain<R: Read>(mut r: R) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn verifying_reader_accepts_good_and_rejects_bad() {
        let data = b"hello world".to_vec();
        let good = Expected {
            digest: Some(Digest::sha256_of(&data)),
            size: Some(data.len() as u64),
            max: None,
            what: "blob".into(),
        };
        assert_eq!(
            drain(VerifyingReader::new(&data[..], good.clone())).unwrap(),
            data
        );

        let mut corrupted = data.clone();
        corrupted[3] ^= 1;
        let err = drain(VerifyingReader::new(&corrupted[..], good.clone())).unwrap_err();
        assert!(err.to_string().contains("has digest"), "{err}");
        let kind = |e: io::Error| crate::error::classify(&anyhow::Error::new(e));
        assert_eq!(kind(err), ErrorKind::Integrity);

        let err = drain(VerifyingReader::new(&data[..5], good.clone())).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert_eq!(kind(err), ErrorKind::Integrity);

        let longer = [&data[..], b"!"].concat();
        let err = drain(VerifyingReader::new(&longer[..], good)).unwrap_err();
        assert!(err.to_string().contains("longer"), "{err}");

        let capped = Expected {
            digest: None,
            size: None,
            max: Some((4, "a bomb".into())),
            what: "layer".into(),
        };
        let err = drain(VerifyingReader::new(&data[..], capped)).unwrap_err();
        assert!(err.to_string().contains("larger than 4 B: a bomb"), "{err}");
        assert_eq!(kind(err), ErrorKind::HostileInput);
    }
}
