//! The platform keyring through the `keyring` crate, with a timeout on every call.

use std::sync::mpsc;
use std::time::Duration;

use crate::{SecretError, SecretStore, Sensitive, SERVICE};

/// How long a keyring call may take before the caller gets [`SecretError::TimedOut`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const NO_SECRET_SERVICE: &str =
    "no Secret Service is running (install and start gnome-keyring or KeePassXC)";
const NO_BUS_ADDRESS: &str = "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)";
const BUS_UNREACHABLE: &str =
    "no D-Bus session bus answers at the address in DBUS_SESSION_BUS_ADDRESS";
const LOCKED: &str = "the keyring is locked or has no default collection";
const PROMPT_DISMISSED: &str = "the keyring is locked and the unlock prompt was dismissed";

/// The OS keyring (on Linux the freedesktop Secret Service over the D-Bus session bus).
///
/// Every call runs on its own thread and waits at most the timeout: a keyring that hangs
/// (a stuck prompt, a frozen daemon) leaves that thread behind and the caller gets
/// [`SecretError::TimedOut`] instead of hanging too.
#[derive(Debug, Clone)]
pub struct OsKeyring {
    service: String,
    timeout: Duration,
}

impl OsKeyring {
    /// The keyring under [`SERVICE`], with a 5 s timeout per call.
    pub fn new() -> Self {
        Self::with_timeout(DEFAULT_TIMEOUT)
    }

    /// The keyring under [`SERVICE`], waiting at most `timeout` for each call.
    pub fn with_timeout(timeout: Duration) -> Self {
        OsKeyring {
            service: SERVICE.to_owned(),
            timeout,
        }
    }

    /// Runs `op` on the entry of `account` on a separate thread, waiting at most the timeout.
    fn call<T, F>(&self, account: &str, op: F) -> Result<T, SecretError>
    where
        T: Send + 'static,
        F: FnOnce(&keyring::Entry) -> Result<T, SecretError> + Send + 'static,
    {
        let service = self.service.clone();
        let account = account.to_owned();
        run_with_timeout(self.timeout, move || {
            let entry = keyring::Entry::new(&service, &account).map_err(from_keyring)?;
            op(&entry)
        })
    }
}

impl Default for OsKeyring {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretStore for OsKeyring {
    fn get(&self, account: &str) -> Result<Option<Sensitive>, SecretError> {
        self.call(account, |entry| match entry.get_password() {
            Ok(secret) => Ok(Some(Sensitive::new(secret))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(err) => Err(from_keyring(err)),
        })
    }

    fn set(&self, account: &str, secret: &str) -> Result<(), SecretError> {
        crate::check_size(account, secret)?;
        let secret = Sensitive::new(secret.to_owned());
        self.call(account, move |entry| {
            entry.set_password(secret.expose()).map_err(from_keyring)
        })
    }

    fn delete(&self, account: &str) -> Result<(), SecretError> {
        self.call(account, |entry| match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(err) => Err(from_keyring(err)),
        })
    }

    fn describe(&self) -> String {
        provider::describe(self.timeout)
    }
}

/// Runs `op` on a new thread and waits at most `timeout` for its answer.
fn run_with_timeout<T, F>(timeout: Duration, op: F) -> Result<T, SecretError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SecretError> + Send + 'static,
{
    let (answer, answered) = mpsc::sync_channel(1);
    let worker = std::thread::Builder::new()
        .name("hubkey-keyring".into())
        .spawn(move || {
            // The caller may have given up already; then nobody wants the answer.
            let _ = answer.send(op());
        })
        .map_err(|err| SecretError::Other(format!("cannot start a keyring thread: {err}")))?;
    match answered.recv_timeout(timeout) {
        Ok(result) => {
            // The thread has answered and only has to end: waited for, so that a program
            // that exits right after (the credential helper) leaves no thread behind. Under
            // Wine a process exiting with another thread still ending was sometimes ended
            // with SIGKILL, its answer already printed.
            let _ = worker.join();
            result
        }
        Err(mpsc::RecvTimeoutError::Timeout) => Err(SecretError::TimedOut),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(SecretError::Other(
            "the keyring call stopped without an answer".into(),
        )),
    }
}

/// Turns a `keyring` error into one a user can act on. `NoEntry` is handled by the callers.
fn from_keyring(err: keyring::Error) -> SecretError {
    match err {
        keyring::Error::NoStorageAccess(inner) => {
            let text = error_chain(inner.as_ref());
            classify(&text).unwrap_or_else(|| SecretError::Unavailable {
                reason: LOCKED.to_owned(),
            })
        }
        keyring::Error::PlatformFailure(inner) => {
            let text = error_chain(inner.as_ref());
            classify(&text).unwrap_or(SecretError::Other(text))
        }
        keyring::Error::BadEncoding(_) => {
            SecretError::Corrupt("the entry is not UTF-8 text".to_owned())
        }
        keyring::Error::Ambiguous(items) => SecretError::Corrupt(format!(
            "{} keyring items match one hubkey entry",
            items.len()
        )),
        keyring::Error::NoEntry => SecretError::Other("no such keyring entry".to_owned()),
        // check_size refuses these before the platform sees them; a platform limit on the
        // account name (Windows: 32 767 characters of target name) ends here.
        keyring::Error::TooLong(what, limit) => {
            SecretError::Other(format!("the keyring refused a {what} longer than {limit}"))
        }
        other => SecretError::Other(other.to_string()),
    }
}

/// The messages of `err` and its sources, joined. Keyring errors carry D-Bus messages and
/// never the secret.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Recognises the failures a user without a working keyring sees, from the platform's text.
fn classify(text: &str) -> Option<SecretError> {
    let reason = if text.contains("not provided by any .service files")
        || text.contains("ServiceUnknown")
        || text.contains("NameHasNoOwner")
    {
        NO_SECRET_SERVICE
    } else if text.contains("autolaunch")
        || text.contains("Failed to connect to socket")
        || text.contains("Connection refused")
        || text.contains("Address does not contain")
        || text.contains("DBUS_SESSION_BUS_ADDRESS")
    {
        bus_reason()
    } else if text.contains("No DBus session or Secret Service provider found") {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            NO_BUS_ADDRESS
        } else {
            NO_SECRET_SERVICE
        }
    } else if text.contains("unlock prompt was dismissed") {
        PROMPT_DISMISSED
    } else if text.contains("object locked") || text.contains("no result found") {
        LOCKED
    } else {
        return None;
    };
    Some(SecretError::Unavailable {
        reason: reason.to_owned(),
    })
}

