//! External tools and privileges the integration tests need, and what happens when they are
//! missing.
//!
//! A test that needs a tool it cannot find **fails**, naming the command that installs it:
//! a `cargo test` that says "passed" must mean the test ran. A packager who builds without the
//! tools sets `OCI2WSL_SKIP_MISSING_TOOLS=1`; the test then skips, and the number of skipped
//! tests is printed when the test binary exits, so a skip is never silent.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// The environment variable that turns a missing tool from a failure into a counted skip.
pub const SKIP_VAR: &str = "OCI2WSL_SKIP_MISSING_TOOLS";

/// The command that installs every tool the tests use.
pub const INSTALL_HINT: &str = "scripts/install-test-deps.sh (as root)";

static SKIPPED: AtomicUsize = AtomicUsize::new(0);
static REPORT_AT_EXIT: Once = Once::new();

/// Whether a program is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v '{tool}'")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether this process runs as root (uid 0).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

fn skipping_allowed() -> bool {
    std::env::var_os(SKIP_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

extern "C" fn report_skips() {
    let n = SKIPPED.load(Ordering::SeqCst);
    if n > 0 {
        eprintln!("\n{n} test(s) SKIPPED for missing tools or privileges ({SKIP_VAR} is set)");
    }
}

extern "C" {
    fn atexit(f: extern "C" fn()) -> i32;
}

/// Handles a missing prerequisite: panics with `what` and the install hint, or, under
/// [`SKIP_VAR`], records a skip and returns `false`.
fn missing(test_needs: &str) -> bool {
    if !skipping_allowed() {
        panic!(
            "this test needs {test_needs}; install with {INSTALL_HINT}, \
             or set {SKIP_VAR}=1 to skip such tests"
        );
    }
    REPORT_AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function without captured state, once per process.
        unsafe {
            atexit(report_skips);
        }
    });
    SKIPPED.fetch_add(1, Ordering::SeqCst);
    eprintln!("SKIPPED: needs {test_needs} ({SKIP_VAR} is set)");
    false
}

/// `true` when every tool is on PATH. Otherwise fails the test (default) or skips it.
/// Use as `if !require_tools(&["skopeo"]) { return; }`.
pub fn require_tools(tools: &[&str]) -> bool {
    let absent: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if absent.is_empty() {
        return true;
    }
    missing(&absent.join(", "))
}

/// Like [`require_tools`], and the test must also run as root (mknod, chown, umoci unpack).
pub fn require_root_and_tools(tools: &[&str]) -> bool {
    if !require_tools(tools) {
        return false;
    }
    if is_root() {
        return true;
    }
    missing("root (uid 0)")
}

/// Runs an external command that must succeed; returns its standard output.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
