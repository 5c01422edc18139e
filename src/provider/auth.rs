//! Logins, the same for SMTP, IMAP, POP3 and the panel: passwords (argon2) checked a
//! bounded number at a time, failures throttled per normalised account and per source
//! address, and as much work for an unknown account as for a real one.
//!
//! An account is only ever slowed down (a third party must never lock its owner out);
//! only a source address that keeps failing is refused outright for a while.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::config::Limits;
use crate::listener::address_key;

/// Why a login did not succeed; protocol adapters render it (535 / 454, NO, -ERR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Wrong user or password (never says which).
    #[error("authentication failed")]
    Rejected,
    /// The source address failed too often; it is refused for a while.
    #[error("too many failed logins from this address, try again later")]
    AddressBlocked,
    /// Nothing was decided: the box is busy or the store failed. Try again.
    #[error("temporary failure: {0}")]
    Temporary(String),
}

/// argon2id with 12 MiB, 3 passes, 1 lane: OWASP's second recommended setting, which
/// costs a Raspberry Pi 4 about as much time as its first (19 MiB, 2 passes) with 40 %
/// less memory per check. Hashes made with other parameters still verify, and a
/// mailbox's is remade with these at its next login.
pub const ARGON2_M_KIB: u32 = 12 * 1024;
pub const ARGON2_T: u32 = 3;
pub const ARGON2_P: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).unwrap_or_else(|_| Params::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Every argon2 run in the process, whoever asks (logins, password changes, the
/// wizard), waits for one of these: memory for hashing stays bounded.
struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
}

static ARGON2_SLOTS: OnceLock<Gate> = OnceLock::new();

/// Sets how many argon2 runs may go at once (`[limits] login_concurrency`); only the
/// first call counts, and only before any password was checked.
pub fn set_argon2_slots(n: usize) {
    let _ = ARGON2_SLOTS.set(Gate {
        free: Mutex::new(n.max(1)),
        freed: Condvar::new(),
    });
}

fn with_argon2_slot<T>(f: impl FnOnce() -> T) -> T {
    let gate = ARGON2_SLOTS.get_or_init(|| Gate {
        free: Mutex::new(Limits::default().login_slots()),
        freed: Condvar::new(),
    });
    {
        let mut free = gate.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = gate.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }
    struct Release<'a>(&'a Gate);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            self.0.freed.notify_one();
        }
    }
    let _release = Release(gate);
    f()
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    with_argon2_slot(|| {
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
}

/// Checks a password against a PHC string made with any argon2 parameters.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    with_argon2_slot(|| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Whether a stored hash was made with other parameters than today's.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return true;
    };
    hash.algorithm.as_str() != "argon2id"
        || (params.m_cost(), params.t_cost(), params.p_cost()) != (ARGON2_M_KIB, ARGON2_T, ARGON2_P)
}

/// A hash of no one's password, checked when the account does not exist so that the
/// answer takes as long as for a real account.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&generate_password()).unwrap_or_default())
}

/// A strong generated password: 20 characters from an unambiguous alphabet.
pub fn generate_password() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    // SystemRandom only fails if the OS has no randomness at all.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// The one spelling of an account name that every protocol throttles and looks up:
/// trimmed, lower case, the domain in its ASCII (IDNA) form.
pub fn normalize_account(user: &str) -> String {
    let user = user.trim().to_lowercase();
    match user.rsplit_once('@') {
        Some((local, domain)) => match idna::domain_to_ascii(domain) {
            Ok(ascii) if !ascii.is_empty() => format!("{local}@{ascii}"),
            _ => user,
        },
        None => user,
    }
}

/// Remembers recent failures and tells how long to wait before answering.
pub struct Throttle {
    failures: Mutex<HashMap<Key, (u32, Instant)>>,
    address_failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Account(String),
}

const WINDOW: Duration = Duration::from_secs(900);
const FREE_FAILURES: u32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(8);

impl Default for Throttle {
    fn default() -> Self {
        Self::new(Limits::default().address_failures)
    }
}

impl Throttle {
    /// `address_failures`: failures from one address within 15 minutes before it is
    /// refused outright until 15 minutes pass without one.
    pub fn new(address_failures: u32) -> Self {
        Self {
            failures: Mutex::default(),
            address_failures: address_failures.max(1),
        }
    }

    fn count(&self, key: &Key) -> u32 {
        let m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        m.get(key)
            .filter(|(_, at)| at.elapsed() < WINDOW)
            .map_or(0, |(n, _)| *n)
    }

