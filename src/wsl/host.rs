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

    #[cfg(not(windows))]
    #[test]
    fn no_native_machine_outside_windows() {
        assert_eq!(native_architecture(), None);
    }
}
