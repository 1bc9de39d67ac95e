//! The abuse engine's event decoder (lines of the log `sirrd` writes and `sirr-abuse replay`
//! reads), then the engine itself on whatever decodes: neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sirr_abuse::{Engine, EngineConfig, EventReader, parse_line};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = parse_line(text, 1) {
        assert_eq!(
            parse_line(&event.to_json(), 1).expect("an encoded event decodes"),
            event
        );
    }
    let Ok(mut engine) = Engine::new(EngineConfig::default()) else {
        return;
    };
    for event in EventReader::new(data).flatten() {
        engine.observe(&event).for_each(drop);
    }
});
