//! The INI dialect of `/etc/wsl.conf` and `/etc/wsl-distribution.conf`, as WSL's own parser
//! reads it (microsoft/WSL, `src/shared/configfile/configfile.cpp`), edited in place.
//!
//! An image's own file is merged, never rewritten: comments, blank lines, unknown sections
//! and keys we do not set stay exactly as they were, so an image built for WSL keeps what
//! its author wrote. What we set is written so that WSL reads exactly our value:
//!
//! - WSL keeps the *first* occurrence of a key and warns about later ones, so we edit the
//!   first one and comment out the rest.
//! - WSL stops reading `wsl.conf` at the first line it cannot parse (the Linux side parses
//!   without `CFG_SKIP_INVALID_LINES`), so a key we add goes before such a line.
//! - Values are always written in double quotes with WSL's escapes (`\\ \" \n \t \b`), so a
//!   `#`, a quote, a backslash or a line break in a value cannot end it, comment it out or
//!   start a new section. What has no faithful spelling (a carriage return, non-ASCII text,
//!   other control characters) is refused rather than written: WSL reads the file with
//!   `fgetwc` and narrows every character to one byte, so what it makes of non-ASCII bytes
//!   depends on the C library's locale.

use anyhow::{bail, Result};

/// What one logical line of the file is to WSL.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Blank, or a comment.
    Blank,
    Section(String),
    /// `key = value`, with the section it is in and the value as WSL reads it.
    Key {
        section: Option<String>,
        name: String,
        value: String,
    },
    /// A line WSL rejects: it stops reading the file here.
    Invalid(String),
}

/// One logical line: a key with line continuations spans several physical lines. `text`
/// holds its bytes up to and including its line ending (`\n`, `\r\n` or a lone `\r`, which
/// WSL also takes for one), so that every segment starts a line.
#[derive(Clone, Debug)]
struct Segment {
    kind: Kind,
    text: String,
}

/// A configuration file as segments, with the edits made so far.
#[derive(Clone, Debug, Default)]
pub struct Ini {
    segments: Vec<Segment>,
}

fn is_hspace(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The end of a comment that starts at `i` (its `#`), past its `\n`. WSL's comment loop
/// swallows the character after every `\r`, whatever it is.
fn comment_end(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() {
        let mut c = b[i];
        i += 1;
        if c == b'\r' {
            if i >= b.len() {
                break;
            }
            c = b[i];
            i += 1;
        }
        if c == b'\n' {
            break;
        }
    }
    i
}

/// Past a `\r` at `i`, and the `\n` after it if there is one: WSL ends a line there.
fn cr_end(b: &[u8], i: usize) -> usize {
    if b.get(i + 1) == Some(&b'\n') {
        i + 2
    } else {
        i + 1
    }
}

/// The line ending `text` closes with: `\r\n`, `\n`, `\r`, or none.
fn terminator(text: &str) -> &str {
    ["\r\n", "\n", "\r"]
        .into_iter()
        .find(|t| text.ends_with(t))
        .unwrap_or("")
}

/// Whether a line added right after `text` would be read as part of it: the file's last
/// line without its line end (a backslash there keeps `parse` from adding one), or a last
/// line whose backslash continues it into whatever follows. A blank line ends either; in
/// any other case it is only a blank line.
fn continues_into_next(text: &str) -> bool {
    let body = text.strip_suffix(terminator(text)).unwrap_or(text);
    body.len() == text.len() || body.ends_with('\\')
}

/// The end of the physical line that contains `i`, past its `\n`.
fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(b.len(), |p| i + p + 1)
}

