//! The client's decoder of payloads written by other clients (padding, then content).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sirr_proto::content::Content;

fuzz_target!(|data: &[u8]| {
    if let Ok(content) = Content::open(data) {
        assert_eq!(Content::open(&content.seal()).expect("sealed content opens"), content);
    }
});
