//! What the panel saves (setup wizard, settings page) goes to the override layer,
//! `<data_dir>/pecbox.toml`, never to the factory file (`config.rs`): the factory file
//! sits on the read-only root slot, which an A/B update replaces, while the data folder
//! is on the data partition and is the daemon's own.
//!
//! The override holds the panel's keys whose value differs from the factory layer's
//! (built-in defaults included), plus whatever else it already holds (hand-written keys,
//! comments): a panel key set back to the factory's value leaves the override, so a
//! later factory change (an update) reaches it. The file is edited with toml_edit, so
//! comments and layout survive, checked by merging it with the factory layer exactly as
//! pecbox will at its next start, and replaced atomically (temporary file, fsync,
//! rename, fsync of the folder) with the daemon as its owner.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use toml_edit::{DocumentMut, Item};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("the settings file {path} cannot be read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("the settings cannot be saved to {path}: {source} (pecbox must be able to write its data folder)")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is both the factory configuration and the override: give [storage] data_dir a folder of its own")]
    SameFile(PathBuf),
}

/// What became of a change.
#[derive(Debug, Clone)]
pub enum Saved {
    /// The override was written; `config` is what pecbox will run with at its next start.
    Written { path: PathBuf, config: Box<Config> },
    /// The override already said so (or there is nothing to override): nothing written.
    Unchanged { path: PathBuf },
}

/// The settings the panel edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub name: String,
    pub domains: Vec<String>,
    pub hostname: String,
    pub listen: [(&'static str, Option<String>); 6],
    pub smarthost: Option<String>,
    pub max_message_bytes: u64,
    pub max_recipients: usize,
    pub retention_months: u32,
}

pub const LISTENERS: [&str; 6] = [
    "smtp",
    "submissions",
    "submission",
    "imaps",
    "pop3s",
    "panel",
];

impl Settings {
    pub fn of(config: &Config) -> Self {
        let l = &config.listen;
        Self {
            name: config.provider.name.clone(),
            domains: config.provider.domains.clone(),
            hostname: config.provider.hostname.clone(),
            listen: [
                ("smtp", l.smtp.clone()),
                ("submissions", l.submissions.clone()),
                ("submission", l.submission.clone()),
                ("imaps", l.imaps.clone()),
                ("pop3s", l.pop3s.clone()),
                ("panel", l.panel.clone()),
            ],
            smarthost: config.delivery.smarthost.clone(),
            max_message_bytes: config.delivery.max_message_bytes,
            max_recipients: config.delivery.max_recipients,
            retention_months: config.retention.months,
        }
    }

    /// Each key the panel manages, as (table, key, value); `None` is unset (a listener
    /// or the smarthost switched off).
    fn keys(&self) -> Vec<(&'static str, &'static str, Option<toml::Value>)> {
        let text = |s: &str| toml::Value::String(s.trim().to_string());
        let opt = |s: &Option<String>| s.as_deref().filter(|s| !s.trim().is_empty()).map(&text);
        let int = |n: u64| toml::Value::Integer(n.min(i64::MAX as u64) as i64);
        let mut keys = vec![
            ("provider", "name", Some(text(&self.name))),
            (
                "provider",
                "domains",
                Some(toml::Value::Array(
                    self.domains.iter().map(|d| text(d)).collect(),
                )),
            ),
            ("provider", "hostname", Some(text(&self.hostname))),
        ];
        for (key, addr) in &self.listen {
            keys.push(("listen", *key, opt(addr)));
        }
        keys.extend([
            ("delivery", "smarthost", opt(&self.smarthost)),
            (
                "delivery",
                "max_message_bytes",
                Some(int(self.max_message_bytes)),
            ),
            (
                "delivery",
                "max_recipients",
                Some(int(self.max_recipients as u64)),
            ),
            (
                "retention",
                "months",
                Some(int(u64::from(self.retention_months))),
            ),
        ]);
        keys
    }
}

/// `table.key` of a raw layer.
fn lookup<'a>(layer: &'a toml::Table, table: &str, key: &str) -> Option<&'a toml::Value> {
    layer.get(table)?.as_table()?.get(key)
}

