//! Thunderbird autoconfig (config-v1.1.xml): IMAPS, POP3S and SMTP submission of this
//! box, from the configuration. Public: mail clients fetch it before any login.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::Panel;
use crate::config::Config;

pub fn routes() -> Router<Arc<Panel>> {
    Router::new()
        .route("/.well-known/autoconfig/mail/config-v1.1.xml", get(xml))
        .route("/mail/config-v1.1.xml", get(xml))
}

fn port(addr: &Option<String>) -> Option<u16> {
    addr.as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn document(config: &Config) -> String {
    let host = escape(&config.provider.hostname);
    let server = |kind: &str, tag: &str, port: u16, socket: &str| {
        format!(
            "    <{tag} type=\"{kind}\">\n      <hostname>{host}</hostname>\n      <port>{port}</port>\n      \
             <socketType>{socket}</socketType>\n      <username>%EMAILADDRESS%</username>\n      \
             <authentication>password-cleartext</authentication>\n    </{tag}>\n"
        )
    };
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig version=\"1.1\">\n",
    );
    out.push_str("  <emailProvider id=\"");
    out.push_str(&escape(&config.provider.domains[0]));
    out.push_str("\">\n");
    for d in &config.provider.domains {
        out.push_str(&format!("    <domain>{}</domain>\n", escape(d)));
    }
    out.push_str(&format!(
        "    <displayName>{}</displayName>\n    <displayShortName>{}</displayShortName>\n",
        escape(&config.provider.name),
        escape(&config.provider.name)
    ));
    if let Some(p) = port(&config.listen.imaps) {
        out.push_str(&server("imap", "incomingServer", p, "SSL"));
    }
    if let Some(p) = port(&config.listen.pop3s) {
        out.push_str(&server("pop3", "incomingServer", p, "SSL"));
    }
    if let Some(p) = port(&config.listen.submissions) {
        out.push_str(&server("smtp", "outgoingServer", p, "SSL"));
    }
    if let Some(p) = port(&config.listen.submission) {
        out.push_str(&server("smtp", "outgoingServer", p, "STARTTLS"));
    }
    out.push_str("  </emailProvider>\n</clientConfig>\n");
    out
}

async fn xml(State(panel): State<Arc<Panel>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        document(&panel.provider.config),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_document() {
        let c = Config::parse(crate::config::DEMO, "demo").unwrap();
        let x = document(&c);
        assert!(x.contains("<domain>pec.localhost</domain>"));
        assert!(x.contains("<incomingServer type=\"imap\">"));
        assert!(x.contains("<port>4993</port>"));
        assert!(x.contains("<port>4995</port>"));
        assert!(x.contains("<outgoingServer type=\"smtp\">\n      <hostname>localhost</hostname>\n      <port>4465</port>\n      <socketType>SSL</socketType>"));
        assert!(
            x.find("4465").unwrap() < x.find("4587").unwrap(),
            "implicit TLS first"
        );
    }
}
