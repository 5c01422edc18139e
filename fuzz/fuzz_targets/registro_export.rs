//! The registro export parser and verifier (`pecbox log verify-export`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pecbox::registro::verify_export(data, &[]);
});
