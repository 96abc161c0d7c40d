//! Arbitrary process lists: protobuf encode → decode gives them back, and
//! gzip of the encoding inflates to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quick_protobuf::BytesReader;
use sockagent::collect::processes::ProcRow;
use sockagent::protocol::{gzip::Gzip, pb};

#[derive(arbitrary::Arbitrary, Debug)]
struct Row {
    pid: u32,
    name: String,
    cpu: f32,
    mem: u64,
}

fuzz_target!(|rows: Vec<Row>| {
    let rows: Vec<ProcRow> = rows
        .into_iter()
        .map(|r| ProcRow { pid: r.pid, name: r.name, cpu_usage: r.cpu, mem_bytes: r.mem })
        .collect();
    let mut out = Vec::new();
    pb::encode_processes(&rows, &mut out);
    let mut r = BytesReader::from_bytes(&out);
    let mut back = Vec::new();
    let mut count = 0;
    while !r.is_eof() {
        match r.next_tag(&out).unwrap() {
            8 => count = r.read_uint32(&out).unwrap(),
            18 => {
                let sub = r.read_bytes(&out).unwrap();
                let mut rr = BytesReader::from_bytes(sub);
                let mut p = ProcRow::default();
                while !rr.is_eof() {
                    match rr.next_tag(sub).unwrap() {
                        8 => p.pid = rr.read_uint32(sub).unwrap(),
                        18 => p.name = rr.read_string(sub).unwrap().to_string(),
                        29 => p.cpu_usage = rr.read_float(sub).unwrap(),
                        32 => p.mem_bytes = rr.read_uint64(sub).unwrap(),
                        t => panic!("unexpected tag {t}"),
                    }
                }
                back.push(p);
            }
            t => panic!("unexpected tag {t}"),
        }
    }
    assert_eq!(count as usize, rows.len());
    assert_eq!(back.len(), rows.len());
    for (a, b) in rows.iter().zip(&back) {
        assert_eq!((a.pid, &a.name, a.mem_bytes), (b.pid, &b.name, b.mem_bytes));
        assert!(a.cpu_usage.to_bits() == b.cpu_usage.to_bits() || (a.cpu_usage == 0.0 && b.cpu_usage == 0.0));
    }
    let mut gz = Gzip::default();
    let mut z = Vec::new();
    if gz.compress(&out, &mut z) {
        let inflated = miniz_inflate(&z);
        assert_eq!(inflated, out);
    }
});

/// gunzip with miniz_oxide's inflater (header 10 bytes, trailer 8).
fn miniz_inflate(z: &[u8]) -> Vec<u8> {
    let body = &z[10..z.len() - 8];
    miniz_oxide::inflate::decompress_to_vec(body).expect("valid deflate")
}
