//! The tray icon and its menu: Open hubkey, Security, the signed-in account (not clickable),
//! Sign out, Quit. Menu ids are declared once in [`TrayAction`]; clicks are parsed into it.
//! The icon switches to its attention variant when auto tokens were pruned, until the
//! Security screen is opened (the UI then calls the `mark_seen` command).
//!
//! The tray only shows the session; signing out from it goes through the handler the app
//! wires in ([`build`]), the same lifecycle the Account screen's button uses.
//!
//! A click on the icon itself follows each OS's habit ([`icon_click`]): the menu on macOS (a
//! menu-bar extra, its icon a template so it follows the menu bar's light or dark look);
//! the window on a left click and the menu on a right click on Windows; the menu only on
//! Linux, where libappindicator reports no clicks at all.

use hubkey_desktop::Os;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};

use crate::settings;
use crate::ui_event::UiEvent;
use crate::window;

/// The tray icon's id.
pub const TRAY_ID: &str = "hubkey";

const ICON: &[u8] = include_bytes!("../../icons/tray.png");
const ATTENTION_ICON: &[u8] = include_bytes!("../../icons/tray-attention.png");

/// What a tray menu item does. Its id is the item's menu id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayAction {
    /// Shows and focuses the window.
    Open,
    /// Shows the window on the Security screen.
    Security,
    /// The signed-in account (a label; clicking it does nothing).
    Account,
    /// Signs out, as the Account screen's button does.
    SignOut,
    /// Quits the app (closing the window only hides it).
    Quit,
}

impl TrayAction {
    /// Every action, in menu order.
    pub const ALL: [TrayAction; 5] = [
        TrayAction::Open,
        TrayAction::Security,
        TrayAction::Account,
        TrayAction::SignOut,
        TrayAction::Quit,
    ];

    /// The menu id.
    pub fn id(self) -> &'static str {
        match self {
            TrayAction::Open => "open",
            TrayAction::Security => "security",
            TrayAction::Account => "account",
            TrayAction::SignOut => "sign_out",
            TrayAction::Quit => "quit",
        }
    }

    /// The action behind a menu id, if it is one of ours.
    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.id() == id)
    }
}

/// What a click on the tray icon itself does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IconClick {
    /// The OS opens the tray menu.
    Menu,
    /// The app shows its window.
    OpenWindow,
    /// Nothing.
    Nothing,
}

/// What a click with `button` on the tray icon means on `os`.
pub fn icon_click(os: Os, button: MouseButton) -> IconClick {
    match (os, button) {
        // libappindicator (StatusNotifierItem) reports no clicks: the desktop shows the menu.
        (Os::Linux, _) => IconClick::Menu,
        (Os::MacOs, MouseButton::Left | MouseButton::Right) => IconClick::Menu,
        (Os::Windows, MouseButton::Left) => IconClick::OpenWindow,
        (Os::Windows, MouseButton::Right) => IconClick::Menu,
        (_, MouseButton::Middle) => IconClick::Nothing,
    }
}

/// Whether the icon is a macOS template image (drawn by the menu bar in its own colour): the
/// plain icon is; the attention icon keeps its colour, or its mark would not show.
fn is_template(os: Os, attention: bool) -> bool {
    os == Os::MacOs && !attention
}

/// The menu items whose text or state follows the session.
struct TrayMenu {
    account: MenuItem<Wry>,
    sign_out: MenuItem<Wry>,
}