/// One logical line starting at `start`: its kind and where the next one starts.
fn scan(b: &[u8], start: usize, section: &Option<String>) -> (Kind, usize) {
    let mut i = start;
    while i < b.len() && is_hspace(b[i]) {
        i += 1;
    }
    let invalid = |why: &str| (Kind::Invalid(why.to_string()), line_end(b, start));
    match b.get(i) {
        None => (Kind::Blank, b.len()),
        Some(b'\n') => (Kind::Blank, i + 1),
        Some(b'\r') => (Kind::Blank, cr_end(b, i)),
        Some(b'#') => (Kind::Blank, comment_end(b, i)),
        Some(b'[') => {
            i += 1;
            let name_start = i;
            if !b.get(i).is_some_and(u8::is_ascii_alphabetic) {
                return invalid("a section name starts with a letter");
            }
            while b.get(i).is_some_and(u8::is_ascii_alphanumeric) {
                i += 1;
            }
            let name = String::from_utf8_lossy(&b[name_start..i]).into_owned();
            if b.get(i) != Some(&b']') {
                return invalid("a section name is letters and digits, then ']'");
            }
            i += 1;
            while i < b.len() && is_hspace(b[i]) {
                i += 1;
            }
            match b.get(i) {
                None => (Kind::Section(name), b.len()),
                Some(b'\n') => (Kind::Section(name), i + 1),
                Some(b'\r') => (Kind::Section(name), cr_end(b, i)),
                Some(b'#') => (Kind::Section(name), comment_end(b, i)),
                Some(_) => invalid("nothing but a comment may follow ']'"),
            }
        }
        Some(c) if c.is_ascii_alphabetic() => {
            let name_start = i;
            while b.get(i).is_some_and(u8::is_ascii_alphanumeric) {
                i += 1;
            }
            let name = String::from_utf8_lossy(&b[name_start..i]).into_owned();
            while i < b.len() && is_hspace(b[i]) {
                i += 1;
            }
            if b.get(i) != Some(&b'=') {
                return invalid("a key name is letters and digits, then '='");
            }
            i += 1;
            while i < b.len() && is_hspace(b[i]) {
                i += 1;
            }
            let mut value = Vec::new();
            let mut kept = 0;
            let mut quoted = false;
            let mut end = None;
            while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                let c = b[i];
                match c {
                    b'"' => quoted = !quoted,
                    b'\\' => {
                        i += 1;
                        match b.get(i) {
                            Some(&e @ (b'\\' | b'"')) => value.push(e),
                            Some(b'b') => value.push(0x08),
                            Some(b'n') => value.push(b'\n'),
                            Some(b't') => value.push(b'\t'),
                            Some(b'\n') => {}
                            _ => {
                                return invalid(
                                    "a backslash that is not \\\\ \\\" \\n \\t \\b or a line end",
                                )
                            }
                        }
                    }
                    b'#' if !quoted => {
                        end = Some(comment_end(b, i));
                        break;
                    }
                    _ => value.push(c),
                }
                if !is_hspace(c) {
                    kept = value.len();
                }
                i += 1;
            }
            if quoted {
                return invalid("a double quote that is never closed");
            }
            let end = end.unwrap_or(match b.get(i) {
                Some(b'\n') => i + 1,
                Some(b'\r') => cr_end(b, i),
                _ => i,
            });
            value.truncate(kept);
            (
                Kind::Key {
                    section: section.clone(),
                    name,
                    value: String::from_utf8_lossy(&value).into_owned(),
                },
                end,
            )
        }
        Some(_) => invalid("a line starts with a letter, '[' or '#'"),
    }
}

