//! The configuration file of interface.md §3, its lookup (§1) and the embedded demo
//! default (§5), in two layers: the file found by the lookup (or the demo default) is
//! the *factory* layer; `<data_dir>/pecbox.toml`, when it exists, overrides it key by
//! key (tables merge recursively, arrays and scalars replace). The web panel writes the
//! override only (`panel::configfile`), so what it saves lives on the data partition and
//! survives an A/B update of the read-only root slot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const SYSTEM_CONFIG: &str = "/etc/pecbox/pecbox.toml";
pub const ENV_CONFIG: &str = "PECBOX_CONFIG";
/// The override layer's file name, below `data_dir`.
pub const OVERRIDE_FILE: &str = "pecbox.toml";
/// How the embedded demo default is named when it is the factory layer.
pub const EMBEDDED: &str = "embedded demo default";

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

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Where the factory file was found (None for the demo default); relative paths,
    /// the override's included, hang off its folder.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The layers this configuration was merged from.
    #[serde(skip)]
    pub layers: Layers,
}

/// The raw layers behind a [`Config`]: what `pecbox config show` and the panel need to
/// tell the factory's values from the override's.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    /// The factory layer's origin: its file's path, or [`EMBEDDED`].
    pub factory_origin: String,
    pub factory: toml::Table,
    /// The override file, when one was read, and its table.
    pub overrides: Option<(PathBuf, toml::Table)>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    pub domains: Vec<String>,
    pub hostname: String,
    pub service_address: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub smtp: Option<String>,
    pub submissions: Option<String>,
    pub submission: Option<String>,
    pub imaps: Option<String>,
    pub pop3s: Option<String>,
    pub panel: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPairPaths {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
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

#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// exists, else the embedded demo default; that is the factory layer, and
    /// `<data_dir>/pecbox.toml` overrides it when it exists.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let from_env = std::env::var_os(ENV_CONFIG).map(PathBuf::from);
        let system = Path::new(SYSTEM_CONFIG);
        match explicit.map(Path::to_path_buf).or(from_env) {
            Some(path) => Self::load(&path),
            None if system.exists() => Self::load(system),
            None => Self::factory(DEMO, EMBEDDED, None)?.with_override_file(),
        }
    }

    /// The factory file `path` and, when it exists, the override below its data folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::factory(&text, &path.display().to_string(), Some(path.to_path_buf()))?
            .with_override_file()
    }

    /// One text as a whole configuration, without an override (`origin` names it in
    /// errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::factory(text, origin, None)
    }

    /// The factory layer alone: it must be a complete, valid configuration by itself.
    fn factory(text: &str, origin: &str, source: Option<PathBuf>) -> Result<Self, ConfigError> {
        let table = parse_table(text, origin)?;
        let mut config = from_table(table.clone(), origin)?;
        config.source = source;
        config.layers = Layers {
            factory_origin: origin.to_string(),
            factory: table,
            overrides: None,
        };
        Ok(config)
    }

    /// Adds the override file `<data_dir>/pecbox.toml` when there is one (a missing file
    /// is no override; an unreadable or broken one is an error naming it).
    pub fn with_override_file(self) -> Result<Self, ConfigError> {
        if self.override_is_factory() {
            // The factory file is itself <data_dir>/pecbox.toml: one layer only.
            return Ok(self);
        }
        let path = display_path(&self.override_path());
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(self),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let table = parse_table(&text, &path.display().to_string())?;
        self.with_override(path, table)
    }

    /// This configuration's factory layer with `table` (from the file `path`) as its
    /// override, checked as pecbox checks the files. The override may not set
    /// `[storage] data_dir`: it is found through it.
    pub fn with_override(&self, path: PathBuf, table: toml::Table) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        if table
            .get("storage")
            .and_then(toml::Value::as_table)
            .is_some_and(|s| s.contains_key("data_dir"))
        {
            return Err(ConfigError::Invalid(format!(
                "{origin}: [storage] data_dir cannot be set in the override, which lives in \
                 the data folder itself; change it in the factory configuration ({})",
                self.layers.factory_origin
            )));
        }
        let mut merged = self.layers.factory.clone();
        merge(&mut merged, &table);
        let mut config = from_table(merged, &origin)?;
        config.source = self.source.clone();
        config.layers = Layers {
            factory_origin: self.layers.factory_origin.clone(),
            factory: self.layers.factory.clone(),
            overrides: Some((path, table)),
        };
        Ok(config)
    }

    /// The factory layer alone, as it would be without an override.
    pub fn factory_only(&self) -> Result<Self, ConfigError> {
        let mut config = from_table(self.layers.factory.clone(), &self.layers.factory_origin)?;
        config.source = self.source.clone();
        config.layers = Layers {
            overrides: None,
            ..self.layers.clone()
        };
        Ok(config)
    }

    /// The embedded demo default, without an override: the first look.
    pub fn is_demo(&self) -> bool {
        self.source.is_none() && self.layers.overrides.is_none()
    }

    /// Where the override layer is (or would be): `<data_dir>/pecbox.toml`.
    pub fn override_path(&self) -> PathBuf {
        self.data_dir().join(OVERRIDE_FILE)
    }

    /// Whether the factory file is itself `<data_dir>/pecbox.toml` (a data_dir of "."
    /// beside it): then there is one layer, and nothing for the panel to write.
    pub fn override_is_factory(&self) -> bool {
        self.source
            .as_deref()
            .is_some_and(|f| same_file(f, &self.override_path()))
    }

    /// Every key with a built-in default, at its default (no `[provider]`, which has
    /// none; absent optional keys are absent).
    pub fn builtin_defaults() -> toml::Table {
        let blank = Config {
            provider: Provider {
                name: String::new(),
                domains: Vec::new(),
                hostname: String::new(),
                service_address: None,
            },
            storage: Storage::default(),
            listen: Listen::default(),
            tls: KeyPairPaths::default(),
            signing: KeyPairPaths::default(),
            delivery: Delivery::default(),
            retention: Retention::default(),
            limits: Limits::default(),
            source: None,
            layers: Layers::default(),
        };
        let mut table = toml::Table::try_from(&blank).unwrap_or_default();
        table.remove("provider");
        table
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

/// Merges `over` into `base` key by key: tables merge recursively, anything else
/// (arrays and scalars included) replaces.
pub fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// One layer's text as a TOML table; a syntax error names the file and the line.
pub fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str::<toml::Table>(text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        // One line, as every error of pecbox.
        let message: Vec<&str> = e.message().lines().map(str::trim).collect();
        let message = message.join("; ");
        ConfigError::Parse {
            path: origin.to_string(),
            message: match line {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            },
        }
    })
}

