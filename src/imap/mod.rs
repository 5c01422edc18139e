//! IMAPS (RFC 3501 over implicit TLS) for the holders' mail clients: an adapter over the
//! store, with IDLE, UIDPLUS, MOVE, NAMESPACE, SPECIAL-USE, LITERAL+, ENABLE, UNSELECT,
//! SASL-IR and AUTHENTICATE PLAIN/LOGIN.
//!
//! imap-codec frames the input (lines and literals, with size limits), parses commands
//! and encodes every response; this module only maps them onto [`crate::store`].
//! Sessions learn of each other's changes (and of deliveries) from
//! [`crate::store::Store::subscribe`].

mod folders;
pub(crate) mod mime;
mod search;
pub(crate) mod server;
mod session;

pub use folders::{ensure_special, SPECIAL_USE};
pub use server::{serve, ImapAuth, ImapLimits};

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Rome;

/// The appliance's time zone: INTERNALDATE is shown, and SINCE/BEFORE/ON compare, in it.
fn local_time(unix: i64) -> chrono::DateTime<chrono_tz::Tz> {
    Utc.timestamp_opt(unix, 0)
        .single()
        .unwrap_or_default()
        .with_timezone(&Rome)
}

fn local_date(unix: i64) -> NaiveDate {
    local_time(unix).date_naive()
}
