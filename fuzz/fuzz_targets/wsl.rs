//! The WSL stage: any image config (User, WorkingDir, Env, Entrypoint, Cmd, created) plus
//! any /etc/passwd, /etc/wsl.conf and /etc/profile in the image give an output tar that
//! meets the invariants, or a clean one-line error. See `oci2wsl_fuzz::run_wsl` for the
//! input format.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = oci2wsl_fuzz::run_wsl(data) {
        panic!("{broken}");
    }
});
