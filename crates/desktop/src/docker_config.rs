//! The docker CLI's `config.json`: pointing one registry host at our credential helper.
//!
//! The file belongs to the user. Invariants: another helper's entry is never replaced unless
//! the person agreed to replace that very entry, and letting go puts it back; every key we do
//! not own keeps its value and its place; a file that does not parse as a JSON object is never written; a write is atomic (a
//! temporary file in the same directory, fsynced, renamed over the original) and keeps the
//! file's permission bits; a new file is created with mode 0600.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::platform::Os;

/// The key of `config.json` that maps registry hosts to credential helpers.
pub const CRED_HELPERS: &str = "credHelpers";

/// The helper name docker turns into `docker-credential-hubkey`.
pub const HELPER: &str = "hubkey";

/// Why `config.json` could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    /// The file is not a JSON object (or its `credHelpers` is not one); it was left untouched.
    #[error("{} is not a docker configuration this app understands (not a JSON object); it was left as it is", path.display())]
    Unparsable {
        /// The file.
        path: PathBuf,
    },
    /// Reading, creating or replacing the file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

/// What [`DockerConfig::claim`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The entry now names [`HELPER`]; `previous` is the helper it replaced (`None`: there
    /// was no entry), to put back when hubkey lets go.
    Written {
        /// The helper the person had, which they agreed to replace.
        previous: Option<String>,
    },
    /// The entry already named [`HELPER`]; nothing was written.
    AlreadyOurs,
    /// Another helper is set and the person has not agreed to replace it; nothing was
    /// written.
    TakenBy(String),
}

/// What a change did to `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The file was written.
    Written,
    /// The file already said so (or had nothing of ours); nothing was written.
    Unchanged,
}

/// Where the docker CLI on `os` reads its configuration, given the values of `DOCKER_CONFIG`,
/// `HOME` and `USERPROFILE`, as the docker CLI decides it: `$DOCKER_CONFIG/config.json` when
/// that is set and not empty (every OS), else `<home>/.docker/config.json` with the home
/// folder Go's `os.UserHomeDir` gives the CLI: `USERPROFILE` on Windows (`HOME` is ignored
/// there, as Git Bash and MSYS set it to another folder), `HOME` elsewhere; `None` when that
/// is unset or empty.
pub fn config_path(
    os: Os,
    docker_config: Option<&OsStr>,
    home: Option<&OsStr>,
    userprofile: Option<&OsStr>,
) -> Option<PathBuf> {
    if let Some(dir) = docker_config.filter(|dir| !dir.is_empty()) {
        return Some(Path::new(dir).join("config.json"));
    }
    let home = match os {
        Os::Windows => userprofile,
        Os::Linux | Os::MacOs => home,
    };
    home.filter(|home| !home.is_empty())
        .map(|home| Path::new(home).join(".docker").join("config.json"))
}

/// [`config_path`] for this process's environment; without the home variable, the home folder
/// the OS knows for the user (the password database, Windows' profile folder), as docker's
/// own fallback on Unix does.
pub fn config_path_from_env() -> Option<PathBuf> {
    let var = std::env::var_os;
    config_path(
        Os::current(),
        var("DOCKER_CONFIG").as_deref(),
        var("HOME").as_deref(),
        var("USERPROFILE").as_deref(),
    )
    .or_else(|| dirs::home_dir().map(|home| home.join(".docker").join("config.json")))
}

/// One `config.json` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    path: PathBuf,
}

impl DockerConfig {
    /// The configuration at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file this reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Points `registry_host` at [`HELPER`], creating the file (and its directory) when
    /// absent; everything else in the file is kept. An entry naming another helper is the
    /// person's: it is replaced only when it is `replacing` (what the person was shown and
    /// agreed to replace), else it stays and the answer is [`Claim::TakenBy`].
    pub fn claim(
        &self,
        registry_host: &str,
        replacing: Option<&str>,
    ) -> Result<Claim, DockerConfigError> {
        let mut config = self.read()?.unwrap_or_default();
        let previous = match self.entry(&config, registry_host)? {
            None => None,
            Some(helper) if helper == HELPER => return Ok(Claim::AlreadyOurs),
            Some(helper) if Some(helper.as_str()) == replacing => Some(helper),
            Some(helper) => return Ok(Claim::TakenBy(helper)),
        };
        set_helper(&mut config, registry_host, HELPER);
        self.write(&config)?;
        Ok(Claim::Written { previous })
    }

