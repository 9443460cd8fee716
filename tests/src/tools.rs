//! The real registry clients, run as processes with everything they write in temp dirs.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

/// What a client printed and how it ended.
#[derive(Debug)]
pub struct CommandOutput {
    /// Its exit code or the signal that ended it (`exit status: 1`, `signal: 9 (SIGKILL)`
    /// when printed).
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for CommandOutput {
    fn from(output: std::process::Output) -> Self {
        CommandOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl CommandOutput {
    /// Stdout and stderr together, for assertions on messages.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics with the client's output unless it succeeded.
    #[track_caller]
    pub fn expect_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n{}",
            self.status,
            self.text()
        );
    }

    /// Panics unless it failed.
    #[track_caller]
    pub fn expect_failure(&self, what: &str) {
        assert!(
            !self.status.success(),
            "{what} succeeded but should have failed:\n{}",
            self.text()
        );
    }
}

/// Runs `program args`, feeding `stdin`, killed after two minutes.
pub async fn run(
    program: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: Option<&str>,
) -> CommandOutput {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .envs(envs.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err} (is it installed?)"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} took over two minutes"))
        .unwrap();
    output.into()
}

/// skopeo, talking plain HTTP to loopback registries.
pub struct Skopeo;

impl Skopeo {
    /// Copies `from` to `to` with `user:secret` at the destination.
    pub async fn copy(from: &str, to: &str, creds: &str) -> CommandOutput {
        run(
            "skopeo",
            &[
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                creds,
                from,
                to,
            ],
            &[],
            None,
        )
        .await
    }

    /// Inspects `image`, with `user:secret` or anonymously.
    pub async fn inspect(image: &str, creds: Option<&str>) -> CommandOutput {
        let mut args = vec!["inspect", "--tls-verify=false"];
        match creds {
            Some(creds) => args.extend(["--creds", creds]),
            None => args.push("--no-creds"),
        }
        args.push(image);
        run("skopeo", &args, &[], None).await
    }
}

/// podman, daemon-less, with its storage in a temp dir.
pub struct Podman {
    root: TempDir,
}

impl Podman {
    pub fn new() -> Self {
        Podman {
            root: tempfile::tempdir().unwrap(),
        }
    }

    /// Pulls `image` (HOST/NAME:TAG) with `user:secret`.
    pub async fn pull(&self, image: &str, creds: &str) -> CommandOutput {
        let root = self.root.path().join("root");
        let runroot = self.root.path().join("runroot");
        run(
            "podman",
            &[
                "--root",
                &root.display().to_string(),
                "--runroot",
                &runroot.display().to_string(),
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                "pull",
                "--tls-verify=false",
                "--creds",
                creds,
                image,
            ],
            &[],
            None,
        )
        .await
    }
}

impl Default for Podman {
    fn default() -> Self {
        Self::new()
    }
}

/// The docker CLI (no daemon runs here: `login` falls back to a client-side check), with its
/// own `DOCKER_CONFIG`.
pub struct Docker {
    config: TempDir,
}

impl Docker {
    pub fn new() -> Self {
        Docker {
            config: tempfile::tempdir().unwrap(),
        }
    }

    /// `docker login HOST -u USER --password-stdin`.
    pub async fn login(&self, host: &str, user: &str, secret: &str) -> CommandOutput {
        let config = self.config.path().display().to_string();
        run(
            "docker",
            &["login", host, "-u", user, "--password-stdin"],
            &[("DOCKER_CONFIG", &config)],
            Some(secret),
        )
        .await
    }
}

impl Default for Docker {
    fn default() -> Self {
        Self::new()
    }
}
