//! The Windows machine WSL runs on. WSL runs distributions of the machine's native
//! architecture, which is not the architecture of this program when it runs emulated: the
//! x86_64 build on an ARM64 Windows sees `x86_64` in `std::env::consts::ARCH`, while that
//! machine's WSL wants arm64 images.

/// The OCI architecture of a PE machine type (`IMAGE_FILE_MACHINE_*`), as
/// `IsWow64Process2` reports the native machine.
pub fn oci_architecture(image_file_machine: u16) -> Option<&'static str> {
    match image_file_machine {
        0x8664 => Some("amd64"),
        0xaa64 => Some("arm64"),
        0x014c => Some("386"),
        0x01c4 => Some("arm"),
        _ => None,
    }
}

/// The native architecture of this Windows machine, whatever this program was built for;
/// `None` elsewhere, or when Windows cannot say (before Windows 10 1709, which has no
/// `IsWow64Process2` and no ARM64 emulation of x86_64 either).
pub fn native_architecture() -> Option<&'static str> {
    #[cfg(windows)]
    {
        windows::native_machine().and_then(oci_architecture)
    }
    #[cfg(not(windows))]
    {
        None
    }
}

/// Reaching Windows from inside a WSL distribution, where this is the Linux build and
/// `wsl.exe`, `cmd.exe` and `wslpath` come through interop. `wsl.exe` is a Windows program:
/// it takes Windows paths, and it cannot see our environment's `LOCALAPPDATA`.
pub mod interop {
    use anyhow::{anyhow, bail, Result};
    use std::ffi::OsStr;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    /// Whether this runs inside a WSL distribution: WSL sets `WSL_DISTRO_NAME` in every
    /// process it starts there.
    pub fn inside_wsl() -> bool {
        cfg!(unix) && std::env::var_os("WSL_DISTRO_NAME").is_some_and(|n| !n.is_empty())
    }

    /// A path as Windows spells it: a drive (`C:\`, `C:/`) or a UNC path (`\\server\share`).
    pub fn is_windows_path(path: &str) -> bool {
        let b = path.as_bytes();
        (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'\\' | b'/'))
            || path.starts_with("\\\\")
    }

    /// What `cmd.exe /u /c echo %VAR%` printed, if it is a Windows path. cmd echoes the
    /// text unchanged when VAR is not set, and `/u` makes it print UTF-16LE, so that a
    /// user name outside the console's code page comes through intact.
    pub fn echoed_path(output: &[u8]) -> Option<String> {
        let text = super::super::import::decode_output(output);
        let value = text.lines().map(str::trim).find(|l| !l.is_empty())?;
        is_windows_path(value).then(|| value.to_string())
    }

    /// `%LOCALAPPDATA%` of the Windows user, as a Windows path.
    pub fn local_app_data() -> Result<String> {
        let out = Command::new("cmd.exe")
            .args(["/u", "/c", "echo", "%LOCALAPPDATA%"])
            .stdin(Stdio::null())
            // cmd warns there when started in a Linux directory (\\wsl.localhost\…).
            .stderr(Stdio::null())
            .output()
            .map_err(|e| anyhow!("cannot run cmd.exe to read the Windows %LOCALAPPDATA% ({e}; Windows interop with appendWindowsPath puts it on PATH)"))?;
        match echoed_path(&out.stdout) {
            Some(path) if out.status.success() => Ok(path),
            _ => bail!(
                "cmd.exe /c echo %LOCALAPPDATA% gave no Windows path (exit {}): {:?}",
                out.status
                    .code()
                    .map_or_else(|| "a signal".into(), |c| c.to_string()),
                super::super::import::decode_output(&out.stdout).trim()
            ),
        }
    }

    fn wslpath(flag: &str, path: &OsStr) -> Result<String> {
        let shown = path.to_string_lossy();
        let out = Command::new("wslpath")
            .arg(flag)
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| anyhow!("cannot run wslpath {flag} {shown}: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout);
        let said = said.trim_end_matches(['\r', '\n']);
        if !out.status.success() || said.is_empty() {
            let err = String::from_utf8_lossy(&out.stderr);
            let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
            bail!(
                "wslpath {flag} {shown} failed (exit {}){}",
                out.status
                    .code()
                    .map_or_else(|| "a signal".into(), |c| c.to_string()),
                if err.is_empty() {
                    String::new()
                } else {
                    format!(": {err}")
                }
            );
        }
        Ok(said.to_string())
    }

    /// The Windows spelling of one of our paths (`/mnt/c/x` → `C:\x`).
    pub fn to_windows(path: &std::path::Path) -> Result<String> {
        wslpath("-w", path.as_os_str())
    }

    /// Our spelling of a Windows path (`C:\x` → `/mnt/c/x`).
    pub fn to_linux(path: &str) -> Result<PathBuf> {
        wslpath("-u", OsStr::new(path)).map(PathBuf::from)
    }
}

