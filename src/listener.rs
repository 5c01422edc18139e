//! The accept loop the mailbox servers (POP3S, IMAPS) share: a session limit, no busy
//! loop when accept fails, and at shutdown a drain bounded by a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Resolves once `rx` says stop (or its sender is gone: nobody can ask for more).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Accepts until shutdown, running `session` for each connection.
pub async fn accept_loop<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    max_sessions: usize,
    shutdown_grace: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut session: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(e) = done {
                    tracing::error!("{name} session failed: {e}");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    if sessions.len() >= max_sessions {
                        tracing::warn!(%peer, "{name}: too many sessions, connection closed");
                        continue;
                    }
                    sessions.spawn(session(tcp, peer));
                }
                Err(e) => {
                    // out of descriptors and the like: do not spin
                    tracing::warn!("{name} accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let drain = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(shutdown_grace, drain).await.is_err() {
        tracing::warn!("{name}: {} sessions cut at shutdown", sessions.len());
    }
}

/// The implicit-TLS handshake of a mailbox server, bounded in time; None (logged) when
/// the client does not complete it.
pub async fn tls_handshake(
    name: &'static str,
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    limit: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "{name} TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "{name} TLS handshake timed out");
            None
        }
    }
}
