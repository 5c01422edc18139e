//! Outbound SMTP for the delivery queue: one message to one next hop, and the
//! next-hop lookup (static routes, then DNS MX with the A/AAAA fallback).
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::io::{Line, LineIo, MaybeTls};
use super::{Envelope, Reply};

/// Longest reply line and number of lines accepted from a server.
const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 200;

type Stream = MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;

/// Per-phase timeouts (RFC 5321 §4.5.3.2 gives the traditional values).
#[derive(Debug, Clone)]
pub struct ClientTimeouts {
    pub connect: Duration,
    /// Greeting, EHLO, STARTTLS, MAIL, RCPT, DATA replies.
    pub command: Duration,
    /// Each write of the message body.
    pub data_block: Duration,
    /// The reply after the final `.`.
    pub data_end: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(300),
            data_block: Duration::from_secs(180),
            data_end: Duration::from_secs(600),
        }
    }
}

/// The server's answer for one recipient: Ok with the final reply when the
/// message was accepted for it, Err with the refusal (RCPT or DATA) otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    pub address: String,
    pub result: Result<Reply, Reply>,
}

/// The whole attempt failed. `Transient`: try another host or later; nothing was
/// delivered. `Permanent`: the server refused the message for every recipient.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("temporary failure: {reason}")]
    Transient {
        reason: String,
        reply: Option<Reply>,
    },
    #[error("permanent failure: {reason}")]
    Permanent {
        reason: String,
        reply: Option<Reply>,
    },
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    pub fn reply(&self) -> Option<&Reply> {
        match self {
            SendError::Transient { reply, .. } | SendError::Permanent { reply, .. } => {
                reply.as_ref()
            }
        }
    }

    fn transient(reason: impl Into<String>) -> Self {
        SendError::Transient {
            reason: reason.into(),
            reply: None,
        }
    }

    /// A negative reply at a stage that fails the whole attempt.
    fn from_reply(stage: &str, reply: Reply) -> Self {
        let reason = format!("{stage}: {reply}");
        if reply.is_permanent() {
            SendError::Permanent {
                reason,
                reply: Some(reply),
            }
        } else {
            SendError::Transient {
                reason,
                reply: Some(reply),
            }
        }
    }
}

/// What EHLO told us.
#[derive(Debug, Default)]
struct Extensions {
    starttls: bool,
    eight_bit: bool,
    size: Option<u64>,
}

impl Extensions {
    fn parse(reply: &Reply) -> Self {
        let mut ext = Extensions::default();
        // The first line is the server's greeting text, not an extension.
        for line in reply.text.lines().skip(1) {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => ext.starttls = true,
                "8BITMIME" => ext.eight_bit = true,
                "SIZE" => ext.size = Some(words.next().and_then(|v| v.parse().ok()).unwrap_or(0)),
                _ => {}
            }
        }
        ext
    }
}

struct Client {
    io: LineIo<Stream>,
    timeouts: ClientTimeouts,
    line: Vec<u8>,
}

impl Client {
    /// Read one (possibly multi-line) reply, splitting off the enhanced code.
    async fn reply(&mut self, timeout: Duration) -> Result<Reply, SendError> {
        self.io.timeout = timeout;
        let mut code = None;
        let mut texts = Vec::new();
        let mut enhanced = None;
        loop {
            let read = self.io.read_line(MAX_REPLY_LINE, &mut self.line).await;
            match read {
                Ok(Line::Complete) => {}
                Ok(Line::TooLong) => return Err(SendError::transient("reply line too long")),
                Ok(Line::Eof) => return Err(SendError::transient("connection closed by server")),
                Err(e) => return Err(SendError::transient(format!("reading reply: {e}"))),
            }
            let line = String::from_utf8_lossy(&self.line).into_owned();
            let bad = || SendError::transient(format!("malformed reply line: {line:?}"));
            let c: u16 = line
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(bad)?;
            if *code.get_or_insert(c) != c {
                return Err(bad());
            }
            let (last, text) = match line.as_bytes().get(3) {
                None => (true, ""),
                Some(b' ') => (true, &line[4..]),
                Some(b'-') => (false, &line[4..]),
                Some(_) => return Err(bad()),
            };
            let text = match split_enhanced(c, text) {
                Some((e, rest)) => {
                    enhanced.get_or_insert(e);
                    rest
                }
                None => text,
            };
            texts.push(text.to_string());
            if last {
                break;
            }
            if texts.len() >= MAX_REPLY_LINES {
                return Err(SendError::transient("reply has too many lines"));
            }
        }
        Ok(Reply {
            code: code.unwrap_or(0),
            enhanced,
            text: texts.join("\n"),
        })
    }

