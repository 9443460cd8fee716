//! Where the webview may go: only the app's own pages. A link, a script or a redirect that
//! would take the window to another origin is refused, so no page from elsewhere ever runs
//! with the app's IPC; nothing is opened inside the app instead.

use tauri::plugin::{Builder, TauriPlugin};
use tauri::{Runtime, Url};

/// Whether `url` is one of the app's own pages: the embedded UI served by Tauri's custom
/// protocol, `tauri://localhost` (Linux, macOS), or its Windows spelling
/// `http(s)://tauri.localhost`, on the default port.
pub fn is_app_page(url: &Url) -> bool {
    let host = url.host_str();
    let no_credentials = url.username().is_empty() && url.password().is_none();
    let default_port = url.port().is_none();
    match url.scheme() {
        "tauri" => host == Some("localhost") && no_credentials && default_port,
        "http" | "https" => host == Some("tauri.localhost") && no_credentials && default_port,
        _ => false,
    }
}

/// The plugin that refuses every navigation of every webview to a page that is not the
/// app's ([`is_app_page`]).
pub fn guard<R: Runtime>() -> TauriPlugin<R> {
    Builder::new("hubkey-navigation")
        .on_navigation(|_, url| is_app_page(url))
        .build()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn allowed(text: &str) -> bool {
        is_app_page(&Url::parse(text).unwrap())
    }

    #[test]
    fn only_the_apps_own_origin_is_a_page_of_the_app() {
        for own in [
            "tauri://localhost",
            "tauri://localhost/",
            "tauri://localhost/index.html#security",
            "http://tauri.localhost/",
            "https://tauri.localhost/assets/index.js",
        ] {
            assert!(allowed(own), "{own}");
        }
        for other in [
            "http://127.0.0.1:5080/",
            "https://hub.docker.com/",
            "http://localhost/",
            "tauri://localhost.evil.example/",
            "tauri://evil.example/",
            "http://tauri.localhost.evil.example/",
            "http://tauri.localhost:8080/",
            "tauri://user:pw@localhost/",
            "https://evil.example/?tauri://localhost",
            "javascript:alert(1)",
            "data:text/html,<p>hi</p>",
            "file:///etc/passwd",
            "about:blank",
            "blob:tauri://localhost/0b2f",
        ] {
            assert!(!allowed(other), "{other}");
        }
    }
}
