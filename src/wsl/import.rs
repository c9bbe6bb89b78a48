//! `wsl.exe --import`: the hand-off to WSL, checked before anything is downloaded.

use super::host::interop;
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Where and how to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The distribution's name.
    pub name: String,
    /// `--install-dir`; default `%LOCALAPPDATA%\Wsl\NAME`.
    pub install_dir: Option<PathBuf>,
    /// `--wsl-version 1|2`; WSL's own default when absent.
    pub version: Option<u8>,
    /// `--wsl-exe` / `OCI2WSL_WSL_EXE`; `wsl.exe` from the PATH otherwise.
    pub wsl_exe: PathBuf,
}

/// WSL's rule for distribution names (`wsl --import` refuses anything else).
pub fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        bail!("{name:?} is not a valid WSL distribution name (letters, digits, '.', '_' and '-', at most 256)");
    }
    if name.eq_ignore_ascii_case("legacy") {
        bail!("\"{name}\" is a name WSL reserves");
    }
    Ok(())
}

/// What `wsl.exe` printed: UTF-16LE unless `WSL_UTF8=1` took effect, so both are read. A
/// byte-order mark decides; without one, text whose every other byte is mostly zero is
/// UTF-16LE.
pub fn decode_output(bytes: &[u8]) -> String {
    let utf16 = |bytes: &[u8]| {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    };
    let text = if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        utf16(rest)
    } else if let Some(rest) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        String::from_utf8_lossy(rest).into_owned()
    } else if bytes.len() >= 2
        && bytes.len() % 2 == 0
        && bytes.chunks(2).filter(|c| c[1] == 0).count() * 2 >= bytes.len() / 2
    {
        utf16(bytes)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    };
    text.trim_start_matches('\u{feff}').replace('\0', "")
}

/// Why `wsl --list` failed, from what it said: no distributions yet is no failure at all.
#[derive(Debug, PartialEq, Eq)]
pub enum ListFailure {
    NoDistributions,
    NotInstalled,
    NotEnabled,
    Other,
}

pub fn classify_list_failure(said: &str) -> ListFailure {
    let lower = said.to_ascii_lowercase();
    if lower.contains("no installed distributions")
        || lower.contains("wsl_e_default_distro_not_found")
    {
        ListFailure::NoDistributions
    } else if lower.contains("is not installed") {
        ListFailure::NotInstalled
    } else if lower.contains("not enabled")
        || lower.contains("optional_component")
        || lower.contains("virtual machine platform")
        || lower.contains("wsl is disabled")
    {
        ListFailure::NotEnabled
    } else {
        ListFailure::Other
    }
}

