//! A clock the GUI tests turn, so that a token's expiry warnings (7 days, then 1 day ahead)
//! can be seen in the real app without waiting days: with `HUBKEY_TEST_CLOCK_FILE=PATH` in the
//! environment, the core's `Clock` is a `ManualClock` standing at the RFC 3339 time written in
//! PATH (the system's time at start when the file is missing or unreadable), read again before
//! each poll of the watcher. Without the variable nothing changes.
//!
//! Compiled only with the `test-clock` feature (off by default, refused in release builds; see
//! `lib.rs`), which the GUI tests' build turns on through `ipc-audit`: a shipped app reads the
//! system clock only.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use hubkey_desktop::ManualClock;
use tauri::{AppHandle, Manager};

/// The environment variable naming the file that holds the time.
pub const ENV: &str = "HUBKEY_TEST_CLOCK_FILE";

/// The turned clock and the file it follows.
pub struct TestClock {
    path: PathBuf,
    clock: ManualClock,
}

impl TestClock {
    /// The clock `HUBKEY_TEST_CLOCK_FILE` asks for, if it is set.
    pub fn from_env() -> Option<Self> {
        let path = PathBuf::from(std::env::var_os(ENV)?);
        let test_clock = TestClock {
            path,
            clock: ManualClock::new(Utc::now()),
        };
        test_clock.read();
        Some(test_clock)
    }

    /// The clock the core reads.
    pub fn clock(&self) -> ManualClock {
        self.clock.clone()
    }

    /// Sets the clock to the time the file holds now (unchanged when it holds none).
    fn read(&self) {
        let written = std::fs::read_to_string(&self.path).ok();
        if let Some(at) = written
            .as_deref()
            .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
        {
            self.clock.set(at.with_timezone(&Utc));
        }
    }
}

/// Brings the core's clock to the file's time (before a poll); nothing without the variable.
pub fn sync(app: &AppHandle) {
    if let Some(test_clock) = app.try_state::<TestClock>() {
        test_clock.read();
    }
}
