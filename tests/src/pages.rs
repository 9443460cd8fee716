//! Page objects: the app's screens as the GUI tests use them. Every selector the tests need
//! is written here once, so a change of markup is one change here, and a test reads as what a
//! person does (sign in, open Security, deactivate a token) rather than as CSS.
//!
//! Each page borrows the running [`DesktopApp`]; its methods wait (up to 20 s, as
//! [`DesktopApp::wait_for`] does) for what they act on.

use std::path::Path;
use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::Locator;
use uuid::Uuid;

use crate::desktop::DesktopApp;

impl DesktopApp {
    /// The sign-in screen (password and code steps).
    pub fn sign_in_page(&self) -> SignInPage<'_> {
        SignInPage { app: self }
    }

    /// The signed-in account's screen.
    pub fn home(&self) -> HomePage<'_> {
        HomePage { app: self }
    }

    /// The Security screen (open it with [`Navigation::security`]).
    pub fn security(&self) -> SecurityPage<'_> {
        SecurityPage { app: self }
    }

    /// The bar that switches between the signed-in screens.
    pub fn nav(&self) -> Navigation<'_> {
        Navigation { app: self }
    }
}

/// How many elements match `css` now.
async fn count(app: &DesktopApp, css: &str) -> usize {
    app.webdriver
        .find_all(Locator::Css(css))
        .await
        .unwrap()
        .len()
}

/// Waits up to 20 s until nothing matches `css`.
async fn wait_gone(app: &DesktopApp, css: &str) {
    for _ in 0..200 {
        if count(app, css).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} still there after 20 s");
}

/// Chooses `value` in the select `css`, as a person would (a `change` event follows).
async fn choose(app: &DesktopApp, css: &str, value: &str) {
    app.wait_for(css).await;
    app.webdriver
        .execute(
            "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
             s.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![css.into(), value.into()],
        )
        .await
        .unwrap();
}

/// The attribute `name` of `css`, once present.
async fn attr(app: &DesktopApp, css: &str, name: &str) -> Option<String> {
    app.wait_for(css).await.attr(name).await.unwrap()
}

/// Clicks `button`, which signs out, and waits for the sign-in screen.
async fn click_to_sign_in<'a>(app: &'a DesktopApp, button: &str) -> SignInPage<'a> {
    app.click(button).await;
    let sign_in = app.sign_in_page();
    sign_in.wait().await;
    sign_in
}

/// The signed-in screens, as the navigation bar names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Account,
    Security,
    Activity,
    Settings,
}

impl Screen {
    fn button(self) -> &'static str {
        match self {
            Screen::Account => "#nav-account",
            Screen::Security => "#nav-security",
            Screen::Activity => "#nav-activity",
            Screen::Settings => "#nav-settings",
        }
    }
}

/// The navigation bar of the signed-in screens.
pub struct Navigation<'a> {
    app: &'a DesktopApp,
}

impl<'a> Navigation<'a> {
    async fn open(&self, screen: Screen) {
        self.app.click(screen.button()).await;
    }

    /// Opens the account screen.
    pub async fn account(&self) -> HomePage<'a> {
        self.open(Screen::Account).await;
        self.app.home()
    }

    /// Opens the Security screen.
    pub async fn security(&self) -> SecurityPage<'a> {
        self.open(Screen::Security).await;
        self.app.security()
    }

    /// Opens the Activity view.
    pub async fn activity(&self) -> ActivityPage<'a> {
        self.open(Screen::Activity).await;
        ActivityPage { app: self.app }
    }

    /// Opens the Settings screen.
    pub async fn settings(&self) -> SettingsPage<'a> {
        self.open(Screen::Settings).await;
        SettingsPage { app: self.app }
    }

    /// Whether `screen` is the one shown (waits for the bar itself).
    pub async fn is_current(&self, screen: Screen) -> bool {
        attr(self.app, screen.button(), "aria-current")
            .await
            .as_deref()
            == Some("page")
    }
}

/// What the sign-in screen says on arrival (`[data-testid=notice]`).
#[derive(Debug)]
pub struct Notice {
    /// The code it was given (`partial_sign_out`, or a restore error's code).
    pub code: Option<String>,
    pub text: String,
}

/// The sign-in screen.
pub struct SignInPage<'a> {
    app: &'a DesktopApp,
}

impl<'a> SignInPage<'a> {
    /// Waits until the screen shows (its user name field).
    pub async fn wait(&self) -> &Self {
        self.app.wait_for("#username").await;
        self
    }