fn bus_reason() -> &'static str {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        NO_BUS_ADDRESS
    } else {
        BUS_UNREACHABLE
    }
}

#[cfg(target_os = "linux")]
mod provider {
    //! Which program provides the Secret Service, for [`super::OsKeyring::describe`].

    use std::time::Duration;

    use super::run_with_timeout;
    use crate::SecretError;

    /// "Secret Service (GNOME Keyring)", or what stops it from working.
    pub(super) fn describe(timeout: Duration) -> String {
        match run_with_timeout(timeout, owner_command) {
            Ok(Some(program)) => format!("Secret Service ({})", friendly_name(&program)),
            Ok(None) => "Secret Service (none running)".to_owned(),
            Err(SecretError::TimedOut) => "Secret Service (not answering)".to_owned(),
            Err(_) if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() => {
                "Secret Service (no D-Bus session bus)".to_owned()
            }
            Err(_) => "Secret Service (D-Bus session bus unreachable)".to_owned(),
        }
    }

    /// The command name of the process owning `org.freedesktop.secrets`, if any. Asking the
    /// bus for the owner's PID does not start (activate) a service.
    fn owner_command() -> Result<Option<String>, SecretError> {
        let connection = dbus::blocking::Connection::new_session()
            .map_err(|err| SecretError::Other(err.to_string()))?;
        let bus = connection.with_proxy(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            Duration::from_secs(2),
        );
        let answer: Result<(u32,), dbus::Error> = bus.method_call(
            "org.freedesktop.DBus",
            "GetConnectionUnixProcessID",
            ("org.freedesktop.secrets",),
        );
        let Ok((pid,)) = answer else {
            return Ok(None);
        };
        let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|comm| comm.trim().to_owned())
            .unwrap_or_else(|_| format!("process {pid}"));
        Ok(Some(command))
    }

    /// A name a user recognises for the program `comm`.
    pub(super) fn friendly_name(comm: &str) -> String {
        if comm.starts_with("gnome-keyring") {
            "GNOME Keyring".to_owned()
        } else if comm.eq_ignore_ascii_case("keepassxc") {
            "KeePassXC".to_owned()
        } else if comm.starts_with("kwalletd") || comm.starts_with("ksecretd") {
            "KWallet".to_owned()
        } else {
            comm.to_owned()
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod provider {
    //! The platform keyring on systems without the Secret Service.

    use std::time::Duration;

    /// The platform's own keyring.
    pub(super) fn describe(_timeout: Duration) -> String {
        "platform keyring".to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_hanging_call_times_out() {
        let started = std::time::Instant::now();
        let result: Result<(), SecretError> = run_with_timeout(Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        });
        assert!(matches!(result, Err(SecretError::TimedOut)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_panicking_call_is_an_error_not_a_panic() {
        let result: Result<(), SecretError> = run_with_timeout(Duration::from_secs(5), || {
            panic!("boom");
        });
        assert_eq!(result.unwrap_err().code(), "keyring_error");
    }

    #[test]
    fn missing_secret_service_is_explained() {
        let err = classify(
            "DBus error: The name org.freedesktop.secrets was not provided by any .service files",
        )
        .unwrap();
        assert_eq!(err.code(), "keyring_unavailable");
        assert!(
            err.to_string().contains("no Secret Service is running"),
            "{err}"
        );
    }

    #[test]
    fn missing_bus_is_explained() {
        let err =
            classify("DBus error: Unable to autolaunch a dbus-daemon without a $DISPLAY for X11")
                .unwrap();
        assert!(err.to_string().contains("no D-Bus session bus"), "{err}");
    }

    #[test]
    fn locked_keyring_is_explained() {
        let err = from_keyring(keyring::Error::NoStorageAccess(
            "Secret Service: no result found".into(),
        ));
        assert!(err.to_string().contains(LOCKED), "{err}");
    }

    #[test]
    fn unknown_platform_failures_stay_errors() {
        let err = from_keyring(keyring::Error::PlatformFailure("something odd".into()));
        assert_eq!(err.code(), "keyring_error");
        let err = from_keyring(keyring::Error::BadEncoding(vec![0xff]));
        assert_eq!(err.code(), "keyring_corrupt");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn providers_have_friendly_names() {
        assert_eq!(provider::friendly_name("gnome-keyring-d"), "GNOME Keyring");
        assert_eq!(provider::friendly_name("keepassxc"), "KeePassXC");
        assert_eq!(provider::friendly_name("kwalletd6"), "KWallet");
    }
}
