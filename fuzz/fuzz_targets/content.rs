//! The client's decoders of payloads written by other clients: the sealed wrapper, and the
//! padded content inside an MLS plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sirr_proto::content::{Content, Sealed};

fuzz_target!(|data: &[u8]| {
    if let Ok(sealed) = Sealed::decode(data) {
        assert_eq!(
            Sealed::decode(&sealed.encode()).expect("encoded sealed decodes"),
            sealed
        );
    }
    if let Ok(content) = Content::open(data) {
        assert_eq!(
            Content::open(&content.seal()).expect("sealed content opens"),
            content
        );
    }
});
