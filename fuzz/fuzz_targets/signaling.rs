//! Any text a client may send decodes to a message or a precise error,
//! never a panic; a message that decodes survives re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::protocol::{decode_client_message, ClientMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(msg) = decode_client_message(text) {
        let again = serde_json::to_string(&msg).expect("a decoded message encodes");
        let back: ClientMessage = serde_json::from_str(&again).expect("and decodes again");
        assert_eq!(back, msg);
    }
});