    /// The server address the screen offers.
    pub async fn server_url(&self) -> Option<String> {
        self.app
            .wait_for("#server-url")
            .await
            .prop("value")
            .await
            .unwrap()
    }

    /// Whether the warning about an unencrypted server and its "Send my password
    /// unencrypted" choice show, once the form is there.
    pub async fn warns_unencrypted(&self) -> bool {
        self.wait().await;
        count(
            self.app,
            "[data-testid=unencrypted-warning] #send-unencrypted",
        )
        .await
            > 0
    }

    /// Ticks "Send my password unencrypted".
    pub async fn choose_to_send_unencrypted(&self) {
        self.app.click("#send-unencrypted").await;
    }

    /// Types a user name and password and submits them.
    pub async fn submit_password(&self, username: &str, password: &str) {
        self.app.fill("#username", username).await;
        self.app.fill("#password", password).await;
        self.app.click("#sign-in").await;
    }

    /// Signs in and waits for the account screen to name `username`.
    pub async fn sign_in(&self, username: &str, password: &str) -> HomePage<'a> {
        self.submit_password(username, password).await;
        let home = self.app.home();
        assert_eq!(
            home.signed_in_as().await,
            format!("Signed in as {username}")
        );
        home
    }

    /// Waits for the two-factor step.
    pub async fn wait_for_code_step(&self) {
        self.app.wait_for("#code").await;
    }

    /// Types the authenticator's code and submits it.
    pub async fn submit_code(&self, code: &str) {
        self.app.fill("#code", code).await;
        self.app.click("#submit-code").await;
    }

    /// Clicks "Sign in with your browser"; answers the code then shown large.
    pub async fn start_browser_sign_in(&self) -> String {
        self.app.click("#sign-in-browser").await;
        self.app.text("#user-code").await
    }

    /// Waits until the browser sign-in says it ended `how` (`denied` or `expired`).
    pub async fn wait_browser_ended(&self, how: &str) {
        self.app
            .wait_for(&format!("[data-testid=browser-{how}]"))
            .await;
    }

    /// Clicks "Try again" / "Get a new code" after a browser sign-in ended; answers the new
    /// code.
    pub async fn browser_sign_in_again(&self) -> String {
        self.app.click("#browser-again").await;
        self.app.text("#user-code").await
    }

    /// Clicks Cancel under the code, and waits for the password form.
    pub async fn cancel_browser_sign_in(&self) {
        self.app.click("#browser-cancel").await;
        self.wait().await;
    }

    /// The code of the error the last step showed, once shown.
    pub async fn error_code(&self) -> Option<String> {
        attr(self.app, "[data-testid=error]", "data-code").await
    }

    /// What the screen tells on arrival, once shown.
    pub async fn notice(&self) -> Notice {
        let element = self.app.wait_for("[data-testid=notice]").await;
        Notice {
            code: element.attr("data-code").await.unwrap(),
            text: element.text().await.unwrap(),
        }
    }
}

/// The signed-in account's screen.
pub struct HomePage<'a> {
    app: &'a DesktopApp,
}

impl<'a> HomePage<'a> {
    /// "Signed in as NAME", once shown.
    pub async fn signed_in_as(&self) -> String {
        self.app.text("[data-testid=signed-in]").await
    }

    /// The docker hand-off's state (`done`, `skipped`).
    pub async fn hand_off_state(&self) -> Option<String> {
        attr(self.app, "[data-testid=hand-off]", "data-state").await
    }

    /// Signs out and waits for the sign-in screen.
    pub async fn sign_out(&self) -> SignInPage<'a> {
        click_to_sign_in(self.app, "#sign-out").await
    }

    /// Clicks "Sign out everywhere…", answers its confirmation with yes, and waits for the
    /// sign-in screen; answers what the confirmation said.
    pub async fn sign_out_everywhere(&self) -> (String, SignInPage<'a>) {
        self.app.click("#sign-out-everywhere").await;
        let asked = self
            .app
            .text("#sign-out-everywhere-dialog [data-testid=confirm-text]")
            .await;
        (
            asked,
            click_to_sign_in(self.app, "#confirm-sign-out-everywhere").await,
        )
    }

    /// The question about replacing the person's docker credential helper, once shown.
    pub async fn replace_question(&self) -> String {
        self.app.text("[data-testid=replace-question]").await
    }

    /// Answers the question with Replace, and waits for the hand-off to be done.
    pub async fn replace_helper(&self) {
        self.app.click("#replace-helper").await;
        self.app
            .wait_for("[data-testid=hand-off][data-state=done]")
            .await;
    }

    /// Fills and submits "Change password" (`deactivate_tokens` ticks its box, which starts
    /// unticked); answers what the screen then says (`Ok` with the confirmation, `Err` with
    /// the error's code and text).
    pub async fn change_password(
        &self,
        current: &str,
        new: &str,
        repeated: &str,
        deactivate_tokens: bool,
    ) -> Result<String, (Option<String>, String)> {
        self.app.fill("#current-password", current).await;
        self.app.fill("#new-password", new).await;
        self.app.fill("#repeat-password", repeated).await;
        // The box starts unticked (and is unticked again after a change).
        if deactivate_tokens {
            self.app.click("#deactivate-tokens").await;
        }
        self.app.click("#change-password").await;
        let answer = self
            .app
            .wait_for("[data-testid=password-changed], [data-testid=password-error]")
            .await;
        let text = answer.text().await.unwrap();
        match answer.attr("data-code").await.unwrap() {
            Some(code) => Err((Some(code), text)),
            None => Ok(text),
        }
    }
}

