//! `hubkey-cli`: sign in with the browser from a machine without a display (a server over
//! SSH), sign out, and say who is signed in. A companion of the desktop app, over the same
//! core (`hubkey-desktop`): the same keyring entries, the same auto token, the same docker
//! CLI hand-off, so `docker-credential-hubkey` serves the token it stores.
//!
//! It links no GUI library (no GTK, no WebKit), so it runs where the app cannot; it never
//! needs DISPLAY or WAYLAND_DISPLAY. It does need a Secret Service keyring on the session
//! bus, and says so (exit 3) when none answers.
//!
//! Exit codes: 0 done; 1 failed (server unreachable, refused…); 2 wrong usage; 3 no keyring
//! reachable; 4 the sign-in was denied or expired; 5 not signed in (`status`); 130 cancelled
//! with Ctrl-C.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hubkey_desktop::{
    BrowserSignIn, BrowserSignInStep, Desktop, DesktopError, ErrorCode, HandOff, ServerUrl,
    SettingsFile, Unencrypted,
};

/// Exit code: failed.
const FAILED: u8 = 1;
/// Exit code: no keyring reachable.
const NO_KEYRING: u8 = 3;
/// Exit code: the person denied the sign-in, or its code expired.
const NOT_APPROVED: u8 = 4;
/// Exit code: `status` found no sign-in.
const NOT_SIGNED_IN: u8 = 5;
/// Exit code: Ctrl-C (128 + SIGINT, as shells report it).
const CANCELLED: u8 = 130;

/// The settings key of the server the last `login` used.
const SERVER_KEY: &str = "server";

#[derive(Parser)]
#[command(
    name = "hubkey-cli",
    version,
    about = "Sign in to a hub from a terminal, with your browser on another device",
    after_help = "Exit codes: 0 done, 1 failed, 2 wrong usage, 3 no keyring reachable, 4 sign-in denied or expired, 5 not signed in (status), 130 cancelled."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in: shows a code and a link (and a QR code) to approve in any browser, then keeps
    /// the auto token and the session in the keyring and points the docker CLI at it.
    Login {
        /// The hub (default: the one of the last login, else $HUBKEY_SERVER).
        #[arg(long, env = "HUBKEY_SERVER")]
        server: Option<String>,
        /// Allow a plain http:// server that is not on this computer (tokens cross the
        /// network unencrypted).
        #[arg(long)]
        allow_http: bool,
    },
    /// Sign out: deletes this device's auto token, ends the session, erases the keyring
    /// entries and the docker CLI's entry.
    Logout {
        /// The hub (default: the one of the last login).
        #[arg(long)]
        server: Option<String>,
    },
    /// Who is signed in, to which hub, with which token, and when the token was last used.
    Status {
        /// The hub (default: the one of the last login).
        #[arg(long)]
        server: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start: {err}"), FAILED),
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    let Some(docker_config) = hubkey_desktop::config_path_from_env() else {
        return fail(
            "cannot find the docker CLI's config.json: set HOME or DOCKER_CONFIG",
            FAILED,
        );
    };
    let desktop = Desktop::new(
        Arc::new(hubkey_keyring::OsKeyring::new()),
        docker_config,
        device_name(),
    );
    let settings = settings();
    match cli.command {
        Command::Login { server, allow_http } => {
            let server = match chosen_server(server, settings.as_ref()) {
                Ok(server) => server,
                Err(code) => return code,
            };
            let unencrypted = if allow_http {
                Unencrypted::Allow
            } else {
                Unencrypted::Refuse
            };
            login(&desktop, &server, unencrypted, settings.as_ref()).await
        }
        Command::Logout { server } => match chosen_server(server, settings.as_ref()) {
            Ok(server) => logout(&desktop, &server).await,
            Err(code) => code,
        },
        Command::Status { server } => match chosen_server(server, settings.as_ref()) {
            Ok(server) => status(&desktop, &server).await,
            Err(code) => code,
        },
    }
}

async fn login(
    desktop: &Desktop,
    server: &ServerUrl,
    unencrypted: Unencrypted,
    settings: Option<&SettingsFile>,
) -> ExitCode {
    let started = match desktop
        .start_browser_sign_in(server, &os_name(), unencrypted)
        .await
    {
        Ok(started) => started,
        Err(err) => return error(&err),
    };
    show_code(&started);
    let mut wait = started.interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = tokio::signal::ctrl_c() => {
                desktop.cancel_browser_sign_in();
                return fail("Cancelled; nothing was signed in.", CANCELLED);
            }
        }
        match desktop.poll_browser_sign_in().await {
            Ok(
                BrowserSignInStep::Pending { interval } | BrowserSignInStep::SlowDown { interval },
            ) => {
                wait = interval;
            }
            Ok(BrowserSignInStep::Denied) => {
                return fail("The sign-in was denied in the browser.", NOT_APPROVED)
            }
            Ok(BrowserSignInStep::Expired) => {
                return fail(
                    "The code expired before it was approved; run `hubkey-cli login` again.",
                    NOT_APPROVED,
                )
            }
            Ok(BrowserSignInStep::SignedIn(account)) => {
                if let Some(settings) = settings {
                    // Only a convenience for the next logout/status: not fatal.
                    let _ = settings.set(SERVER_KEY, serde_json::json!(server.as_str()));
                }
                println!(
                    "Signed in to {} as {}.",
                    account.server_url, account.username
                );
                print_hand_off(&account.docker_hand_off);
                return ExitCode::SUCCESS;
            }
            // A network hiccup: the grant is still waiting, try again at the interval.
            Err(err @ DesktopError::Unreachable { .. }) => {
                warn(&format!("{err} Retrying…"));
            }
            Err(err) => return error(&err),
        }
    }
}