    /// Whether `ip` is refused outright.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        self.count(&Key::Address(address_key(ip))) >= self.address_failures
    }

    /// The delay before answering an attempt for `account` (normalised) from `ip`.
    pub fn delay(&self, ip: IpAddr, account: &str) -> Duration {
        let n = self
            .count(&Key::Address(address_key(ip)))
            .max(self.count(&Key::Account(account.to_string())));
        if n < FREE_FAILURES {
            return Duration::ZERO;
        }
        let exp = (n - FREE_FAILURES).min(4);
        (Duration::from_millis(500) * 2u32.pow(exp)).min(MAX_DELAY)
    }

    pub fn failed(&self, ip: IpAddr, account: &str) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            m.retain(|_, (_, at)| at.elapsed() < WINDOW);
        }
        for key in [
            Key::Address(address_key(ip)),
            Key::Account(account.to_string()),
        ] {
            let entry = m.entry(key).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= WINDOW {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
            entry.1 = Instant::now();
        }
    }

    pub fn succeeded(&self, ip: IpAddr, account: &str) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&Key::Account(account.to_string()));
        m.remove(&Key::Address(address_key(ip)));
    }
}

/// Locks that serialise the attempts for one key (an account, an address): a fixed
/// table, so a flood of names costs no memory.
struct Stripes(Vec<tokio::sync::Mutex<()>>);

impl Stripes {
    fn new(n: usize) -> Self {
        Self((0..n).map(|_| tokio::sync::Mutex::new(())).collect())
    }

    fn of(&self, key: &impl Hash) -> &tokio::sync::Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        &self.0[(h.finish() as usize) % self.0.len()]
    }
}

/// The login machinery of one provider.
pub struct Authenticator {
    pub throttle: Throttle,
    checks: Arc<tokio::sync::Semaphore>,
    queue_wait: Duration,
    accounts: Stripes,
    addresses: Stripes,
}

impl Authenticator {
    pub fn new(limits: &Limits) -> Self {
        Self {
            throttle: Throttle::new(limits.address_failures),
            checks: Arc::new(tokio::sync::Semaphore::new(limits.login_slots())),
            queue_wait: Duration::from_secs(limits.login_queue_secs.max(1)),
            accounts: Stripes::new(256),
            addresses: Stripes::new(256),
        }
    }

    /// One attempt: `account` (normalised) from `peer`, checked against the hash
    /// `lookup` finds (None: no such account, or not one that may log in). Attempts for
    /// one account, and from one address, run one at a time; each waits out its
    /// throttle delay first. `Ok` carries what `lookup` returned with the hash.
    pub async fn check<T: Send + 'static>(
        &self,
        peer: IpAddr,
        account: &str,
        password: &str,
        lookup: impl FnOnce() -> Result<Option<(String, T)>, String> + Send + 'static,
    ) -> Result<(T, String), LoginError> {
        if self.throttle.blocked(peer) {
            return Err(LoginError::AddressBlocked);
        }
        // Each turn is waited for a bounded time: a queue of attempts (a distributed
        // attack on one account) gets a temporary failure, never an endless wait.
        let busy = || LoginError::Temporary("too many logins at once".into());
        let turns = async {
            let address = self.addresses.of(&address_key(peer)).lock().await;
            let account = self.accounts.of(&account).lock().await;
            (address, account)
        };
        let _turns = tokio::time::timeout(self.queue_wait, turns)
            .await
            .map_err(|_| busy())?;
        let delay = self.throttle.delay(peer, account);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let permit =
            tokio::time::timeout(self.queue_wait, self.checks.clone().acquire_owned()).await;
        let Ok(Ok(permit)) = permit else {
            return Err(busy());
        };
        let password = password.to_string();
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let found = lookup()?;
            let phc = found.as_ref().map_or(dummy_hash(), |(h, _)| h.as_str());
            let ok = verify_password(&password, phc);
            Ok::<_, String>(match found {
                Some((phc, value)) if ok => Some((value, phc)),
                _ => None,
            })
        })
        .await
        .map_err(|e| LoginError::Temporary(e.to_string()))?
        .map_err(LoginError::Temporary)?;
        match outcome {
            Some((value, phc)) => {
                self.throttle.succeeded(peer, account);
                Ok((value, phc))
            }
            None => {
                self.throttle.failed(peer, account);
                Err(LoginError::Rejected)
            }
        }
    }
}