/// The Account screen's two-factor sign-in panel.
pub struct TwoFactorPanel<'a> {
    app: &'a DesktopApp,
}

impl<'a> HomePage<'a> {
    /// The two-factor sign-in panel of this screen.
    pub fn two_factor(&self) -> TwoFactorPanel<'a> {
        TwoFactorPanel { app: self.app }
    }
}

impl TwoFactorPanel<'_> {
    /// Whether two-factor sign-in is on, once the panel shows its state.
    pub async fn is_on(&self) -> bool {
        attr(self.app, "[data-testid=two-factor-state]", "data-enabled")
            .await
            .as_deref()
            == Some("true")
    }

    /// Waits until the panel says two-factor sign-in is `on` (or off).
    pub async fn wait_on(&self, on: bool) {
        self.app
            .wait_for(&format!(
                "[data-testid=two-factor-state][data-enabled={on}]"
            ))
            .await;
    }

    /// The recovery codes left, as the panel says when on.
    pub async fn recovery_codes_left(&self) -> u32 {
        self.app
            .text("[data-testid=recovery-codes-left]")
            .await
            .parse()
            .expect("a count")
    }

    /// Clicks "Turn on two-factor sign-in" and gives a wrong `password`: answers the error
    /// said, then cancels.
    pub async fn start_refused(&self, password: &str) -> String {
        self.app.click("#turn-on-two-factor").await;
        self.app.fill("#two-factor-on-password", password).await;
        self.app.click("#start-two-factor").await;
        let said = self.app.text("[data-testid=two-factor-error]").await;
        self.app.click("#cancel-turn-on-two-factor").await;
        said
    }

    /// Clicks "Turn on two-factor sign-in" and gives `password`; answers the secret as shown
    /// (groups of four), once the QR code and the key are on screen.
    pub async fn start(&self, password: &str) -> String {
        self.app.click("#turn-on-two-factor").await;
        self.app.fill("#two-factor-on-password", password).await;
        self.app.click("#start-two-factor").await;
        let qr = self.app.wait_for("[data-testid=totp-qr] path").await;
        // In view, for the screenshot a person would see.
        self.app
            .webdriver
            .execute(
                "arguments[0].closest('section').scrollIntoView({block: 'start'});",
                vec![serde_json::to_value(&qr).unwrap()],
            )
            .await
            .unwrap();
        self.app.text("#totp-secret").await
    }

    /// Types the first code and confirms; answers the recovery codes then shown.
    pub async fn confirm(&self, code: &str) -> Vec<String> {
        self.app.fill("#totp-first-code", code).await;
        self.app.click("#confirm-two-factor").await;
        self.recovery_codes().await
    }

    /// The recovery codes shown once.
    pub async fn recovery_codes(&self) -> Vec<String> {
        self.app.wait_for("[data-testid=recovery-codes] li").await;
        let mut codes = Vec::new();
        for item in self
            .app
            .webdriver
            .find_all(Locator::Css("[data-testid=recovery-codes] li"))
            .await
            .unwrap()
        {
            codes.push(item.text().await.unwrap().trim().to_owned());
        }
        codes
    }

    /// Clicks Save…, answers the native dialog with `path`, and waits for the panel to say
    /// where the codes went.
    pub async fn save_codes(&self, path: &Path) -> String {
        self.app.click("#save-recovery-codes").await;
        self.app
            .answer_save_dialog("Save recovery codes", path)
            .await;
        self.app.text("[data-testid=recovery-codes-saved]").await
    }

    /// Clicks Done under the recovery codes; answers what the panel then says.
    pub async fn close_codes(&self) -> String {
        self.app.click("#close-recovery-codes").await;
        wait_gone(self.app, "[data-testid=recovery-codes]").await;
        self.app.text("[data-testid=two-factor-done]").await
    }

    /// Asks for new recovery codes with `code`; answers them, or the error's code.
    pub async fn new_codes(&self, code: &str) -> Result<Vec<String>, Option<String>> {
        self.app.click("#new-recovery-codes").await;
        self.app.fill("#recovery-code-check", code).await;
        self.app.click("#confirm-new-recovery-codes").await;
        let answer = self
            .app
            .wait_for("[data-testid=recovery-codes] li, [data-testid=two-factor-error]")
            .await;
        match answer.attr("data-code").await.unwrap() {
            Some(code) => Err(Some(code)),
            None => Ok(self.recovery_codes().await),
        }
    }

    /// Turns two-factor sign-in off with `password` and `code`; answers what the panel
    /// says, or the error's code and text.
    pub async fn turn_off(&self, password: &str, code: &str) -> Result<String, (String, String)> {
        self.app.click("#turn-off-two-factor").await;
        self.app.fill("#two-factor-password", password).await;
        self.app.fill("#two-factor-off-code", code).await;
        self.app.click("#confirm-turn-off-two-factor").await;
        let answer = self
            .app
            .wait_for("[data-testid=two-factor-done], [data-testid=two-factor-error]")
            .await;
        let text = answer.text().await.unwrap();
        match answer.attr("data-code").await.unwrap() {
            Some(code) => Err((code, text)),
            None => Ok(text),
        }
    }
}

