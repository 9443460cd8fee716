//! `hubkey-bare-window`: one Tauri window showing a static page, and nothing else. The desktop
//! benchmark (`scripts/bench desktop`) starts it the way it starts the app and prints the
//! app's memory as a multiple of this one's.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Err(err) = tauri::Builder::default().run(tauri::generate_context!()) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("hubkey-bare-window: {err}");
        }
        std::process::exit(1);
    }
}
