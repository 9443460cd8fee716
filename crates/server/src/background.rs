//! Threads for work that must not take the CPU from the token checks, which are the hot
//! path: password hashing, and the usage and access-log flushes (their SQLite writes, and
//! the sorting and bookkeeping of a batch of tens of thousands of lines).
//!
//! The threads run at a lowered scheduling priority (nice 10 on Linux, where the nice value
//! belongs to the thread). They use what the token checks leave, and still a share of the
//! CPU when those leave nothing (CFS gives nice 10 about a tenth of a nice-0 thread's
//! share), so their work never stops. On the runtime's own threads the same work held up
//! every request queued behind it: a flush's batch of 25 000 lines was tens of milliseconds
//! of sorting and hashing on one of two worker threads, and the p99 of `/token` doubled.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result, SetupError};

/// Niceness of background threads (0 is normal, 19 the lowest priority).
pub const NICENESS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads at a lowered priority running queued jobs, oldest first.
#[derive(Debug, Clone)]
pub struct Threads {
    jobs: mpsc::SyncSender<Job>,
    name: &'static str,
}

impl Threads {
    /// `count` threads named `name-N`; at most `queue` jobs wait, and [`Threads::run`] waits
    /// for room beyond that. The threads end when every clone of this is dropped.
    pub fn start(name: &'static str, count: usize, queue: usize) -> Result<Self, SetupError> {
        let (jobs, waiting) = mpsc::sync_channel::<Job>(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for index in 0..count.max(1) {
            let waiting = Arc::clone(&waiting);
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    lower_this_thread(NICENESS);
                    loop {
                        let job = waiting
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv();
                        let Ok(job) = job else {
                            return; // every sender was dropped
                        };
                        // A job that panics drops its answer's sender (its caller gets an
                        // error) and whatever it held, unwinding; the next job runs.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    }
                })
                .map_err(|err| SetupError::io(format!("starting the {name} threads"), err))?;
        }
        Ok(Threads { jobs, name })
    }

    /// Runs `work` on one of the threads and returns its answer.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        let stopped = || Error::Internal(format!("the {} threads have stopped", self.name));
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => {
                // Wait for room off the runtime.
                let jobs = self.jobs.clone();
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(|err| Error::Internal(format!("queueing a job: {err}")))?
                    .map_err(|_| stopped())?;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        answer.await.map_err(|_| {
            Error::Internal(format!("a job of the {} threads did not finish", self.name))
        })
    }
}

/// Lowers the calling thread's scheduling priority to `niceness`. On Linux the nice value
/// belongs to the thread, so this touches no other thread; elsewhere it does nothing (there
/// it would lower the whole process). Failure only costs fairness, so it is ignored.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_this_thread(niceness: i32) {
    // SAFETY: setpriority takes plain integers and reads no memory of ours; `who = 0` names
    // the calling thread.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, niceness) };
}

#[cfg(not(target_os = "linux"))]
fn lower_this_thread(niceness: i32) {
    let _ = niceness;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    #[cfg(target_os = "linux")]
    fn niceness_of_this_thread() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The fields after the command name, which is in parentheses and may hold spaces;
        // the nice value is the 19th field, the 17th after the name.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn jobs_run_at_a_lowered_priority_on_threads_of_their_own() {
        let threads = Threads::start("test", 1, 4).unwrap();
        let here = niceness_of_this_thread();
        let (name, nice) = threads
            .run(|| {
                let name = std::thread::current().name().map(str::to_owned);
                (name, niceness_of_this_thread())
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("test-0"));
        assert_eq!(nice, NICENESS);
        assert_eq!(niceness_of_this_thread(), here, "only its own thread");
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_alone_and_a_full_queue_waits() {
        let threads = Threads::start("test", 1, 1).unwrap();
        let panicked = threads.run(|| panic!("a job's bug")).await;
        assert!(matches!(panicked, Err(Error::Internal(_))), "{panicked:?}");
        // More jobs at once than the queue holds: each is run, none is refused.
        let waiting: Vec<_> = (0..20)
            .map(|n| {
                let threads = threads.clone();
                tokio::spawn(async move { threads.run(move || n * 2).await })
            })
            .collect();
        let mut answers = Vec::new();
        for answer in waiting {
            answers.push(answer.await.unwrap().unwrap());
        }
        assert_eq!(answers, (0..20).map(|n| n * 2).collect::<Vec<_>>());
    }
}
