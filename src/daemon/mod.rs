//! `pecbox run`: binds every listener of the configuration, runs the provider core's
//! background work (outbound queue, timeout notices) and the control socket, tells
//! systemd when ready, and on SIGTERM/SIGINT stops accepting, lets in-flight work finish
//! and exits cleanly.

pub mod control;
mod imap_listener;
mod memory;
mod panel_listener;
mod pop3_auth;
mod smtp_backend;
mod systemd;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::provider::admin::{self, AdminRequest};
use crate::provider::{identity, Provider};
use crate::smtp::{Limits, Role};
use crate::store::Store;

pub use systemd::init_logging;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
}

/// The demo's two holders (interface.md §5).
const DEMO_MAILBOXES: [&str; 2] = ["alice", "bob"];

pub fn run(config: Config) -> Result<(), DaemonError> {
    memory::tune_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // store and argon2 work waits for a thread rather than growing without bound
        .max_blocking_threads(128)
        .build()
        .map_err(|e| DaemonError::Setup(format!("runtime: {e}")))?;
    runtime.block_on(run_async(config))
}

async fn run_async(config: Config) -> Result<(), DaemonError> {
    let mut signals = StopSignals::install()?;
    let setup = |e: &dyn std::fmt::Display| DaemonError::Setup(e.to_string());
    let overrides = config.layers.overrides.as_ref();
    tracing::info!(
        factory = %config.layers.factory_origin,
        overrides = %overrides.map_or_else(
            || format!("none ({} absent)", config.override_path().display()),
            |(path, _)| path.display().to_string()
        ),
        "configuration"
    );
    for line in identity::init(&config).map_err(|e| setup(&e))? {
        println!("created {line}");
    }
    let store = Store::open_sized(&config.store_dir(), config.storage.cache_mb).map_err(|e| {
        DaemonError::Setup(format!(
            "{e} (is another pecbox running on {}?)",
            config.data_dir().display()
        ))
    })?;
    if config.is_demo() {
        create_demo_mailboxes(&store, &config)?;
    }
    let provider = Provider::open(config.clone(), store).map_err(|e| setup(&e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let limits = Limits {
        max_message_bytes: config.delivery.max_message_bytes,
        max_recipients: config.delivery.max_recipients,
        max_connections_per_ip: config.limits.connections_per_address,
        max_connections: config.limits.connections,
        pre_auth_timeout: config.limits.pre_auth_timeout(),
        ..Limits::default()
    };
    let hostname = config.provider.hostname.clone();
    let tls = provider.identity.tls_server.clone();
    let roles = [
        ("smtp", &config.listen.smtp, Role::Reception),
        ("submissions", &config.listen.submissions, Role::Submissions),
        ("submission", &config.listen.submission, Role::Submission),
    ];
    let mut bound: Vec<(&str, SocketAddr)> = Vec::new();
    for (what, addr, role) in roles {
        let Some(addr) = addr else { continue };
        let listener = bind(what, addr).await?;
        bound.push((what, listener.local_addr().map_err(|e| setup(&e))?));
        tasks.spawn(crate::smtp::server::serve(
            listener,
            role,
            hostname.clone(),
            tls.clone(),
            limits.clone(),
            Arc::new(smtp_backend::ProviderSmtp(provider.clone())),
            stop_rx.clone(),
        ));
    }
    if let Some(addr) = &config.listen.pop3s {
        let listener = bind("pop3s", addr).await?;
        bound.push(("pop3s", listener.local_addr().map_err(|e| setup(&e))?));
        tasks.spawn(crate::pop3::serve(
            listener,
            tls.clone(),
            provider.store.clone(),
            Arc::new(pop3_auth::ProviderPop3(provider.clone())),
            crate::pop3::Pop3Limits {
                max_sessions: config.limits.connections,
                max_sessions_per_address: config.limits.connections_per_address,
                pre_auth_timeout: config.limits.pre_auth_timeout(),
                ..crate::pop3::Pop3Limits::default()
            },
            stop_rx.clone(),
        ));
    }
    if let Some(addr) = &config.listen.imaps {
        let listener = bind("imaps", addr).await?;
        bound.push(("imaps", listener.local_addr().map_err(|e| setup(&e))?));
        imap_listener::spawn(listener, &provider, stop_rx.clone(), &mut tasks);
    }
    if let Some(addr) = &config.listen.panel {
        let listener = bind("panel", addr).await?;
        bound.push(("panel", listener.local_addr().map_err(|e| setup(&e))?));
        panel_listener::spawn(listener, &provider, stop_rx.clone(), &mut tasks);
    }
    let control = control::bind(&config.control_socket())
        .map_err(|e| DaemonError::Setup(format!("{}: {e}", config.control_socket().display())))?;
    tasks.spawn(control::serve(control, provider.clone(), stop_rx.clone()));
    tasks.spawn(crate::provider::outbound::run(
        provider.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::provider::timeouts::run(
        provider.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::provider::registro_admin::maintain(
        provider.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::provider::registro_admin::settle(
        provider.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(memory::trim_periodically(stop_rx.clone()));
    tasks.spawn(sweep_blobs(provider.store.clone(), stop_rx.clone()));

    for (what, addr) in &bound {
        println!("{what:<12} {addr}");
        tracing::info!("{what} listening on {addr}");
    }
    println!(
        "ready: {} ({})",
        config.provider.name,
        config.provider.domains.join(", ")
    );
    systemd::notify_ready();
    let health = confirm_health(&provider);

    // A box booted into a freshly updated slot whose self-test fails stops with an
    // error: systemd restarts it, then reboots (StartLimitAction), and the boot loader
    // falls back to the previous slot once the new one's tries are used up.
    let failed_health = tokio::select! {
        _ = signals.wait() => false,
        failed = health => failed,
    };
    tracing::info!("stopping: no new connections; finishing what is in flight");
    systemd::notify_stopping();
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some sessions did not finish within 30 s; their messages stay queued");
    }
    if let Err(e) = provider.registro.settle() {
        tracing::error!("registro: records stay in the store until the next start: {e}");
    }
    provider.store.flush().map_err(|e| setup(&e))?;
    let _ = std::fs::remove_file(config.control_socket());
    tracing::info!("stopped");
    if failed_health {
        return Err(DaemonError::Setup(
            "self-test failed on a RAUC-managed slot; not marked good".into(),
        ));
    }
    Ok(())
}

/// Removes message files no record refers to any more: at start, then every 6 hours.
async fn sweep_blobs(store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.sweep_blobs(crate::store::SWEEP_MIN_AGE)).await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!("store: {n} unreferenced message files removed"),
            Ok(Err(e)) => tracing::warn!("store: sweeping message files: {e}"),
            Err(e) => tracing::warn!("store: sweeping message files: {e}"),
        }
        tokio::select! {
            _ = crate::listener::stopped(&mut stop) => return,
            _ = tokio::time::sleep(Duration::from_secs(6 * 3600)) => {}
        }
    }
}

/// After READY: the self-test, and on a RAUC system marking the booted slot good.
/// Resolves (true) only when the test fails on a RAUC-managed system.
async fn confirm_health(provider: &Arc<Provider>) -> bool {
    use crate::update::health::{confirm_after_ready, Health};
    let p = provider.clone();
    let outcome = tokio::task::spawn_blocking(move || confirm_after_ready(&p))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match outcome {
        Ok(Health::MarkedGood(msg)) => tracing::info!("update: booted slot marked good: {msg}"),
        Ok(Health::NotManaged) => tracing::debug!("update: self-test passed (not a RAUC system)"),
        Err(e) => {
            tracing::error!("update: {e}");
            if crate::update::rauc_managed(&crate::update::Rauc::from_env()) {
                return true;
            }
        }
    }
    std::future::pending().await
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// SIGTERM and SIGINT, caught from before READY so an early stop is never fatal.
struct StopSignals(tokio::signal::unix::Signal, tokio::signal::unix::Signal);

impl StopSignals {
    fn install() -> Result<Self, DaemonError> {
        use tokio::signal::unix::{signal, SignalKind};
        let err = |e: std::io::Error| DaemonError::Setup(format!("signal handlers: {e}"));
        Ok(Self(
            signal(SignalKind::terminate()).map_err(err)?,
            signal(SignalKind::interrupt()).map_err(err)?,
        ))
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.0.recv() => {}
            _ = self.1.recv() => {}
        }
    }
}

/// First start of the demo: alice and bob, with passwords shown once.
fn create_demo_mailboxes(store: &Store, config: &Config) -> Result<(), DaemonError> {
    let domain = &config.provider.domains[0];
    for name in DEMO_MAILBOXES {
        let address = format!("{name}@{domain}");
        let exists = store
            .mailbox(&address)
            .map_err(|e| DaemonError::Setup(e.to_string()))?
            .is_some();
        if exists {
            continue;
        }
        let response = admin::execute(
            store,
            config,
            AdminRequest::MailboxAdd {
                address,
                password: None,
                quota: None,
            },
        );
        if !response.ok {
            return Err(DaemonError::Setup(response.text));
        }
        print!("{}", response.text);
    }
    Ok(())
}
