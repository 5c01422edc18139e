//! The provider core: punto di accesso (`access`), punto di ricezione (`reception`),
//! punto di consegna (`delivery`), the outbound queue (`outbound`) and the timeout
//! notices (`timeouts`), over the store. Protocol servers call in here; nothing in here
//! knows about sockets.

pub mod access;
pub mod admin;
pub mod auth;
pub mod delivery;
pub mod identity;
pub mod index;
pub mod outbound;
pub mod reception;
pub mod registro_admin;
pub mod timeouts;
mod writes;

use std::sync::Arc;

use chrono::Utc;

use crate::config::Config;
use crate::pec::daticert::TipoDestinatario;
use crate::pec::messages::{Gestore, UnsignedMessage};
use crate::pec::timestamp::PecTime;
use crate::store::{Mailbox, OrdinaryMailPolicy, ProviderEntry, Store, StoreError};
use identity::Identity;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("{0}")]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Registro(#[from] crate::registro::RegistroError),
}

/// One running provider: its configuration, identity and store.
pub struct Provider {
    pub config: Config,
    pub store: Store,
    pub identity: Identity,
    pub gestore: Gestore,
    pub auth: auth::Authenticator,
    /// Wakes the outbound queue when something was queued.
    pub queue_wakeup: tokio::sync::Notify,
    pub client_tls: Arc<rustls::ClientConfig>,
    pub resolver: crate::smtp::DnsResolver,
    pub registro: crate::registro::Registro,
}

impl Provider {
    /// Opens the provider over an open store: loads keys and certificates, refreshes
    /// its own entry in the providers' index and its service mailbox.
    pub fn open(config: Config, store: Store) -> Result<Arc<Self>, CoreError> {
        let identity = identity::load(&config)?;
        let mut anchors = vec![identity.ca_pem.clone()];
        for path in &config.delivery.tls_ca {
            let path = config.resolve(path);
            let pem =
                std::fs::read_to_string(&path).map_err(|source| identity::IdentityError::Io {
                    path: path.clone(),
                    source,
                })?;
            anchors.push(pem);
        }
        let client_tls = crate::tls::client_config(&anchors, true).map_err(|e| {
            identity::IdentityError::Invalid {
                path: config.certs_dir(),
                reason: e.to_string(),
            }
        })?;
        auth::set_argon2_slots(config.limits.login_slots());
        let authenticator = auth::Authenticator::new(&config.limits);
        let gestore = Gestore {
            name: config.provider.name.clone(),
            service_address: config.service_address(),
        };
        let provider = Self {
            config,
            identity,
            gestore,
            auth: authenticator,
            queue_wakeup: tokio::sync::Notify::new(),
            client_tls,
            resolver: crate::smtp::DnsResolver::new(),
            registro: crate::registro::Registro::open(&store)?,
            store,
        };
        provider.store.put_provider(&provider.own_index_entry())?;
        provider.ensure_service_mailbox()?;
        Ok(Arc::new(provider))
    }

    /// This provider's entry of the providers' index (`pecbox index self`).
    pub fn own_index_entry(&self) -> ProviderEntry {
        index::self_entry(
            &self.config.provider.name,
            &self.config.provider.domains,
            &self.config.service_address(),
            self.identity.signer.certificate_der(),
        )
    }

    /// The casella di servizio receives presa in carico and rilevazione virus notices;
    /// nobody logs in to it.
    fn ensure_service_mailbox(&self) -> Result<(), StoreError> {
        let address = self.config.service_address();
        if self.store.mailbox(&address)?.is_none() {
            self.store.add_mailbox(&Mailbox {
                address,
                password_hash: String::new(),
                quota: None,
                disabled: true,
                created: Utc::now().timestamp(),
                ordinary_mail: OrdinaryMailPolicy::Refuse,
            })?;
        }
        Ok(())
    }

    /// The riferimento temporale of a new transaction.
    pub fn now(&self) -> PecTime {
        PecTime::now()
    }

    /// A new PEC identificativo or receipt Message-ID: unique, opaque, `…@<domain>`.
    pub fn new_id(&self, kind: &str) -> Result<String, StoreError> {
        let n = self.store.next_id()?;
        Ok(format!(
            "pecbox.{}.{kind}.{n:010}@{}",
            Utc::now().format("%Y%m%d%H%M%S"),
            self.config.provider.domains[0]
        ))
    }

    pub fn sign(&self, message: &UnsignedMessage) -> Result<Vec<u8>, CoreError> {
        crate::smime::build_signed_message(
            &self.identity.signer,
            &message.header_block(),
            &message.entity,
            message.date.utc(),
        )
        .map_err(|e| CoreError::Signing(e.to_string()))
    }

    /// [`Provider::sign`] in the message's own buffer (no copy of a large entity);
    /// also the entity's offset in the signed message.
    pub fn sign_owned(&self, message: UnsignedMessage) -> Result<(Vec<u8>, usize), CoreError> {
        let head = message.header_block();
        crate::smime::build_signed_message_owned(
            &self.identity.signer,
            &head,
            message.entity,
            message.date.utc(),
        )
        .map_err(|e| CoreError::Signing(e.to_string()))
    }

    pub fn is_local(&self, address: &str) -> bool {
        domain_of(address).is_some_and(|d| self.config.manages(d))
    }

    /// certificato when the recipient's domain is in the providers' index (pec-rules §5.4).
    pub fn recipient_tipo(&self, address: &str) -> TipoDestinatario {
        let known = domain_of(address).is_some_and(|d| {
            self.config.manages(d) || matches!(self.store.provider_for_domain(d), Ok(Some(_)))
        });
        if known {
            TipoDestinatario::Certificato
        } else {
            TipoDestinatario::Esterno
        }
    }
}

pub fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

pub fn unix_now() -> i64 {
    Utc::now().timestamp()
}
