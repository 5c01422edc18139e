//! Writing the configuration file back (setup wizard and settings page): the file is
//! edited in place with toml_edit so the administrator's comments and layout survive,
//! validated by parsing it as pecbox would, and replaced atomically. When the file
//! cannot be written (the demo without a writable /etc/pecbox, or a read-only file) the
//! panel shows the TOML to save by hand.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use toml_edit::{value, Array, DocumentMut, Item};

use crate::config::{Config, DEMO, SYSTEM_CONFIG};

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("the configuration file {path} cannot be read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration is not valid TOML: {0}")]
    Syntax(String),
    #[error("{0}")]
    Invalid(String),
}

/// What became of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Written(PathBuf),
    /// Not writable: the text to save by hand, and why.
    ShowOnly {
        text: String,
        reason: String,
    },
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
}

/// The file the running configuration came from, or where the demo's would go.
pub fn target(config: &Config) -> PathBuf {
    config
        .source
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CONFIG))
}

fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let check = |p: &Path| {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir_ok = if dir.exists() {
        check(dir)
    } else {
        dir.parent().is_some_and(|d| d.exists() && check(d))
    };
    dir_ok && (!path.exists() || check(path))
}

/// The current file as an editable document. For the demo: its default text with the
/// data folder made absolute, since relative paths hang off the file's folder.
pub fn document(config: &Config) -> Result<DocumentMut, ConfigFileError> {
    let text = match &config.source {
        Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: path.clone(),
            source,
        })?,
        None => DEMO.trim_start().to_string(),
    };
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| ConfigFileError::Syntax(e.to_string()))?;
    if config.source.is_none() {
        let data = config.data_dir();
        let absolute = std::path::absolute(&data).unwrap_or(data);
        table(&mut doc, "storage")["data_dir"] = value(absolute.display().to_string());
    }
    Ok(doc)
}

fn table<'a>(doc: &'a mut DocumentMut, name: &str) -> &'a mut Item {
    if !doc.contains_key(name) {
        doc[name] = toml_edit::table();
    }
    &mut doc[name]
}

fn set_or_remove(item: &mut Item, key: &str, v: Option<&str>) {
    match v {
        Some(v) if !v.trim().is_empty() => item[key] = value(v.trim()),
        _ => {
            if let Some(t) = item.as_table_like_mut() {
                t.remove(key);
            }
        }
    }
}

/// Writes `s` into the document.
pub fn apply(doc: &mut DocumentMut, s: &Settings) {
    let provider = table(doc, "provider");
    provider["name"] = value(s.name.trim());
    let mut domains = Array::new();
    for d in &s.domains {
        domains.push(d.as_str());
    }
    provider["domains"] = value(domains);
    provider["hostname"] = value(s.hostname.trim());
    let listen = table(doc, "listen");
    for (key, addr) in &s.listen {
        set_or_remove(listen, key, addr.as_deref());
    }
    let delivery = table(doc, "delivery");
    set_or_remove(delivery, "smarthost", s.smarthost.as_deref());
    delivery["max_message_bytes"] = value(s.max_message_bytes.min(i64::MAX as u64) as i64);
    delivery["max_recipients"] = value(s.max_recipients.min(i64::MAX as usize) as i64);
    table(doc, "retention")["months"] = value(i64::from(s.retention_months));
}

/// Validates `text` as pecbox would read it, then replaces the file atomically (or
/// hands the text back when it cannot be written).
pub fn save(config: &Config, text: &str) -> Result<Saved, ConfigFileError> {
    let path = target(config);
    Config::parse(text, &path.display().to_string())
        .map_err(|e| ConfigFileError::Invalid(e.to_string()))?;
    if !writable(&path) {
        return Ok(Saved::ShowOnly {
            text: text.to_string(),
            reason: format!("{} is not writable by pecbox", path.display()),
        });
    }
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|source| ConfigFileError::Read {
                path: dir.to_path_buf(),
                source,
            })?;
        }
    }
    let mode = std::fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o644);
    match super::files::write_atomic(&path, text.as_bytes(), mode) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "configuration written by the panel");
            Ok(Saved::Written(path))
        }
        Err(e) => Ok(Saved::ShowOnly {
            text: text.to_string(),
            reason: format!("{}: {e}", path.display()),
        }),
    }
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

    #[test]
    fn edits_keep_comments_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pecbox.toml");
        std::fs::write(
            &file,
            "# my box\n[provider]\nname = \"Old\" # keep\ndomains = [\"pec.old.test\"]\nhostname = \"mx\"\n\n[listen]\nsmtp = \"0.0.0.0:25\"\npop3s = \"0.0.0.0:995\"\n",
        )
        .unwrap();
        let config = Config::load(&file).unwrap();
        let mut s = Settings::of(&config);
        s.name = "Nuovo".into();
        s.listen[4].1 = None;
        s.listen[5].1 = Some("0.0.0.0:443".into());
        s.smarthost = Some("relay.example.org:25".into());
        let mut doc = document(&config).unwrap();
        apply(&mut doc, &s);
        let text = doc.to_string();
        assert!(text.starts_with("# my box\n"), "{text}");
        let saved = save(&config, &text).unwrap();
        assert_eq!(saved, Saved::Written(file.clone()));
        let again = Config::load(&file).unwrap();
        assert_eq!(again.provider.name, "Nuovo");
        assert_eq!(again.listen.pop3s, None);
        assert_eq!(again.listen.panel.as_deref(), Some("0.0.0.0:443"));
        assert_eq!(
            again.delivery.smarthost.as_deref(),
            Some("relay.example.org:25")
        );
        assert_eq!(Settings::of(&again), s);
    }

    #[test]
    fn invalid_results_are_refused() {
        let config = Config::parse(DEMO, "demo").unwrap();
        let e = save(&config, "[provider]\nname='x'\ndomains=[]\nhostname='h'\n").unwrap_err();
        assert!(e.to_string().contains("at least one PEC domain"), "{e}");
    }

    #[test]
    fn demo_gets_an_absolute_data_dir() {
        let config = Config::parse(DEMO, "demo").unwrap();
        let doc = document(&config).unwrap();
        let dir = doc["storage"]["data_dir"].as_str().unwrap();
        assert!(Path::new(dir).is_absolute(), "{dir}");
    }

    #[test]
    fn checks() {
        assert!(check_listen("0.0.0.0:443") && !check_listen("0.0.0.0"));
        assert!(check_host_port("relay.example.org:25") && !check_host_port("relay"));
        assert!(check_domain("pec.studio-rossi.it") && !check_domain("pec..it"));
        assert!(!check_domain("a b.it"));
    }
}
