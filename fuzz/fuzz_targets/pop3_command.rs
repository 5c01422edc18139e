//! POP3 command lines, one per input line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|b| *b == b'\n') {
        pecbox::fuzzing::pop3_command(line.strip_suffix(b"\r").unwrap_or(line));
    }
});
