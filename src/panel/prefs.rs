//! A holder's GestioneMail preferences: reference ordinary address, notification of
//! new PEC, the daily report. One small JSON file per mailbox below
//! `data_dir/panel/holders/`, named by the SHA-256 of the address and replaced
//! atomically.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::files;
use crate::config::Config;

/// Serializes read-modify-write of the files (the panel and its background tasks).
static LOCK: Mutex<()> = Mutex::new(());

pub const MAX_NOTIFY: usize = 2;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HolderPrefs {
    pub address: String,
    /// Ordinary address for password resets and the daily report.
    pub reference: Option<String>,
    /// Up to two ordinary addresses told of each new PEC message.
    pub notify_to: Vec<String>,
    /// When not empty, only messages from these (up to two) senders are notified.
    pub notify_from: Vec<String>,
    /// `HH:MM`, Italian time, of the daily report of unread messages.
    pub report_time: Option<String>,
    /// `YYYY-MM-DD` of the last report sent.
    pub last_report: Option<String>,
    /// INBOX (uidvalidity, last uid) already considered for notifications.
    pub notified: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PrefsError {
    #[error("preferences of {address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
}

fn path(config: &Config, address: &str) -> PathBuf {
    let name = files::sha256_hex(address.to_ascii_lowercase().as_bytes());
    files::holders_dir(config).join(format!("{name}.json"))
}

fn read_unlocked(config: &Config, address: &str) -> HolderPrefs {
    let mut prefs: HolderPrefs = std::fs::read(path(config, address))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    prefs.address = address.to_ascii_lowercase();
    prefs
}

pub fn load(config: &Config, address: &str) -> HolderPrefs {
    let _guard = LOCK.lock();
    read_unlocked(config, address)
}

/// Reads, changes and writes back the holder's preferences under the lock.
pub fn update<T>(
    config: &Config,
    address: &str,
    change: impl FnOnce(&mut HolderPrefs) -> T,
) -> Result<T, PrefsError> {
    let _guard = LOCK.lock();
    let mut prefs = read_unlocked(config, address);
    let out = change(&mut prefs);
    let io = |source| PrefsError::Io {
        address: address.to_string(),
        source,
    };
    files::ensure_dirs(config).map_err(io)?;
    let bytes = serde_json::to_vec_pretty(&prefs).map_err(|e| io(std::io::Error::other(e)))?;
    files::write_atomic(&path(config, address), &bytes, 0o600).map_err(io)?;
    Ok(out)
}

/// Every holder that has preferences (for the background tasks).
pub fn all(config: &Config) -> Vec<HolderPrefs> {
    let _guard = LOCK.lock();
    let Ok(dir) = std::fs::read_dir(files::holders_dir(config)) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<HolderPrefs>(&b).ok())
        .filter(|p| !p.address.is_empty())
        .collect()
}

/// An ordinary e-mail address as typed by a holder: one address, no display name.
pub fn check_address(text: &str) -> Option<String> {
    let a = text.trim().to_ascii_lowercase();
    let (local, domain) = a.rsplit_once('@')?;
    let ok = !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && a.len() <= 254
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.@".contains(c))
        && a.matches('@').count() == 1;
    ok.then_some(a)
}

/// `HH:MM` with a valid hour and minute.
pub fn check_time(text: &str) -> Option<String> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then(|| format!("{h:02}:{m:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_isolation() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[provider]\nname='x'\ndomains=['pec.x.test']\nhostname='h'\n[storage]\ndata_dir='{}'\n",
            dir.path().display()
        );
        let config = Config::parse(&text, "t").unwrap();
        update(&config, "A@pec.x.test", |p| {
            p.notify_to = vec!["me@example.org".into()]
        })
        .unwrap();
        assert_eq!(load(&config, "a@pec.x.test").notify_to, ["me@example.org"]);
        assert!(load(&config, "b@pec.x.test").notify_to.is_empty());
        assert_eq!(all(&config).len(), 1);
    }

    #[test]
    fn inputs() {
        assert_eq!(
            check_address(" Me@Example.org "),
            Some("me@example.org".into())
        );
        assert!(check_address("a@b").is_none());
        assert!(check_address("a b@example.org").is_none());
        assert!(check_address("<a@example.org>").is_none());
        assert_eq!(check_time("7:05"), Some("07:05".into()));
        assert!(check_time("24:00").is_none());
    }
}
