//! The hubkey desktop app. Everything lives in the library so this file stays tiny.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    #[cfg(target_os = "linux")]
    paint_on_the_cpu();
    hubkey_app::run();
}

/// WebKitGTK paints pages with Skia on the GPU by default, and keeps glyph atlases and
/// texture caches for it in the web process: about 35 MiB more for the Security screen
/// (`scripts/bench desktop --smaps DIR` shows where). Our screens are text, boxes and one
/// table, which Skia paints on the CPU just as fast; the layers are still composited on the
/// GPU. A WEBKIT_SKIA_ENABLE_CPU_RENDERING the person set wins. The web process inherits the
/// variable; it is set here, first thing in `main`, because changing the environment is only
/// sound while no other thread exists.
#[cfg(target_os = "linux")]
fn paint_on_the_cpu() {
    const VARIABLE: &str = "WEBKIT_SKIA_ENABLE_CPU_RENDERING";
    if std::env::var_os(VARIABLE).is_none() {
        std::env::set_var(VARIABLE, "1");
    }
}
