//! A remote endpoint's answer (remote-write, Alertmanager), any bytes, cut
//! into reads anywhere: never a panic, and what is kept stays bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sockagent::remote::client::{Done, Response, KEPT_BODY};

fuzz_target!(|data: &[u8]| {
    // the first byte says how long each read is (1..=256 bytes)
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step) + 1;
    let mut r = Response::default();
    let mut got = Ok(None);
    for piece in rest.chunks(step) {
        got = r.take(piece);
        if !matches!(got, Ok(None)) {
            break;
        }
    }
    if matches!(got, Ok(None)) {
        got = r.end();
    }
    if let Ok(Some(Done::Status { code, body, .. })) = got {
        // an HTTP status, and not interim: those are set aside (101 ends
        // HTTP, so it is an answer)
        assert!((200..600).contains(&code) || code == 101, "{code}");
        // the kept bytes, lossily decoded (a bad byte is 3 bytes of U+FFFD)
        assert!(body.len() <= 3 * KEPT_BODY, "{}", body.len());
    }
});
