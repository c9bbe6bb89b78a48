//! The wsl.conf writer and merge (`oci2wsl::wsl::ini`) and the `[boot] command` builder,
//! checked against the tests' separate reading of WSL's grammar
//! (tests/support/wsl_conf_oracle.rs, kept apart from `src/` on purpose).
//!
//! Input: fields separated by NUL bytes: an image's own file, a section, a key, a value,
//! then the arguments of a boot command.
//! - Parsing and printing an untouched file changes nothing but a missing last newline.
//! - `get` reads what WSL reads.
//! - After `set`, WSL reads the new value for that key with no warning about it, every
//!   other key reads as before, and a file WSL stopped reading still stops at the same line.
//! - A boot command for any argv without NUL can be written, and reads back unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oci2wsl::wsl::config::boot_script;
use oci2wsl::wsl::ini::Ini;

#[path = "../../tests/support/wsl_conf_oracle.rs"]
mod wsl_conf_oracle;

fn name_or(field: &[u8], default: &str) -> String {
    let valid = field.first().is_some_and(u8::is_ascii_alphabetic)
        && field.iter().all(u8::is_ascii_alphanumeric);
    if valid {
        String::from_utf8_lossy(field).into_owned()
    } else {
        default.to_string()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|b| *b == 0);
    let text = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let section = name_or(fields.next().unwrap_or_default(), "boot");
    let key = name_or(fields.next().unwrap_or_default(), "command");
    let value = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let argv: Vec<String> = fields
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();

    let ini = Ini::parse(&text);
    let printed = ini.text();
    assert!(
        printed == text || printed == format!("{text}\n"),
        "parse and print changed the file"
    );
    let before = wsl_conf_oracle::read(printed.as_bytes());
    for (full, read) in &before.values {
        if let Some((s, k)) = full.split_once('.') {
            assert_eq!(ini.get(s, k).as_deref(), Some(read.as_str()), "get {full}");
        }
    }
    assert_eq!(ini.first_invalid().is_some(), before.rejected);

    let mut edited = ini.clone();
    if edited.set(&section, &key, &value).is_ok() {
        let after = wsl_conf_oracle::read(edited.text().as_bytes());
        let full = format!("{section}.{key}");
        assert_eq!(after.get(&full), Some(value.as_str()), "{full} after set");
        assert!(
            !after.warnings.iter().any(|w| w
                .to_ascii_lowercase()
                .contains(&format!(": {} duplicates", full.to_ascii_lowercase()))),
            "a duplicate of {full} is left: {:?}",
            after.warnings
        );
        for (other, read) in &before.values {
            if !other.eq_ignore_ascii_case(&full) {
                assert_eq!(after.get(other), Some(read.as_str()), "{other} changed");
            }
        }
        assert_eq!(after.rejected, before.rejected);
    }

    if !argv.is_empty() && !argv.iter().any(|a| a.contains('\0')) {
        let script = boot_script(Some(&value), &argv);
        if !value.contains('\0') {
            let script = script.expect("a boot command without NUL");
            let mut conf = Ini::parse("");
            conf.set("boot", "command", &script)
                .expect("a boot command is always representable");
            let read = wsl_conf_oracle::read(conf.text().as_bytes());
            assert!(read.warnings.is_empty(), "{:?}", read.warnings);
            assert_eq!(read.get("boot.command"), Some(script.as_str()));
        }
    }
});