impl super::Provider {
    /// A holder's login on any protocol: throttled, argon2-checked off the async
    /// threads, logged without the password. Returns the mailbox address.
    pub async fn login(
        provider: &Arc<super::Provider>,
        protocol: &'static str,
        peer: IpAddr,
        user: &str,
        password: &str,
    ) -> Result<String, LoginError> {
        let account = normalize_account(user);
        let p = provider.clone();
        let a = account.clone();
        let outcome = provider
            .auth
            .check(peer, &account, password, move || {
                match p.store.mailbox(&a).map_err(|e| e.to_string())? {
                    Some(m) if !m.disabled && !m.password_hash.is_empty() => {
                        Ok(Some((m.password_hash.clone(), m)))
                    }
                    _ => Ok(None),
                }
            })
            .await;
        if let Ok((mailbox, _)) = &outcome {
            if needs_rehash(&mailbox.password_hash) {
                provider.rehash(mailbox.clone(), password.to_string()).await;
            }
        }
        let outcome = outcome.map(|(m, _)| m.address);
        let result = match &outcome {
            Ok(_) => "ok",
            Err(LoginError::Rejected) => "failed",
            Err(LoginError::AddressBlocked) => "blocked",
            Err(LoginError::Temporary(_)) => "temporary failure",
        };
        let event = crate::registro::Event::new(crate::registro::EventKind::Login, result)
            .sender(account.clone())
            .provider(&provider.gestore.name)
            .detail(format!("{protocol} from {peer}"));
        let p = provider.clone();
        let logged = tokio::task::spawn_blocking(move || {
            p.registro.append(&event, chrono::Utc::now(), None)
        })
        .await;
        if !matches!(logged, Ok(Ok(_))) {
            tracing::error!("the registro dei log could not record a login");
        }
        match &outcome {
            Ok(address) => tracing::info!(user = %address, %peer, protocol, "login"),
            Err(e) => tracing::warn!(user = %account, %peer, protocol, "failed login: {e}"),
        }
        outcome
    }

    /// A hash made with older argon2 parameters, remade with today's after a login
    /// proved the password (best effort: the old one keeps working).
    async fn rehash(self: &Arc<Self>, mailbox: crate::store::Mailbox, password: String) {
        let p = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let hash = hash_password(&password)?;
            let mut updated = mailbox;
            let old = std::mem::replace(&mut updated.password_hash, hash);
            // only if nobody changed the password meanwhile
            match p.store.mailbox(&updated.address) {
                Ok(Some(now)) if now.password_hash == old => {
                    p.store.put_mailbox(&updated).map_err(|e| e.to_string())
                }
                _ => Ok(()),
            }
        })
        .await;
        if !matches!(done, Ok(Ok(()))) {
            tracing::warn!("a password hash could not be brought to today's parameters");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("segreto").unwrap();
        let b = hash_password("segreto").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"), "{a}");
        assert!(verify_password("segreto", &a));
        assert!(!verify_password("Segreto", &a));
        assert!(!verify_password("segreto", "not a hash"));
        assert!(!needs_rehash(&a));
    }

    #[test]
    fn hashes_of_older_parameters_verify_and_ask_for_a_rehash() {
        // the crate's defaults, which pecbox used before (m=19456, t=2)
        let salt = SaltString::generate(&mut OsRng);
        let old = Argon2::default()
            .hash_password(b"segreto", &salt)
            .unwrap()
            .to_string();
        assert!(old.contains("m=19456,t=2"), "{old}");
        assert!(verify_password("segreto", &old));
        assert!(needs_rehash(&old));
    }

    #[test]
    fn generated_passwords_are_long_and_varied() {
        let p = generate_password();
        assert_eq!(p.len(), 20);
        assert_ne!(p, generate_password());
    }

    #[test]
    fn account_names_are_normalised() {
        assert_eq!(
            normalize_account(" Alice@Pec.Example "),
            "alice@pec.example"
        );
        assert_eq!(
            normalize_account("alice@pec.example\t"),
            "alice@pec.example"
        );
        assert_eq!(
            normalize_account("mario@PEC.CAFFÈ.it"),
            "mario@pec.xn--caff-8oa.it"
        );
        assert_eq!(normalize_account("admin"), "admin");
    }

    #[test]
    fn failures_slow_down_then_success_resets() {
        let t = Throttle::new(100);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(t.delay(ip, "a@x"), Duration::ZERO);
            t.failed(ip, "a@x");
        }
        assert!(t.delay(ip, "a@x") > Duration::ZERO);
        assert!(
            t.delay("192.0.2.8".parse().unwrap(), "a@x") > Duration::ZERO,
            "per account"
        );
        assert!(t.delay(ip, "b@x") > Duration::ZERO, "per IP");
        for _ in 0..20 {
            t.failed(ip, "a@x");
        }
        assert!(t.delay(ip, "a@x") <= MAX_DELAY);
        assert!(
            !t.blocked("192.0.2.8".parse().unwrap()),
            "accounts never block"
        );
        t.succeeded(ip, "a@x");
        assert_eq!(t.delay(ip, "a@x"), Duration::ZERO);
    }

    #[test]
    fn only_an_address_that_keeps_failing_is_blocked() {
        let t = Throttle::new(5);
        let bad: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..5 {
            assert!(!t.blocked(bad));
            t.failed(bad, &format!("u{i}@x"));
        }
        assert!(t.blocked(bad));
        assert!(!t.blocked("192.0.2.8".parse().unwrap()));
    }
}