/// A merged table as a checked configuration (`origin` names it in errors).
fn from_table(table: toml::Table, origin: &str) -> Result<Config, ConfigError> {
    let mut config: Config =
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: origin.to_string(),
                message: e.message().trim_end().to_string(),
            })?;
    // An empty string switches a listener (or the smarthost) off, so an override can
    // turn off what the factory layer turns on: TOML has no null.
    let off = |v: &mut Option<String>| {
        if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
            *v = None;
        }
    };
    let l = &mut config.listen;
    for v in [
        &mut l.smtp,
        &mut l.submissions,
        &mut l.submission,
        &mut l.imaps,
        &mut l.pop3s,
        &mut l.panel,
    ] {
        off(v);
    }
    off(&mut config.delivery.smarthost);
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

/// A path as pages and `pecbox config show` print it: absolute, its folder without
/// `..` or symbolic links when that folder exists.
pub fn display_path(path: &Path) -> PathBuf {
    let canonical = path
        .parent()
        .and_then(|dir| {
            std::fs::canonicalize(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
            .ok()
        })
        .zip(path.file_name())
        .map(|(dir, name)| dir.join(name));
    canonical.unwrap_or_else(|| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// Whether two paths name one file (both must exist).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
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

    /// A factory file in `<tmp>/etc` naming `<tmp>/data`, and the override's path.
    fn layers(factory: &str, over: Option<&str>) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let file = dir.path().join("etc/pecbox.toml");
        std::fs::write(
            &file,
            format!("[provider]\nname = 'Fabbrica'\ndomains = ['pec.a.test', 'pec.b.test']\nhostname = 'mx.a.test'\n[storage]\ndata_dir = '../data'\n{factory}"),
        )
        .unwrap();
        let path = dir.path().join("data").join(OVERRIDE_FILE);
        if let Some(text) = over {
            std::fs::write(&path, text).unwrap();
        }
        (dir, file, path)
    }

    #[test]
    fn the_override_wins_key_by_key() {
        let (_dir, file, over) = layers(
            "[listen]\nsmtp = '0.0.0.0:25'\npop3s = '0.0.0.0:995'\n[delivery]\nmax_recipients = 10\nretry_secs = 5\n",
            Some("[provider]\nname = 'Sovrascritto'\n[listen]\npop3s = ''\npanel = '0.0.0.0:443'\n[delivery]\nretry_secs = 9\n[storage]\ncache_mb = 8\n"),
        );
        let c = Config::load(&file).unwrap();
        assert_eq!(c.provider.name, "Sovrascritto");
        assert_eq!(
            c.provider.hostname, "mx.a.test",
            "other keys of the table stay"
        );
        assert_eq!(c.provider.domains, ["pec.a.test", "pec.b.test"]);
        assert_eq!(c.listen.smtp.as_deref(), Some("0.0.0.0:25"));
        assert_eq!(c.listen.pop3s, None, "an empty string switches it off");
        assert_eq!(c.listen.panel.as_deref(), Some("0.0.0.0:443"));
        assert_eq!((c.delivery.max_recipients, c.delivery.retry_secs), (10, 9));
        assert_eq!(c.storage.cache_mb, 8);
        assert_eq!(c.data_dir(), file.parent().unwrap().join("../data"));
        assert_eq!(c.layers.overrides.as_ref().map(|(p, _)| p), Some(&over));
        assert!(!c.is_demo());
        let factory = c.factory_only().unwrap();
        assert_eq!(factory.provider.name, "Fabbrica");
        assert_eq!(factory.listen.pop3s.as_deref(), Some("0.0.0.0:995"));
    }

    #[test]
    fn nested_tables_merge_and_arrays_replace() {
        let (_dir, file, _) = layers(
            "[delivery]\nroutes = { 'pec.x.test' = 'x:25', 'pec.y.test' = 'y:25' }\ntls_ca = ['one.pem', 'two.pem']\n",
            Some("provider.domains = ['pec.c.test']\n[delivery.routes]\n'pec.y.test' = 'y2:25'\n'pec.z.test' = 'z:25'\n[delivery]\ntls_ca = ['three.pem']\n"),
        );
        let c = Config::load(&file).unwrap();
        let routes: Vec<(&str, &str)> = c
            .delivery
            .routes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            routes,
            [
                ("pec.x.test", "x:25"),
                ("pec.y.test", "y2:25"),
                ("pec.z.test", "z:25")
            ]
        );
        assert_eq!(c.provider.domains, ["pec.c.test"], "arrays replace whole");
        assert_eq!(c.delivery.tls_ca, [PathBuf::from("three.pem")]);
        // Relative paths of the override hang off the factory file's folder too.
        assert_eq!(
            c.resolve(&c.delivery.tls_ca[0]),
            file.parent().unwrap().join("three.pem")
        );

        let mut base: toml::Table =
            toml::from_str("a = 1\n[t]\nx = [1, 2]\n[t.u]\np = 1\nq = 2\n").unwrap();
        let over: toml::Table = toml::from_str("b = 2\n[t]\nx = [3]\n[t.u]\nq = 'z'\n").unwrap();
        merge(&mut base, &over);
        let want: toml::Table =
            toml::from_str("a = 1\nb = 2\n[t]\nx = [3]\n[t.u]\np = 1\nq = 'z'\n").unwrap();
        assert_eq!(base, want);
    }

    #[test]
    fn data_dir_is_refused_in_the_override() {
        let (_dir, file, over) = layers("", Some("[storage]\ndata_dir = '/elsewhere'\n"));
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(e.starts_with(&over.display().to_string()), "{e}");
        assert!(
            e.contains("data_dir") && e.contains(&file.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn a_broken_override_is_named() {
        let (_dir, file, over) = layers("", Some("[provider]\nname = 'x'\n\nhostname = \n"));
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: line 4:", over.display())),
            "{e}"
        );
        let (_dir, file, over) = layers("", Some("[provider]\nnme = 'x'\n"));
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&over.display().to_string()) && e.contains("nme"),
            "{e}"
        );
        let (_dir, file, over) = layers("", Some("[provider]\ndomains = []\n"));
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&over.display().to_string()) && e.contains("at least one PEC domain"),
            "{e}"
        );
        // A broken factory file is named as such, whatever the override says.
        let (_dir, file, _) = layers("[listen\n", Some("[provider]\nname = 'x'\n"));
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(e.starts_with(&file.display().to_string()), "{e}");
    }

    #[test]
    fn without_an_override_the_factory_stands_alone() {
        let (_dir, file, over) = layers("", None);
        let c = Config::load(&file).unwrap();
        assert!(c.layers.overrides.is_none());
        assert_eq!(
            c.override_path(),
            file.parent().unwrap().join("../data/pecbox.toml")
        );
        assert_eq!(display_path(&c.override_path()), over);
        assert_eq!(c.provider.name, "Fabbrica");
        // A factory file that is itself <data_dir>/pecbox.toml is one layer, not two.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(OVERRIDE_FILE);
        std::fs::write(&file, "[provider]\nname='x'\ndomains=['pec.x.test']\nhostname='mx'\n[storage]\ndata_dir='.'\n").unwrap();
        let c = Config::load(&file).unwrap();
        assert!(c.override_is_factory() && c.layers.overrides.is_none());
    }
}
