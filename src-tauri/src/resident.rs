//! Linux: the tray-resident app starts itself again without a webview.
//!
//! Closing the window frees the webview (`window.rs`), but not what loading WebKit left in the
//! process: its relocated data, Mesa's LLVM, and WebKit's network process, which lives as long
//! as the process that started it. Together about three quarters of what the app costs once
//! closed. So, once the window has been closed for a moment and nothing is under way, the
//! process replaces its own image with a fresh one of the same binary (`execve`, started with
//! [`RESIDENT_ARG`]) that builds the tray and the watcher but no window: same PID, same tray,
//! same signed-in session, and memory as at a start without a window. The network process
//! ends when its connection to the old image closes; the new image reaps it.
//!
//! What the old image held in memory goes across in a memory file (`memfd`) whose
//! descriptor number travels in [`CARRIED_FD`]: the core's live sessions and kept lists
//! ([`hubkey_desktop::CarriedState`]) and the events kept for the next page. Nothing is
//! written to disk. The restart waits for rest ([`Desktop::carry_out`]): no request of the
//! core, poll of the watcher or notification waiting for its click under way. Until then the
//! app pages its libraries out instead (`memory.rs`) and tries again.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;

use hubkey_desktop::{CarriedState, Desktop};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager};

use crate::ui_event::{UiEvent, UiQueue};
use crate::{lifecycle, settings};

/// The argument the app starts its own resident image with: no window at start.
pub const RESIDENT_ARG: &str = "--resident";

/// The environment variable naming the descriptor of the carried state.
const CARRIED_FD: &str = "HUBKEY_CARRIED_FD";

/// What one image of the app hands the next.
#[derive(Serialize, Deserialize, Debug)]
pub struct Carried {
    core: CarriedState,
    ui_events: Vec<UiEvent>,
}

/// Why the app did not restart.
#[derive(Debug)]
pub enum NotNow {
    /// Something is under way: try again later.
    Busy,
    /// The restart itself failed (said on stderr); the app goes on as it was.
    Failed,
}

/// Starts this process again as its resident image, if the app is at rest; returns only when
/// it did not.
pub fn restart(app: &AppHandle) -> NotNow {
    let desktop = app.state::<Desktop>();
    let Some((core, _at_rest)) = desktop.carry_out() else {
        return NotNow::Busy;
    };
    let carried = Carried {
        core,
        ui_events: app.state::<UiQueue>().kept(),
    };
    let file = match carried_file(&carried) {
        Ok(file) => file,
        Err(err) => return failed(&format!("cannot hand the state over: {err}")),
    };
    // Kept open (without close-on-exec) through `exec`; closed only if `exec` fails.
    let fd = file.as_raw_fd();
    close_on_exec_all_but(fd);
    let mut args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|arg| arg != RESIDENT_ARG)
        .collect();
    args.push(RESIDENT_ARG.into());
    // The next image takes the single-instance name again; ours must be gone first.
    tauri_plugin_single_instance::destroy(app);
    // The binary by its path, so the process keeps its name; the kernel's own link to it if
    // that path is gone (an update replaced the file).
    let binary = std::env::current_exe()
        .ok()
        .filter(|path| path.exists())
        .unwrap_or_else(|| "/proc/self/exe".into());
    let err = std::process::Command::new(binary)
        .arg0(
            std::env::args_os()
                .next()
                .unwrap_or_else(|| "hubkey".into()),
        )
        .args(args)
        .env(CARRIED_FD, fd.to_string())
        .exec();
    // Only on failure: the state stays ours, the memory file goes.
    drop(file);
    failed(&format!("cannot restart without the window: {err}"))
}

fn failed(message: &str) -> NotNow {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("hubkey: {message}");
    }
    NotNow::Failed
}

