//! `drbdsetup status` / `drbdadm status` text, verbose or not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The parsers take text: lossy decoding lets every byte sequence reach them.
    let text = String::from_utf8_lossy(data);
    let _ = clever_drbd::parse_status_text(&text);
});
