//! Giving freed memory back to the system after a large answer.
//!
//! glibc keeps what a thread frees in that thread's arena for the next allocation. A list of
//! 10 000 tokens passes through the tokio workers as pages, rows and JSON (tens of MiB at the
//! peak); once it has been handed over, the arenas would keep it resident for the app's
//! lifetime (about 10 MiB, measured with `scripts/bench desktop --smaps DIR`). `malloc_trim`
//! returns the free pages of every arena.

/// Returns the pages freed memory sits on to the system. Takes a few milliseconds; call it
/// after work that allocated a lot, not on every command.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn give_back_freed() {
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it takes a plain
    // integer (how much to leave at the top of the main heap) and touches no memory of ours.
    let _ = unsafe { libc::malloc_trim(0) };
}

/// Other allocators give memory back on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back_freed() {}
