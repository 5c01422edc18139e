//! The provider core behind the SMTP listeners: authentication for the punto di accesso,
//! relay rules for the punto di ricezione, and DATA handed to `submit` or `receive`.

use std::sync::Arc;

use crate::provider::access::Submission;
use crate::provider::auth::LoginError;
use crate::provider::reception::Inbound;
use crate::provider::Provider;
use crate::smtp::{Envelope, Reply, Role, SessionInfo, SmtpBackend};

pub struct ProviderSmtp(pub Arc<Provider>);

impl ProviderSmtp {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Provider) -> T + Send + 'static,
    ) -> Result<T, Reply> {
        let p = self.0.clone();
        tokio::task::spawn_blocking(move || f(&p))
            .await
            .map_err(|_| Reply::new(451, "4.3.0", "internal error, try again later"))
    }
}

fn valid_address(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && (domain.contains('.') || domain == "localhost")
                && !domain.starts_with('.')
                && address.len() <= 254
                && !address.contains(char::is_whitespace)
        }
        None => false,
    }
}

impl SmtpBackend for ProviderSmtp {
    async fn authenticate(
        &self,
        session: &SessionInfo,
        user: &str,
        password: &str,
    ) -> Result<String, Reply> {
        Provider::login(&self.0, "smtp", session.peer.ip(), user, password)
            .await
            .map_err(|why| match why {
                LoginError::Rejected => {
                    Reply::new(535, "5.7.8", "authentication credentials invalid")
                }
                LoginError::AddressBlocked => Reply::new(
                    454,
                    "4.7.0",
                    "too many failed logins from your address, try again later",
                ),
                LoginError::Temporary(_) => {
                    Reply::new(454, "4.7.0", "temporary authentication failure")
                }
            })
    }

    async fn mail_from(
        &self,
        session: &SessionInfo,
        reverse_path: &str,
        size: Option<u64>,
    ) -> Result<(), Reply> {
        if let Some(size) = size {
            if size > self.0.config.delivery.max_message_bytes {
                return Err(Reply::new(552, "5.3.4", "message size exceeds the limit"));
            }
        }
        match session.role {
            Role::Reception => Ok(()),
            Role::Submission | Role::Submissions => {
                let user = session.authenticated.as_deref().unwrap_or("");
                if reverse_path.eq_ignore_ascii_case(user) {
                    Ok(())
                } else {
                    Err(Reply::new(
                        553,
                        "5.7.1",
                        format!("sender <{reverse_path}> is not your mailbox <{user}>"),
                    ))
                }
            }
        }
    }

    async fn rcpt_to(
        &self,
        session: &SessionInfo,
        _envelope: &Envelope,
        forward_path: &str,
    ) -> Result<(), Reply> {
        if !valid_address(forward_path) {
            return Err(Reply::new(
                501,
                "5.1.3",
                format!("bad recipient address syntax <{forward_path}>"),
            ));
        }
        match session.role {
            Role::Reception if !self.0.is_local(forward_path) => Err(Reply::new(
                550,
                "5.7.1",
                format!("relaying denied: {forward_path} is not a domain of this provider"),
            )),
            _ => Ok(()),
        }
    }

    async fn data(&self, session: &SessionInfo, envelope: Envelope, message: Vec<u8>) -> Reply {
        match session.role {
            Role::Reception => {
                let result = self
                    .blocking(move |p| p.receive(&envelope.mail_from, &envelope.rcpt_to, &message))
                    .await;
                match result {
                    Ok(Ok(Inbound::Accepted)) => Reply::ok("message accepted"),
                    Ok(Ok(Inbound::Refused {
                        code,
                        enhanced,
                        text,
                    })) => Reply::new(code, enhanced, text),
                    Ok(Err(e)) => {
                        tracing::error!("reception failed: {e}");
                        Reply::new(451, "4.3.0", "temporary failure, try again later")
                    }
                    Err(reply) => reply,
                }
            }
            Role::Submission | Role::Submissions => {
                let sender = session.authenticated.clone().unwrap_or_default();
                let result = self
                    .blocking(move |p| {
                        p.submit(&sender, &envelope.mail_from, &envelope.rcpt_to, message)
                    })
                    .await;
                match result {
                    Ok(Ok(Submission::Accepted { identificativo })) => {
                        Reply::ok(format!("accepted, identificativo {identificativo}"))
                    }
                    Ok(Ok(Submission::Refused { reason })) => Reply::new(
                        550,
                        "5.7.1",
                        format!("not accepted: {reason} (avviso di non accettazione sent)"),
                    ),
                    Ok(Err(e)) => {
                        tracing::error!("submission failed: {e}");
                        Reply::new(451, "4.3.0", "temporary failure, try again later")
                    }
                    Err(reply) => reply,
                }
            }
        }
    }
}
