//! wsl-stand-in: behaves like the parts of `wsl.exe` that oci2wsl uses.
//!
//! State lives in `$WSL_STAND_IN_DIR`: `calls.log` (one line per call, arguments separated
//! by tabs), `distros/NAME` (what an import registered: its directory, version and the
//! tar's entries) and `NAME.tar` (the uncompressed tar it received). Like WSL it prints
//! UTF-16LE unless `WSL_UTF8=1` (and `WSL_STAND_IN_UTF16` is unset). `WSL_STAND_IN_FAIL=MESSAGE` makes an import read all of
//! its input and then fail with MESSAGE, as WSL relays errors from inside the VM;
//! `WSL_STAND_IN_FAIL_AFTER=N` fails after reading N bytes of a streamed tar;
//! `WSL_STAND_IN_SLOW` reads a streamed tar slowly. `WSL_STAND_IN_BROKEN=not-installed`,
//! `not-enabled` or `MESSAGE` makes every call fail as such a WSL does; `WSL_STAND_IN_WINDOWS_ROOT` makes it take Windows paths only (see `on_windows`). `NAME.pid` holds the id of the process
//! that imports NAME; `NAME.eof` records that the input ended.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn say(text: &str) {
    let text = text.replace('\n', "\r\n");
    let mut out = io::stdout();
    // WSL_STAND_IN_UTF16 plays a WSL too old to know WSL_UTF8.
    if std::env::var("WSL_UTF8").as_deref() == Ok("1")
        && std::env::var_os("WSL_STAND_IN_UTF16").is_none()
    {
        let _ = out.write_all(text.as_bytes());
    } else {
        let bytes: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let _ = out.write_all(&bytes);
    }
}

fn fail(text: &str) -> ExitCode {
    say(&format!("{text}\n"));
    ExitCode::from(1)
}

fn state() -> PathBuf {
    PathBuf::from(std::env::var_os("WSL_STAND_IN_DIR").expect("WSL_STAND_IN_DIR is not set"))
}

fn registered() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(state().join("distros"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn octal(field: &[u8]) -> Result<u64, String> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            v = v.checked_mul(256).ok_or("size overflow")? | u64::from(*b);
        }
        return Ok(v);
    }
    let text: String = field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| format!("bad octal field {text:?}"))
}

fn pax_records(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(space) = rest.iter().position(|b| *b == b' ') {
        let Ok(len) = std::str::from_utf8(&rest[..space])
            .unwrap_or("x")
            .parse::<usize>()
        else {
            break;
        };
        if len > rest.len() || len <= space + 1 {
            break;
        }
        let record = &rest[space + 1..len - 1];
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            out.push((
                String::from_utf8_lossy(&record[..eq]).into_owned(),
                record[eq + 1..].to_vec(),
            ));
        }
        rest = &rest[len..];
    }
    out
}