/// The Settings screen.
pub struct SettingsPage<'a> {
    app: &'a DesktopApp,
}

impl SettingsPage<'_> {
    const START_AT_LOGIN: &'static str = "#start-at-login";

    /// Where the app says secrets are kept.
    pub async fn secret_store(&self) -> String {
        self.app.text("[data-testid=secret-store]").await
    }

    /// Whether the "Start hubkey when I log in" switch shows on.
    pub async fn starts_at_login(&self) -> bool {
        let switch = self.app.wait_for(Self::START_AT_LOGIN).await;
        switch.prop("checked").await.unwrap().as_deref() == Some("true")
    }

    /// Whether the switch of alert `kind` (`new_address`, `other_device`, `leaked`, `reuse`,
    /// `expiring`) shows on.
    pub async fn alert_on(&self, kind: &str) -> bool {
        let switch = self.app.wait_for(&format!("#alert-{kind}")).await;
        switch.prop("checked").await.unwrap().as_deref() == Some("true")
    }

    /// Flips the switch of alert `kind` to `on` and waits (up to 20 s) until the app saved it.
    pub async fn set_alert(&self, kind: &str, on: bool) {
        let css = format!("#alert-{kind}");
        if self.alert_on(kind).await != on {
            self.app.click(&css).await;
        }
        for _ in 0..200 {
            let switch = self.app.wait_for(&css).await;
            if switch.is_enabled().await.unwrap() && self.alert_on(kind).await == on {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the {kind} alert did not turn {on} within 20 s");
    }

    /// Flips the "Start hubkey when I log in" switch to `on`, as a person clicks it, and waits
    /// (up to 20 s) until the app answered: the switch is enabled again and shows `on`.
    pub async fn set_start_at_login(&self, on: bool) {
        if self.starts_at_login().await != on {
            self.app.click(Self::START_AT_LOGIN).await;
        }
        for _ in 0..200 {
            let switch = self.app.wait_for(Self::START_AT_LOGIN).await;
            let enabled = switch.is_enabled().await.unwrap();
            if enabled && self.starts_at_login().await == on {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let error = self.app.webdriver.find(Locator::Css("[role=alert]")).await;
        let said = match error {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        panic!("start at login did not turn {on} within 20 s: {said}");
    }
}

/// An export format, as its button names it.
#[derive(Debug, Clone, Copy)]
pub enum ExportFormat {
    Csv,
    Json,
}

/// The Security screen: the token grid, its filters, its toolbar and dialogs.
pub struct SecurityPage<'a> {
    app: &'a DesktopApp,
}

impl<'a> SecurityPage<'a> {
    const ROWS: &'static str = "tbody tr[data-uuid]";
    const TABLE: &'static str = "[data-testid=token-table]";
    const KEPT: &'static str = "[data-testid=tokens-kept]";

    /// The row of token `uuid`.
    pub fn row(&self, uuid: Uuid) -> TokenRowView<'a> {
        TokenRowView {
            app: self.app,
            css: format!("tr[data-uuid='{uuid}']"),
        }
    }

    /// Waits for the grid to show.
    pub async fn wait_for_table(&self) {
        self.app.wait_for(Self::TABLE).await;
    }

    /// Waits until the grid shows at least one row.
    pub async fn wait_for_rows(&self) {
        self.app.wait_for(Self::ROWS).await;
    }

    /// Waits until the grid shows the list the app kept from its last listing, marked as
    /// being refreshed.
    pub async fn wait_kept(&self) {
        self.app.wait_for(Self::KEPT).await;
    }

    /// Waits until the kept list's mark is gone (the server's list replaced it).
    pub async fn wait_kept_gone(&self) {
        wait_gone(self.app, Self::KEPT).await;
    }

    /// Waits for the screen to say the list could not be refreshed; answers its error code.
    pub async fn wait_refresh_failed(&self) -> Option<String> {
        attr(self.app, "[data-testid=tokens-refresh-failed]", "data-code").await
    }

    /// How many token rows are in the DOM (the grid renders only a window of them).
    pub async fn rendered_rows(&self) -> usize {
        count(self.app, Self::ROWS).await
    }

    /// "N of M tokens".
    pub async fn token_count(&self) -> String {
        self.app.text("[data-testid=token-count]").await
    }

    /// Shows only tokens of `origin` (`all`, `auto`, `manual`).
    pub async fn filter_origin(&self, origin: &str) {
        choose(self.app, "#filter-origin", origin).await;
    }

    /// Shows only tokens in `state` (`all`, `active`, `inactive`, `expired`).
    pub async fn filter_state(&self, state: &str) {
        choose(self.app, "#filter-state", state).await;
    }

    /// Clicks the header of column `key` (as `data-sort` names it: `label`, `created_at`…).
    pub async fn sort_by(&self, key: &str) {
        let header = format!("[data-sort={key}]");
        self.app.click(&header).await;
        self.app.wait_for(&header).await;
    }

    /// The label of the first rendered row.
    pub async fn first_row_text(&self) -> String {
        self.app
            .wait_for(&format!("{} [data-testid=label]", Self::ROWS))
            .await
            .prop("textContent")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Scrolls the grid to its end.
    pub async fn scroll_to_end(&self) {
        self.app
            .webdriver
            .execute(
                "const v = document.querySelector(arguments[0]); \
                 v.scrollTop = v.scrollHeight; v.dispatchEvent(new Event('scroll'));",
                vec![Self::TABLE.into()],
            )
            .await
            .unwrap();
    }

    /// Focuses the row in the tab order, as a Tab from the header would.
    pub async fn focus_tab_stop(&self) {
        self.app
            .webdriver
            .execute(
                "document.querySelector('tbody tr[tabindex=\"0\"]').focus();",
                vec![],
            )
            .await
            .unwrap();
    }

    /// The label of the row the keyboard is on (null when focus is not on a row).
    pub async fn focused_label(&self) -> serde_json::Value {
        self.app
            .webdriver
            .execute(
                "const r = document.activeElement; \
                 return r && r.dataset.index !== undefined ? r.querySelector('[data-testid=label]').textContent : null;",
                vec![],
            )
            .await
            .unwrap()
    }

    /// Presses `key` where the focus is.
    pub async fn press(&self, key: Key) {
        self.app
            .webdriver
            .active_element()
            .await
            .unwrap()
            .send_keys(&String::from(char::from(key)))
            .await
            .unwrap();
    }

    /// The token the screen marks as selected (a notification opened it), once one is.
    pub async fn wait_for_selected(&self) -> Uuid {
        let row = self.app.wait_for("tr[data-selected=true]").await;
        row.attr("data-uuid")
            .await
            .unwrap()
            .and_then(|uuid| uuid.parse().ok())
            .expect("the selected row names its token")
    }

    /// The uuid of the rendered row whose text includes `label`, if any.
    pub async fn uuid_of(&self, label: &str) -> Option<Uuid> {
        let found = self
            .app
            .webdriver
            .execute(
                "const row = [...document.querySelectorAll('tr[data-uuid]')] \
                   .find((row) => row.textContent.includes(arguments[0])); \
                 return row ? row.dataset.uuid : null;",
                vec![label.into()],
            )
            .await
            .unwrap();
        found.as_str().map(|uuid| uuid.parse().unwrap())
    }

    /// Opens the create dialog.
    pub async fn start_creating(&self) -> CreateDialog<'a> {
        self.app.click("#create-token").await;
        CreateDialog { app: self.app }
    }

    /// Clicks the export button of `format`, answers the save dialog with `path`, and
    /// answers what the screen then reports.
    pub async fn export_to(&self, format: ExportFormat, path: &Path) -> String {
        let button = match format {
            ExportFormat::Csv => "#export-csv",
            ExportFormat::Json => "#export-json",
        };
        // The click returns once the command started; the dialog opens beside the webview.
        self.app.click(button).await;
        self.app.answer_save_dialog("Export tokens", path).await;
        self.app.text("[data-testid=export-result]").await
    }

    /// The value shown once in the open create or rotate dialog.
    pub fn shown_once(&self) -> ShowOnce<'a> {
        ShowOnce { app: self.app }
    }

    /// The delete confirmation.
    pub fn delete_dialog(&self) -> DeleteDialog<'a> {
        DeleteDialog { app: self.app }
    }

    /// Waits for the rotate dialog.
    pub async fn wait_for_rotate_dialog(&self) {
        self.app.wait_for("#rotate-dialog").await;
    }

    /// In the open rotate dialog: chooses the overlap (`none`, `hour`, `day`, `week`) and
    /// rotates.
    pub async fn rotate_with_overlap(&self, overlap: &str) {
        self.app
            .click(&format!("#rotate-dialog [data-overlap={overlap}]"))
            .await;
        self.app.click("#rotate-submit").await;
    }

    /// Waits until the rotate dialog is closed.
    pub async fn wait_rotate_dialog_gone(&self) {
        wait_gone(self.app, "#rotate-dialog").await;
    }

    /// Waits for the dialog that says the docker CLI lost this device's token.
    pub async fn wait_for_lost_token_dialog(&self) {
        self.app.wait_for("#lost-token-dialog").await;
    }

    /// Takes the lost-token dialog's offer to sign in again.
    pub async fn sign_in_again(&self) -> SignInPage<'a> {
        click_to_sign_in(self.app, "#sign-in-again").await
    }
}

