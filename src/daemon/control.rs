//! control.sock: while the daemon owns the store, management commands reach it here.
//! One JSON request per line, one JSON response per line; owner-only permissions.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::provider::admin::{self, AdminRequest, AdminResponse};
use crate::provider::Provider;

/// Largest request accepted (an index import carries a file).
const MAX_REQUEST: usize = 16 << 20;

pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        // A stale socket from a crash: nobody answers on it, or bind would not be reached.
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(
    listener: UnixListener,
    provider: Arc<Provider>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let provider = provider.clone();
                    tokio::spawn(async move {
                        if let Err(e) = session(stream, provider).await {
                            tracing::warn!("control session: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("control socket accept: {e}"),
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn session(stream: UnixStream, provider: Arc<Provider>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let response = match serde_json::from_str::<AdminRequest>(&line) {
        Ok(request) => {
            tracing::info!(request = request_name(&request), "administrative action");
            let p = provider.clone();
            tokio::task::spawn_blocking(move || admin::execute(&p.store, &p.config, request))
                .await
                .unwrap_or(AdminResponse::error("internal error"))
        }
        Err(e) => AdminResponse::error(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_string(&response).unwrap_or_default();
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    write.shutdown().await
}

fn request_name(request: &AdminRequest) -> &'static str {
    match request {
        AdminRequest::MailboxAdd { .. } => "mailbox add",
        AdminRequest::MailboxList => "mailbox list",
        AdminRequest::MailboxPasswd { .. } => "mailbox passwd",
        AdminRequest::MailboxRemove { .. } => "mailbox remove",
        AdminRequest::MailboxPolicy { .. } => "mailbox policy",
        AdminRequest::IndexImport { .. } => "index import",
        AdminRequest::IndexList => "index list",
        AdminRequest::Log(_) => "log",
    }
}

/// Sends `request` to a running daemon; `None` when no daemon listens on `path`.
pub fn request(path: &Path, request: &AdminRequest) -> Option<Result<AdminResponse, String>> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path).ok()?;
    let mut exchange = || -> Result<AdminResponse, String> {
        let mut line = serde_json::to_string(request).map_err(|e| e.to_string())?;
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .map_err(|e| format!("control socket: {e}"))?;
        let mut answer = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut answer)
            .map_err(|e| format!("control socket: {e}"))?;
        serde_json::from_str(&answer).map_err(|e| format!("control socket answer: {e}"))
    };
    Some(exchange())
}