fn show_code(started: &BrowserSignIn) {
    println!("To sign in, open this page in a browser on any device:");
    println!();
    println!("    {}", started.verification_uri);
    println!();
    println!("and enter the code:");
    println!();
    println!("    {}", started.user_code);
    println!();
    println!("Or scan this QR code, which opens the page with the code filled in:");
    println!("    {}", started.verification_uri_complete);
    match qrcode::QrCode::new(started.verification_uri_complete.as_bytes()) {
        Ok(code) => {
            let drawn = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .quiet_zone(true)
                .build();
            println!("{drawn}");
        }
        Err(err) => warn(&format!("(no QR code: {err})")),
    }
    println!(
        "Check that the page shows the same code. Waiting for approval until {} (Ctrl-C cancels)…",
        started.expires_at.format("%H:%M UTC")
    );
    let _ = std::io::stdout().flush();
}

fn print_hand_off(hand_off: &HandOff) {
    match hand_off {
        HandOff::Done {
            registry,
            config_path,
        } => println!(
            "The docker CLI now uses your token for {registry} (through docker-credential-hubkey, set in {}).",
            config_path.display()
        ),
        HandOff::AskToReplace {
            registry,
            current,
            config_path,
        } => println!(
            "{} sends {registry}'s credentials to docker-credential-{current}; it was left as it is. Your token is in the keyring; open the hubkey app to switch the docker CLI over.",
            config_path.display()
        ),
        HandOff::Skipped { message, .. } => println!("{message}"),
    }
}

async fn logout(desktop: &Desktop, server: &ServerUrl) -> ExitCode {
    match desktop.sign_out(server).await {
        Ok(report) if report.not_done.is_empty() => {
            println!("Signed out of {server}.");
            ExitCode::SUCCESS
        }
        Ok(report) => {
            println!("Signed out of {server}, except:");
            for leftover in &report.not_done {
                println!("  - {}", leftover.message);
            }
            ExitCode::from(FAILED)
        }
        Err(err) => error(&err),
    }
}

async fn status(desktop: &Desktop, server: &ServerUrl) -> ExitCode {
    let account = match desktop.restore(server).await {
        Ok(Some(account)) => account,
        Ok(None) => return fail(&format!("Not signed in to {server}."), NOT_SIGNED_IN),
        Err(err @ (DesktopError::SessionEnded | DesktopError::SessionRevoked)) => {
            return fail(&err.to_string(), NOT_SIGNED_IN)
        }
        Err(err) => return error(&err),
    };
    println!(
        "Signed in to {} as {}.",
        account.server_url, account.username
    );
    match desktop.list_tokens(server).await {
        Ok(rows) => match rows.iter().find(|row| row.this_device) {
            Some(row) => {
                let used = row.last_used.map_or_else(
                    || "never used".to_owned(),
                    |at| format!("last used {}", at.format("%Y-%m-%d %H:%M UTC")),
                );
                println!(
                    "Token: {} \"{}\" ({}), {used}.",
                    row.hint, row.label, row.scope_words
                );
            }
            None => println!(
                "Token: none for this device (the hub announces no registry, or it was deleted)."
            ),
        },
        Err(err) => warn(&format!("Cannot list the tokens: {err}")),
    }
    print_hand_off(&account.docker_hand_off);
    ExitCode::SUCCESS
}

/// The server given, else the one of the last login.
fn chosen_server(
    given: Option<String>,
    settings: Option<&SettingsFile>,
) -> Result<ServerUrl, ExitCode> {
    let text = given.or_else(|| {
        settings
            .and_then(|settings| settings.get(SERVER_KEY))
            .and_then(|value| value.as_str().map(str::to_owned))
    });
    let Some(text) = text else {
        return Err(fail(
            "Which hub? Give it with --server https://hub.example (it is remembered after login).",
            2,
        ));
    };
    ServerUrl::parse(&text).map_err(|err| error(&err))
}

/// The CLI's own settings (the server of the last login), in the user's config directory.
fn settings() -> Option<SettingsFile> {
    dirs::config_dir().map(|dir| SettingsFile::new(dir.join("hubkey-cli").join("settings.json")))
}

/// Says `err` and picks the exit code for it.
fn error(err: &DesktopError) -> ExitCode {
    let code = match err.code() {
        ErrorCode::KeyringUnavailable | ErrorCode::KeyringTimeout => NO_KEYRING,
        _ => FAILED,
    };
    fail(&err.to_string(), code)
}

fn fail(message: &str, code: u8) -> ExitCode {
    warn(message);
    ExitCode::from(code)
}

fn warn(message: &str) {
    let _ = writeln!(std::io::stderr(), "hubkey-cli: {message}");
}

/// The name this device's auto tokens carry: the host name (as the app names them).
fn device_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "this computer".to_owned())
}

/// The operating system as the verification page shows it.
fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix("PRETTY_NAME=")
                    .map(|value| value.trim_matches('"').to_owned())
            })
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}
