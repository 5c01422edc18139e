//! The configuration file of interface.md §3, its lookup (§1) and the embedded demo
//! default (§5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const SYSTEM_CONFIG: &str = "/etc/pecbox/pecbox.toml";
pub const ENV_CONFIG: &str = "PECBOX_CONFIG";

/// The embedded demo default: a working provider on 127.0.0.1 for a first look.
pub const DEMO: &str = r#"
[provider]
name = "pecbox demo"
domains = ["pec.localhost"]
hostname = "localhost"

[storage]
data_dir = "./pecbox-data"

[listen]
smtp = "127.0.0.1:2525"
submissions = "127.0.0.1:4465"
submission = "127.0.0.1:4587"
imaps = "127.0.0.1:4993"
pop3s = "127.0.0.1:4995"
panel = "127.0.0.1:8443"
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub provider: Provider,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub tls: KeyPairPaths,
    #[serde(default)]
    pub signing: KeyPairPaths,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub limits: Limits,
    /// Where the file was found (None for the demo default); relative paths hang off it.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    pub domains: Vec<String>,
    pub hostname: String,
    pub service_address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    pub data_dir: PathBuf,
    /// sled's page cache in MiB (its own default, 1 GiB, is half a Raspberry Pi).
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
}

fn default_cache_mb() -> u64 {
    32
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/pecbox"),
            cache_mb: default_cache_mb(),
        }
    }
}

/// What one client may cost, the same on every listener (SMTP, IMAPS, POP3S, panel).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open connections from one client address (IPv6: one /64) on one listener,
    /// counted from accept, TLS handshake included; more are closed at once.
    pub connections_per_address: usize,
    /// Open connections on one listener; past it clients get the protocol's "busy".
    pub connections: usize,
    /// Seconds a connection may stay silent before it has logged in (on port 25:
    /// before its first MAIL), TLS handshake included.
    pub pre_auth_timeout_secs: u64,
    /// Password checks (argon2) running at once; 0 = one per core, at most 4.
    pub login_concurrency: usize,
    /// Seconds a login may wait for a free password check before a temporary failure.
    pub login_queue_secs: u64,
    /// Failed logins from one address within 15 minutes before that address is
    /// refused outright for 15 minutes (an account itself is only ever slowed down).
    pub address_failures: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections_per_address: 20,
            connections: 500,
            pre_auth_timeout_secs: 30,
            login_concurrency: 0,
            login_queue_secs: 20,
            address_failures: 30,
        }
    }
}

