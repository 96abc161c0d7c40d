//! Arbitrary process lists: protobuf encode → decode gives them back, and
//! gzip of the encoding inflates to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sockagent::protocol::{gzip::Gzip, pb};

#[derive(arbitrary::Arbitrary, Debug)]
struct Row {
    pid: u32,
    name: String,
    cpu: f32,
    mem: u64,
}

fuzz_target!(|rows: Vec<Row>| {
    let rows: Vec<pb::Process> = rows
        .into_iter()
        .map(|r| pb::Process { pid: r.pid, name: r.name, cpu_usage: r.cpu, mem_bytes: r.mem })
        .collect();
    let mut out = Vec::new();
    pb::encode_processes(&rows, &mut out);
    let (count, back) = pb::decode_processes(&out).expect("our own frame decodes");
    assert_eq!(count as usize, rows.len());
    assert_eq!(back.len(), rows.len());
    for (a, b) in rows.iter().zip(&back) {
        assert_eq!((a.pid, &a.name, a.mem_bytes), (b.pid, &b.name, b.mem_bytes));
        assert!(a.cpu_usage.to_bits() == b.cpu_usage.to_bits() || (a.cpu_usage == 0.0 && b.cpu_usage == 0.0));
    }
    let mut gz = Gzip::default();
    let mut z = Vec::new();
    gz.compress(&out, &mut z);
    assert_eq!(miniz_inflate(&z), out);
});

/// gunzip with miniz_oxide's inflater (header 10 bytes, trailer 8).
fn miniz_inflate(z: &[u8]) -> Vec<u8> {
    let body = &z[10..z.len() - 8];
    miniz_oxide::inflate::decompress_to_vec(body).expect("valid deflate")
}
