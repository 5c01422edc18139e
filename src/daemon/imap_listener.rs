//! The `imaps` listener (issue 6 fills this in).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::provider::Provider;

pub fn spawn(
    listener: TcpListener,
    _provider: &Arc<Provider>,
    _shutdown: watch::Receiver<bool>,
    _tasks: &mut JoinSet<()>,
) {
    tracing::warn!(
        "imaps on {:?}: not available in this version yet",
        listener.local_addr()
    );
}
