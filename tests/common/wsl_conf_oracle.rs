//! A test oracle: what WSL reads from `/etc/wsl.conf` or `/etc/wsl-distribution.conf`.
//!
//! Re-implemented, for the tests only, from the behaviour of WSL's own parser
//! (microsoft/WSL, `src/shared/configfile/configfile.cpp`, `ParseConfigFile` in parse mode),
//! as the Linux side calls it for both files (`WslDistributionConfig.cpp`, `init.cpp`: flags
//! `CFG_SKIP_UNKNOWN_VALUES`, so *not* `CFG_SKIP_INVALID_LINES`). It is written apart from
//! `src/wsl/ini.rs` on purpose: the writer is checked against a second reading of WSL's
//! rules, not against itself. It follows the C++ control flow character by character:
//!
//! - a line starts, after spaces and tabs, with `#` (a comment), `[` (a section), a letter
//!   (a key), or is empty; anything else is an invalid line;
//! - `[name]`: a letter, then letters and digits, `]`, then only spaces, tabs or a comment;
//! - `key = value`: a letter, then letters and digits, spaces, `=`, spaces; the value runs
//!   to the line end; `"` toggles quoting and is removed; `#` outside quotes starts a
//!   comment; `\\ \" \b \n \t` and a backslash before a newline (a continuation) are the
//!   only escapes, inside quotes or out; trailing spaces are trimmed (a closing quote or an
//!   escape is not a space, so it keeps what precedes it);
//! - an invalid line, an invalid escape or an unclosed quote ends the parse: nothing after
//!   it is read, and the file counts as rejected;
//! - the first occurrence of a key (section and key compared without case) wins; a later
//!   one is ignored with a warning.
//!
//! WSL reads with `fgetwc` and stores `(char)ch`: with a C library whose C locale passes
//! bytes through (musl, MSVC), each byte is one character. The oracle reads bytes; whether a
//! byte ≥ 0x80 is a letter is decided as in the C locale (it is not).
#![allow(dead_code)]

/// What WSL makes of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// `section.key` → value, in file order, first occurrence only.
    pub values: Vec<(String, String)>,
    /// What WSL prints about the file (duplicates, invalid lines), with line numbers.
    pub warnings: Vec<String>,
    /// The parse stopped at an invalid line; nothing after it was read.
    pub rejected: bool,
}

impl Reading {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

struct Stream<'a> {
    bytes: &'a [u8],
    at: usize,
    /// `feof`: a read has hit the end.
    eof: bool,
}

impl Stream<'_> {
    /// `fgetwc`: the next character, `None` at the end.
    fn get(&mut self) -> Option<u8> {
        let c = self.bytes.get(self.at).copied();
        match c {
            Some(_) => self.at += 1,
            None => self.eof = true,
        }
        c
    }

    /// `ungetwc` of the character just read.
    fn unget(&mut self) {
        self.at -= 1;
        self.eof = false;
    }
}

fn hspace(c: Option<u8>) -> bool {
    matches!(c, Some(b' ' | b'\t'))
}

fn alpha(c: Option<u8>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphabetic())
}

