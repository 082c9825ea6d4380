//! `protocol::decode` on any topic and payload: it returns a message or a typed error,
//! never panics; what it accepts encodes again, and that encoding decodes to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{decode, Limits};

const CHANNELS: [&str; 6] = ["heartbeat", "event", "state", "ack", "cmd", "bogus"];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the topic; the rest is the payload.
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let channel = CHANNELS[usize::from(pick) % CHANNELS.len()];
    let device = if pick & 0x80 == 0 {
        "dev-000123"
    } else {
        "dev/+"
    };
    let topic = format!("fleet/acme/{device}/{channel}");
    let limits = Limits::default();
    if let Ok(d) = decode(&topic, payload, &limits) {
        let again = d
            .message
            .encode(&limits)
            .expect("an accepted message encodes");
        let back = decode(&topic, &again, &limits).expect("its encoding decodes");
        assert_eq!(back.message, d.message);
    } else if let Err(e) = decode(&topic, payload, &limits) {
        let _ = e.reason();
    }
});
