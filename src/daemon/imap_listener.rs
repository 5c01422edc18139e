//! The `imaps` listener: [`crate::imap::serve`] over the provider's store and TLS
//! identity, logins checked (and throttled) by the provider core.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::imap::{ImapAuth, ImapLimits};
use crate::provider::auth::LoginError;
use crate::provider::Provider;

struct ProviderImap(Arc<Provider>);

impl ImapAuth for ProviderImap {
    async fn authenticate(
        &self,
        peer: SocketAddr,
        user: &str,
        password: &str,
    ) -> Result<String, LoginError> {
        Provider::login(&self.0, "imap", peer.ip(), user, password).await
    }
}

pub fn spawn(
    listener: TcpListener,
    provider: &Arc<Provider>,
    shutdown: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) {
    let limits = ImapLimits {
        max_message_bytes: provider.config.delivery.max_message_bytes,
        max_sessions: provider.config.limits.connections,
        max_sessions_per_address: provider.config.limits.connections_per_address,
        pre_auth_timeout: provider.config.limits.pre_auth_timeout(),
        ..ImapLimits::default()
    };
    tasks.spawn(crate::imap::serve(
        listener,
        provider.identity.tls_server.clone(),
        provider.store.clone(),
        Arc::new(ProviderImap(provider.clone())),
        limits,
        shutdown,
    ));
}