/// An empty string switches a listener or the smarthost off (config.rs).
fn off(v: &toml::Value) -> bool {
    v.as_str().is_some_and(|s| s.trim().is_empty())
}

/// The override file as it is now: its text (empty when there is none yet).
fn current_text(path: &std::path::Path) -> Result<Option<String>, ConfigFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigFileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The configuration as saved now (factory layer + the override on disk), which is
/// what pecbox will run with at its next start; `running` is what it runs with.
pub fn saved(running: &Config) -> Result<Config, ConfigFileError> {
    running
        .factory_only()
        .and_then(Config::with_override_file)
        .map_err(|e| ConfigFileError::Invalid(e.to_string()))
}

/// The header of an override the panel creates.
fn header(config: &Config) -> String {
    format!(
        "# Settings saved by the pecbox web panel, on the data partition (an update keeps\n\
         # them). They override the factory configuration key by key:\n\
         #   {}\n\
         # `pecbox config show` prints the configuration in effect, value by value.\n\n",
        config.layers.factory_origin
    )
}

fn edit_value(v: &toml::Value) -> toml_edit::Value {
    match v {
        toml::Value::String(s) => s.as_str().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Array(items) => {
            let mut array = toml_edit::Array::new();
            for item in items {
                array.push(edit_value(item));
            }
            toml_edit::Value::Array(array)
        }
        other => other
            .to_string()
            .parse()
            .unwrap_or_else(|_| other.to_string().into()),
    }
}

fn has_comment(decor: &toml_edit::Decor) -> bool {
    let text = |r: Option<&toml_edit::RawString>| {
        r.and_then(|r| r.as_str()).is_some_and(|s| s.contains('#'))
    };
    text(decor.prefix()) || text(decor.suffix())
}

/// Writes `s` into the override of `running`'s configuration (see the module's text):
/// checked, atomic, comments kept; the factory file is never touched.
pub fn save(running: &Config, s: &Settings) -> Result<Saved, ConfigFileError> {
    // One save at a time: each reads the file, edits it and replaces it (and
    // files::write_atomic's temporary name is per process).
    static SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SAVING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = crate::config::display_path(&running.override_path());
    if running.override_is_factory() {
        return Err(ConfigFileError::SameFile(path));
    }
    let old_text = current_text(&path)?;
    let old = old_text.as_deref().unwrap_or("");
    let syntax = |message: String| ConfigFileError::Syntax {
        path: path.clone(),
        message,
    };
    let mut doc: DocumentMut = old
        .parse()
        .map_err(|e: toml_edit::TomlError| syntax(e.message().to_string()))?;
    let old_table: toml::Table =
        toml::from_str(old).map_err(|e| syntax(e.message().to_string()))?;
    // A file of comments only keeps them as the document's trailing text, which would
    // end up below the tables added now: they stay on top instead.
    let leading = if doc.as_table().is_empty() {
        let text = doc.trailing().as_str().unwrap_or_default().to_string();
        doc.set_trailing("");
        text
    } else {
        String::new()
    };
    let defaults = Config::builtin_defaults();
    for (table, key, wanted) in s.keys() {
        let factory = lookup(&running.layers.factory, table, key)
            .or_else(|| lookup(&defaults, table, key))
            .filter(|v| !off(v));
        let now = lookup(&old_table, table, key);
        if wanted.as_ref() == factory {
            // The factory's value: the override has nothing to say.
            if now.is_some() {
                if let Some(t) = doc.get_mut(table).and_then(Item::as_table_like_mut) {
                    t.remove(key);
                }
            }
            continue;
        }
        // Off where the factory has it on: an empty string (TOML has no null).
        let wanted = wanted.unwrap_or_else(|| toml::Value::String(String::new()));
        if now == Some(&wanted) {
            continue;
        }
        if doc.get(table).and_then(Item::as_table_like).is_none() {
            doc[table] = toml_edit::table();
        }
        let Some(t) = doc.get_mut(table).and_then(Item::as_table_like_mut) else {
            continue;
        };
        let mut value = edit_value(&wanted);
        if let Some(old) = t.get(key).and_then(Item::as_value) {
            *value.decor_mut() = old.decor().clone();
        }
        t.insert(key, Item::Value(value));
    }
    let emptied: Vec<String> = doc
        .iter()
        .filter(|(_, item)| {
            item.as_table()
                .is_some_and(|t| t.is_empty() && !has_comment(t.decor()))
        })
        .map(|(k, _)| k.to_string())
        .collect();
    for key in emptied {
        doc.remove(&key);
    }
    let mut text = doc.to_string();
    if !leading.is_empty() {
        let sep = if leading.ends_with('\n') || text.is_empty() {
            ""
        } else {
            "\n"
        };
        text = format!("{leading}{sep}{text}");
    } else if old_text.is_none() && !text.trim().is_empty() {
        text = format!("{}{}", header(running), text.trim_start());
    }
    if old_text.as_deref().unwrap_or("") == text {
        return Ok(Saved::Unchanged { path });
    }
    let table = crate::config::parse_table(&text, &path.display().to_string())
        .map_err(|e| ConfigFileError::Invalid(e.to_string()))?;
    let config = running
        .with_override(path.clone(), table)
        .map_err(|e| ConfigFileError::Invalid(e.to_string()))?;
    let mode = std::fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    super::files::write_atomic(&path, text.as_bytes(), mode).map_err(|source| {
        ConfigFileError::Write {
            path: path.clone(),
            source,
        }
    })?;
    tracing::info!(path = %path.display(), "settings saved by the panel to the override");
    Ok(Saved::Written {
        path,
        config: Box::new(config),
    })
}