    async fn command(&mut self, line: &str) -> Result<Reply, SendError> {
        self.io.queue(line.as_bytes());
        self.io.queue(b"\r\n");
        let t = self.timeouts.command;
        self.reply(t).await
    }

    /// QUIT without caring for the answer.
    async fn quit(&mut self) {
        self.io.timeout = Duration::from_secs(5);
        self.io.queue(b"QUIT\r\n");
        let _ = self.reply(Duration::from_secs(5)).await;
        self.io.close().await;
    }
}

/// `2.1.5 Ok` → ("2.1.5", "Ok") when the class matches the reply code.
fn split_enhanced(code: u16, text: &str) -> Option<(String, &str)> {
    let (first, rest) = match text.split_once(' ') {
        Some(p) => p,
        None => (text, ""),
    };
    let parts: Vec<&str> = first.split('.').collect();
    let ok = parts.len() == 3
        && parts[0] == (code / 100).to_string()
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then(|| (first.to_string(), rest))
}

/// Dot-stuff and CRLF-normalize `message`, then append the end-of-data marker.
#[cfg(test)]
fn encode_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = DataEncoder::default();
    while !encoder.next_chunk(message, &mut out, usize::MAX) {}
    out
}

/// The DATA encoding a piece at a time, so a 30 MB message never has a 30 MB twin.
struct DataEncoder {
    pos: usize,
    at_line_start: bool,
}

impl Default for DataEncoder {
    fn default() -> Self {
        Self {
            pos: 0,
            at_line_start: true,
        }
    }
}

impl DataEncoder {
    /// Appends encoded bytes to `out` until it holds `budget`; true once the
    /// end-of-data marker is out.
    fn next_chunk(&mut self, message: &[u8], out: &mut Vec<u8>, budget: usize) -> bool {
        while self.pos < message.len() && out.len() < budget {
            let b = message[self.pos];
            if self.at_line_start && b == b'.' {
                out.push(b'.');
            }
            match b {
                b'\r' if message.get(self.pos + 1) == Some(&b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    self.pos += 1;
                    self.at_line_start = true;
                }
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                }
                _ => {
                    out.push(b);
                    self.at_line_start = false;
                }
            }
            self.pos += 1;
        }
        if self.pos < message.len() {
            return false;
        }
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        true
    }
}

