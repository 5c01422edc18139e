//! Administrative actions (interface.md §2: `mailbox …`, `index import|list`). The same
//! requests run in the daemon (arriving on control.sock) or, when no daemon runs, in the
//! command itself on the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{generate_password, hash_password};
use super::{index, unix_now};
use crate::config::Config;
use crate::registro::{Event, EventKind, Registro, RegistroError};
use crate::store::{Mailbox, OrdinaryMailPolicy, Store};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum AdminRequest {
    MailboxAdd {
        address: String,
        /// None: generate one and print it once.
        password: Option<String>,
        quota: Option<u64>,
    },
    MailboxList,
    MailboxPasswd {
        address: String,
        password: String,
    },
    MailboxRemove {
        address: String,
    },
    MailboxPolicy {
        address: String,
        policy: OrdinaryMailPolicy,
    },
    IndexImport {
        /// The file's bytes: LDIF text or a signed `.p7m`.
        contents: Vec<u8>,
        /// Trust anchors (DER) for a signed `.p7m`.
        anchors: Vec<Vec<u8>>,
    },
    IndexList,
    /// `pecbox log …`: the registro dei log.
    Log(LogRequest),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "log", rename_all = "kebab-case")]
pub enum LogRequest {
    Search {
        query: crate::registro::Query,
        json: bool,
    },
    Show {
        identificativo: String,
        json: bool,
    },
    Receipt {
        message_id: String,
    },
    Export {
        month: String,
    },
    Verify,
    Rotate {
        /// An injected clock (tests); default now.
        now: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminResponse {
    pub ok: bool,
    /// What to print on stdout (ok) or stderr (error).
    pub text: String,
    /// Bytes to write out (a receipt), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// A file written under the data folder for the caller to take and then remove
    /// (a month's export: too big to carry in an answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<std::path::PathBuf>,
}

impl AdminResponse {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            text: text.into(),
            data: None,
            file: None,
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            text: text.into(),
            data: None,
            file: None,
        }
    }
}

pub fn execute(store: &Store, config: &Config, request: AdminRequest) -> AdminResponse {
    let action = describe(&request);
    if let AdminRequest::Log(log) = request {
        return super::registro_admin::execute(store, config, log);
    }
    let response = match run(store, config, request) {
        Ok(text) => AdminResponse::ok(text),
        Err(text) => AdminResponse::error(text),
    };
    if !matches!(action.as_str(), "mailbox list" | "index list") {
        let outcome = if response.ok {
            "ok".to_string()
        } else {
            format!("failed: {}", response.text.trim_end())
        };
        let event = Event::new(EventKind::Amministrazione, outcome)
            .provider(&config.provider.name)
            .detail(action);
        let logged = Registro::open(store).and_then(|r| r.append(&event, chrono::Utc::now(), None));
        if let Err(e) = logged.and_then(|_| {
            store
                .flush()
                .map_err(|e| RegistroError::Storage(e.to_string()))
        }) {
            tracing::error!("the registro dei log could not record an administrative action: {e}");
        }
    }
    response
}

/// What an administrative request does, without secrets.
fn describe(request: &AdminRequest) -> String {
    match request {
        AdminRequest::MailboxAdd { address, .. } => format!("mailbox add {address}"),
        AdminRequest::MailboxList => "mailbox list".into(),
        AdminRequest::MailboxPasswd { address, .. } => format!("mailbox passwd {address}"),
        AdminRequest::MailboxRemove { address } => format!("mailbox remove {address}"),
        AdminRequest::MailboxPolicy { address, policy } => {
            format!("mailbox policy {address} {policy:?}")
        }
        AdminRequest::IndexImport { .. } => "index import".into(),
        AdminRequest::IndexList => "index list".into(),
        AdminRequest::Log(_) => "log".into(),
    }
}

