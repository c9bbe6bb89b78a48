//! The INI dialect of `/etc/wsl.conf` and `/etc/wsl-distribution.conf`, edited in place.
//!
//! An image's own file is merged, never rewritten: comments, blank lines, unknown sections
//! and keys we do not set stay exactly as they were, so an image built for WSL keeps what
//! its author wrote.

/// A configuration file as lines, with the edits made so far.
#[derive(Clone, Debug, Default)]
pub struct Ini {
    lines: Vec<String>,
}

fn section_of(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .map(str::trim)
}

fn key_value(line: &str) -> Option<(&str, &str)> {
    let t = line.trim();
    if t.starts_with('#') || t.starts_with(';') {
        return None;
    }
    let (k, v) = t.split_once('=')?;
    Some((k.trim(), v.trim()))
}

impl Ini {
    pub fn parse(text: &str) -> Ini {
        Ini {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// The value the file's reader sees: the last `key` in the last `[section]` that has
    /// it. Section and key names compare without case, as WSL's parser does.
    pub fn get(&self, section: &str, key: &str) -> Option<String> {
        let mut current: Option<String> = None;
        let mut found = None;
        for line in &self.lines {
            if let Some(s) = section_of(line) {
                current = Some(s.to_string());
            } else if let Some((k, v)) = key_value(line) {
                if current
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(section))
                    && k.eq_ignore_ascii_case(key)
                {
                    found = Some(v.to_string());
                }
            }
        }
        found
    }

    /// Sets `key = value` in `[section]`: replaces the line that `get` would read, or adds
    /// the key at the end of the section's last occurrence, or adds the section at the end.
    /// Returns the value it replaced.
    pub fn set(&mut self, section: &str, key: &str, value: &str) -> Option<String> {
        let new_line = format!("{key} = {value}");
        let mut current_matches = false;
        let mut last_key_line = None;
        let mut section_end = None;
        for (i, line) in self.lines.iter().enumerate() {
            if let Some(s) = section_of(line) {
                current_matches = s.eq_ignore_ascii_case(section);
                if current_matches {
                    section_end = Some(i + 1);
                }
                continue;
            }
            if current_matches {
                if !line.trim().is_empty() {
                    section_end = Some(i + 1);
                }
                if let Some((k, _)) = key_value(line) {
                    if k.eq_ignore_ascii_case(key) {
                        last_key_line = Some(i);
                    }
                }
            }
        }
        if let Some(i) = last_key_line {
            let old = key_value(&self.lines[i]).map(|(_, v)| v.to_string());
            self.lines[i] = new_line;
            return old;
        }
        match section_end {
            Some(end) => self.lines.insert(end, new_line),
            None => {
                if self.lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    self.lines.push(String::new());
                }
                self.lines.push(format!("[{section}]"));
                self.lines.push(new_line);
            }
        }
        None
    }

    /// Adds a comment line at the top (a provenance note), unless the file already has it.
    pub fn note(&mut self, comment: &str) {
        let line = format!("# {comment}");
        if !self.lines.contains(&line) {
            self.lines.insert(0, line);
        }
    }

    pub fn text(&self) -> String {
        let mut out = self.lines.join("\n");
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_comments_other_keys_and_sections() {
        let mut ini = Ini::parse(
            "# the image's own\n[boot]\nsystemd=true\n\n[User]\ndefault = old # trailing\n\n[network]\nhostname = box\n",
        );
        assert_eq!(
            ini.get("user", "Default").as_deref(),
            Some("old # trailing")
        );
        assert_eq!(
            ini.set("user", "default", "app").as_deref(),
            Some("old # trailing")
        );
        assert_eq!(ini.set("boot", "command", "echo hi"), None);
        assert_eq!(ini.set("interop", "appendWindowsPath", "true"), None);
        assert_eq!(
            ini.text(),
            "# the image's own\n[boot]\nsystemd=true\ncommand = echo hi\n\n[User]\ndefault = app\n\n[network]\nhostname = box\n\n[interop]\nappendWindowsPath = true\n"
        );
    }

    #[test]
    fn last_occurrence_wins_and_comments_are_not_keys() {
        let mut ini = Ini::parse("[user]\n# default = commented\ndefault=a\n[user]\ndefault=b\n");
        assert_eq!(ini.get("user", "default").as_deref(), Some("b"));
        ini.set("user", "default", "c");
        assert_eq!(
            ini.text(),
            "[user]\n# default = commented\ndefault=a\n[user]\ndefault = c\n"
        );
    }

    #[test]
    fn empty_file_gets_sections() {
        let mut ini = Ini::parse("");
        ini.note("written by oci2wsl");
        ini.set("user", "default", "app");
        ini.note("written by oci2wsl");
        assert_eq!(
            ini.text(),
            "# written by oci2wsl\n\n[user]\ndefault = app\n"
        );
    }
}