/// Send one message to `target`. `server_name` is the host name the certificate
/// must match (and the SNI). With `require_tls` the message goes only over a
/// verified STARTTLS session; otherwise STARTTLS is still used when offered.
///
/// Returns one outcome per envelope recipient, in order. A DATA refusal (at
/// `DATA` or after the final dot) becomes the outcome of every recipient RCPT had
/// accepted. Errors: connection, greeting, EHLO, TLS and MAIL failures, and a lost
/// connection during the transaction (the message state is then unknown: transient).
#[allow(clippy::too_many_arguments)]
pub async fn send(
    target: SocketAddr,
    server_name: &str,
    helo: &str,
    tls: Arc<rustls::ClientConfig>,
    require_tls: bool,
    envelope: &Envelope,
    message: &[u8],
    timeouts: &ClientTimeouts,
) -> Result<Vec<RecipientOutcome>, SendError> {
    let tcp = match tokio::time::timeout(timeouts.connect, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(SendError::transient(format!("connect to {target}: {e}"))),
        Err(_) => {
            return Err(SendError::transient(format!(
                "connect to {target}: timed out"
            )))
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut client = Client {
        io: LineIo::new(MaybeTls::Plain(tcp), timeouts.command),
        timeouts: timeouts.clone(),
        line: Vec::new(),
    };
    let result = transaction(
        &mut client,
        target,
        server_name,
        helo,
        tls,
        require_tls,
        envelope,
        message,
    )
    .await;
    match &result {
        Ok(outcomes) => {
            let accepted = outcomes.iter().filter(|o| o.result.is_ok()).count();
            info!(%target, server_name, accepted, total = outcomes.len(), "SMTP delivery attempt");
            client.quit().await;
        }
        Err(e) => {
            info!(%target, server_name, error = %e, "SMTP delivery failed");
            // After a lost connection QUIT just fails fast.
            client.quit().await;
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn transaction(
    c: &mut Client,
    target: SocketAddr,
    server_name: &str,
    helo: &str,
    tls: Arc<rustls::ClientConfig>,
    require_tls: bool,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Vec<RecipientOutcome>, SendError> {
    let t = c.timeouts.command;
    let greeting = c.reply(t).await?;
    if greeting.code != 220 {
        // Even a 554 greeting only says "not this host": another MX may take it.
        return Err(SendError::Transient {
            reason: format!("greeting from {target}: {greeting}"),
            reply: Some(greeting),
        });
    }
    let mut ext = ehlo(c, helo, require_tls).await?;
    if ext.starttls {
        let r = c.command("STARTTLS").await?;
        if r.code == 220 {
            let name = ServerName::try_from(server_name.to_string()).map_err(|e| {
                SendError::transient(format!("bad TLS server name {server_name:?}: {e}"))
            })?;
            let MaybeTls::Plain(tcp) = std::mem::replace(&mut c.io.stream, MaybeTls::Gone) else {
                return Err(SendError::transient("internal: stream not plain"));
            };
            c.io.discard_buffered();
            let handshake = crate::tls::connector(tls).connect(name, tcp);
            match tokio::time::timeout(t, handshake).await {
                Ok(Ok(s)) => c.io.stream = MaybeTls::Tls(Box::new(s)),
                Ok(Err(e)) => {
                    return Err(SendError::transient(format!("TLS with {server_name}: {e}")))
                }
                Err(_) => {
                    return Err(SendError::transient(format!(
                        "TLS with {server_name}: timed out"
                    )))
                }
            }
            debug!(server_name, "STARTTLS done");
            ext = ehlo(c, helo, true).await?;
        } else if require_tls {
            return Err(SendError::Transient {
                reason: format!("STARTTLS refused by {server_name}: {r}"),
                reply: Some(r),
            });
        }
    } else if require_tls {
        return Err(SendError::transient(format!(
            "{server_name} does not offer STARTTLS and TLS is required"
        )));
    }

    let mut mail = format!("MAIL FROM:<{}>", envelope.mail_from);
    if ext.size.is_some() {
        mail.push_str(&format!(" SIZE={}", message.len()));
    }
    if ext.eight_bit && !message.is_ascii() {
        mail.push_str(" BODY=8BITMIME");
    }
    let r = c.command(&mail).await?;
    if !r.is_positive() {
        return Err(SendError::from_reply("MAIL", r));
    }
    let mut outcomes = Vec::with_capacity(envelope.rcpt_to.len());
    for rcpt in &envelope.rcpt_to {
        let r = c.command(&format!("RCPT TO:<{rcpt}>")).await?;
        outcomes.push(RecipientOutcome {
            address: rcpt.clone(),
            result: if r.is_positive() { Ok(r) } else { Err(r) },
        });
    }
    if outcomes.iter().all(|o| o.result.is_err()) {
        let _ = c.command("RSET").await;
        return Ok(outcomes);
    }
    let r = c.command("DATA").await?;
    let final_reply = if r.code == 354 {
        c.io.timeout = c.timeouts.data_block;
        let mut encoder = DataEncoder::default();
        let mut chunk = Vec::with_capacity(66 * 1024);
        loop {
            chunk.clear();
            let done = encoder.next_chunk(message, &mut chunk, 64 * 1024);
            c.io.write_now(&chunk)
                .await
                .map_err(|e| SendError::transient(format!("sending message: {e}")))?;
            if done {
                break;
            }
        }
        let t = c.timeouts.data_end;
        c.reply(t).await?
    } else if r.is_positive() {
        return Err(SendError::transient(format!(
            "unexpected reply to DATA: {r}"
        )));
    } else {
        r
    };
    for o in outcomes.iter_mut().filter(|o| o.result.is_ok()) {
        o.result = if final_reply.is_positive() {
            Ok(final_reply.clone())
        } else {
            Err(final_reply.clone())
        };
    }
    Ok(outcomes)
}

/// EHLO, falling back to HELO when refused (only if TLS is not required, as
/// STARTTLS needs EHLO).
async fn ehlo(c: &mut Client, helo: &str, require_tls: bool) -> Result<Extensions, SendError> {
    let r = c.command(&format!("EHLO {helo}")).await?;
    if r.code == 250 {
        return Ok(Extensions::parse(&r));
    }
    if require_tls || r.code == 421 {
        return Err(SendError::Transient {
            reason: format!("EHLO refused: {r}"),
            reply: Some(r),
        });
    }
    let r = c.command(&format!("HELO {helo}")).await?;
    if r.code == 250 {
        Ok(Extensions::default())
    } else {
        Err(SendError::Transient {
            reason: format!("HELO refused: {r}"),
            reply: Some(r),
        })
    }
}

/// DNS for next hops, created on first use so that static routes never touch
/// the system resolver configuration.
#[derive(Default)]
pub struct DnsResolver {
    inner: tokio::sync::OnceCell<Option<TokioResolver>>,
}

impl DnsResolver {
    pub fn new() -> Self {
        Self::default()
    }

    async fn get(&self) -> Option<&TokioResolver> {
        self.inner
            .get_or_init(|| async {
                match TokioResolver::builder_tokio() {
                    Ok(b) => Some(b.build()),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the system DNS configuration");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }
}

fn split_route(route: &str) -> (String, u16) {
    // "[::1]:25", "host:2525", "host", "192.0.2.1"
    if let Some(rest) = route.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once(']') {
            let port = port
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .unwrap_or(25);
            return (host.to_string(), port);
        }
    }
    match route.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host.to_string(), port.parse().unwrap_or(25)),
        _ => (route.to_string(), 25),
    }
}

/// Next hops for `domain`, in the order to try: a static route
/// (`"domain" = "host:port"`, port 25 when absent) wins; otherwise the MX hosts
/// by preference, or the domain's own A/AAAA when it has no MX (RFC 5321 §5.1),
/// port 25. A null MX (RFC 7505) or any lookup failure gives no hops.
pub async fn resolve_next_hop(
    domain: &str,
    routes: &BTreeMap<String, String>,
    resolver: &DnsResolver,
) -> Vec<(String, SocketAddr)> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if let Some(route) = routes
        .iter()
        .find(|(d, _)| d.trim_end_matches('.').eq_ignore_ascii_case(&domain))
        .map(|(_, r)| r)
    {
        let (host, port) = split_route(route);
        if let Ok(ip) = host.parse() {
            return vec![(host, SocketAddr::new(ip, port))];
        }
        return match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addrs) => addrs.map(|a| (host.clone(), a)).collect(),
            Err(e) => {
                info!(%domain, route, error = %e, "static route host not found");
                Vec::new()
            }
        };
    }
    let Some(dns) = resolver.get().await else {
        return Vec::new();
    };
    let fqdn = format!("{domain}.");
    let hosts: Vec<String> = match dns.mx_lookup(fqdn.as_str()).await {
        Ok(mx) => {
            let mut records: Vec<(u16, String)> = mx
                .iter()
                .map(|r| (r.preference(), r.exchange().to_ascii()))
                .collect();
            records.sort_by_key(|r| r.0);
            if records.len() == 1 && (records[0].1 == "." || records[0].1.is_empty()) {
                info!(%domain, "null MX: domain accepts no mail");
                return Vec::new();
            }
            records.into_iter().map(|r| r.1).collect()
        }
        Err(e) if e.is_no_records_found() && !e.is_nx_domain() => vec![fqdn.clone()],
        Err(e) => {
            info!(%domain, error = %e, "MX lookup failed");
            return Vec::new();
        }
    };
    let mut hops = Vec::new();
    for host in hosts {
        match dns.lookup_ip(host.as_str()).await {
            Ok(ips) => {
                let name = host.trim_end_matches('.').to_string();
                hops.extend(ips.iter().map(|ip| (name.clone(), SocketAddr::new(ip, 25))));
            }
            Err(e) => debug!(%host, error = %e, "address lookup failed"),
        }
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(encode_data(b"a\n.b\r\n..c"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(encode_data(b""), b".\r\n");
        assert_eq!(encode_data(b".\r\n"), b"..\r\n.\r\n");
    }

    #[test]
    fn enhanced_split() {
        assert_eq!(
            split_enhanced(250, "2.1.5 Ok"),
            Some(("2.1.5".to_string(), "Ok"))
        );
        assert_eq!(split_enhanced(550, "2.1.5 Ok"), None);
        assert_eq!(split_enhanced(250, "mx.example Hello"), None);
    }

    #[test]
    fn routes() {
        assert_eq!(split_route("h:2526"), ("h".into(), 2526));
        assert_eq!(split_route("h"), ("h".into(), 25));
        assert_eq!(split_route("[::1]:26"), ("::1".into(), 26));
        assert_eq!(split_route("::1"), ("::1".into(), 25));
    }
}
