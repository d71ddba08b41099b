//! The start of a hibernation image as `ocf:clever:vm` reads it before every resume: libvirt's
//! save header, the domain XML inside it, the start of the QEMU stream. No panic, and an image
//! is called usable only with a complete header naming the expected domain.
#![no_main]

use clever_agent_vm::image::{inspect_start, Inspection, MAGIC_SAVE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes give the file size claimed beside the bytes read (truncated images).
    let (size, start) = match data.split_first_chunk::<8>() {
        Some((size, rest)) => (u64::from_le_bytes(*size), rest),
        None => (data.len() as u64, data),
    };
    for uuid in ["", "6fb5ac1644154ea6b8d56f8223e0212b"] {
        if let Inspection::Usable { size: usable } = inspect_start(start, size, "clever", uuid) {
            assert_eq!(usable, size);
            assert!(start.starts_with(MAGIC_SAVE));
            assert!(start.len() >= 92 && size >= start.len() as u64);
        }
    }
});
