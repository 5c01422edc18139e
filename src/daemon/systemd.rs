//! systemd integration without libsystemd: READY/STOPPING over $NOTIFY_SOCKET, the
//! watchdog keep-alives (WatchdogSec=), and logs to journald when started by systemd
//! ($JOURNAL_STREAM), else to stderr.

use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub fn init_logging() {
    let filter = EnvFilter::try_from_env("PECBOX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = registry.with(journald).try_init();
            return;
        }
    }
    let _ = registry
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init();
}

fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        notify_to(&path, state);
    }
}

fn notify_to(path: &std::ffi::OsStr, state: &str) {
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), path)
    };
    if let Err(e) = sent {
        tracing::warn!("sd_notify {state}: {e}");
    }
}

/// READY=1, then the watchdog keep-alives when systemd asks for them (WatchdogSec=).
pub fn notify_ready() {
    notify("READY=1");
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    let every = watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id());
    if let (Some(path), Some(every)) = (std::env::var_os("NOTIFY_SOCKET"), every) {
        tracing::info!(
            "systemd watchdog: keep-alive every {} ms",
            every.as_millis()
        );
        start_watchdog(path, every);
    }
}

pub fn notify_stopping() {
    notify("STOPPING=1");
}

/// The keep-alive period: half of $WATCHDOG_USEC, when the watchdog is meant for this
/// process ($WATCHDOG_PID absent or equal to our pid), as sd_watchdog_enabled(3).
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// Sends WATCHDOG=1 now and then every `every`. Inside the daemon's tokio runtime this is
/// a task, so a runtime that no longer schedules work also stops the keep-alives and
/// systemd restarts the service; outside a runtime it is a plain thread.
fn start_watchdog(path: std::ffi::OsString, every: Duration) {
    notify_to(&path, "WATCHDOG=1");
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    notify_to(&path, "WATCHDOG=1");
                }
            });
        }
        Err(_) => {
            let spawned = std::thread::Builder::new()
                .name("sd-watchdog".into())
                .spawn(move || loop {
                    std::thread::sleep(every);
                    notify_to(&path, "WATCHDOG=1");
                });
            if let Err(e) = spawned {
                tracing::warn!("systemd watchdog thread: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec() {
        assert_eq!(
            watchdog_interval(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
    }

    #[test]
    fn watchdog_is_off_when_unset_zero_garbage_or_for_another_pid() {
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("30000000"), Some("x"), 7), None);
    }

    #[tokio::test]
    async fn keep_alives_reach_the_notify_socket_while_the_runtime_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
        start_watchdog(path.into_os_string(), Duration::from_millis(50));
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
                .await
                .expect("a keep-alive within 5 s")
                .unwrap();
            assert_eq!(&buf[..n], b"WATCHDOG=1");
        }
    }
}
