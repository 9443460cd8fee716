//! Windows programs of this build run under Debian's Wine, which implements the Windows
//! Credential Manager API (`CredWriteW`, `CredReadW`, `CredDeleteW`) over its own registry.
//!
//! A [`WinePrefix`] is a private Windows installation in a temp dir (`WINEARCH=win64`, no
//! display), booted once on a `wineserver` of its own that runs until the handle drops. Two
//! things stand in the way of running a Rust program under Debian 12's Wine 8.0, and are dealt
//! with here, not in the product:
//! - Rust's standard library on Windows takes its randomness from `ProcessPrng` in
//!   `bcryptprimitives.dll`, which Wine 8.0 does not have (Windows 10 and later do). A
//!   one-function DLL built here with MinGW answers it with `RtlGenRandom` and is put next to
//!   the program (the application directory comes first in the DLL search order).
//! - Wine's boot starts an explorer that needs a display; without one it logs errors and
//!   carries on, so the prefix boots headless.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::tools::CommandOutput;

/// The Rust target the Windows programs are built for.
pub const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";

/// The 64-bit Wine loader of Debian's `wine64` package.
const WINE64: &str = "/usr/lib/wine/wine64";
const WINESERVER: &str = "/usr/lib/wine/wineserver64";
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// `ProcessPrng` for Wine 8.0, which lacks `bcryptprimitives.dll`: fills the buffer from
/// `RtlGenRandom` (advapi32's `SystemFunction036`), which Wine has.
const PROCESS_PRNG_SHIM: &str = r#"
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
"#;

/// A booted private Wine prefix with a folder (`bin`) for Windows programs.
pub struct WinePrefix {
    dir: TempDir,
}

impl WinePrefix {
    /// Boots a new prefix (10–30 s) and builds the `ProcessPrng` shim into its `bin` folder.
    pub fn boot() -> WinePrefix {
        for tool in [WINE64, WINESERVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install Debian's wine64 package (scripts/test does)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("hubkey-wine-")
            .tempdir()
            .unwrap();
        let prefix = WinePrefix { dir };
        std::fs::create_dir_all(prefix.bin()).unwrap();
        prefix.build_shim();
        let started = Instant::now();
        // One wineserver for the prefix's life, started first. Otherwise each program starts
        // a server and Wine's system processes (`services.exe`, `winedevice.exe`), which
        // inherit that program's output pipes and outlive it: reading its output then waited
        // about 2 s for them, and the next program could meet a server on its way out. Started
        // here, with no pipes, they run once for every program after. The server needs the
        // prefix's folder; wineboot fills it.
        std::fs::create_dir_all(prefix.prefix()).unwrap();
        let server = prefix
            .wineserver()
            .arg("--persistent")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(server.success(), "wineserver --persistent: {server}");
        let log_path = prefix.dir.path().join("wineboot.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let booted = prefix
            .wine()
            .args(["wineboot", "--init"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap();
        assert!(
            booted.success(),
            "wineboot failed ({booted}):\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        assert!(
            prefix.prefix().join("drive_c/windows/system32").is_dir(),
            "wineboot made no Windows folder in {} ({:?})",
            prefix.dir.path().display(),
            started.elapsed()
        );
        prefix
    }

    /// Where Windows programs and the shim go; on drive `Z:` as the Unix path.
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// Copies `program` into [`WinePrefix::bin`] and returns its path there.
    pub fn install(&self, program: &Path) -> PathBuf {
        let target = self.bin().join(program.file_name().unwrap());
        std::fs::copy(program, &target).unwrap();
        target
    }

    /// Runs the Windows `program` with `args`, feeding `stdin` exactly.
    pub fn run(&self, program: &Path, args: &[&str], stdin: &[u8]) -> CommandOutput {
        use std::io::Write;
        let mut child = self
            .wine()
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin).unwrap();
        drop(input);
        let output = wait_at_most(child, Duration::from_secs(60));
        output.into()
    }

    /// What `reg query KEY /s` prints: Wine keeps Credential Manager entries in its registry
    /// under `HKCU\Software\Wine\Credential Manager`, so a test can see that a program wrote
    /// to the real store.
    pub fn registry(&self, key: &str) -> String {
        let output = self
            .wine()
            .args(["reg", "query", key, "/s"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The Windows installation (`WINEPREFIX`).
    fn prefix(&self) -> PathBuf {
        self.dir.path().join("prefix")
    }

    /// This prefix's `wineserver`.
    fn wineserver(&self) -> Command {
        let mut command = Command::new(WINESERVER);
        command.env("WINEPREFIX", self.prefix());
        command
    }

    /// `wine64` with this prefix, headless and quiet.
    fn wine(&self) -> Command {
        let mut command = Command::new(WINE64);
        command
            .env("WINEPREFIX", self.prefix())
            .env("WINEARCH", "win64")
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko installers at boot (they would ask the network).
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        command
    }

    fn build_shim(&self) {
        let source = self.dir.path().join("process_prng.c");
        std::fs::write(&source, PROCESS_PRNG_SHIM).unwrap();
        let output = Command::new(MINGW_GCC)
            .args(["-shared", "-O2", "-o"])
            .arg(self.bin().join("bcryptprimitives.dll"))
            .arg(&source)
            .arg("-ladvapi32")
            .output()
            .unwrap_or_else(|err| {
                panic!("{MINGW_GCC} cannot run ({err}): install gcc-mingw-w64-x86-64")
            });
        assert!(
            output.status.success(),
            "building the ProcessPrng shim failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for WinePrefix {
    fn drop(&mut self) {
        // Stops this prefix's wineserver and so Wine's processes in the prefix.
        let _ = self.wineserver().arg("--kill").status();
    }
}

/// Waits for `child` at most `limit`, then kills it; its output either way.
fn wait_at_most(mut child: std::process::Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The Windows `docker-credential-hubkey.exe` of this build, built for [`WINDOWS_TARGET`]
/// (`cargo build` is a no-op when it is fresh; scripts/test builds it before the tests).
pub fn windows_credential_helper() -> PathBuf {
    crate::cargo_build::cargo_build(
        "hubkey-credential-helper",
        "docker-credential-hubkey",
        Some(WINDOWS_TARGET),
    )
}
