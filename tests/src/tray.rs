//! What the desktop app shows outside its window, read from the test's private session bus:
//! the native notifications it sends (`Notify` calls on `org.freedesktop.Notifications`,
//! recorded by `dbus-monitor`) and its tray icon (the `org.kde.StatusNotifierItem` that
//! libayatana-appindicator exports, with its `com.canonical.dbusmenu` menu, read with
//! python3-dbus under the system /usr/bin/python3).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::keyring::KeyringSession;

/// `dbus-monitor` recording every call to `org.freedesktop.Notifications` on a session's
/// bus. Nobody owns that name on the private bus, so each call fails for the app, but the
/// monitor still sees it. Stopped by PID on drop.
pub struct NotifyMonitor {
    monitor: Child,
    log: PathBuf,
    _dir: TempDir,
}

/// One `Notify` call: its summary and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub summary: String,
    pub body: String,
}

impl NotifyMonitor {
    /// Starts monitoring; returns once the monitor is on the bus.
    pub fn start(keyring: &KeyringSession) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("notifications.log");
        let monitor = Command::new("dbus-monitor")
            .arg("--session")
            .arg("interface='org.freedesktop.Notifications'")
            .envs(keyring.env())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-monitor (dbus-bin)");
        let this = Self {
            monitor,
            log,
            _dir: dir,
        };
        // dbus-monitor prints its own NameAcquired signal once it is a monitor.
        wait_for_line(&this.log, "NameAcquired", "dbus-monitor did not start");
        this
    }

    /// Every `Notify` call seen so far, in order.
    pub fn notifications(&self) -> Vec<Notification> {
        parse_notify_calls(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits up to `limit` for a `Notify` call matching `wanted`.
    pub async fn wait_for(
        &self,
        limit: Duration,
        wanted: impl Fn(&Notification) -> bool,
    ) -> Option<Notification> {
        first_match(limit, || self.notifications(), wanted).await
    }
}

impl Drop for NotifyMonitor {
    fn drop(&mut self) {
        let _ = self.monitor.kill();
        let _ = self.monitor.wait();
    }
}

/// A notification server on a session's bus (python3-dbus under /usr/bin/python3): owns
/// `org.freedesktop.Notifications`, records every `Notify`, and clicks one on request by
/// emitting `ActionInvoked` then `NotificationClosed`, as a desktop does. Stopped by PID.
pub struct NotificationServer {
    server: Child,
    log: PathBuf,
    _dir: TempDir,
}

/// One notification the server received.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Received {
    pub id: u32,
    pub summary: String,
    pub body: String,
    /// Action keys and labels, alternating.
    pub actions: Vec<String>,
}

const NOTIFICATION_SERVER: &str = r#"
import json, sys
import dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SessionBus()
name = dbus.service.BusName('org.freedesktop.Notifications', bus, do_not_queue=True)
IFACE = 'org.freedesktop.Notifications'
class Server(dbus.service.Object):
    def __init__(self):
        super().__init__(bus, '/org/freedesktop/Notifications')
        self.last = 0
    @dbus.service.method(IFACE, in_signature='susssasa{sv}i', out_signature='u')
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):
        self.last += 1
        print(json.dumps({'id': self.last, 'summary': str(summary), 'body': str(body),
                          'actions': [str(a) for a in actions]}), flush=True)
        return dbus.UInt32(self.last)
    @dbus.service.method(IFACE, out_signature='as')
    def GetCapabilities(self):
        return ['actions', 'body']
    @dbus.service.method(IFACE, out_signature='ssss')
    def GetServerInformation(self):
        return ('hubkey-tests', 'hubkey', '1', '1.2')
    @dbus.service.method(IFACE, in_signature='u')
    def CloseNotification(self, id):
        self.NotificationClosed(id, dbus.UInt32(3))
    @dbus.service.signal(IFACE, signature='us')
    def ActionInvoked(self, id, key):
        pass
    @dbus.service.signal(IFACE, signature='uu')
    def NotificationClosed(self, id, reason):
        pass
server = Server()
loop = GLib.MainLoop()
def on_input(source, condition):
    line = sys.stdin.readline()
    if not line:
        loop.quit()
        return False
    id, key = line.split()
    server.ActionInvoked(dbus.UInt32(int(id)), key)
    server.NotificationClosed(dbus.UInt32(int(id)), dbus.UInt32(2))
    return True
GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_input)
print(json.dumps({'ready': True}), flush=True)
loop.run()
"#;