/// `"value"` in WSL's spelling, or why it has none.
pub fn quote(value: &str) -> Result<String> {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            '\t' => out.push_str(r"\t"),
            '\u{8}' => out.push_str(r"\b"),
            ' '..='~' => out.push(c),
            '\r' => bail!("{value:?} has a carriage return, which WSL's configuration files cannot hold"),
            _ if c.is_ascii() => bail!("{value:?} has a control character, which WSL's configuration files cannot hold"),
            _ => bail!("{value:?} is not ASCII, and WSL reads its configuration files one byte per character, so it may not read it as written"),
        }
    }
    out.push('"');
    Ok(out)
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Ini {
    pub fn parse(text: &str) -> Ini {
        let mut owned;
        let mut text = text;
        // A last line without its newline: give it one, so that a line added after it
        // starts a line of its own. Not after a backslash, where the newline would turn an
        // invalid escape into a line continuation.
        if !text.is_empty() && !text.ends_with('\n') && !text.ends_with('\\') {
            owned = text.to_string();
            owned.push('\n');
            text = &owned;
        }
        let b = text.as_bytes();
        let mut segments = Vec::new();
        let mut section = None;
        let mut i = 0;
        while i < b.len() {
            let (kind, end) = scan(b, i, &section);
            if let Kind::Section(s) = &kind {
                section = Some(s.clone());
            }
            segments.push(Segment {
                kind,
                text: String::from_utf8_lossy(&b[i..end]).into_owned(),
            });
            i = end;
        }
        Ini { segments }
    }

    /// The index of the first line WSL cannot read: it reads nothing from there on.
    fn stop(&self) -> usize {
        self.segments
            .iter()
            .position(|s| matches!(s.kind, Kind::Invalid(_)))
            .unwrap_or(self.segments.len())
    }

    fn is_key(kind: &Kind, section: &str, key: &str) -> bool {
        matches!(kind, Kind::Key { section: Some(s), name, .. } if same(s, section) && same(name, key))
    }

    /// The first line WSL cannot read (1-based line number, the line, and why), which ends
    /// what it reads of the file.
    pub fn first_invalid(&self) -> Option<(usize, String, String)> {
        let mut line = 1;
        for s in &self.segments {
            if let Kind::Invalid(why) = &s.kind {
                return Some((line, s.text.trim_end().to_string(), why.clone()));
            }
            line += s.text.matches('\n').count();
        }
        None
    }

    /// The value WSL reads: the first `key` in a `[section]` before any line it cannot
    /// read. Section and key names compare without case, as WSL's do.
    pub fn get(&self, section: &str, key: &str) -> Option<String> {
        self.segments[..self.stop()]
            .iter()
            .find_map(|s| match &s.kind {
                k @ Kind::Key { value, .. } if Self::is_key(k, section, key) => Some(value.clone()),
                _ => None,
            })
    }

    /// Sets `key = "value"` in `[section]` so that WSL reads `value` without a warning:
    /// replaces the occurrence it reads and comments out the later ones, or adds the key to
    /// the section, or adds the section, before any line WSL would stop at. Returns the
    /// value it replaced; fails when `value` has no spelling WSL reads back unchanged.
    pub fn set(&mut self, section: &str, key: &str, value: &str) -> Result<Option<String>> {
        let quoted =
            quote(value).map_err(|e| anyhow::anyhow!("cannot write [{section}] {key}: {e}"))?;
        let new_line = format!("{key} = {quoted}");
        let stop = self.stop();
        let found: Vec<usize> = (0..stop)
            .filter(|&i| Self::is_key(&self.segments[i].kind, section, key))
            .collect();
        if let Some((&first, later)) = found.split_first() {
            let old = match &self.segments[first].kind {
                Kind::Key { value, .. } => Some(value.clone()),
                _ => None,
            };
            let segment = &mut self.segments[first];
            segment.text = format!("{new_line}{}", terminator(&segment.text));
            segment.kind = Kind::Key {
                section: Some(section.to_string()),
                name: key.to_string(),
                value: value.to_string(),
            };
            for &i in later {
                let segment = &mut self.segments[i];
                let end = terminator(&segment.text);
                let body = &segment.text[..segment.text.len() - end.len()];
                // A comment does not end at a lone `\r` (WSL swallows the character after
                // it), so a commented line ends with `\n` whatever it ended with.
                let end = if end == "\r\n" { end } else { "\n" };
                let commented: Vec<String> = body.split('\n').map(|l| format!("# {l}")).collect();
                segment.text = commented.join("\n") + end;
                segment.kind = Kind::Blank;
            }
            return Ok(old);
        }
        let added = Segment {
            kind: Kind::Key {
                section: Some(section.to_string()),
                name: key.to_string(),
                value: value.to_string(),
            },
            text: format!("{new_line}\n"),
        };
        // After the last key (or the header) of the section's last occurrence.
        let mut at = None;
        let mut inside = false;
        for (i, s) in self.segments[..stop].iter().enumerate() {
            match &s.kind {
                Kind::Section(name) => {
                    inside = same(name, section);
                    if inside {
                        at = Some(i + 1);
                    }
                }
                Kind::Key { .. } if inside => at = Some(i + 1),
                _ => {}
            }
        }
        if let Some(at) = at {
            let mut added = added;
            if at > 0 && continues_into_next(&self.segments[at - 1].text) {
                added.text.insert(0, '\n');
            }
            self.segments.insert(at, added);
            return Ok(None);
        }
        // A new section, at the end of what WSL reads: anything after it is a line WSL
        // stops at, so no key of the image moves into our section.
        let mut new = Vec::new();
        if stop > 0 && !self.segments[stop - 1].text.trim().is_empty() {
            new.push(Segment {
                kind: Kind::Blank,
                text: "\n".into(),
            });
        }
        new.push(Segment {
            kind: Kind::Section(section.to_string()),
            text: format!("[{section}]\n"),
        });
        new.push(added);
        if stop < self.segments.len() {
            new.push(Segment {
                kind: Kind::Blank,
                text: "\n".into(),
            });
        }
        self.segments.splice(stop..stop, new);
        Ok(None)
    }

    /// Adds a comment line at the top (a provenance note), unless the file already has it.
    pub fn note(&mut self, comment: &str) {
        let line = format!("# {comment}\n");
        if !self.segments.iter().any(|s| s.text == line) {
            self.segments.insert(
                0,
                Segment {
                    kind: Kind::Blank,
                    text: line,
                },
            );
        }
    }

    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsl::wsl_conf_oracle::read as wsl_reads;

    /// What WSL reads from `text`, which must hold no line it warns about.
    fn clean(text: &str) -> Vec<(String, String)> {
        let read = wsl_reads(text.as_bytes());
        assert!(read.warnings.is_empty(), "{:?} in\n{text}", read.warnings);
        read.values
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merge_keeps_comments_other_keys_and_sections() {
        let mut ini = Ini::parse(
            "# the image's own\n[boot]\nsystemd=true\n\n[User]\ndefault = old # trailing\n\n[network]\nhostname = box\n",
        );
        // `#` starts a comment anywhere outside quotes.
        assert_eq!(ini.get("user", "Default").as_deref(), Some("old"));
        assert_eq!(
            ini.set("user", "default", "app").unwrap().as_deref(),
            Some("old")
        );
        assert_eq!(ini.set("boot", "command", "echo hi").unwrap(), None);
        assert_eq!(
            ini.set("interop", "appendWindowsPath", "true").unwrap(),
            None
        );
        let text = ini.text();
        assert_eq!(
            text,
            "# the image's own\n[boot]\nsystemd=true\ncommand = \"echo hi\"\n\n[User]\ndefault = \"app\"\n\n[network]\nhostname = box\n\n[interop]\nappendWindowsPath = \"true\"\n"
        );
        assert_eq!(
            clean(&text),
            pairs(&[
                ("boot.systemd", "true"),
                ("boot.command", "echo hi"),
                ("User.default", "app"),
                ("network.hostname", "box"),
                ("interop.appendWindowsPath", "true"),
            ])
        );
    }

    #[test]
    fn the_first_occurrence_is_edited_and_later_ones_commented_out() {
        let image = "[user]\n# default = commented\ndefault=a\n[user]\nDEFAULT=b \\\n  continued\n";
        // WSL reads `a` and warns about the duplicate.
        let read = wsl_reads(image.as_bytes());
        assert_eq!(read.values, pairs(&[("user.default", "a")]));
        assert_eq!(read.warnings.len(), 1, "{:?}", read.warnings);
        let mut ini = Ini::parse(image);
        assert_eq!(ini.get("user", "default").as_deref(), Some("a"));
        assert_eq!(
            ini.set("user", "default", "c").unwrap().as_deref(),
            Some("a")
        );
        let text = ini.text();
        assert_eq!(
            text,
            "[user]\n# default = commented\ndefault = \"c\"\n[user]\n# DEFAULT=b \\\n#   continued\n"
        );
        assert_eq!(clean(&text), pairs(&[("user.default", "c")]));
    }

    #[test]
    fn keys_go_before_a_line_wsl_stops_at() {
        let image = "[boot]\nsystemd=true\n[user]\nbad = C:\\path\ndefault=late\n";
        let ini = Ini::parse(image);
        // WSL stops reading at the invalid escape: `default=late` is never read.
        assert_eq!(ini.get("user", "default"), None);
        assert_eq!(ini.first_invalid().map(|(line, ..)| line), Some(4));
        let read = wsl_reads(image.as_bytes());
        assert!(read.rejected);
        assert_eq!(read.values, pairs(&[("boot.systemd", "true")]));

        let mut ini = Ini::parse(image);
        ini.set("user", "default", "app").unwrap();
        ini.set("network", "hostname", "box").unwrap();
        let text = ini.text();
        assert_eq!(
            text,
            "[boot]\nsystemd=true\n[user]\ndefault = \"app\"\n\n[network]\nhostname = \"box\"\n\nbad = C:\\path\ndefault=late\n"
        );
        let read = wsl_reads(text.as_bytes());
        assert_eq!(
            read.values,
            pairs(&[
                ("boot.systemd", "true"),
                ("user.default", "app"),
                ("network.hostname", "box")
            ])
        );
    }

    #[test]
    fn values_are_quoted_and_escaped() {
        for value in [
            "it's",
            "a # not a comment",
            "say \"hi\"",
            "C:\\path\\",
            "two\nlines\n[user]\ndefault=root",
            "\ttabbed ",
            " padded ",
            "",
            "back\u{8}space",
        ] {
            let mut ini = Ini::parse("");
            ini.set("boot", "command", value).unwrap();
            assert_eq!(
                clean(&ini.text()),
                pairs(&[("boot.command", value)]),
                "{value:?}"
            );
        }
        for value in ["carriage\rreturn", "caf\u{e9}", "bell\u{7}", "nul\0"] {
            let err = Ini::parse("").set("boot", "command", value).unwrap_err();
            assert!(
                err.to_string().starts_with("cannot write [boot] command: "),
                "{err}"
            );
        }
    }

    #[test]
    fn a_file_without_a_last_newline_or_with_crlf() {
        let mut ini = Ini::parse("[user]\r\ndefault=a\r\n[boot]\r\nsystemd=true");
        ini.set("user", "default", "b").unwrap();
        ini.set("boot", "command", "x").unwrap();
        let text = ini.text();
        assert_eq!(
            text,
            "[user]\r\ndefault = \"b\"\r\n[boot]\r\nsystemd=true\ncommand = \"x\"\n"
        );
        assert_eq!(
            clean(&text),
            pairs(&[
                ("user.default", "b"),
                ("boot.systemd", "true"),
                ("boot.command", "x")
            ])
        );
    }

    /// Found by the wsl_conf fuzz target: a section line ended by `\r\n` used to end
    /// before the `\r`, so a key added after it joined the section's line.
    #[test]
    fn fuzz_a_key_added_after_a_crlf_section() {
        let image = "[a]\r\nk = \" spaced \" oti\\ \ncnnumd\r\n";
        let mut ini = Ini::parse(image);
        ini.set("a", "D5", "").unwrap();
        let read = wsl_reads(ini.text().as_bytes());
        assert_eq!(read.get("a.D5"), Some(""));
        assert!(read.rejected, "the image's own invalid line stays");
    }

    /// A fuzz finding (`wsl_conf`): the last line, a comment ending in a backslash and no
    /// line end, swallowed the key added after it.
    #[test]
    fn fuzz_a_key_added_after_a_last_line_ending_in_a_backslash() {
        let image = "[boot]\ncommand = C:^Windows#\\";
        let mut ini = Ini::parse(image);
        ini.set("boot", "ne", "").unwrap();
        let read = wsl_reads(ini.text().as_bytes());
        assert_eq!(read.get("boot.ne"), Some(""));
        assert_eq!(
            read.get("boot.command"),
            wsl_reads(image.as_bytes()).get("boot.command")
        );
    }

    /// A fuzz finding (`wsl_conf`): the section's last key ended the file with a
    /// continuing backslash and its line end; the added key became part of its value.
    #[test]
    fn fuzz_a_key_added_after_a_continued_last_line() {
        let image = "[user]\ndefaull = app [user]\nDEFAULT=\\\n";
        let mut ini = Ini::parse(image);
        ini.set("user", "command", "it's \"q\" #\\").unwrap();
        let read = wsl_reads(ini.text().as_bytes());
        assert_eq!(read.get("user.command"), Some("it's \"q\" #\\"));
        assert_eq!(
            read.get("user.DEFAULT"),
            wsl_reads(image.as_bytes()).get("user.DEFAULT")
        );
    }

    #[test]
    fn empty_file_gets_sections() {
        let mut ini = Ini::parse("");
        ini.note("written by oci2wsl");
        ini.set("user", "default", "app").unwrap();
        ini.note("written by oci2wsl");
        assert_eq!(
            ini.text(),
            "# written by oci2wsl\n\n[user]\ndefault = \"app\"\n"
        );
    }

    /// Agreement with the oracle on what WSL reads, for every line shape it knows.
    #[test]
    fn get_reads_what_wsl_reads() {
        let texts = [
            "[a]\nk = \" spaced \" # c\n",
            "[a] # c\nk=v\\\n w\n",
            "k=sectionless\n[a]\nk=in a\n",
            "[a b]\nk=v\n",
            "[a]\n k = v \n\t[b]\t\nk=\"x\"y\"z\"\n",
            "[a]\nk=\"open\n[b]\nk=v\n",
            "\u{feff}[a]\nk=v\n",
            "[a]\nk=v\\\r\nj=w\n",
        ];
        for text in texts {
            let ini = Ini::parse(text);
            let read = wsl_reads(text.as_bytes());
            for (full, value) in &read.values {
                let (section, key) = full.split_once('.').unwrap_or(("", full));
                if !section.is_empty() {
                    assert_eq!(
                        ini.get(section, key).as_deref(),
                        Some(value.as_str()),
                        "{text:?}"
                    );
                }
            }
            assert_eq!(ini.first_invalid().is_some(), read.rejected, "{text:?}");
        }
    }
}
