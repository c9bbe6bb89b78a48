//! Text that came from outside (a registry's error message, an image's config) on its way to
//! the user's terminal. A control character there could move the cursor, rewrite earlier
//! lines or retitle the window, so each one is shown as an escape instead of being sent.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL and C1, so ESC, CR, BEL and CSI among them)
/// written as `\x1b` / `\u{9b}`; a backslash stays as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c as u32 {
            code @ 0..=0x7f if c.is_control() => out.push_str(&format!("\\x{code:02x}")),
            code if c.is_control() => out.push_str(&format!("\\u{{{code:x}}}")),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A size as people read it: `4 B`, `1.0 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::human_size(4), "4 B");
        assert_eq!(super::human_size(1 << 30), "1.0 GiB");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain text é"), "plain text é");
        assert_eq!(printable("a\x1b[2Jb\rc\x07"), "a\\x1b[2Jb\\x0dc\\x07");
        assert_eq!(printable("tab\there\n"), "tab\\x09here\\x0a");
        assert_eq!(printable("csi\u{9b}31m del\x7f"), "csi\\u{9b}31m del\\x7f");
        assert!(!printable("\x1b]0;title\x07").chars().any(char::is_control));
    }
}