/// Builds the tray (with the attention icon if it was still on at the last exit); its Sign
/// out item calls `on_sign_out`.
pub fn build(app: &AppHandle, on_sign_out: fn(&AppHandle)) -> tauri::Result<()> {
    let item = |action: TrayAction, text: &str, enabled: bool| {
        MenuItem::with_id(app, action.id(), text, enabled, None::<&str>)
    };
    let open = item(TrayAction::Open, "Open hubkey", true)?;
    let security = item(TrayAction::Security, "Security", true)?;
    let account = item(TrayAction::Account, "Not signed in", false)?;
    let sign_out = item(TrayAction::SignOut, "Sign out", false)?;
    let quit = item(TrayAction::Quit, "Quit", true)?;
    let menu = Menu::with_items(
        app,
        &[
            &open,
            &security,
            &PredefinedMenuItem::separator(app)?,
            &account,
            &sign_out,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    let attention = settings::tray_attention(app).unwrap_or(false);
    let os = Os::current();
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(attention)?)
        .icon_as_template(is_template(os, attention))
        .tooltip("hubkey")
        .menu(&menu)
        .show_menu_on_left_click(icon_click(os, MouseButton::Left) == IconClick::Menu)
        .on_menu_event(move |app, event| {
            if let Some(action) = TrayAction::parse(event.id().as_ref()) {
                perform(app, action, on_sign_out);
            }
        })
        .on_tray_icon_event(move |tray, event| {
            if let TrayIconEvent::Click {
                button,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                if icon_click(os, button) == IconClick::OpenWindow {
                    window::open(tray.app_handle());
                }
            }
        })
        .build(app)?;
    app.manage(TrayMenu { account, sign_out });
    Ok(())
}

fn icon(attention: bool) -> tauri::Result<Image<'static>> {
    Image::from_bytes(if attention { ATTENTION_ICON } else { ICON })
}

/// Shows `username` as the signed-in account, or "Not signed in".
pub fn set_account(app: &AppHandle, username: Option<&str>) {
    let Some(menu) = app.try_state::<TrayMenu>() else {
        return;
    };
    let text = username.map_or_else(
        || "Not signed in".to_owned(),
        |name| format!("Signed in as {name}"),
    );
    let _ = menu.account.set_text(text);
    let _ = menu.sign_out.set_enabled(username.is_some());
}

/// Switches the icon to its attention variant (`true`) or back, and remembers it.
pub fn set_attention(app: &AppHandle, attention: bool) {
    let _ = settings::set_tray_attention(app, attention);
    if let (Some(tray), Ok(image)) = (app.tray_by_id(TRAY_ID), icon(attention)) {
        let _ = tray.set_icon(Some(image));
        let _ = tray.set_icon_as_template(is_template(Os::current(), attention));
    }
}

/// Shows the window on the Security screen (from the tray menu or a notification).
pub fn open_security(app: &AppHandle) {
    window::open_with(app, UiEvent::OpenSecurity);
}

/// Shows the window on one token's detail (the UI's route `security/token/<uuid>`), over
/// the Security list with its row selected: a notification's action about that token.
pub fn open_token(app: &AppHandle, uuid: uuid::Uuid) {
    window::open_with(app, UiEvent::OpenToken { uuid });
}

fn perform(app: &AppHandle, action: TrayAction, on_sign_out: fn(&AppHandle)) {
    match action {
        TrayAction::Open => window::open(app),
        TrayAction::Security => open_security(app),
        TrayAction::Account => {}
        TrayAction::SignOut => on_sign_out(app),
        TrayAction::Quit => app.exit(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_menu_id_parses_back_to_its_action() {
        for action in TrayAction::ALL {
            assert_eq!(TrayAction::parse(action.id()), Some(action));
        }
        assert_eq!(TrayAction::parse("nope"), None);
    }

    #[test]
    fn an_icon_click_follows_each_os() {
        use MouseButton::{Left, Middle, Right};
        assert_eq!(icon_click(Os::Windows, Left), IconClick::OpenWindow);
        assert_eq!(icon_click(Os::Windows, Right), IconClick::Menu);
        assert_eq!(icon_click(Os::MacOs, Left), IconClick::Menu);
        assert_eq!(icon_click(Os::MacOs, Right), IconClick::Menu);
        for button in [Left, Right, Middle] {
            assert_eq!(icon_click(Os::Linux, button), IconClick::Menu);
        }
        assert_eq!(icon_click(Os::Windows, Middle), IconClick::Nothing);
        assert_eq!(icon_click(Os::MacOs, Middle), IconClick::Nothing);
    }

    #[test]
    fn only_the_plain_icon_is_a_macos_template() {
        assert!(is_template(Os::MacOs, false));
        assert!(!is_template(Os::MacOs, true));
        assert!(!is_template(Os::Windows, false));
        assert!(!is_template(Os::Linux, false));
    }
}