impl Limits {
    pub fn pre_auth_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.pre_auth_timeout_secs.max(1))
    }

    /// The number of argon2 checks that may run at once.
    pub fn login_slots(&self) -> usize {
        if self.login_concurrency > 0 {
            return self.login_concurrency;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub smtp: Option<String>,
    pub submissions: Option<String>,
    pub submission: Option<String>,
    pub imaps: Option<String>,
    pub pop3s: Option<String>,
    pub panel: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPairPaths {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    #[serde(default)]
    pub tls_ca: Vec<PathBuf>,
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Seconds without presa in carico or consegna before the 12 h notice (pec-rules §8).
    #[serde(default = "default_preavviso_secs")]
    pub preavviso_secs: u64,
    /// Seconds without consegna before the 24 h notice that closes the transaction.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Seconds a message may wait in the outbound queue (RFC 6109 §2.2.2: 24 h).
    #[serde(default = "default_timeout_secs")]
    pub queue_lifetime_secs: u64,
    /// First retry delay in seconds; it doubles up to `retry_max_secs`.
    #[serde(default = "default_retry_secs")]
    pub retry_secs: u64,
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u64,
    /// Ordinary-mail forwarding relay (`host:port`), for mailboxes that ask for it.
    pub smarthost: Option<String>,
    /// Keep a copy of each accepted message in the sender's Sent folder, beside its receipts.
    #[serde(default = "default_true")]
    pub save_sent: bool,
}

fn default_true() -> bool {
    true
}

fn default_preavviso_secs() -> u64 {
    12 * 3600
}

fn default_timeout_secs() -> u64 {
    24 * 3600
}

fn default_retry_secs() -> u64 {
    60
}

fn default_retry_max_secs() -> u64 {
    1800
}

fn default_max_message_bytes() -> u64 {
    31_457_280
}

fn default_max_recipients() -> usize {
    500
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            routes: BTreeMap::new(),
            tls_ca: Vec::new(),
            max_message_bytes: default_max_message_bytes(),
            max_recipients: default_max_recipients(),
            preavviso_secs: default_preavviso_secs(),
            timeout_secs: default_timeout_secs(),
            queue_lifetime_secs: default_timeout_secs(),
            retry_secs: default_retry_secs(),
            retry_max_secs: default_retry_max_secs(),
            smarthost: None,
            save_sent: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub months: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { months: 30 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// interface.md §1: `--config`, else `$PECBOX_CONFIG`, else the system file if it
    /// exists, else the embedded demo default.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let from_env = std::env::var_os(ENV_CONFIG).map(PathBuf::from);
        let system = Path::new(SYSTEM_CONFIG);
        match explicit.map(Path::to_path_buf).or(from_env) {
            Some(path) => Self::load(&path),
            None if system.exists() => Self::load(system),
            None => Self::parse(DEMO, "embedded demo default"),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.message().to_string(),
        })?;
        if config.provider.domains.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{origin}: [provider] domains must name at least one PEC domain"
            )));
        }
        let l = &config.limits;
        if l.connections_per_address == 0 || l.connections < l.connections_per_address {
            return Err(ConfigError::Invalid(format!(
                "{origin}: [limits] connections ({}) must be at least connections_per_address ({}), which must be at least 1",
                l.connections, l.connections_per_address
            )));
        }
        Ok(config)
    }

    pub fn is_demo(&self) -> bool {
        self.source.is_none()
    }

    /// A path from the file, resolved against the file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match self.source.as_deref().and_then(Path::parent) {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.storage.data_dir)
    }

    /// `certs/ca.pem` below the data folder (interface.md §4).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.data_dir().join("certs").join("ca.pem")
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.data_dir().join("certs")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.data_dir().join("store")
    }

    pub fn control_socket(&self) -> PathBuf {
        self.data_dir().join("control.sock")
    }

    /// Whether `domain` is one of ours (case-insensitive).
    pub fn manages(&self, domain: &str) -> bool {
        self.provider
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    pub fn service_address(&self) -> String {
        self.provider
            .service_address
            .clone()
            .unwrap_or_else(|| format!("posta-certificata@{}", self.provider.domains[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_default_matches_the_interface() {
        let c = Config::parse(DEMO, "demo").unwrap();
        assert!(c.is_demo());
        assert_eq!(c.provider.domains, ["pec.localhost"]);
        assert_eq!(c.listen.smtp.as_deref(), Some("127.0.0.1:2525"));
        assert_eq!(c.listen.panel.as_deref(), Some("127.0.0.1:8443"));
        assert_eq!(c.service_address(), "posta-certificata@pec.localhost");
        assert_eq!(c.delivery.max_message_bytes, 31_457_280);
        assert_eq!(c.retention.months, 30);
    }

    #[test]
    fn relative_paths_hang_off_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pecbox.toml");
        std::fs::write(
            &file,
            "[provider]\nname='x'\ndomains=['pec.x.test']\nhostname='mx'\n[storage]\ndata_dir='data'\n",
        )
        .unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.data_dir(), dir.path().join("data"));
        assert_eq!(c.ca_cert_path(), dir.path().join("data/certs/ca.pem"));
    }

    #[test]
    fn mistakes_are_reported_with_the_file() {
        let e = Config::parse("[provider]\nname='x'\ndomains=[]\nhostname='h'\n", "f.toml")
            .unwrap_err();
        assert!(e.to_string().contains("at least one PEC domain"), "{e}");
        let e = Config::parse("[provider]\nnme='x'\n", "f.toml").unwrap_err();
        assert!(e.to_string().starts_with("f.toml:"), "{e}");
    }
}
