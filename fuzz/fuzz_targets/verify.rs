//! `pecbox verify` of a whole message held in memory: classification, S/MIME structure,
//! CMS, certificates, daticert; then the text and JSON renderings of the report.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = pecbox::cli::verify::verify_raw("fuzz.eml", data, &[], None);
    let _ = pecbox::cli::verify::render(&report);
    let _ = serde_json::to_string(&report);
});
