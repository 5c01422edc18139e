//! The HTTPS web panel listener (issue 7 fills this in).

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
        "panel on {:?}: not available in this version yet",
        listener.local_addr()
    );
}