/// One token's row in the grid.
pub struct TokenRowView<'a> {
    app: &'a DesktopApp,
    css: String,
}

impl<'a> TokenRowView<'a> {
    /// Waits until the row is rendered.
    pub async fn wait(&self) {
        self.app.wait_for(&self.css).await;
    }

    /// Waits until the row is gone.
    pub async fn wait_gone(&self) {
        wait_gone(self.app, &self.css).await;
    }

    /// Whether the row is rendered now.
    pub async fn is_rendered(&self) -> bool {
        count(self.app, &self.css).await > 0
    }

    /// `auto` or `manual`, once rendered.
    pub async fn origin(&self) -> Option<String> {
        attr(self.app, &self.css, "data-origin").await
    }

    /// Waits until the row shows `origin`.
    pub async fn wait_origin(&self, origin: &str) {
        self.app
            .wait_for(&format!("{}[data-origin={origin}]", self.css))
            .await;
    }

    /// Waits until the row shows `state` (`active`, `inactive`, `expired`).
    pub async fn wait_state(&self, state: &str) {
        self.app
            .wait_for(&format!("{}[data-state={state}]", self.css))
            .await;
    }

    fn this_device_mark(&self) -> String {
        format!("{} [data-testid=this-device]", self.css)
    }

    /// Waits for the "this device" mark.
    pub async fn wait_this_device_mark(&self) {
        self.app.wait_for(&self.this_device_mark()).await;
    }

