//! What `/proc/PID/stat` says of a process: its name and fields, and the CPU time it used.

use std::process::Command;
use std::sync::OnceLock;

use crate::Result;

/// A process's name (`comm`) and the fields after it (`state ppid …`), `None` once it is gone.
pub fn stat(pid: u32) -> Option<(String, Vec<String>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    // comm may hold spaces and parentheses: it ends at the last ')'.
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_owned();
    let fields = text
        .get(close + 1..)?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Some((name, fields))
}

/// The clock ticks per second `/proc` counts in (`getconf CLK_TCK`, 100 on Linux), asked once.
pub fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The CPU time a process used so far, user and system, all its threads, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let fields = stat(pid).ok_or("the process is gone")?.1;
    // After comm: state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt,
    // majflt, cmajflt, utime, stime.
    let ticks = |index: usize| -> Result<f64> {
        Ok(fields
            .get(index)
            .ok_or("short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / ticks_per_second())
}

/// The CPU time used so far by those threads of a process whose name starts with `prefix`
/// (hubkeyd's `flushes-0`, its background thread), in seconds; 0 when none is found.
pub fn threads_cpu_seconds(pid: u32, prefix: &str) -> Result<f64> {
    let mut total = 0.0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("stat");
        // A thread that ended meanwhile is skipped.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
            continue;
        };
        if !text[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
        let ticks = |index: usize| -> Result<f64> {
            Ok(fields
                .get(index)
                .ok_or("short /proc/PID/task/TID/stat")?
                .parse::<f64>()?)
        };
        total += ticks(11)? + ticks(12)?;
    }
    Ok(total / ticks_per_second())
}