fn clean(name: &str) -> String {
    name.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

/// Checks the whole archive as WSL's bsdtar extraction would meet it: every header's
/// checksum, content present, hardlink targets earlier, an end-of-archive marker, and a
/// root file system (`/etc` or `/bin/sh`). Returns the entry names.
fn check_tar(data: &[u8]) -> Result<Vec<String>, String> {
    let mut pos = 0;
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    let mut long_name: Option<String> = None;
    let mut long_link: Option<String> = None;
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let header = data
            .get(pos..pos + 512)
            .ok_or("bsdtar: Truncated tar archive (no end-of-archive marker)")?;
        if header.iter().all(|b| *b == 0) {
            if data
                .get(pos + 512..pos + 1024)
                .is_none_or(|b| b.iter().any(|x| *x != 0))
            {
                return Err("bsdtar: Truncated tar archive (one end block)".into());
            }
            break;
        }
        let stored = octal(&header[148..156])?;
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if sum != stored {
            return Err(format!(
                "bsdtar: Damaged tar archive (bad header checksum at {pos})"
            ));
        }
        let size = octal(&header[124..136])?;
        let typeflag = header[156];
        let body = pos + 512;
        let padded = size.div_ceil(512) * 512;
        let end = body as u64 + padded;
        if end > data.len() as u64 {
            return Err("bsdtar: Truncated tar archive (content cut short)".into());
        }
        let content = &data[body..body + size as usize];
        pos = end as usize;
        match typeflag {
            b'x' => {
                pax = pax_records(content);
                continue;
            }
            b'g' => continue,
            b'L' => {
                long_name = Some(
                    String::from_utf8_lossy(content)
                        .trim_end_matches('\0')
                        .into(),
                );
                continue;
            }
            b'K' => {
                long_link = Some(
                    String::from_utf8_lossy(content)
                        .trim_end_matches('\0')
                        .into(),
                );
                continue;
            }
            _ => {}
        }
        let field = |r: std::ops::Range<usize>| {
            String::from_utf8_lossy(header[r].split(|b| *b == 0).next().unwrap()).into_owned()
        };
        let mut name = field(0..100);
        let prefix = field(345..500);
        if &header[257..262] == b"ustar" && !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        let mut link = field(157..257);
        if let Some(n) = long_name.take() {
            name = n;
        }
        if let Some(l) = long_link.take() {
            link = l;
        }
        for (k, v) in pax.drain(..) {
            match k.as_str() {
                "path" => name = String::from_utf8_lossy(&v).into_owned(),
                "linkpath" => link = String::from_utf8_lossy(&v).into_owned(),
                _ => {}
            }
        }
        let name = clean(&name);
        if typeflag == b'1' && !seen.contains(&clean(&link)) {
            return Err(format!("bsdtar: Hard-link target '{link}' does not exist."));
        }
        seen.insert(name.clone());
        names.push(name);
    }
    if !seen.contains("etc") && !seen.contains("bin/sh") {
        return Err("The imported file is not a valid Linux distribution. Error code: Wsl/Service/RegisterDistro/WSL_E_NOT_A_LINUX_DISTRO".into());
    }
    Ok(names)
}

/// Where a path WSL was given lives. With `WSL_STAND_IN_WINDOWS_ROOT` set the stand-in is
/// the Windows program that `wsl.exe` is: it takes only Windows drive paths, and drive
/// `X:` is the directory `x` under that root.
fn on_windows(path: &str) -> Result<PathBuf, String> {
    let Some(root) = std::env::var_os("WSL_STAND_IN_WINDOWS_ROOT") else {
        return Ok(PathBuf::from(path));
    };
    let b = path.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_alphabetic() || b[1] != b':' || b[2] != b'\\' {
        return Err(format!("The system cannot find the path specified.\nError code: Wsl/Service/RegisterDistro/ERROR_PATH_NOT_FOUND (not a Windows path: {path})"));
    }
    let mut out = PathBuf::from(root).join(path[..1].to_ascii_lowercase());
    for part in path[3..].split('\\').filter(|p| !p.is_empty()) {
        out.push(part);
    }
    Ok(out)
}

