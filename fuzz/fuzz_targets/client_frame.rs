//! The server's decoder of bytes from the network: never panics, and whatever it accepts
//! re-encodes to something it decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sirr_proto::{decode_client_frame, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_client_frame(data, 1 << 20) {
        let again = decode_client_frame(&encode(&frame), 1 << 20).expect("a re-encoded frame decodes");
        assert_eq!(frame, again);
    }
});
