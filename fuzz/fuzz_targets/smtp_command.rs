//! SMTP command lines (`smtp::command::parse`), one per input line, and the path parser
//! on the whole input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for line in s.split('\n') {
        if let Err(reply) = pecbox::smtp::command::parse(line.trim_end_matches('\r')) {
            let _ = reply.to_wire();
        }
    }
    let _ = pecbox::smtp::command::parse_path(s, true);
    let _ = pecbox::smtp::command::parse_path(s, false);
});