    /// Undoes [`DockerConfig::claim`]: when `registry_host` still names [`HELPER`], puts
    /// `previous` back, or removes the entry (and `credHelpers` itself when that leaves it
    /// empty) when there was none. An entry naming another helper is the person's and stays;
    /// a missing file is left missing.
    pub fn release(
        &self,
        registry_host: &str,
        previous: Option<&str>,
    ) -> Result<Change, DockerConfigError> {
        let Some(mut config) = self.read()? else {
            return Ok(Change::Unchanged);
        };
        if self.entry(&config, registry_host)?.as_deref() != Some(HELPER) {
            return Ok(Change::Unchanged);
        }
        match previous {
            Some(previous) => set_helper(&mut config, registry_host, previous),
            None => {
                if let Some(Value::Object(helpers)) = config.get_mut(CRED_HELPERS) {
                    helpers.shift_remove(registry_host);
                    if helpers.is_empty() {
                        config.shift_remove(CRED_HELPERS);
                    }
                }
            }
        }
        self.write(&config)?;
        Ok(Change::Written)
    }

    /// The helper `config` names for `registry_host`; a `credHelpers` that is not an object
    /// of strings is not a configuration the docker CLI reads, so neither do we.
    fn entry(
        &self,
        config: &Map<String, Value>,
        registry_host: &str,
    ) -> Result<Option<String>, DockerConfigError> {
        match config.get(CRED_HELPERS) {
            None => Ok(None),
            Some(Value::Object(helpers)) => match helpers.get(registry_host) {
                None => Ok(None),
                Some(Value::String(helper)) => Ok(Some(helper.clone())),
                Some(_) => Err(self.unparsable()),
            },
            Some(_) => Err(self.unparsable()),
        }
    }

    /// The helper `config.json` names for `registry_host`, if any.
    pub fn helper_for(&self, registry_host: &str) -> Result<Option<String>, DockerConfigError> {
        match self.read()? {
            None => Ok(None),
            Some(config) => self.entry(&config, registry_host),
        }
    }

