//! The DIMSE command-set codec: any bytes decode to a message or an error; a decoded
//! message encodes to a command set that decodes to the same message.

#![no_main]

use dimse::command::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::decode(data) else {
        return;
    };
    let _ = (message.name(), message.has_data_set(), message.status());
    let encoded = message.encode();
    let again = Message::decode(&encoded).expect("an encoded message decodes");
    assert_eq!(again, message, "encode/decode round trip");
});