    /// Whether the row carries the "this device" mark now.
    pub async fn is_marked_this_device(&self) -> bool {
        count(self.app, &self.this_device_mark()).await > 0
    }

    /// The access column's words.
    pub async fn scope(&self) -> Option<String> {
        self.app
            .wait_for(&format!("{} [data-testid=scope]", self.css))
            .await
            .prop("textContent")
            .await
            .unwrap()
    }

    async fn act(&self, action: &str) {
        self.app
            .click(&format!("{} [data-action={action}]", self.css))
            .await;
    }

    /// Clicks Deactivate or Reactivate.
    pub async fn toggle(&self) {
        self.act("toggle").await;
    }

    /// Clicks Rotate.
    pub async fn rotate(&self) {
        self.act("rotate").await;
    }

    /// Clicks Delete (the confirmation opens).
    pub async fn delete(&self) {
        self.act("delete").await;
    }

    /// Clicks the label: the token's detail opens.
    pub async fn open_detail(&self) -> TokenDetailPage<'a> {
        self.app
            .click(&format!("{} [data-testid=label]", self.css))
            .await;
        let detail = TokenDetailPage { app: self.app };
        detail.wait().await;
        detail
    }
}

/// One token's detail.
pub struct TokenDetailPage<'a> {
    app: &'a DesktopApp,
}

