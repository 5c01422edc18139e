//! POP3 logins checked by the provider core (argon2, throttled).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::pop3::Pop3Auth;
use crate::provider::auth::LoginError;
use crate::provider::Provider;

pub struct ProviderPop3(pub Arc<Provider>);

impl Pop3Auth for ProviderPop3 {
    async fn authenticate(
        &self,
        peer: SocketAddr,
        user: &str,
        password: &str,
    ) -> Result<String, LoginError> {
        Provider::login(&self.0, "pop3", peer.ip(), user, password).await
    }
}
