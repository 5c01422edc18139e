//! What every listener (SMTP, IMAPS, POP3S, panel) shares: the accept loop, the gate
//! that bounds connections per client address and in all, and the bounded TLS
//! handshake. A flood from one address fills that address's slots and no one else's;
//! a full listener answers "busy" in its protocol instead of hanging.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Limits;

/// Resolves once `rx` says stop (or its sender is gone: nobody can ask for more).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener is full: the client gets the protocol's "busy" answer.
    Busy,
    /// Its address already holds its share: closed at once, nothing spent on it.
    TooManyFromAddress,
}

/// Open connections of one listener, in all and per client address.
pub struct Gate {
    per_address: usize,
    total: usize,
    pre_auth_timeout: Duration,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees the slot.
pub struct Slot {
    gate: Arc<Gate>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.gate.lock();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&self.key);
            }
        }
    }
}

/// The key a client address is counted under: IPv4 as is (an IPv4-mapped IPv6
/// address too), IPv6 by its /64, the block one subscriber usually holds.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

impl Gate {
    pub fn new(limits: &Limits) -> Arc<Self> {
        Self::with(
            limits.connections_per_address,
            limits.connections,
            limits.pre_auth_timeout(),
        )
    }

    pub fn with(per_address: usize, total: usize, pre_auth_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            per_address: per_address.max(1),
            total: total.max(1),
            pre_auth_timeout,
            counts: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection from `ip`, or why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let key = address_key(ip);
        let mut c = self.lock();
        let mine = c.by_address.get(&key).copied().unwrap_or(0);
        if mine >= self.per_address {
            return Err(Refusal::TooManyFromAddress);
        }
        if c.total >= self.total {
            return Err(Refusal::Busy);
        }
        c.total += 1;
        *c.by_address.entry(key).or_insert(0) += 1;
        Ok(Slot {
            gate: self.clone(),
            key,
        })
    }

    /// How long a client may stay silent before it has logged in.
    pub fn pre_auth_timeout(&self) -> Duration {
        self.pre_auth_timeout
    }

    /// Open connections now (for tests and the dashboard).
    pub fn open(&self) -> usize {
        self.lock().total
    }
}

/// Refusals being answered at once, at most; past it a refused connection is just
/// closed (a flood must not turn into a pile of answering tasks).
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// Bound on answering a refused client (the busy line, its TLS handshake).
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts until shutdown, running `session` for each admitted connection and
/// `refuse` for those the gate turns away. At shutdown, a drain bounded by `grace`,
/// then what is left is cut.
pub async fn accept_loop<F, Fut, R, RFut>(
    name: &'static str,
    listener: TcpListener,
    gate: Arc<Gate>,
    shutdown_grace: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut session: F,
    mut refuse: R,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    R: FnMut(TcpStream, SocketAddr, Refusal) -> RFut,
    RFut: Future<Output = ()> + Send + 'static,
{
    let mut sessions = JoinSet::new();
    let mut refusals = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(e) = done {
                    // a panicking session is one client's loss, never the listener's
                    tracing::error!("{name} session failed: {e}");
                }
            }
            Some(_) = refusals.join_next(), if !refusals.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => match gate.admit(peer.ip()) {
                    Ok(slot) => {
                        let fut = session(tcp, peer);
                        sessions.spawn(async move {
                            let _slot = slot;
                            fut.await
                        });
                    }
                    Err(why) => {
                        tracing::info!(%peer, ?why, "{name}: connection refused");
                        if refusals.len() < MAX_REFUSALS_IN_FLIGHT {
                            let fut = refuse(tcp, peer, why);
                            refusals.spawn(async move {
                                let _ = tokio::time::timeout(REFUSAL_TIMEOUT, fut).await;
                            });
                        }
                    }
                },
                Err(e) => {
                    // out of descriptors and the like: do not spin
                    tracing::warn!("{name} accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    refusals.abort_all();
    let drain = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(shutdown_grace, drain).await.is_err() {
        tracing::warn!("{name}: {} sessions cut at shutdown", sessions.len());
        sessions.abort_all();
    }
}

/// The refusal of an implicit-TLS listener: when it is full, the busy `line` over TLS
/// (a client cannot read anything else); a client over its address's share gets
/// nothing, so a flood costs no handshakes.
pub async fn refuse_over_tls(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    why: Refusal,
    line: &'static [u8],
) {
    if why == Refusal::TooManyFromAddress {
        return;
    }
    if let Ok(mut tls) = acceptor.accept(tcp).await {
        let _ = tls.write_all(line).await;
        let _ = tls.shutdown().await;
    }
}

/// The implicit-TLS handshake of a listener, bounded in time; None (logged) when the
/// client does not complete it.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_fills_its_share_and_no_more() {
        let gate = Gate::with(2, 3, Duration::from_secs(1));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refusal::TooManyFromAddress));
        let _b1 = gate.admit(b).unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        assert_eq!(gate.admit(c).err(), Some(Refusal::Busy), "listener full");
        drop(a1);
        assert_eq!(gate.open(), 2);
        assert!(gate.admit(c).is_ok(), "a freed slot is reused");
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let gate = Gate::with(1, 10, Duration::from_secs(1));
        let _x = gate.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            gate.admit("2001:db8:1:2:ffff::9".parse().unwrap()).err(),
            Some(Refusal::TooManyFromAddress)
        );
        assert!(gate.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
        let _v4 = gate.admit("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(
            gate.admit("::ffff:192.0.2.1".parse().unwrap()).err(),
            Some(Refusal::TooManyFromAddress)
        );
    }
}