impl<'a> TokenDetailPage<'a> {
    const NEW_ADDRESS_ALERTS: &'static str = "#detail-new-address-alerts";

    /// The detail of whatever token is open.
    pub fn of(app: &'a DesktopApp) -> Self {
        TokenDetailPage { app }
    }

    /// Waits until the detail shows its fields.
    pub async fn wait(&self) {
        self.app.wait_for("[data-testid=detail-fields]").await;
    }

    /// The token whose detail shows.
    pub async fn uuid(&self) -> Option<String> {
        attr(self.app, "[data-testid=token-detail]", "data-uuid").await
    }

    /// The text of field `name` (`label`, `origin`, `scope`, `creator`, `last-used`,
    /// `addresses`, `state`…).
    pub async fn field(&self, name: &str) -> String {
        self.app
            .text(&format!("[data-testid=detail-fields] [data-field={name}]"))
            .await
    }

    /// Waits until field `name` contains `text`.
    pub async fn wait_field_contains(&self, name: &str, text: &str) {
        for _ in 0..200 {
            if self.field(name).await.contains(text) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "field {name} never contained {text}: {}",
            self.field(name).await
        );
    }

    /// The access log's lines as text, once there is at least one.
    pub async fn access_lines(&self) -> Vec<String> {
        self.app.wait_for("[data-testid=access-line]").await;
        let lines = self
            .app
            .webdriver
            .find_all(Locator::Css("[data-testid=access-line]"))
            .await
            .unwrap();
        let mut texts = Vec::new();
        for line in lines {
            texts.push(line.text().await.unwrap());
        }
        texts
    }

    /// The kinds of the events shown, newest first, once there is at least one.
    pub async fn event_kinds(&self) -> Vec<String> {
        self.app.wait_for("[data-testid=detail-events] li").await;
        kinds_of(self.app, "[data-testid=detail-events] li").await
    }

    /// The total uses the chart shows.
    pub async fn chart_total(&self) -> Option<String> {
        attr(self.app, "[data-testid=usage-chart]", "data-total").await
    }

    /// Follows the link to the token this one was rotated from (`rotated-from`) or to
    /// (`rotated-to`).
    pub async fn follow(&self, link: &str) {
        self.app.click(&format!("[data-link={link}]")).await;
    }

    /// Whether the token's new-address alerts switch shows on.
    pub async fn new_address_alerts(&self) -> bool {
        let switch = self.app.wait_for(Self::NEW_ADDRESS_ALERTS).await;
        switch.prop("checked").await.unwrap().as_deref() == Some("true")
    }

