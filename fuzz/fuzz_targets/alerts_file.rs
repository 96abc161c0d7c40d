//! An alerts file (`--alerts FILE`), any text: a clear error or rules,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sockagent::alerts::config::Overrides;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = Overrides::parse(text) {
            // one line, for the one-line error the agent exits with
            assert!(!e.contains('\n'), "{e}");
        }
    }
});