/// Checks a `host:port` listen address.
pub fn check_listen(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>().is_ok()
}

/// Checks a `host:port` relay.
pub fn check_host_port(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty()
            && p.parse::<u16>().is_ok_and(|p| p > 0)
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
    })
}

/// A DNS name: labels of letters, digits and hyphens.
pub fn check_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const FACTORY: &str = "# factory\n[provider]\nname = \"Vecchio\"\ndomains = [\"pec.old.test\"]\nhostname = \"mx\"\n\n[storage]\ndata_dir = \"../data\"\n\n[listen]\nsmtp = \"0.0.0.0:25\"\npop3s = \"0.0.0.0:995\"\n\n[delivery]\nmax_message_bytes = 1048576\n";

    /// A factory file in `<tmp>/etc`, data in `<tmp>/data`.
    fn factory(dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let file = dir.join("etc/pecbox.toml");
        std::fs::write(&file, FACTORY).unwrap();
        file
    }

    #[test]
    fn only_differences_go_to_the_override_with_its_comments() {
        let dir = tempfile::tempdir().unwrap();
        let file = factory(dir.path());
        let over = dir.path().join("data/pecbox.toml");
        std::fs::write(&over, "# mine\n[limits]\naddress_failures = 7 # by hand\n").unwrap();
        let config = Config::load(&file).unwrap();
        assert_eq!(
            config.override_path(),
            dir.path().join("etc/../data/pecbox.toml")
        );
        let mut s = Settings::of(&config);
        s.name = "Nuovo".into();
        s.listen[0].1 = None; // smtp: on in the factory, off now
        s.listen[5].1 = Some("0.0.0.0:443".into());
        s.smarthost = Some("relay.example.org:25".into());
        let Saved::Written { path, config: next } = save(&config, &s).unwrap() else {
            panic!("written")
        };
        assert_eq!(path, dir.path().join("data/pecbox.toml"));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            FACTORY,
            "factory untouched"
        );
        let text = std::fs::read_to_string(&over).unwrap();
        for want in [
            "# mine\n",
            "address_failures = 7 # by hand",
            "name = \"Nuovo\"",
            "smtp = \"\"",
            "panel = \"0.0.0.0:443\"",
            "smarthost = \"relay.example.org:25\"",
        ] {
            assert!(text.contains(want), "{want} in:\n{text}");
        }
        for unwanted in [
            "hostname",
            "domains",
            "pop3s",
            "max_message_bytes",
            "months",
        ] {
            assert!(!text.contains(unwanted), "{unwanted} in:\n{text}");
        }
        let again = Config::load(&file).unwrap();
        assert_eq!(Settings::of(&again), s);
        assert_eq!(Settings::of(&next), s);
        assert_eq!(again.listen.smtp, None);
        assert_eq!(again.provider.hostname, "mx");
        assert_eq!(again.limits.address_failures, 7);
        assert_eq!(Settings::of(&saved(&config).unwrap()), s);

        // Back to the factory's values: the keys leave the override, the rest stays.
        let factory_settings = Settings::of(&config.factory_only().unwrap());
        assert!(matches!(
            save(&again, &factory_settings).unwrap(),
            Saved::Written { .. }
        ));
        let text = std::fs::read_to_string(&over).unwrap();
        assert_eq!(text, "# mine\n[limits]\naddress_failures = 7 # by hand\n");
        assert!(matches!(
            save(&again, &factory_settings).unwrap(),
            Saved::Unchanged { .. }
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), FACTORY);
    }

    #[test]
    fn comments_of_an_override_without_keys_stay_on_top() {
        let dir = tempfile::tempdir().unwrap();
        let file = factory(dir.path());
        let over = dir.path().join("data/pecbox.toml");
        std::fs::write(&over, "# mine\n# too\n").unwrap();
        let config = Config::load(&file).unwrap();
        let mut s = Settings::of(&config);
        s.retention_months = 40;
        save(&config, &s).unwrap();
        let text = std::fs::read_to_string(&over).unwrap();
        assert_eq!(text, "# mine\n# too\n[retention]\nmonths = 40\n");
        assert!(matches!(
            save(&config, &s).unwrap(),
            Saved::Unchanged { .. }
        ));
    }

    #[test]
    fn a_new_override_says_what_it_is_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = factory(dir.path());
        let config = Config::load(&file).unwrap();
        let same = Settings::of(&config);
        assert!(matches!(
            save(&config, &same).unwrap(),
            Saved::Unchanged { .. }
        ));
        assert!(
            !config.override_path().exists(),
            "nothing to override, no file"
        );
        let mut s = same.clone();
        s.retention_months = 36;
        save(&config, &s).unwrap();
        let text = std::fs::read_to_string(config.override_path()).unwrap();
        assert!(
            text.starts_with("# Settings saved by the pecbox web panel"),
            "{text}"
        );
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(text.ends_with("[retention]\nmonths = 36\n"), "{text}");
        let mode = std::fs::metadata(config.override_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn invalid_results_and_unwritable_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = factory(dir.path());
        let config = Config::load(&file).unwrap();
        let mut s = Settings::of(&config);
        s.domains.clear();
        let e = save(&config, &s).unwrap_err();
        assert!(e.to_string().contains("at least one PEC domain"), "{e}");
        assert!(!config.override_path().exists());

        // No data folder to write into: a clear error, not a text to copy by hand.
        std::fs::remove_dir(dir.path().join("data")).unwrap();
        let mut s = Settings::of(&config);
        s.name = "Altro".into();
        let e = save(&config, &s).unwrap_err();
        assert!(matches!(e, ConfigFileError::Write { .. }), "{e}");
        assert!(
            e.to_string()
                .contains(&config.override_path().display().to_string()),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), FACTORY);
    }

    #[test]
    fn a_factory_file_inside_its_data_folder_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pecbox.toml");
        let text = FACTORY.replace("../data", ".");
        std::fs::write(&file, &text).unwrap();
        let config = Config::load(&file).unwrap();
        assert!(config.layers.overrides.is_none());
        let mut s = Settings::of(&config);
        s.name = "Altro".into();
        let e = save(&config, &s).unwrap_err();
        assert!(matches!(e, ConfigFileError::SameFile(_)), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[test]
    fn checks() {
        assert!(check_listen("0.0.0.0:443") && !check_listen("0.0.0.0"));
        assert!(check_host_port("relay.example.org:25") && !check_host_port("relay"));
        assert!(check_domain("pec.studio-rossi.it") && !check_domain("pec..it"));
        assert!(!check_domain("a b.it"));
    }
}
