//! The hubkey desktop app. Everything lives in the library so this file stays tiny.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    hubkey_app::run();
}
