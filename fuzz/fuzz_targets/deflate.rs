//! Arbitrary bytes → our raw deflate → miniz_oxide's inflater gives them
//! back, and the output is never much larger than the input (the stored
//! fallback). One Deflater serves every input, as in the agent, so state
//! left by one input (hash table, token buffer) is exercised by the next.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sockagent::protocol::deflate::Deflater;
use std::cell::RefCell;

thread_local! {
    static DEFLATER: RefCell<Deflater> = RefCell::new(Deflater::default());
}

fuzz_target!(|data: &[u8]| {
    let mut z = Vec::new();
    DEFLATER.with(|d| d.borrow_mut().compress(data, &mut z));
    let back = miniz_oxide::inflate::decompress_to_vec(&z).expect("valid deflate");
    assert_eq!(back, data);
    // Stored: 5 bytes per block (one per 8 K tokens) and per 64 KiB.
    let n = data.len();
    assert!(z.len() <= n + 5 * (n / 8192 + n / 65535 + 2) + 1, "{n} → {}", z.len());
});
