//! Giving memory back to the system: after a large answer, and when the window closes.
//!
//! glibc keeps what a thread frees in that thread's arena for the next allocation. A list of
//! 10 000 tokens passes through the tokio workers as pages, rows and JSON (tens of MiB at the
//! peak); once it has been handed over, the arenas would keep it resident for the app's
//! lifetime (about 10 MiB, measured with `scripts/bench desktop --smaps DIR`). `malloc_trim`
//! returns the free pages of every arena.
//!
//! With the window closed, most of what stays resident is library code the window ran and
//! the tray does not: Mesa's LLVM (26 MiB), WebKit's UI side, GTK, our own binary's UI paths.
//! [`page_out_libraries`] tells the kernel to reclaim those pages now rather than under
//! pressure some time later; whatever the tray, the watcher or the next window touch again is
//! read back from the file.

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

/// Asks the kernel to reclaim this process's pages of mapped files (libraries, the binary):
/// `MADV_PAGEOUT` over each file mapping in `/proc/self/maps`. Pages other processes map too,
/// and pages written to (relocated data), stay. Advisory: no content changes, and a kernel
/// without `MADV_PAGEOUT` (before Linux 5.4) refuses it harmlessly.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn page_out_libraries() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for (start, end) in maps.lines().filter_map(library_mapping) {
        // SAFETY: the range is one whole mapping of this process as the kernel listed it;
        // MADV_PAGEOUT only drops clean pages the kernel can read back from their file, so
        // no memory anyone holds a reference to changes. A mapping gone since the listing
        // makes the call fail with ENOMEM, which is ignored.
        let _ =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
    }
}

#[cfg(not(target_os = "linux"))]
pub fn page_out_libraries() {}

/// The address range of a `/proc/self/maps` line when it maps a file on disk: not anonymous
/// memory, the heap or stacks, shared memory (`/SYSV…`, `/memfd:…`, shown as deleted), nor
/// devices (the GPU's).
#[cfg(target_os = "linux")]
fn library_mapping(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let path = fields.nth(4)?;
    if !path.starts_with('/') || path.starts_with("/dev/") || line.ends_with("(deleted)") {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (end > start).then_some((start, end))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn only_mapped_files_are_paged_out() {
        let line = |rest: &str| format!("7f00a000-7f00c000 r-xp 00001000 fe:01 1234  {rest}");
        assert_eq!(
            library_mapping(&line("/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1")),
            Some((0x7f00a000, 0x7f00c000))
        );
        for other in [
            "",
            "[heap]",
            "[stack]",
            "/SYSV00000000 (deleted)",
            "/memfd:wayland-shm (deleted)",
            "/dev/dri/renderD128",
        ] {
            assert_eq!(library_mapping(&line(other)), None, "{other:?}");
        }
        assert_eq!(library_mapping("garbage"), None);
    }

    /// This process's resident pages of mapped files, in KiB (`RssFile` of its status).
    #[allow(clippy::unwrap_used)]
    fn resident_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// A table in the binary's read-only data, so in a file mapping.
    #[allow(clippy::cast_possible_truncation)] // i % 251 fits a byte
    static TABLE: [u8; 256 * 1024] = {
        let mut table = [0u8; 256 * 1024];
        let mut i = 0;
        while i < table.len() {
            table[i] = (i % 251) as u8;
            i += 1;
        }
        table
    };

    fn checksum() -> u64 {
        TABLE.iter().map(|&b| u64::from(b)).sum()
    }

    #[test]
    fn paging_out_gives_file_pages_back_and_keeps_every_byte() {
        let sum = checksum();
        let before = resident_file_kib();
        page_out_libraries();
        let after = resident_file_kib();
        assert!(
            after < before,
            "resident file pages went from {before} KiB to {after} KiB"
        );
        // Read back from the file when touched again.
        assert_eq!(checksum(), sum);
    }
}
