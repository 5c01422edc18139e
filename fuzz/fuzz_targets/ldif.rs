//! The provider index: LDIF import (text) and the signed `.p7m` wrapper around it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(entries) = pecbox::provider::index::parse_ldif(text) {
            let _ = pecbox::provider::index::entries_to_ldif(&entries);
        }
    }
    let _ = pecbox::provider::index::parse_signed_ldif(data, &[]);
});
