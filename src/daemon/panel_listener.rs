//! The HTTPS web panel listener: TLS with the box's certificate (rustls), HTTP/1.1 by
//! hyper, routes by axum (`crate::panel`). Also starts the panel's background tasks
//! (notices of new PEC, daily reports). On shutdown: no new connections, open ones
//! finish their request and close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::panel::{self, Panel};
use crate::provider::Provider;

const MAX_CONNECTIONS: usize = 512;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

pub fn spawn(
    listener: TcpListener,
    provider: &Arc<Provider>,
    shutdown: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) {
    let panel = match panel::start(provider) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("panel not started: {e}");
            return;
        }
    };
    if let Some(code) = panel::pending_setup_code(&panel) {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        println!("panel setup: https://{addr}/setup  code {code}");
        tracing::info!(
            "panel waiting for setup at https://{addr}/setup (code in panel/setup-code)"
        );
    }
    tasks.spawn(panel::notify::run_watcher(
        provider.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(panel::notify::run_reports(
        provider.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(serve(listener, panel, shutdown));
}

async fn serve(listener: TcpListener, panel: Arc<Panel>, mut shutdown: watch::Receiver<bool>) {
    let mut tls = (*panel.provider.identity.tls_server).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = crate::tls::acceptor(Arc::new(tls));
    let router = panel::router(panel);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = shutdown.changed() => continue,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("panel accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "panel: too many connections");
                    continue;
                };
                let acceptor = acceptor.clone();
                let router = router.clone();
                let stop = shutdown.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    connection(acceptor, router, tcp, peer, stop).await;
                });
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(Duration::from_secs(15), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "panel TLS handshake: {e}");
            return;
        }
        Err(_) => return,
    };
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(panel::PeerAddr(peer));
        router.clone().oneshot(req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, "panel connection: {e}");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
        }
    }
}
