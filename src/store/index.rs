//! The providers' index, with secondary keys domain → name and certificate hash → name.

use super::kv::{decode, Kv};
use super::{keys, ProviderEntry, Store, StoreError, Txn};

fn domain_keys(entry: &ProviderEntry) -> impl Iterator<Item = Vec<u8>> + '_ {
    entry
        .domains
        .iter()
        .map(|d| keys::domain_name(d))
        .filter(|d| !d.is_empty())
        .map(|d| keys::domain(&d))
}

fn hash_keys(entry: &ProviderEntry) -> impl Iterator<Item = Vec<u8>> + '_ {
    entry
        .certificate_hashes
        .iter()
        .map(|h| h.to_lowercase())
        .filter(|h| !h.is_empty())
        .map(|h| keys::certificate_hash(&h))
}

/// Follows a secondary key. A stale pointer (left by a corrupt entry that was replaced)
/// is ignored thanks to `lists`: the entry must itself list what was looked up.
fn lookup(
    kv: &mut impl Kv,
    secondary: &[u8],
    lists: impl Fn(&ProviderEntry) -> bool,
) -> Result<Option<ProviderEntry>, StoreError> {
    let Some(name) = kv.get(secondary)? else {
        return Ok(None);
    };
    let key = keys::provider(&String::from_utf8_lossy(&name));
    match kv.get(&key)? {
        Some(bytes) => {
            let entry: ProviderEntry = decode(&key, &bytes)?;
            Ok(lists(&entry).then_some(entry))
        }
        None => Ok(None),
    }
}

impl Txn<'_> {
    /// Adds or replaces the provider named `entry.name`, re-pointing its secondary keys.
    pub fn put_provider(&mut self, entry: &ProviderEntry) -> Result<(), StoreError> {
        self.unindex(&entry.name)?;
        let name = entry.name.as_bytes();
        for key in domain_keys(entry).chain(hash_keys(entry)) {
            self.put(key, name.to_vec())?;
        }
        self.put_json(keys::provider(&entry.name), entry)
    }

    /// Removes the provider; false if there was none.
    pub fn remove_provider(&mut self, name: &str) -> Result<bool, StoreError> {
        self.unindex(name)?;
        Ok(self.del(keys::provider(name))?.is_some())
    }

    /// Drops the secondary keys of the stored entry `name` that still point at it.
    fn unindex(&mut self, name: &str) -> Result<(), StoreError> {
        let key = keys::provider(name);
        let Some(bytes) = self.get(&key)? else {
            return Ok(());
        };
        // A corrupt entry must stay replaceable: its keys are then left, and `lookup`
        // ignores them.
        let Ok(old) = decode::<ProviderEntry>(&key, &bytes) else {
            return Ok(());
        };
        for k in domain_keys(&old).chain(hash_keys(&old)) {
            if self.get(&k)?.is_some_and(|v| v == name.as_bytes()) {
                self.del(k)?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Adds or replaces the provider named `entry.name`.
    pub fn put_provider(&self, entry: &ProviderEntry) -> Result<(), StoreError> {
        self.atomically(|t| t.put_provider(entry))
    }

    /// All providers, sorted by name.
    pub fn providers(&self) -> Result<Vec<ProviderEntry>, StoreError> {
        Ok(self
            .scan_json(&keys::providers())?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    pub fn remove_provider(&self, name: &str) -> Result<bool, StoreError> {
        self.atomically(|t| t.remove_provider(name))
    }

    /// The provider managing `domain` (case-insensitive).
    pub fn provider_for_domain(&self, domain: &str) -> Result<Option<ProviderEntry>, StoreError> {
        let wanted = keys::domain_name(domain);
        lookup(&mut self.direct(), &keys::domain(&wanted), |e| {
            e.domains.iter().any(|d| keys::domain_name(d) == wanted)
        })
    }

    /// The provider owning the certificate with this SHA-1 (hex, case-insensitive).
    pub fn provider_for_certificate_hash(
        &self,
        sha1_hex: &str,
    ) -> Result<Option<ProviderEntry>, StoreError> {
        let wanted = sha1_hex.to_lowercase();
        lookup(&mut self.direct(), &keys::certificate_hash(&wanted), |e| {
            e.certificate_hashes
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&wanted))
        })
    }
}