#[cfg(windows)]
mod windows {
    use std::ffi::c_void;

    type IsWow64Process2 = unsafe extern "system" fn(*mut c_void, *mut u16, *mut u16) -> i32;

    #[link(name = "kernel32")]
    extern "system" {
        fn GetCurrentProcess() -> *mut c_void;
        fn GetModuleHandleA(name: *const u8) -> *mut c_void;
        fn GetProcAddress(module: *mut c_void, name: *const u8) -> *mut c_void;
    }

    /// `IsWow64Process2`'s native machine. Looked up at run time, not linked, so that the
    /// program still starts on a Windows without it.
    pub fn native_machine() -> Option<u16> {
        // SAFETY: both names are NUL-terminated; kernel32 stays loaded for the life of the
        // process; the pointer GetProcAddress returns for this name has this signature
        // (documented in Win32 wow64apiset.h); the out-parameters are valid u16s.
        unsafe {
            let kernel32 = GetModuleHandleA(b"kernel32.dll\0".as_ptr());
            if kernel32.is_null() {
                return None;
            }
            let address = GetProcAddress(kernel32, b"IsWow64Process2\0".as_ptr());
            if address.is_null() {
                return None;
            }
            let is_wow64_process2: IsWow64Process2 = std::mem::transmute(address);
            let (mut process, mut native) = (0u16, 0u16);
            (is_wow64_process2(GetCurrentProcess(), &mut process, &mut native) != 0)
                .then_some(native)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_types_map_to_oci_architectures() {
        // An x86_64 build under emulation on ARM64 Windows gets IMAGE_FILE_MACHINE_ARM64.
        assert_eq!(oci_architecture(0xaa64), Some("arm64"));
        assert_eq!(oci_architecture(0x8664), Some("amd64"));
        assert_eq!(oci_architecture(0x014c), Some("386"));
        assert_eq!(oci_architecture(0x01c4), Some("arm"));
        // IMAGE_FILE_MACHINE_UNKNOWN, and anything unknown: keep the build's own.
        assert_eq!(oci_architecture(0), None);
        assert_eq!(oci_architecture(0x0200), None);
    }

    #[test]
    fn windows_paths_are_told_from_ours() {
        for windows in [r"C:\Users\me", "c:/x", r"\\server\share\d", r"D:\"] {
            assert!(interop::is_windows_path(windows), "{windows}");
        }
        for ours in [
            "/mnt/c/Users",
            "relative\\dir",
            "C:",
            "C:x",
            "",
            "%LOCALAPPDATA%",
        ] {
            assert!(!interop::is_windows_path(ours), "{ours}");
        }
    }

    /// cmd.exe's answers: UTF-16LE with `/u`, CRLF; the variable's name when it is unset.
    #[test]
    fn the_echoed_local_app_data_is_read() {
        let utf16 =
            |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect() };
        assert_eq!(
            interop::echoed_path(&utf16("C:\\Users\\J\u{f6}rg\\AppData\\Local\r\n")).as_deref(),
            Some("C:\\Users\\J\u{f6}rg\\AppData\\Local")
        );
        assert_eq!(
            interop::echoed_path(b"C:\\Users\\me\\AppData\\Local\r\n").as_deref(),
            Some("C:\\Users\\me\\AppData\\Local")
        );
        assert_eq!(interop::echoed_path(&utf16("%LOCALAPPDATA%\r\n")), None);
        assert_eq!(interop::echoed_path(b""), None);
    }

    #[cfg(not(windows))]
    #[test]
    fn no_native_machine_outside_windows() {
        assert_eq!(native_architecture(), None);
    }
}