impl NotificationServer {
    /// Starts the server on `keyring`'s bus; returns once it owns the name.
    pub fn start(keyring: &KeyringSession) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("received.jsonl");
        let server = Command::new("/usr/bin/python3")
            .args(["-c", NOTIFICATION_SERVER])
            .envs(keyring.env())
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 with python3-dbus and python3-gi");
        let this = Self {
            server,
            log,
            _dir: dir,
        };
        wait_for_line(&this.log, "ready", "the notification server did not start");
        this
    }

    /// Every notification received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits up to `limit` for a notification matching `wanted`.
    pub async fn wait_for(
        &self,
        limit: Duration,
        wanted: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        first_match(limit, || self.received(), wanted).await
    }

    /// Clicks notification `id` (its `action`, `default` for the body), as a person would.
    pub fn click(&mut self, id: u32, action: &str) {
        use std::io::Write;
        let stdin = self.server.stdin.as_mut().expect("the server's stdin");
        writeln!(stdin, "{id} {action}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for NotificationServer {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Reads `seen` every 100 ms for up to `limit` until one item matches `wanted`.
async fn first_match<T>(
    limit: Duration,
    seen: impl Fn() -> Vec<T>,
    wanted: impl Fn(&T) -> bool,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = seen().into_iter().find(|item| wanted(item)) {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 10 s for `log` (a helper's output) to hold `wanted`; panics with `failure`.
fn wait_for_line(log: &Path, wanted: &str, failure: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(wanted)
    {
        assert!(Instant::now() < deadline, "{failure}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `Notify` calls in `dbus-monitor` output. Their arguments are app name, replaces id,
/// icon, summary, body…; strings are printed as `string "…"` and may span lines.
fn parse_notify_calls(log: &str) -> Vec<Notification> {
    log.split("method call ")
        .filter(|call| {
            call.lines()
                .next()
                .is_some_and(|l| l.contains("member=Notify"))
        })
        .filter_map(|call| {
            let strings = quoted_strings(call);
            Some(Notification {
                summary: strings.get(2)?.clone(),
                body: strings.get(3)?.clone(),
            })
        })
        .collect()
}

/// The `string "…"` arguments of one call, in order (app name, icon, summary, body, …).
fn quoted_strings(call: &str) -> Vec<String> {
    let mut strings = Vec::new();
    let mut rest = call;
    while let Some(start) = rest.find("string \"") {
        let after = &rest[start + "string \"".len()..];
        // A string ends at a quote that ends its line (dbus-monitor does not escape quotes).
        let end = after
            .match_indices("\"\n")
            .next()
            .map_or(after.len(), |(index, _)| index);
        strings.push(after[..end].to_owned());
        rest = &after[end.min(after.len())..];
    }
    strings
}

/// The PIDs of the app's processes running with `home` as HOME.
pub fn app_pids(binary: &Path, home: &Path) -> Vec<u32> {
    let wanted_home = format!("HOME={}", home.display());
    let binary = binary
        .canonicalize()
        .unwrap_or_else(|_| binary.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == binary)
                && std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                    environ
                        .split(|byte| *byte == 0)
                        .any(|var| var == wanted_home.as_bytes())
                })
        })
        .collect()
}

/// Waits up to `limit` until no app process with `home` is left; true when none is.
pub fn wait_for_exit(binary: &Path, home: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !app_pids(binary, home).is_empty() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// The app's tray icon as the StatusNotifierItem on the bus says it: the icon file it
/// points at and the labels of its menu.
#[derive(Debug, Clone)]
pub struct TrayItem {
    /// `IconName`: libayatana is handed a PNG file written by the app.
    pub icon_path: PathBuf,
    /// The menu's item labels, in order (separators left out).
    pub menu: Vec<String>,
    /// The labels of the items that cannot be clicked.
    pub disabled: Vec<String>,
}

const READ_TRAY: &str = r#"
import dbus, json, sys
pid = int(sys.argv[1])
bus = dbus.SessionBus()
daemon = bus.get_object('org.freedesktop.DBus', '/org/freedesktop/DBus')
found = None
for name in daemon.ListNames(dbus_interface='org.freedesktop.DBus'):
    if not name.startswith(':'):
        continue
    try:
        if daemon.GetConnectionUnixProcessID(name, dbus_interface='org.freedesktop.DBus') != pid:
            continue
        root = bus.get_object(name, '/org/ayatana/NotificationItem', introspect=False)
        xml = root.Introspect(dbus_interface='org.freedesktop.DBus.Introspectable', timeout=2)
    except dbus.DBusException:
        continue
    import re
    for node in re.findall(r'<node name="([^"]+)"', xml):
        path = '/org/ayatana/NotificationItem/' + node
        item = bus.get_object(name, path, introspect=False)
        props = item.GetAll('org.kde.StatusNotifierItem', dbus_interface='org.freedesktop.DBus.Properties', timeout=2)
        icon = str(props.get('IconName', ''))
        theme = str(props.get('IconThemePath', ''))
        menu_path = str(props.get('Menu', ''))
        menu = bus.get_object(name, menu_path, introspect=False)
        _, layout = menu.GetLayout(dbus.Int32(0), dbus.Int32(-1), dbus.Array([], signature='s'), dbus_interface='com.canonical.dbusmenu', timeout=2)
        labels, disabled = [], []
        def walk(node):
            props = node[1]
            if props.get('type', '') != 'separator' and 'label' in props:
                labels.append(str(props['label']))
                if not bool(props.get('enabled', True)):
                    disabled.append(str(props['label']))
            for child in node[2]:
                walk(child)
        walk(layout)
        found = {'icon': icon, 'theme': theme, 'menu': labels, 'disabled': disabled}
        break
    if found:
        break
print(json.dumps(found))
"#;

/// The tray item of the app process `pid` on the session's bus, if it exports one.
pub fn tray_item(keyring: &KeyringSession, pid: u32) -> Option<TrayItem> {
    let output = Command::new("timeout")
        .args(["10", "/usr/bin/python3", "-c", READ_TRAY, &pid.to_string()])
        .envs(keyring.env())
        .stderr(Stdio::inherit())
        .output()
        .expect("/usr/bin/python3 with python3-dbus");
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let strings = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let icon = value["icon"].as_str()?;
    let icon_path = if icon.starts_with('/') {
        PathBuf::from(icon)
    } else {
        Path::new(value["theme"].as_str()?).join(format!("{icon}.png"))
    };
    Some(TrayItem {
        icon_path,
        menu: strings("menu"),
        disabled: strings("disabled"),
    })
}

const CLICK_TRAY: &str = r#"
import dbus, re, sys, time
pid, label = int(sys.argv[1]), sys.argv[2]
bus = dbus.SessionBus()
daemon = bus.get_object('org.freedesktop.DBus', '/org/freedesktop/DBus')
for name in daemon.ListNames(dbus_interface='org.freedesktop.DBus'):
    if not name.startswith(':'):
        continue
    try:
        if daemon.GetConnectionUnixProcessID(name, dbus_interface='org.freedesktop.DBus') != pid:
            continue
        root = bus.get_object(name, '/org/ayatana/NotificationItem', introspect=False)
        xml = root.Introspect(dbus_interface='org.freedesktop.DBus.Introspectable', timeout=2)
    except dbus.DBusException:
        continue
    for node in re.findall(r'<node name="([^"]+)"', xml):
        item = bus.get_object(name, '/org/ayatana/NotificationItem/' + node, introspect=False)
        menu_path = item.Get('org.kde.StatusNotifierItem', 'Menu', dbus_interface='org.freedesktop.DBus.Properties', timeout=2)
        menu = bus.get_object(name, menu_path, introspect=False)
        _, layout = menu.GetLayout(dbus.Int32(0), dbus.Int32(-1), dbus.Array([], signature='s'), dbus_interface='com.canonical.dbusmenu', timeout=2)
        def find(node):
            if str(node[1].get('label', '')) == label:
                return int(node[0])
            for child in node[2]:
                found = find(child)
                if found is not None:
                    return found
            return None
        target = find(layout)
        if target is not None:
            sent = time.time()
            menu.Event(dbus.Int32(target), 'clicked', dbus.Int32(0, variant_level=1), dbus.UInt32(int(sent)), dbus_interface='com.canonical.dbusmenu', timeout=2)
            print(repr(sent * 1000.0))
            sys.exit(0)
sys.exit(1)
"#;

/// Clicks the tray menu item labelled `label` of the app process `pid`, as a tray host does
/// (`com.canonical.dbusmenu` `Event(id, "clicked", …)`); true when the item was found.
pub fn click_tray_item(keyring: &KeyringSession, pid: u32, label: &str) -> bool {
    click_tray_item_at(keyring, pid, label).is_some()
}

/// Clicks like [`click_tray_item`], and tells when the click was sent (wall-clock
/// milliseconds since the epoch, taken right before the `Event` call), or `None` when the
/// item was not found.
pub fn click_tray_item_at(keyring: &KeyringSession, pid: u32, label: &str) -> Option<f64> {
    let output = Command::new("timeout")
        .args([
            "10",
            "/usr/bin/python3",
            "-c",
            CLICK_TRAY,
            &pid.to_string(),
            label,
        ])
        .envs(keyring.env())
        .stderr(Stdio::inherit())
        .output()
        .expect("/usr/bin/python3 with python3-dbus");
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// The RGBA pixels of a PNG file, to compare the icon the tray shows with a source icon.
pub fn png_pixels(path: &Path) -> Option<(u32, u32, Vec<u8>)> {
    let file = std::fs::File::open(path).ok()?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().ok()?;
    let mut pixels = vec![0; reader.output_buffer_size()?];
    let frame = reader.next_frame(&mut pixels).ok()?;
    pixels.truncate(frame.buffer_size());
    Some((frame.width, frame.height, pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_calls_are_read_from_dbus_monitor_output() {
        let log = "signal time=1 sender=org.freedesktop.DBus -> destination=:1.9 path=/; member=NameAcquired\n   string \":1.9\"\nmethod call time=2 sender=:1.4 -> destination=org.freedesktop.Notifications serial=9 path=/org/freedesktop/Notifications; interface=org.freedesktop.Notifications; member=Notify\n   string \"dev.hubkey.desktop\"\n   uint32 0\n   string \"\"\n   string \"An old auto token was removed\"\n   string \"hubkey on ann's laptop (hubkey, never used)\nA sign-in keeps five.\"\n   array [\n   ]\n   int32 -1\n";
        let calls = parse_notify_calls(log);
        assert_eq!(
            calls,
            [Notification {
                summary: "An old auto token was removed".into(),
                body: "hubkey on ann's laptop (hubkey, never used)\nA sign-in keeps five.".into(),
            }]
        );
    }
}
