//! POP3 over implicit TLS (RFC 1939, 2449 CAPA): an adapter over the store's INBOX.
pub(crate) mod command;
pub(crate) mod server;
mod wire;

pub use server::{serve, Pop3Auth, Pop3Limits};
