//! The operating systems the desktop app ships for. What differs between them (where the
//! docker CLI's config lives, how the app starts at login, what a tray click means) is a pure
//! function of an [`Os`] value, so each OS's rule is unit-tested on any build machine, not
//! only on the OS it is compiled for.

/// An operating system the app is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// Linux (and the other Unix desktops, which follow the XDG rules).
    Linux,
    /// macOS.
    MacOs,
    /// Windows.
    Windows,
}

impl Os {
    /// The OS this build runs on.
    pub const fn current() -> Os {
        if cfg!(target_os = "windows") {
            Os::Windows
        } else if cfg!(target_os = "macos") {
            Os::MacOs
        } else {
            Os::Linux
        }
    }
}