/// One line for an error message: WSL's own words, lines joined.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl ImportOptions {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.wsl_exe);
        // Ask for UTF-8 output (WSL 0.64 and later honour it); decode_output copes either way.
        cmd.env("WSL_UTF8", "1");
        cmd
    }

    fn describe_exe(&self) -> String {
        self.wsl_exe.display().to_string()
    }

    /// The registered distribution names (`wsl --list --quiet`).
    pub fn registered(&self) -> Result<Vec<String>> {
        let out = self
            .command()
            .args(["--list", "--quiet"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    anyhow::anyhow!(
                        "WSL is not installed: there is no {} (`wsl --install` in an administrator prompt installs it; --wsl-exe or OCI2WSL_WSL_EXE name another)",
                        self.describe_exe()
                    )
                } else {
                    anyhow::anyhow!("cannot run {}: {e}", self.describe_exe())
                }
            })?;
        if !out.status.success() {
            let said = one_line(&format!(
                "{}\n{}",
                decode_output(&out.stdout),
                decode_output(&out.stderr)
            ));
            let code = out
                .status
                .code()
                .map_or_else(|| "a signal".to_string(), |c| c.to_string());
            match classify_list_failure(&said) {
                // Nothing to clash with.
                ListFailure::NoDistributions => return Ok(Vec::new()),
                ListFailure::NotInstalled => bail!(
                    "WSL is not installed (`wsl --install` in an administrator prompt installs it); {} --list says: {said}",
                    self.describe_exe()
                ),
                ListFailure::NotEnabled => bail!(
                    "WSL is installed but not enabled (`wsl --install` enables it, then restart Windows); {} --list says: {said}",
                    self.describe_exe()
                ),
                ListFailure::Other => bail!(
                    "WSL is not working: {} --list failed (exit {code}){}",
                    self.describe_exe(),
                    if said.is_empty() { String::new() } else { format!(": {said}") }
                ),
            }
        }
        Ok(decode_output(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Everything that can be checked before a download: the name, that WSL runs, that
    /// the name is free, and where the distribution will live.
    pub fn preflight(&self) -> Result<PathBuf> {
        check_name(&self.name)?;
        let taken = self.registered()?;
        if taken.iter().any(|t| t.eq_ignore_ascii_case(&self.name)) {
            bail!(
                "a WSL distribution named {} already exists (wsl --unregister {} removes it)",
                self.name,
                self.name
            );
        }
        if interop::inside_wsl() {
            return self.install_dir_through_interop();
        }
        let dir = match &self.install_dir {
            Some(d) => d.clone(),
            None => default_install_dir(&self.name)?,
        };
        prepare_install_dir(&dir)?;
        Ok(dir)
    }

    /// Inside a WSL distribution: the install directory as `wsl.exe` needs it, a Windows
    /// path, after the same checks on our view of it.
    fn install_dir_through_interop(&self) -> Result<PathBuf> {
        let instead = "pass --install-dir as a Windows path (C:\\…) or one under /mnt";
        match &self.install_dir {
            None => {
                let base = interop::local_app_data().map_err(|e| {
                    anyhow::anyhow!("--install-dir is needed: inside WSL the default %LOCALAPPDATA%\\Wsl\\{} comes from Windows, and {e}", self.name)
                })?;
                let ours =
                    interop::to_linux(&base).map_err(|e| anyhow::anyhow!("{e}; {instead}"))?;
                prepare_install_dir(&ours.join("Wsl").join(&self.name))?;
                Ok(PathBuf::from(format!("{base}\\Wsl\\{}", self.name)))
            }
            Some(dir) => match dir.to_str().filter(|d| interop::is_windows_path(d)) {
                Some(windows) => {
                    // Checked where we can see it; wsl.exe still reports what we cannot.
                    if let Ok(ours) = interop::to_linux(windows) {
                        prepare_install_dir(&ours)?;
                    }
                    Ok(dir.clone())
                }
                None => {
                    let ours = std::path::absolute(dir)
                        .with_context(|| format!("--install-dir {}", dir.display()))?;
                    prepare_install_dir(&ours)?;
                    // The parent exists now; the last component may not, and wsl.exe creates it.
                    let (parent, last) = match (ours.parent(), ours.file_name()) {
                        (Some(p), Some(l)) => (p, l.to_string_lossy()),
                        _ => bail!("--install-dir {} names no directory", dir.display()),
                    };
                    let parent = interop::to_windows(parent)
                        .map_err(|e| anyhow::anyhow!("{e}; {instead}"))?;
                    Ok(PathBuf::from(format!(
                        "{}\\{last}",
                        parent.trim_end_matches('\\')
                    )))
                }
            },
        }
    }

    fn import_args(&self, dir: &Path, file: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--import".into(),
            self.name.clone().into(),
            dir.as_os_str().into(),
            file.as_os_str().into(),
        ];
        if let Some(v) = self.version {
            args.push("--version".into());
            args.push(v.to_string().into());
        }
        args
    }

    /// Imports a finished file. Returns what WSL printed.
    pub fn import_file(&self, dir: &Path, file: &Path) -> Result<String> {
        let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let file = if interop::inside_wsl() {
            PathBuf::from(interop::to_windows(&file).map_err(|e| {
                anyhow::anyhow!("wsl.exe needs a Windows path to {}: {e}; leave out -o to stream the image into WSL instead", file.display())
            })?)
        } else {
            file
        };
        let out = self
            .command()
            .args(self.import_args(dir, &file))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.describe_exe()))?;
        finish(&self.name, out.status, &out.stdout, &out.stderr)
    }

    /// Starts `wsl --import NAME DIR -`; the tar goes to the returned stream's stdin.
    pub fn start_streaming(&self, dir: &Path) -> Result<StreamingImport> {
        let mut child = self
            .command()
            .args(self.import_args(dir, Path::new("-")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", self.describe_exe()))?;
        let stdin = child.stdin.take().expect("piped");
        let collect = |r: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = collect(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let stderr = collect(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let child = Arc::new(Mutex::new(child));
        // Interrupted (SIGTERM, a closed console) while WSL reads: it must not see our exit
        // as a clean end of input, which a tar cut at an entry boundary would look like.
        let on_interrupt = Arc::downgrade(&child);
        crate::interrupt::stop_on_interrupt(Box::new(move || {
            if let Some(child) = on_interrupt.upgrade() {
                if let Ok(mut child) = child.try_lock() {
                    let _ = child.kill();
                }
            }
        }));
        Ok(StreamingImport {
            options: self.clone(),
            child,
            stdin: Some(stdin),
            stdout,
            stderr,
        })
    }

    /// After we stopped a streaming import: make sure no half-imported distribution stays
    /// registered under the name (it was free when we started).
    fn clean_up(&self) {
        if let Ok(names) = self.registered() {
            if names.iter().any(|n| n.eq_ignore_ascii_case(&self.name)) {
                let _ = self
                    .command()
                    .args(["--unregister", &self.name])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

fn finish(name: &str, status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> Result<String> {
    let said = format!("{}\n{}", decode_output(stdout), decode_output(stderr));
    if !status.success() {
        let code = status
            .code()
            .map(|c| c.to_string())
            .unwrap_or_else(|| "a signal".into());
        let said = one_line(&said);
        bail!(
            "wsl --import {name} failed (exit {code}){}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        );
    }
    Ok(one_line(&said))
}

/// Refuses a directory that already holds a distribution, and creates its parents:
/// wsl.exe creates only the last component of the install directory.
fn prepare_install_dir(dir: &Path) -> Result<()> {
    if dir.join("ext4.vhdx").exists() {
        bail!(
            "{} already holds a WSL disk (ext4.vhdx); choose another --install-dir",
            dir.display()
        );
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

/// The default install location, as Wsl-Manager lays it out.
pub fn default_install_dir(name: &str) -> Result<PathBuf> {
    match std::env::var_os("LOCALAPPDATA") {
        Some(base) if !base.is_empty() => Ok(PathBuf::from(base).join("Wsl").join(name)),
        _ => bail!("--install-dir is needed: LOCALAPPDATA is not set, so there is no default (%LOCALAPPDATA%\\Wsl\\{name})"),
    }
}

/// A running `wsl --import … -` that reads the tar from us.
pub struct StreamingImport {
    options: ImportOptions,
    child: Arc<Mutex<Child>>,
    stdin: Option<ChildStdin>,
    stdout: JoinHandle<Vec<u8>>,
    stderr: JoinHandle<Vec<u8>>,
}

impl StreamingImport {
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("taken once")
    }

    /// Waits for WSL after the whole tar was written and stdin closed.
    pub fn finish(mut self) -> Result<String> {
        drop(self.stdin.take());
        // Not holding the lock while WSL finishes: an interrupt can still stop it.
        let status = loop {
            if let Some(status) = self.child.lock().unwrap().try_wait()? {
                break status;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let stdout = self.stdout.join().unwrap_or_default();
        let stderr = self.stderr.join().unwrap_or_default();
        // A failure WSL reports is WSL's to roll back; unregistering here could remove a
        // distribution someone else created under the name meanwhile (ERROR_ALREADY_EXISTS).
        finish(&self.options.name, status, &stdout, &stderr)
    }

    /// Our side failed: stop WSL before it sees an end of input (a clean end would let it
    /// register a partial distribution), then remove anything it registered. When WSL had
    /// already failed on its own, its message is what the user needs, so it is returned.
    ///
    /// `pipe_closed`: our write failed because WSL stopped reading, so it is exiting on
    /// its own and has the message that matters; it gets a moment to finish.
    pub fn abort(mut self, pipe_closed: bool) -> Option<String> {
        let try_wait = |child: &Mutex<Child>| child.lock().unwrap().try_wait().ok().flatten();
        let mut exited = try_wait(&self.child);
        if pipe_closed {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while exited.is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
                exited = try_wait(&self.child);
            }
        }
        {
            let mut child = self.child.lock().unwrap();
            if exited.is_none() {
                let _ = child.kill();
            }
            drop(self.stdin.take());
            let _ = child.wait();
        }
        let stdout = self.stdout.join().unwrap_or_default();
        let stderr = self.stderr.join().unwrap_or_default();
        if exited.is_none() {
            // We stopped it mid-import: whatever it registered is ours to remove.
            self.options.clean_up();
        }
        let status = exited.filter(|s| !s.success())?;
        finish(&self.options.name, status, &stdout, &stderr)
            .err()
            .map(|e| e.to_string())
    }
}

/// `--import` without `-o`: the tar goes straight into `wsl --import NAME DIR -`, which is
/// started only when the first byte is ready, that is after every layer verified, so a bad
/// image never starts an import at all.
///
/// The gate is shared between the writer (which starts WSL on its first byte) and the run
/// (which closes it when it ends, by success or failure): bytes still buffered in front of
/// the stream, flushed when a failed sink is dropped, must not start an import of half a tar.
#[derive(Clone)]
pub struct ImportGate {
    options: ImportOptions,
    dir: PathBuf,
    state: Arc<Mutex<GateState>>,
    observer: crate::events::SharedObserver,
}

enum GateState {
    NotStarted,
    Running(StreamingImport),
    Closed,
}

impl ImportGate {
    /// A gate for importing into `dir` (what [`ImportOptions::preflight`] returned).
    pub fn new(
        options: ImportOptions,
        dir: PathBuf,
        observer: crate::events::SharedObserver,
    ) -> ImportGate {
        ImportGate {
            options,
            dir,
            state: Arc::new(Mutex::new(GateState::NotStarted)),
            observer,
        }
    }

    /// The stream to write the tar into; WSL starts on its first byte.
    pub fn writer(&self) -> ImportWriter {
        ImportWriter {
            gate: self.clone(),
            stdin: None,
        }
    }

    /// Closes the gate to new starts; returns the running import, if any.
    pub fn close(&self) -> Option<StreamingImport> {
        match std::mem::replace(&mut *self.state.lock().unwrap(), GateState::Closed) {
            GateState::Running(import) => Some(import),
            GateState::NotStarted | GateState::Closed => None,
        }
    }
}

/// The writing end of an [`ImportGate`].
pub struct ImportWriter {
    gate: ImportGate,
    stdin: Option<ChildStdin>,
}

impl std::io::Write for ImportWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stdin.is_none() {
            let mut state = self.gate.state.lock().unwrap();
            if matches!(*state, GateState::Closed) {
                return Err(std::io::Error::other(
                    "the run failed before WSL was started; nothing was imported",
                ));
            }
            let mut import = self
                .gate
                .options
                .start_streaming(&self.gate.dir)
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            self.gate
                .observer
                .event(&crate::events::Event::ImportStarted {
                    name: self.gate.options.name.clone(),
                });
            self.stdin = Some(import.take_stdin());
            *state = GateState::Running(import);
        }
        self.stdin.as_mut().expect("started").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.stdin {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

/// Our run failed with `e`: stop a running import, and report WSL's own failure instead
/// when WSL stopped reading first (our broken pipe was only its consequence).
pub fn abort_import(running: Option<StreamingImport>, e: anyhow::Error) -> anyhow::Error {
    let pipe_closed = crate::error::causes(&e).iter().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    match running.and_then(|s| s.abort(pipe_closed)) {
        Some(said) => crate::error::tagged(crate::error::ErrorKind::Wsl, said),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> ImportGate {
        ImportGate::new(
            ImportOptions {
                name: "test".into(),
                install_dir: None,
                version: None,
                wsl_exe: PathBuf::from("/nonexistent/wsl.exe"),
            },
            PathBuf::from("/nonexistent/dir"),
            crate::events::silent(),
        )
    }

    #[test]
    fn a_closed_import_gate_never_starts_wsl() {
        use std::io::Write;
        // Open: the first byte tries to start WSL (and here fails to find it).
        let open = gate();
        let err = open.writer().write(b"x").unwrap_err().to_string();
        assert!(err.contains("cannot run"), "{err}");

        // Closed after a failed run: buffered bytes flushed on drop start nothing.
        let closed = gate();
        let mut writer = closed.writer();
        assert!(closed.close().is_none());
        let err = writer.write(b"x").unwrap_err().to_string();
        assert!(err.contains("nothing was imported"), "{err}");
        assert!(matches!(*closed.state.lock().unwrap(), GateState::Closed));
    }

    #[test]
    fn names() {
        for ok in ["pg", "Ubuntu-22.04", "a_b.c-d"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "a b", "x/y", "é", "legacy", "LEGACY"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(257)).is_err());
    }

    #[test]
    fn utf16_and_utf8_listings() {
        let utf16: Vec<u8> = "\u{feff}Ubuntu\r\npg\r\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(decode_output(&utf16), "Ubuntu\r\npg\r\n");
        assert_eq!(decode_output(b"Ubuntu\npg\n"), "Ubuntu\npg\n");
        assert_eq!(decode_output(b""), "");
        // A BOM decides, even for text the zero-byte guess would get wrong: one
        // non-Latin name has no zero bytes in UTF-16LE.
        let cjk: Vec<u8> = "\u{feff}\u{4e2d}\u{6587}"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(decode_output(&cjk), "\u{4e2d}\u{6587}");
        assert_eq!(decode_output(b"\xef\xbb\xbfpg\n"), "pg\n");
    }

    /// The messages of microsoft/WSL's localized strings (en-US) for each state, and an
    /// unrelated failure.
    #[test]
    fn list_failures() {
        for (said, want) in [
            ("Windows Subsystem for Linux has no installed distributions. Error code: Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND", ListFailure::NoDistributions),
            ("The Windows Subsystem for Linux is not installed. You can install by running 'wsl.exe --install'.", ListFailure::NotInstalled),
            ("The Windows Subsystem for Linux optional component is not enabled. Please enable it and try again.", ListFailure::NotEnabled),
            ("Please enable the Virtual Machine Platform Windows feature and ensure virtualization is enabled in the BIOS.", ListFailure::NotEnabled),
            ("Catastrophic failure Error code: Wsl/Service/E_UNEXPECTED", ListFailure::Other),
        ] {
            assert_eq!(classify_list_failure(said), want, "{said}");
        }
    }
}