/// `carried` in a memory file whose descriptor survives `execve`, read from its start.
#[allow(unsafe_code)]
fn carried_file(carried: &Carried) -> std::io::Result<File> {
    let json = zeroize::Zeroizing::new(serde_json::to_vec(carried)?);
    // SAFETY: the name is a NUL-terminated literal; without MFD_CLOEXEC the descriptor is
    // inherited by the next image, which is the point.
    let fd = unsafe { libc::memfd_create(c"hubkey-carried".as_ptr(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(&json)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

/// Marks every descriptor but the standard three and `keep` to close on `execve`. Some of the
/// C libraries the window loaded open files without `O_CLOEXEC` (two of `/dev/urandom` per
/// image, measured): without this, each restart would hand them on to the next image, which
/// would never close them.
#[allow(unsafe_code)]
fn close_on_exec_all_but(keep: i32) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && *fd != keep)
        .collect();
    for fd in fds {
        // SAFETY: fcntl on a descriptor number only reads and sets its close-on-exec flag; a
        // number closed since the listing (the listing's own) makes it fail with EBADF,
        // which is ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Whether this image was started as the resident one (no window at start).
pub fn started_resident() -> bool {
    std::env::args_os().skip(1).any(|arg| arg == RESIDENT_ARG)
}

/// The state the previous image carried over, read once and closed; `None` at a normal start
/// or when it cannot be read (said on stderr: the app starts signed out of nothing it knew,
/// and the keyring's session is restored as at any start).
#[allow(unsafe_code)]
pub fn carried_in() -> Option<Carried> {
    let fd: i32 = std::env::var(CARRIED_FD).ok()?.parse().ok()?;
    std::env::remove_var(CARRIED_FD);
    // Only a memory file of ours: a descriptor number from anywhere else is not taken.
    if !is_carried_file(fd) {
        return None;
    }
    // SAFETY: the descriptor is the memory file the previous image of this process left open
    // for us (checked above); nothing else in this image knows it.
    let mut file = unsafe { File::from_raw_fd(fd) };
    let mut json = Vec::new();
    let read = file
        .read_to_end(&mut json)
        .map_err(|err| err.to_string())
        .and_then(|_| serde_json::from_slice(&json).map_err(|err| err.to_string()));
    // The bearers do not stay in the buffer.
    zeroize::Zeroize::zeroize(&mut json);
    match read {
        Ok(carried) => Some(carried),
        Err(err) => {
            failed(&format!("the state carried over is unreadable: {err}"));
            None
        }
    }
}

/// Whether descriptor `fd` is open on a memory file [`carried_file`] made.
fn is_carried_file(fd: i32) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|target| {
        target
            .to_string_lossy()
            .starts_with("/memfd:hubkey-carried")
    })
}

/// Starts the resident image: takes over what the previous image carried (the sessions, the
/// kept lists and the events kept for the next page) and reaps that image's WebKit network
/// process once it ends. The watcher then runs on the remembered server's session: the one
/// carried over, else (started with [`RESIDENT_ARG`] by hand, or the state was unreadable)
/// the keyring's, restored as a window's page would.
pub fn take_over(app: &AppHandle, carried: Option<Carried>) {
    let mut carried_servers = Vec::new();
    if let Some(carried) = carried {
        reap_leftover_children();
        let queue = app.state::<UiQueue>();
        for event in carried.ui_events {
            queue.send(event, |_| false);
        }
        match app.state::<Desktop>().carry_in(carried.core) {
            Ok(servers) => carried_servers = servers,
            Err(err) => {
                failed(&format!("the state carried over is unusable: {err}"));
            }
        }
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Ok(server) = settings::server_url(&app) {
            let desktop = app.state::<Desktop>();
            let account = if carried_servers.contains(&server) {
                desktop.resume(&server).await
            } else {
                desktop.restore(&server).await
            };
            if let Ok(Some(account)) = account {
                lifecycle::signed_in(&app, &account);
            }
        }
        // Once the tray and the watcher are up, the pages of start-up code go back.
        tokio::time::sleep(crate::window::GIVE_BACK_AFTER).await;
        crate::window::give_back_memory(&app);
    });
}

/// Waits, on a thread of its own, for the children the previous image left (its WebKit
/// network process, which ends once its connection to that image is gone), so that none
/// stays a zombie.
#[allow(unsafe_code)]
fn reap_leftover_children() {
    let me = std::process::id();
    let children = children_of(me);
    if children.is_empty() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("reap".into())
        .spawn(move || {
            for pid in children {
                let Ok(pid) = libc::pid_t::try_from(pid) else {
                    continue;
                };
                // SAFETY: waits for one child of ours by PID; the status is not read.
                let _ = unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            }
        });
}

/// The PIDs of the processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let (_, rest) = stat.rsplit_once(") ")?;
            let ppid: u32 = rest.split(' ').nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::fd::IntoRawFd;

    use super::*;

    #[test]
    fn the_carried_state_crosses_through_its_memory_file_once_and_the_file_is_closed() {
        let carried = Carried {
            core: CarriedState::default(),
            ui_events: vec![UiEvent::OpenSecurity, UiEvent::TokensChanged],
        };
        let fd = carried_file(&carried).unwrap().into_raw_fd();
        std::env::set_var(CARRIED_FD, fd.to_string());

        let read = carried_in().expect("the state carried over");
        assert_eq!(read.ui_events, carried.ui_events);
        assert!(std::env::var_os(CARRIED_FD).is_none(), "read once");
        assert!(
            std::fs::read_link(format!("/proc/self/fd/{fd}")).is_err(),
            "the memory file stays open"
        );
    }

    #[test]
    fn only_our_memory_file_is_taken_for_the_carried_state() {
        let ours = carried_file(&Carried {
            core: CarriedState::default(),
            ui_events: Vec::new(),
        })
        .unwrap();
        let other = File::open("/dev/null").unwrap();
        assert!(is_carried_file(ours.as_raw_fd()));
        assert!(!is_carried_file(other.as_raw_fd()));
        assert!(!is_carried_file(-1));
    }
}