fn import(args: &[String]) -> ExitCode {
    let (name, dir, file) = match args {
        [name, dir, file, ..] => (name, dir, file),
        _ => return fail("Invalid command line argument: --import\nError code: Wsl/E_INVALIDARG"),
    };
    // Which process reads the tar, so a test can wait for it to end.
    fs::write(
        state().join(format!("{name}.pid")),
        std::process::id().to_string(),
    )
    .unwrap();
    let version = match &args[3..] {
        [] => "default".to_string(),
        [flag, v] if flag == "--version" && (v == "1" || v == "2") => v.clone(),
        other => {
            return fail(&format!(
                "Invalid command line argument: {}",
                other.join(" ")
            ))
        }
    };
    let valid = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid {
        return fail("The supplied distribution name is invalid.\nError code: Wsl/Service/RegisterDistro/E_INVALIDARG");
    }
    if registered().iter().any(|n| n.eq_ignore_ascii_case(name)) {
        return fail("A distribution with the supplied name already exists.\nError code: Wsl/Service/RegisterDistro/ERROR_ALREADY_EXISTS");
    }
    let dir_arg = dir;
    let dir = match on_windows(dir) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let dir = dir.as_path();
    // wsl.exe creates the last component only.
    if let Err(e) = fs::create_dir(dir) {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return fail(&format!(
                "The system cannot find the path specified.\nError code: Wsl/Service/RegisterDistro/CreateVm/ERROR_PATH_NOT_FOUND ({}: {e})",
                dir.display()
            ));
        }
    }
    // WSL_STAND_IN_FAIL_AFTER=N: give up after N bytes, as WSL does when the disk fills
    // or bsdtar stops, leaving the writer with a closed pipe.
    if let Some(limit) = std::env::var("WSL_STAND_IN_FAIL_AFTER")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
    {
        let mut sink = Vec::new();
        let _ = io::stdin().lock().take(limit).read_to_end(&mut sink);
        return fail("bsdtar: Write failed: No space left on device\nError code: Wsl/Service/RegisterDistro/0x8007006e");
    }
    let mut data = Vec::new();
    let read = if file == "-" && std::env::var_os("WSL_STAND_IN_SLOW").is_some() {
        // A slow disk: 64 KiB every 20 ms, so a test can interrupt the writer mid-stream.
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match io::stdin().lock().read(&mut chunk) {
                Ok(0) => break Ok(data.len()),
                Ok(n) => data.extend_from_slice(&chunk[..n]),
                Err(e) => break Err(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    } else if file == "-" {
        io::stdin().lock().read_to_end(&mut data)
    } else {
        match on_windows(file) {
            Ok(path) => fs::File::open(path).and_then(|mut f| f.read_to_end(&mut data)),
            Err(e) => return fail(&e),
        }
    };
    if let Err(e) = read {
        return fail(&format!("The system cannot find the file specified.\nError code: Wsl/Service/RegisterDistro/ERROR_FILE_NOT_FOUND ({file}: {e})"));
    }
    // Seeing the end of the input is what a killed import never does.
    fs::write(state().join(format!("{name}.eof")), data.len().to_string()).unwrap();
    let compressed = data.len();
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        if let Err(e) = flate2::read::MultiGzDecoder::new(data.as_slice()).read_to_end(&mut plain) {
            return fail(&format!("bsdtar: Error opening archive: gzip: {e}"));
        }
        data = plain;
    }
    if let Ok(message) = std::env::var("WSL_STAND_IN_FAIL") {
        return fail(&message);
    }
    let names = match check_tar(&data) {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    let distros = state().join("distros");
    fs::create_dir_all(&distros).unwrap();
    fs::write(state().join(format!("{name}.tar")), &data).unwrap();
    let record = format!(
        "dir={dir_arg}\nversion={version}\nfile={file}\ninput_bytes={compressed}\nentries={}\n{}\n",
        names.len(),
        names.join("\n")
    );
    fs::write(distros.join(name), record).unwrap();
    fs::write(dir.join("ext4.vhdx"), b"stand-in disk\n").unwrap();
    say(
        "Import in progress, this may take a few minutes.\nThe operation completed successfully.\n",
    );
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let state = state();
    fs::create_dir_all(&state).unwrap();
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("calls.log"))
        .unwrap();
    writeln!(log, "{}", args.join("\t")).unwrap();
    drop(log);
    // A Windows where WSL is missing, switched off, or failing: every call fails.
    match std::env::var("WSL_STAND_IN_BROKEN").as_deref() {
        Ok("not-installed") => return fail("The Windows Subsystem for Linux is not installed. You can install by running 'wsl.exe --install'.\nFor more information please visit https://aka.ms/wslinstall"),
        Ok("not-enabled") => return fail("The Windows Subsystem for Linux optional component is not enabled. Please enable it and try again.\nError code: Wsl/WSL_E_WSL_OPTIONAL_COMPONENT_REQUIRED"),
        Ok(message) => return fail(message),
        Err(_) => {}
    }
    match args.first().map(String::as_str) {
        Some("--list" | "-l") if args[1..].iter().all(|a| a == "--quiet" || a == "-q") => {
            let names = registered();
            if names.is_empty() {
                return fail("Windows Subsystem for Linux has no installed distributions.");
            }
            say(&format!("{}\n", names.join("\n")));
            ExitCode::SUCCESS
        }
        Some("--import") => import(&args[1..]),
        Some("--unregister") if args.len() == 2 => {
            let record = state.join("distros").join(&args[1]);
            if fs::remove_file(record).is_err() {
                return fail("There is no distribution with the supplied name.\nError code: Wsl/Service/WSL_E_DISTRO_NOT_FOUND");
            }
            say("Unregistering.\nThe operation completed successfully.\n");
            ExitCode::SUCCESS
        }
        _ => fail(&format!(
            "wsl-stand-in: unsupported arguments: {}",
            args.join(" ")
        )),
    }
}
