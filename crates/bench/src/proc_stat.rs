//! What `/proc/PID/stat` says of a process: its name and fields, and the CPU time it used.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use rustix::time::ClockId;

use crate::Result;

/// A process's name (`comm`) and the fields after it (`state ppid …`), `None` once it is gone.
pub fn stat(pid: u32) -> Option<(String, Vec<String>)> {
    read_stat(Path::new(&format!("/proc/{pid}/stat")))
}

/// The name and fields of a `stat` file of `/proc` (a process's or a thread's).
fn read_stat(path: &Path) -> Option<(String, Vec<String>)> {
    let text = std::fs::read_to_string(path).ok()?;
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

/// The user and system CPU time in a `stat` file's fields (after comm: state, ppid, pgrp,
/// session, tty_nr, tpgid, flags, minflt, cminflt, majflt, cmajflt, utime, stime), in seconds.
fn cpu_of(fields: &[String]) -> Result<f64> {
    let ticks = |index: usize| -> Result<f64> {
        Ok(fields
            .get(index)
            .ok_or("short /proc stat line")?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / ticks_per_second())
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
    cpu_of(&stat(pid).ok_or("the process is gone")?.1)
}

/// The CPU time the calling thread used so far, user and system, in seconds, to the
/// nanosecond (`/proc` counts in ticks of 10 ms).
pub fn this_thread_cpu_seconds() -> f64 {
    seconds(rustix::time::clock_gettime(ClockId::ThreadCPUTime))
}

/// The CPU time this process used so far, all its threads (ended ones too), user and system,
/// in seconds, to the nanosecond: a flush of 25 000 tokens is a few ticks of `/proc`'s 10 ms.
pub fn own_cpu_seconds() -> f64 {
    seconds(rustix::time::clock_gettime(ClockId::ProcessCPUTime))
}

fn seconds(time: rustix::time::Timespec) -> f64 {
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

/// The read calls the calling thread made so far (`syscr` of `/proc/thread-self/io`): on an
/// SQLite connection, one a page it does not hold in its own cache.
pub fn this_thread_reads() -> Result<u64> {
    let io = std::fs::read_to_string("/proc/thread-self/io")?;
    let count = io
        .lines()
        .find_map(|line| line.strip_prefix("syscr:"))
        .ok_or("no syscr in /proc/thread-self/io")?;
    Ok(count.trim().parse()?)
}

/// The CPU time used so far by those threads of a process whose name starts with `prefix`
/// (hubkeyd's `flushes-0`, its background thread), in seconds; 0 when none is found.
pub fn threads_cpu_seconds(pid: u32, prefix: &str) -> Result<f64> {
    let mut total = 0.0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread that ended meanwhile is skipped.
        let Some((name, fields)) = read_stat(&task?.path().join("stat")) else {
            continue;
        };
        if name.starts_with(prefix) {
            total += cpu_of(&fields)?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_threads_cpu_is_counted_apart_from_the_rest() {
        let pid = std::process::id();
        let (done, finish) = std::sync::mpsc::channel::<()>();
        let (spun, wait) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::Builder::new()
            .name("spinner-0".into())
            .spawn(move || {
                // A fixed amount of work, so its CPU time does not depend on the machine's load.
                let mut x = 0u64;
                for i in 0..100_000_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                spun.send(()).unwrap();
                // Alive (listed under /proc/PID/task) until it is read.
                let _ = finish.recv();
                x
            })
            .unwrap();
        wait.recv().unwrap();
        let spinner_cpu = threads_cpu_seconds(pid, "spinner-").unwrap();
        let whole = cpu_seconds(pid).unwrap();
        let none = threads_cpu_seconds(pid, "no-such-thread-").unwrap();
        done.send(()).unwrap();
        spinner.join().unwrap();
        assert!(spinner_cpu >= 0.05, "{spinner_cpu}");
        assert!(spinner_cpu <= whole, "{spinner_cpu} of {whole}");
        assert_eq!(none, 0.0);
    }

    #[test]
    fn the_cpu_clocks_count_below_a_tick_and_ended_threads_too() {
        let before = own_cpu_seconds();
        let spun = std::thread::spawn(|| {
            let start = this_thread_cpu_seconds();
            // Well under a tick of `/proc` (10 ms) on any machine this runs on.
            let mut x = 0u64;
            for i in 0..200_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            std::hint::black_box(x);
            this_thread_cpu_seconds() - start
        })
        .join()
        .unwrap();
        let used = own_cpu_seconds() - before;
        assert!(spun > 0.0 && spun < 0.01, "the thread's spin: {spun} s");
        assert!(
            used >= spun,
            "the process's {used} s missed its ended thread's {spun} s"
        );
    }
}