    /// Flips the token's new-address alerts switch to `on`, as a person clicks it, and waits
    /// (up to 20 s) until the server's answer shows: the switch enabled again and `on`.
    pub async fn set_new_address_alerts(&self, on: bool) {
        if self.new_address_alerts().await != on {
            self.app.click(Self::NEW_ADDRESS_ALERTS).await;
        }
        for _ in 0..200 {
            let switch = self.app.wait_for(Self::NEW_ADDRESS_ALERTS).await;
            if switch.is_enabled().await.unwrap() && self.new_address_alerts().await == on {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the token's new-address alerts did not turn {on} within 20 s");
    }

    /// Back to where the detail was opened from.
    pub async fn back(&self) {
        self.app.click("#detail-back").await;
        wait_gone(self.app, "[data-testid=token-detail]").await;
    }
}

/// The `data-kind` of every element matching `css`.
async fn kinds_of(app: &DesktopApp, css: &str) -> Vec<String> {
    app.webdriver
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.dataset.kind);",
            vec![css.into()],
        )
        .await
        .unwrap()
        .as_array()
        .map(|kinds| {
            kinds
                .iter()
                .filter_map(|kind| kind.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The Activity view: the account's events as a timeline.
pub struct ActivityPage<'a> {
    app: &'a DesktopApp,
}

impl<'a> ActivityPage<'a> {
    /// The view (open it with [`Navigation::activity`]).
    pub fn of(app: &'a DesktopApp) -> Self {
        ActivityPage { app }
    }

    /// The kinds of the events shown, newest first, once there is at least one.
    pub async fn kinds(&self) -> Vec<String> {
        self.app.wait_for("[data-testid=activity-list] li").await;
        kinds_of(self.app, "[data-testid=activity-list] li").await
    }

    /// The tokens (uuids) of the events shown, newest first.
    pub async fn tokens(&self) -> Vec<String> {
        self.app.wait_for("[data-testid=activity-list] li").await;
        self.app
            .webdriver
            .execute(
                "return [...document.querySelectorAll('[data-testid=activity-list] li')].map((e) => e.dataset.token);",
                vec![],
            )
            .await
            .unwrap()
            .as_array()
            .map(|all| all.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// Shows only `kind` (`all` for every kind), and waits until the list shows only it.
    pub async fn filter_kind(&self, kind: &str) {
        choose(self.app, "#activity-kind", kind).await;
        if kind == "all" {
            return;
        }
        for _ in 0..200 {
            let kinds = self.kinds().await;
            if kinds.iter().all(|shown| shown == kind) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the timeline never showed only {kind}");
    }

    /// Shows only token `uuid`'s events (`""` for every token).
    pub async fn filter_token(&self, uuid: &str) {
        choose(self.app, "#activity-token", uuid).await;
    }

    /// Clicks the first event of token `uuid`: its detail opens.
    pub async fn open_token(&self, uuid: &str) -> TokenDetailPage<'a> {
        self.app
            .click(&format!(
                "[data-testid=activity-list] li[data-token='{uuid}'] [data-testid=event-token]"
            ))
            .await;
        let detail = TokenDetailPage { app: self.app };
        detail.wait().await;
        detail
    }
}

/// The create dialog's form.
pub struct CreateDialog<'a> {
    app: &'a DesktopApp,
}

impl<'a> CreateDialog<'a> {
    /// Types the label.
    pub async fn label(&self, label: &str) -> &Self {
        self.app.fill("#new-label", label).await;
        self
    }

    /// Chooses the access (`public_read`, `read`, `write`, `admin`).
    pub async fn scope(&self, scope: &str) -> &Self {
        choose(self.app, "#new-scope", scope).await;
        self
    }

    /// Chooses the expiry (`none`, `30`, `90`, `custom`).
    pub async fn expiry(&self, expiry: &str) -> &Self {
        choose(self.app, "#new-expiry", expiry).await;
        self
    }

    /// Submits the form; the value is then shown once.
    pub async fn submit(&self) -> ShowOnce<'a> {
        self.app.click("#create-submit").await;
        ShowOnce { app: self.app }
    }
}

/// A token's value shown once, in the create or the rotate dialog.
pub struct ShowOnce<'a> {
    app: &'a DesktopApp,
}

impl ShowOnce<'_> {
    const VALUE: &'static str = "#new-secret";

    /// Whether it is the dialog that shows again a value whose window was closed before its
    /// Done (rather than the create or rotate dialog).
    pub async fn is_shown_again(&self) -> bool {
        count(self.app, "#unconfirmed-dialog #new-secret").await > 0
    }

    /// The value, once shown.
    pub async fn value(&self) -> String {
        self.app
            .wait_for(Self::VALUE)
            .await
            .prop("value")
            .await
            .unwrap()
            .expect("a value")
    }

    /// Clicks Done.
    pub async fn close(&self) {
        self.app.click("#close-secret").await;
    }

    /// Waits until the value is gone from the page.
    pub async fn wait_gone(&self) {
        wait_gone(self.app, Self::VALUE).await;
    }
}

/// The delete confirmation.
pub struct DeleteDialog<'a> {
    app: &'a DesktopApp,
}

impl DeleteDialog<'_> {
    const WARNING: &'static str = "#delete-dialog [data-testid=this-device-warning]";

    /// What the dialog asks, once open.
    pub async fn text(&self) -> String {
        self.app
            .text("#delete-dialog [data-testid=confirm-text]")
            .await
    }

    /// Waits for the warning that this is the device's own token.
    pub async fn wait_this_device_warning(&self) {
        self.app.wait_for(Self::WARNING).await;
    }

    /// Whether the dialog warns that this is the device's own token.
    pub async fn warns_this_device(&self) -> bool {
        count(self.app, Self::WARNING).await > 0
    }

    /// Confirms the deletion.
    pub async fn confirm(&self) {
        self.app.click("#confirm-delete").await;
    }

    /// Cancels, and waits until the dialog is closed.
    pub async fn cancel(&self) {
        self.app.click("#delete-dialog button.secondary").await;
        wait_gone(self.app, "#delete-dialog").await;
    }
}