    /// The file's object; `None` when the file does not exist. A file of only whitespace
    /// holds nothing to keep and reads as an empty object, as the docker CLI reads it.
    fn read(&self) -> Result<Option<Map<String, Value>>, DockerConfigError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io("read", &self.path, source)),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(config)) => Ok(Some(config)),
            Ok(_) | Err(_) => Err(self.unparsable()),
        }
    }

    /// Replaces the file atomically with `config`, tab-indented as the docker CLI writes it.
    /// A symlinked file is replaced at its target, so the link survives.
    fn write(&self, config: &Map<String, Value>) -> Result<(), DockerConfigError> {
        let target = match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(&self.path)
                .map_err(|source| self.io("follow the link", &self.path, source))?,
            _ => self.path.clone(),
        };
        let mut bytes = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
        serde::Serialize::serialize(config, &mut serializer).map_err(|err| {
            self.io(
                "encode",
                &target,
                io::Error::new(io::ErrorKind::InvalidData, err),
            )
        })?;
        bytes.push(b'\n');
        crate::atomic::replace_file(&target, &bytes)
            .map_err(|err| self.io(err.action, &err.path, err.source))
    }

    fn unparsable(&self) -> DockerConfigError {
        DockerConfigError::Unparsable {
            path: self.path.clone(),
        }
    }

    fn io(&self, action: &'static str, path: &Path, source: io::Error) -> DockerConfigError {
        DockerConfigError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Sets the helper of `registry_host`; the caller checked that `credHelpers`, when present,
/// is an object. A new `credHelpers` goes at the end of the file.
fn set_helper(config: &mut Map<String, Value>, registry_host: &str, helper: &str) {
    let helpers = config
        .entry(CRED_HELPERS)
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(helpers) = helpers {
        helpers.insert(registry_host.to_owned(), Value::String(helper.to_owned()));
    }
}

#[cfg(test)]
#[cfg(unix)] // file modes and symlinks are Unix's
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    const HOST: &str = "127.0.0.1:5000";

    fn config_in(dir: &tempfile::TempDir) -> DockerConfig {
        DockerConfig::new(dir.path().join("docker").join("config.json"))
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn read_value(path: &Path) -> Value {
        serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn docker_config_wins_on_every_os() {
        for os in [Os::Linux, Os::MacOs, Os::Windows] {
            assert_eq!(
                config_path(
                    os,
                    Some(OsStr::new("/etc/dc")),
                    Some(OsStr::new("/home/ann")),
                    Some(OsStr::new(r"C:\Users\ann")),
                ),
                Some(PathBuf::from("/etc/dc/config.json")),
                "{os:?}"
            );
        }
    }

    #[test]
    fn linux_and_macos_use_home_and_an_empty_docker_config_is_unset() {
        for os in [Os::Linux, Os::MacOs] {
            let expected = Some(PathBuf::from("/home/ann/.docker/config.json"));
            let home = Some(OsStr::new("/home/ann"));
            let profile = Some(OsStr::new(r"C:\Users\ann"));
            assert_eq!(config_path(os, None, home, profile), expected);
            assert_eq!(config_path(os, Some(OsStr::new("")), home, None), expected);
            assert_eq!(config_path(os, None, None, profile), None, "{os:?}");
            assert_eq!(config_path(os, None, Some(OsStr::new("")), None), None);
        }
    }

    #[test]
    fn windows_uses_userprofile_not_home() {
        let profile = r"C:\Users\Ann Lee";
        let expected = Some(Path::new(profile).join(".docker").join("config.json"));
        // Git Bash sets HOME too, to another folder: the docker CLI does not read it.
        assert_eq!(
            config_path(
                Os::Windows,
                None,
                Some(OsStr::new("/c/Users/ann")),
                Some(OsStr::new(profile))
            ),
            expected
        );
        assert_eq!(
            config_path(
                Os::Windows,
                Some(OsStr::new("")),
                None,
                Some(OsStr::new(profile))
            ),
            expected
        );
        assert_eq!(
            config_path(Os::Windows, None, Some(OsStr::new("/home/ann")), None),
            None
        );
    }

    #[test]
    fn missing_file_is_created_private_with_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        assert_eq!(
            config.claim(HOST, None).unwrap(),
            Claim::Written { previous: None }
        );
        assert_eq!(
            read_value(config.path()),
            serde_json::json!({"credHelpers": {HOST: "hubkey"}})
        );
        assert_eq!(mode(config.path()), 0o600);
        assert_eq!(config.helper_for(HOST).unwrap().as_deref(), Some("hubkey"));
    }

    #[test]
    fn other_keys_order_and_mode_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        fs::create_dir_all(config.path().parent().unwrap()).unwrap();
        let original = r#"{"zeta": 1, "auths": {"b": {}, "a": {"auth": "x"}}, "credHelpers": {"gcr.io": "gcloud"}, "alpha": [1, 2.5, null]}"#;
        fs::write(config.path(), original).unwrap();
        fs::set_permissions(config.path(), fs::Permissions::from_mode(0o644)).unwrap();

        config.claim(HOST, None).unwrap();
        let after = read_value(config.path());
        let keys: Vec<&String> = after.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["zeta", "auths", "credHelpers", "alpha"]);
        let auths: Vec<&String> = after["auths"].as_object().unwrap().keys().collect();
        assert_eq!(auths, ["b", "a"]);
        assert_eq!(after["credHelpers"]["gcr.io"], "gcloud");
        assert_eq!(after["credHelpers"][HOST], "hubkey");
        assert_eq!(mode(config.path()), 0o644);

        config.release(HOST, None).unwrap();
        assert_eq!(
            read_value(config.path()),
            serde_json::from_str::<Value>(original).unwrap()
        );
        assert_eq!(mode(config.path()), 0o644);
    }

    #[test]
    fn docker_desktops_own_credential_store_is_left_alone() {
        // Docker Desktop sets credsStore to its platform's store; hubkey adds credHelpers for
        // its registry only, so every other registry keeps using that store.
        for store in ["desktop", "osxkeychain", "wincred", "secretservice", "pass"] {
            let dir = tempfile::tempdir().unwrap();
            let config = config_in(&dir);
            fs::create_dir_all(config.path().parent().unwrap()).unwrap();
            let original = format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{}}, "{HOST}": {{}}}}, "credsStore": "{store}", "currentContext": "desktop-linux"}}"#
            );
            fs::write(config.path(), &original).unwrap();

            config.claim(HOST, None).unwrap();
            let after = read_value(config.path());
            assert_eq!(after["credsStore"], store);
            assert_eq!(after["credHelpers"], serde_json::json!({ HOST: "hubkey" }));
            assert_eq!(after["auths"], read_value_of(&original)["auths"]);

            config.release(HOST, None).unwrap();
            assert_eq!(
                read_value(config.path()),
                read_value_of(&original),
                "{store}"
            );
        }
    }

    fn read_value_of(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn unparsable_files_are_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        fs::create_dir_all(config.path().parent().unwrap()).unwrap();
        for original in [
            &b"{\"auths\": {"[..],
            b"[1, 2]",
            b"\"text\"",
            b"{\"credHelpers\": 5}",
            b"{\"credHelpers\": {\"127.0.0.1:5000\": 5}}",
            b"\xff\xfe",
        ] {
            fs::write(config.path(), original).unwrap();
            let err = config.claim(HOST, None).unwrap_err();
            assert!(
                matches!(err, DockerConfigError::Unparsable { .. }),
                "{err:?}"
            );
            assert!(matches!(
                config.release(HOST, None),
                Err(DockerConfigError::Unparsable { .. })
            ));
            assert_eq!(fs::read(config.path()).unwrap(), original);
        }
    }

    #[test]
    fn empty_file_reads_as_an_empty_object() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        fs::create_dir_all(config.path().parent().unwrap()).unwrap();
        fs::write(config.path(), "  \n").unwrap();
        config.claim(HOST, None).unwrap();
        assert_eq!(
            read_value(config.path()),
            serde_json::json!({"credHelpers": {HOST: "hubkey"}})
        );
    }

    #[test]
    fn another_helpers_entry_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        fs::create_dir_all(config.path().parent().unwrap()).unwrap();
        let original = format!(r#"{{"credHelpers": {{"{HOST}": "desktop"}}}}"#);
        fs::write(config.path(), &original).unwrap();
        assert_eq!(config.release(HOST, None).unwrap(), Change::Unchanged);
        assert_eq!(fs::read_to_string(config.path()).unwrap(), original);
    }

    #[test]
    fn another_helpers_entry_is_replaced_only_with_consent_and_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        fs::create_dir_all(config.path().parent().unwrap()).unwrap();
        let original = format!(
            r#"{{"auths": {{}}, "credHelpers": {{"gcr.io": "gcloud", "{HOST}": "desktop"}}}}"#
        );
        fs::write(config.path(), &original).unwrap();

        // Unasked, or agreed for another helper than the one there now: nothing is written.
        for replacing in [None, Some("pass"), Some("hubkey")] {
            assert_eq!(
                config.claim(HOST, replacing).unwrap(),
                Claim::TakenBy("desktop".into())
            );
            assert_eq!(fs::read_to_string(config.path()).unwrap(), original);
        }
        // Agreed: replaced, and what was there is said.
        assert_eq!(
            config.claim(HOST, Some("desktop")).unwrap(),
            Claim::Written {
                previous: Some("desktop".into())
            }
        );
        assert_eq!(config.helper_for(HOST).unwrap().as_deref(), Some(HELPER));
        assert_eq!(config.claim(HOST, None).unwrap(), Claim::AlreadyOurs);
        // Letting go puts it back, in its place.
        assert_eq!(
            config.release(HOST, Some("desktop")).unwrap(),
            Change::Written
        );
        assert_eq!(
            ordered(&read_value(config.path())),
            ordered(&serde_json::from_str::<Value>(&original).unwrap())
        );
        // The entry is the person's again: letting go once more changes nothing.
        let after = fs::read(config.path()).unwrap();
        assert_eq!(config.release(HOST, None).unwrap(), Change::Unchanged);
        assert_eq!(fs::read(config.path()).unwrap(), after);
    }

    #[test]
    fn remove_without_a_file_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        assert_eq!(config.release(HOST, None).unwrap(), Change::Unchanged);
        assert!(!config.path().exists());
    }

    #[test]
    fn symlinked_file_is_written_at_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        fs::write(&target, r#"{"a": 1}"#).unwrap();
        let link = dir.path().join("config.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        DockerConfig::new(&link).claim(HOST, None).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(read_value(&target)["credHelpers"][HOST], "hubkey");
        assert_eq!(read_value(&target)["a"], 1);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((".*", inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    fn json_object() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::vec(
            (
                "[a-zA-Z]{1,8}|.*".prop_filter("not ours", |key| key != CRED_HELPERS),
                json_value(),
            ),
            0..8,
        )
        .prop_map(|entries| entries.into_iter().collect())
    }

    /// Keys in order, with their values, recursively (Map's `==` ignores order).
    fn ordered(value: &Value) -> String {
        serde_json::to_string(value).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn point_keeps_every_other_key_and_remove_restores(
            original in json_object(),
            existing_helpers in prop::option::of(prop::collection::vec(("[a-z.:0-9]{1,12}", "[a-z]{1,8}"), 0..3)),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let config = config_in(&dir);
            fs::create_dir_all(config.path().parent().unwrap()).unwrap();
            let mut original = original;
            if let Some(helpers) = &existing_helpers {
                let helpers: Map<String, Value> = helpers
                    .iter()
                    .filter(|(host, _)| host != HOST)
                    .map(|(host, helper)| (host.clone(), Value::String(helper.clone())))
                    .collect();
                original.insert(CRED_HELPERS.to_owned(), Value::Object(helpers));
            }
            let original = Value::Object(original);
            fs::write(config.path(), serde_json::to_vec_pretty(&original).unwrap()).unwrap();

            config.claim(HOST, None).unwrap();
            let after = read_value(config.path());
            let after_object = after.as_object().unwrap();
            let original_object = original.as_object().unwrap();
            for (key, value) in original_object {
                if key != CRED_HELPERS {
                    prop_assert_eq!(ordered(&after_object[key]), ordered(value));
                }
            }
            let other_keys = |object: &Map<String, Value>| -> Vec<String> {
                object.keys().filter(|key| *key != CRED_HELPERS).cloned().collect()
            };
            prop_assert_eq!(other_keys(after_object), other_keys(original_object));
            prop_assert_eq!(after_object[CRED_HELPERS][HOST].as_str(), Some(HELPER));
            if let Some(Value::Object(helpers)) = original_object.get(CRED_HELPERS) {
                for (host, helper) in helpers {
                    prop_assert_eq!(&after_object[CRED_HELPERS][host], helper);
                }
            }

            config.release(HOST, None).unwrap();
            let restored = read_value(config.path());
            let had_helpers = original_object
                .get(CRED_HELPERS)
                .and_then(Value::as_object)
                .is_some_and(|helpers| !helpers.is_empty());
            if existing_helpers.is_none() || had_helpers {
                prop_assert_eq!(ordered(&restored), ordered(&original));
            }
        }
    }
}