fn alnum(c: Option<u8>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Reads `bytes` as WSL's Linux side does.
pub fn read(bytes: &[u8]) -> Reading {
    let mut s = Stream {
        bytes,
        at: 0,
        eof: false,
    };
    let mut out = Reading::default();
    let mut first_seen: Vec<(String, u64)> = Vec::new();
    let mut line: u64 = 0;
    let mut section = String::new();
    // The character in hand when a line starts; `Some(0)` stands for the C code's 0.
    let mut ch: Option<u8> = Some(0);
    let mut trailing_comment = false;

    let invalid = |out: &mut Reading, line: u64, why: &str| {
        out.warnings.push(format!("line {line}: {why}"));
        out.rejected = true;
    };

    'new_line: loop {
        if !trailing_comment {
            line += 1;
        }
        loop {
            if ch == Some(b'#') {
                loop {
                    ch = s.get();
                    if ch == Some(b'\r') {
                        ch = s.get();
                    }
                    if ch == Some(b'\n') {
                        line += 1;
                    }
                    if ch == Some(b'\n') || ch.is_none() {
                        break;
                    }
                }
                trailing_comment = false;
            }
            if s.eof {
                return out;
            }
            ch = s.get();
            while hspace(ch) {
                ch = s.get();
            }
            match ch {
                None => {}
                Some(b'\r') => match s.get() {
                    Some(b'\n') => line += 1,
                    Some(_) => s.unget(),
                    None => {}
                },
                Some(b'\n') => line += 1,
                Some(b'#') => {}
                Some(b'[') => {
                    // A section.
                    ch = s.get();
                    if !alpha(ch) {
                        invalid(&mut out, line, "invalid section name");
                        return out;
                    }
                    let mut name = Vec::new();
                    while alnum(ch) {
                        name.push(ch.unwrap());
                        ch = s.get();
                    }
                    if ch != Some(b']') {
                        invalid(&mut out, line, "expected ']'");
                        return out;
                    }
                    ch = s.get();
                    while hspace(ch) {
                        ch = s.get();
                    }
                    match ch {
                        None | Some(b'\n' | b'\r') => {}
                        Some(b'#') => trailing_comment = true,
                        Some(_) => {
                            invalid(&mut out, line, "expected ' ' or '\\n' after ']'");
                            return out;
                        }
                    }
                    section = String::from_utf8_lossy(&name).into_owned();
                    continue 'new_line;
                }
                Some(c) if !c.is_ascii_alphabetic() => {
                    invalid(&mut out, line, "invalid key name");
                    return out;
                }
                Some(_) => {
                    // A key and its value.
                    let mut key = if section.is_empty() {
                        String::new()
                    } else {
                        format!("{section}.")
                    };
                    while alnum(ch) {
                        key.push(ch.unwrap() as char);
                        ch = s.get();
                    }
                    while hspace(ch) {
                        ch = s.get();
                    }
                    if ch != Some(b'=') {
                        invalid(&mut out, line, "expected '='");
                        return out;
                    }
                    ch = s.get();
                    while hspace(ch) {
                        ch = s.get();
                    }
                    let mut value: Vec<u8> = Vec::new();
                    let mut trimmed = 0;
                    let mut in_quote = false;
                    while let Some(c) = ch.filter(|c| *c != b'\n' && *c != b'\r') {
                        match c {
                            b'"' => in_quote = !in_quote,
                            b'\\' => match s.get() {
                                Some(e @ (b'\\' | b'"')) => value.push(e),
                                Some(b'b') => value.push(8),
                                Some(b'n') => value.push(b'\n'),
                                Some(b't') => value.push(b'\t'),
                                Some(b'\n') => line += 1,
                                other => {
                                    invalid(
                                        &mut out,
                                        line,
                                        &format!("invalid escape {:?}", other.map(char::from)),
                                    );
                                    return out;
                                }
                            },
                            b'#' if !in_quote => {
                                trailing_comment = true;
                                break;
                            }
                            _ => value.push(c),
                        }
                        if !hspace(Some(c)) {
                            trimmed = value.len();
                        }
                        ch = s.get();
                    }
                    if in_quote {
                        invalid(&mut out, line, "expected '\"'");
                        return out;
                    }
                    value.truncate(trimmed);
                    let value = String::from_utf8_lossy(&value).into_owned();
                    match first_seen
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                    {
                        Some((_, first)) => out.warnings.push(format!(
                            "line {line}: {key} duplicates line {first}; ignored"
                        )),
                        None => {
                            first_seen.push((key.clone(), line));
                            out.values.push((key, value));
                        }
                    }
                    continue 'new_line;
                }
            }
        }
    }
}
