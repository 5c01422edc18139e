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
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::listener::Gate;
use crate::panel::{self, Panel};
use crate::provider::Provider;

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

async fn serve(listener: TcpListener, panel: Arc<Panel>, shutdown: watch::Receiver<bool>) {
    let mut tls = (*panel.provider.identity.tls_server).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = crate::tls::acceptor(Arc::new(tls));
    let gate = Gate::new(&panel.provider.config.limits);
    let pre_auth = gate.pre_auth_timeout();
    let router = panel::router(panel);
    let busy = acceptor.clone();
    crate::listener::accept_loop(
        "panel",
        listener,
        gate,
        Duration::from_secs(15),
        shutdown.clone(),
        move |tcp, peer| {
            connection(
                acceptor.clone(),
                router.clone(),
                tcp,
                peer,
                pre_auth,
                shutdown.clone(),
            )
        },
        move |tcp, _, why| {
            let line = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\n\
                Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n\
                busy, retry\r\n";
            crate::listener::refuse_over_tls(busy.clone(), tcp, why, line)
        },
    )
    .await;
}

async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    pre_auth: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let Some(tls) = crate::listener::tls_handshake("panel", &acceptor, tcp, peer, pre_auth).await
    else {
        return;
    };
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(panel::PeerAddr(peer));
        router.clone().oneshot(req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(pre_auth)
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
