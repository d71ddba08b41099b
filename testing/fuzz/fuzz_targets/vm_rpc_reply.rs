//! A packet from libvirtd as the monitor's remote-protocol client decodes it (header, payload,
//! error structure): no panic, whatever a daemon or an impostor on the socket sends.
#![no_main]

use clever_agent_vm::rpc::{decode_reply, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (procedure, serial) in [(66, 1), (23, 3), (212, 4)] {
        if let Ok(Some(Ok(payload))) = decode_reply(data, procedure, serial) {
            // The shapes the client reads from a payload.
            let mut reader = Reader::new(&payload);
            let _ = reader.string();
            let _ = reader.fixed(16);
            let _ = reader.i32();
            let _ = reader.optional_string();
            let _ = reader.end();
        }
    }
});
