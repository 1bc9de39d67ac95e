//! The client's decoder of bytes from the server.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sirr_proto::{decode_server_frame, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_server_frame(data, 1 << 20) {
        let again = decode_server_frame(&encode(&frame), 1 << 20).expect("a re-encoded frame decodes");
        assert_eq!(frame, again);
    }
});
