//! Mailbox passwords (argon2) and failed-login throttling per IP and per account.
//! Lockout-free: repeated failures slow the answers down instead of locking the holder out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
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

/// Remembers recent failures and tells how long to wait before answering.
#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

const WINDOW: Duration = Duration::from_secs(900);
const FREE_FAILURES: u32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(8);

impl Throttle {
    /// The delay to apply before answering a login attempt from `ip` for `account`.
    pub fn delay(&self, ip: IpAddr, account: &str) -> Duration {
        let failures = self.failures.lock().map(|m| {
            let count = |k: &str| {
                m.get(k)
                    .filter(|(_, at)| at.elapsed() < WINDOW)
                    .map_or(0, |(n, _)| *n)
            };
            count(&ip_key(ip)).max(count(&account_key(account)))
        });
        let n = failures.unwrap_or(0);
        if n < FREE_FAILURES {
            return Duration::ZERO;
        }
        let exp = (n - FREE_FAILURES).min(4);
        (Duration::from_millis(500) * 2u32.pow(exp)).min(MAX_DELAY)
    }

    pub fn failed(&self, ip: IpAddr, account: &str) {
        if let Ok(mut m) = self.failures.lock() {
            if m.len() > 100_000 {
                m.retain(|_, (_, at)| at.elapsed() < WINDOW);
            }
            for key in [ip_key(ip), account_key(account)] {
                let entry = m.entry(key).or_insert((0, Instant::now()));
                if entry.1.elapsed() >= WINDOW {
                    *entry = (0, Instant::now());
                }
                entry.0 += 1;
                entry.1 = Instant::now();
            }
        }
    }

    pub fn succeeded(&self, ip: IpAddr, account: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(&account_key(account));
            m.remove(&ip_key(ip));
        }
    }
}

fn ip_key(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

fn account_key(account: &str) -> String {
    format!("acct:{}", account.to_ascii_lowercase())
}

impl super::Provider {
    /// A holder's login on any protocol: throttled, argon2-checked off the async
    /// threads, logged without the password. Returns the mailbox address.
    pub async fn login(
        provider: &std::sync::Arc<super::Provider>,
        protocol: &'static str,
        peer: IpAddr,
        user: &str,
        password: &str,
    ) -> Result<String, String> {
        let delay = provider.throttle.delay(peer, user);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let p = provider.clone();
        let (user_owned, password) = (user.trim().to_ascii_lowercase(), password.to_string());
        let outcome = tokio::task::spawn_blocking(move || match p.store.mailbox(&user_owned) {
            Ok(Some(m)) if !m.disabled && verify_password(&password, &m.password_hash) => {
                Ok(m.address)
            }
            Ok(_) => Err("authentication failed".to_string()),
            Err(e) => Err(format!("temporary failure: {e}")),
        })
        .await
        .unwrap_or_else(|_| Err("temporary failure".into()));
        let event = crate::registro::Event::new(
            crate::registro::EventKind::Login,
            if outcome.is_ok() { "ok" } else { "failed" },
        )
        .sender(user.trim().to_ascii_lowercase())
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
            Ok(address) => {
                provider.throttle.succeeded(peer, address);
                tracing::info!(user = %address, %peer, protocol, "login");
            }
            Err(_) => {
                provider.throttle.failed(peer, user);
                tracing::warn!(user, %peer, protocol, "failed login");
            }
        }
        outcome
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
        assert!(a.starts_with("$argon2"));
        assert!(verify_password("segreto", &a));
        assert!(!verify_password("Segreto", &a));
        assert!(!verify_password("segreto", "not a hash"));
    }

    #[test]
    fn generated_passwords_are_long_and_varied() {
        let p = generate_password();
        assert_eq!(p.len(), 20);
        assert_ne!(p, generate_password());
    }

    #[test]
    fn failures_slow_down_then_success_resets() {
        let t = Throttle::default();
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
        t.succeeded(ip, "a@x");
        assert_eq!(t.delay(ip, "a@x"), Duration::ZERO);
    }
}
