//! The request parser and the error object, on any text a client can send.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sockagent::protocol::{error_json, parse_request};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = parse_request(&text) {
        let s = error_json(&e.error, &text, e.pid.as_ref());
        assert!(!s.contains('\n'), "error objects are one line");
        let v: serde_json::Value = serde_json::from_str(&s).expect("error object is JSON");
        assert!(v["request"].as_str().is_some_and(|r| r.len() <= 64));
    }
});
