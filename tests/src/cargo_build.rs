//! Another package's binary, built from a test: a test can only use its own package's
//! `CARGO_BIN_EXE_*`, so the harness runs cargo for the others, into this build's own
//! target folder and profile (a no-op when the binary is fresh).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variables the test runner sets for this package; ring's build script (and others)
/// track them, so passing them on to the inner cargo would rebuild half the workspace, and
/// again in the next build from a shell.
const PER_PACKAGE_VARIABLES: [&str; 6] = [
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_CRATE_",
    "CARGO_BIN_",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
];

/// Builds `bin` of `package` for `target` (the host when `None`) in the profile and target
/// folder this test executable was built in, and returns the binary's path.
pub fn cargo_build(package: &str, bin: &str, target: Option<&str>) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // The executable is TARGET_DIR/PROFILE/deps/NAME.
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let target_root = profile_dir.parent().unwrap();
    let profile = profile_dir.file_name().unwrap().to_str().unwrap();

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if PER_PACKAGE_VARIABLES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name.as_ref());
        }
    }
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "-p", package, "--bin", bin, "--target-dir"])
        .arg(target_root);
    match profile {
        "debug" => {}
        "release" => {
            command.arg("--release");
        }
        custom => {
            command.args(["--profile", custom]);
        }
    }
    if let Some(target) = target {
        command.args(["--target", target]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "building {bin} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = binary_path(target_root, target, profile, bin);
    assert!(
        binary.exists(),
        "{} is missing after building it",
        binary.display()
    );
    binary
}

fn binary_path(target_root: &Path, target: Option<&str>, profile: &str, bin: &str) -> PathBuf {
    let folder = match target {
        Some(target) => target_root.join(target).join(profile),
        None => target_root.join(profile),
    };
    let windows = target.is_some_and(|target| target.contains("windows"));
    folder.join(if windows {
        format!("{bin}.exe")
    } else {
        bin.to_owned()
    })
}
