//! The panel's request bodies: the first line is the Content-Type (e.g.
//! `multipart/form-data; boundary=X` or `application/x-www-form-urlencoded`), the rest
//! the body, read through the CSRF check, the urlencoded decoder or the upload reader.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pecbox_fuzz::runtime;

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let ct = String::from_utf8_lossy(ct.strip_suffix(b"\r").unwrap_or(ct)).into_owned();
    runtime().block_on(pecbox::fuzzing::panel_body(&ct, body.to_vec()));
});
