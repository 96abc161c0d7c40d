//! The outgoing client's answer reader (`remote::client::Response`) on
//! the largest answer it reads whole (an 8 KiB head, then 64 KiB of body
//! counted): sent in one read, and trickled a byte a read, as a hostile
//! or broken endpoint may. `cargo bench --bench remote`

use sockagent::remote::client::{Response, MAX_BODY, MAX_HEAD};

fn main() {
    divan::main();
}

fn answer() -> Vec<u8> {
    let mut a = b"HTTP/1.1 500 E\r\nX: ".to_vec();
    a.resize(MAX_HEAD - 10, b'a');
    a.extend_from_slice(b"\r\n\r\n");
    a.resize(a.len() + MAX_BODY, b'b');
    a
}

fn read(a: &[u8], step: usize) -> usize {
    let mut r = Response::default();
    let mut reads = 0;
    for piece in a.chunks(step) {
        reads += 1;
        if !matches!(r.take(piece), Ok(None)) {
            break;
        }
    }
    reads
}

#[divan::bench(args = [1, 4096, 1 << 20])]
fn read_answer(b: divan::Bencher, step: usize) {
    let a = answer();
    b.bench(|| read(divan::black_box(&a), step));
}
