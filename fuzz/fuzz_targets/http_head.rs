//! The HTTP request head → route (404/405/400/401/403/431/101), any bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sockagent::server::guard::Names;
use sockagent::server::http::{route, Gate, Route};

fuzz_target!(|data: &[u8]| {
    let names = Names::new(3000, "board", "pi.lan", Vec::new());
    for token in [None, Some("s3cret")] {
        let gate = Gate {
            token,
            names: &names,
            blocked: None,
        };
        if let Some((consumed, r, _)) = route(data, &gate) {
            assert!(consumed <= data.len());
            match r {
                Route::Upgrade { response } => assert!(response.starts_with(b"HTTP/1.1 101 ")),
                Route::Respond { response, status } => {
                    assert!(response.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
                    assert!(!String::from_utf8_lossy(&response).contains("s3cret"));
                }
                // only with the right token, or none configured
                Route::Metrics { .. } => {
                    assert!(token.is_none() || String::from_utf8_lossy(data).contains("s3cret"))
                }
            }
        }
    }
});