fn run(store: &Store, config: &Config, request: AdminRequest) -> Result<String, String> {
    let e = |e: crate::store::StoreError| e.to_string();
    match request {
        AdminRequest::MailboxAdd {
            address,
            password,
            quota,
        } => {
            let address = check_address(config, &address)?;
            if store.mailbox(&address).map_err(e)?.is_some() {
                return Err(format!("mailbox {address} already exists"));
            }
            let (password, generated) = match password {
                Some(p) => (check_password(&p)?, false),
                None => (generate_password(), true),
            };
            store
                .add_mailbox(&Mailbox {
                    address: address.clone(),
                    password_hash: hash_password(&password)?,
                    quota,
                    disabled: false,
                    created: unix_now(),
                    ordinary_mail: OrdinaryMailPolicy::Refuse,
                })
                .map_err(e)?;
            store.flush().map_err(e)?;
            Ok(if generated {
                format!("created {address}\npassword: {password}\n")
            } else {
                format!("created {address}\n")
            })
        }
        AdminRequest::MailboxList => {
            let mut out = String::new();
            for m in store.mailboxes().map_err(e)? {
                if m.address == config.service_address() {
                    continue;
                }
                let used = store.usage(&m.address).map_err(e)?;
                let quota = m.quota.map_or("unlimited".to_string(), |q| format!("{q}"));
                let state = if m.disabled { "disabled" } else { "active" };
                let policy = match &m.ordinary_mail {
                    OrdinaryMailPolicy::Refuse => "ordinary-mail=refuse".to_string(),
                    OrdinaryMailPolicy::Anomalia => "ordinary-mail=anomalia".to_string(),
                    OrdinaryMailPolicy::Forward(to) => format!("ordinary-mail=forward:{to}"),
                };
                out.push_str(&format!(
                    "{}\t{state}\tused={used}\tquota={quota}\t{policy}\n",
                    m.address
                ));
            }
            Ok(out)
        }
        AdminRequest::MailboxPasswd { address, password } => {
            let mut m = existing(store, &address)?;
            m.password_hash = hash_password(&check_password(&password)?)?;
            store.put_mailbox(&m).map_err(e)?;
            store.flush().map_err(e)?;
            Ok(format!("password of {} changed\n", m.address))
        }
        AdminRequest::MailboxRemove { address } => {
            let m = existing(store, &address)?;
            if m.address == config.service_address() {
                return Err("the service mailbox cannot be removed".into());
            }
            store.remove_mailbox(&m.address).map_err(e)?;
            store.flush().map_err(e)?;
            Ok(format!("removed {}\n", m.address))
        }
        AdminRequest::MailboxPolicy { address, policy } => {
            let mut m = existing(store, &address)?;
            m.ordinary_mail = policy;
            store.put_mailbox(&m).map_err(e)?;
            store.flush().map_err(e)?;
            Ok(format!("{}: ordinary mail policy set\n", m.address))
        }
        AdminRequest::IndexImport { contents, anchors } => {
            let entries = if looks_like_ldif(&contents) {
                let text = String::from_utf8(contents)
                    .map_err(|_| "the LDIF file is not UTF-8".to_string())?;
                index::parse_ldif(&text).map_err(|e| e.to_string())?
            } else {
                index::parse_signed_ldif(&contents, &anchors)
                    .map_err(|e| e.to_string())?
                    .0
            };
            if entries.is_empty() {
                return Err("no provider entry in the file".into());
            }
            let mut out = String::new();
            for entry in &entries {
                store.put_provider(entry).map_err(e)?;
                out.push_str(&format!(
                    "imported {} ({})\n",
                    entry.name,
                    entry.domains.join(", ")
                ));
            }
            store.flush().map_err(e)?;
            Ok(out)
        }
        AdminRequest::Log(_) => Err("log requests are handled apart".into()),
        AdminRequest::IndexList => {
            let mut out = String::new();
            for p in store.providers().map_err(e)? {
                out.push_str(&format!(
                    "{}\tdomains={}\tmailReceipt={}\tcertificates={}\n",
                    p.name,
                    p.domains.join(","),
                    p.mail_receipt,
                    p.certificate_hashes.join(",")
                ));
            }
            Ok(out)
        }
    }
}

fn looks_like_ldif(contents: &[u8]) -> bool {
    std::str::from_utf8(contents).is_ok_and(|t| {
        t.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with("version:") || l.starts_with("dn:"))
    })
}

fn existing(store: &Store, address: &str) -> Result<Mailbox, String> {
    store
        .mailbox(address)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no mailbox {address}"))
}

fn check_address(config: &Config, address: &str) -> Result<String, String> {
    let address = address.trim().to_ascii_lowercase();
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(format!("{address} is not an e-mail address"));
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if !local_ok {
        return Err(format!("{address}: invalid local part"));
    }
    if !config.manages(domain) {
        return Err(format!(
            "{domain} is not a domain of this provider (managed: {})",
            config.provider.domains.join(", ")
        ));
    }
    Ok(address)
}

fn check_password(password: &str) -> Result<String, String> {
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        return Err("the password must have at least 8 characters".into());
    }
    Ok(password.to_string())
}

/// `10M`, `2G`, `512K` or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text}: not a size (e.g. 500M, 2G)"))?;
    let factor: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        _ => return Err(format!("{text}: unknown unit {unit} (use K, M or G)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5T").is_err());
    }

    #[test]
    fn addresses_of_managed_domains_only() {
        let c = Config::parse(crate::config::DEMO, "demo").unwrap();
        assert_eq!(
            check_address(&c, " Carol@PEC.localhost").unwrap(),
            "carol@pec.localhost"
        );
        assert!(check_address(&c, "carol@gmail.com")
            .unwrap_err()
            .contains("not a domain"));
        assert!(check_address(&c, "no-at-sign").is_err());
        assert!(check_address(&c, "a..b@pec.localhost").is_err());
        assert!(check_password("short").is_err());
    }
}
