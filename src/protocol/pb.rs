//! The process frame, to the guide's schema (`proto/processes.proto`),
//! encoded with quick-protobuf straight from the caller's rows (anything
//! that says its four fields: `ProcessRow`), without copying them.

use quick_protobuf::sizeofs::{sizeof_len, sizeof_varint};
use quick_protobuf::{MessageWrite, Result, Writer, WriterBackend};

/// What the encoder reads of one process: the schema's four fields, in
/// its order (`pid`, `name`, `cpu_usage`, `mem_bytes`).
pub trait ProcessRow {
    fn fields(&self) -> (u32, &str, f32, u64);
}

/// A decoded process (`decode_processes`), and a row the encoder takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    pub pid: u32,
    pub name: String,
    pub cpu_usage: f32,
    pub mem_bytes: u64,
}

impl ProcessRow for Process {
    fn fields(&self) -> (u32, &str, f32, u64) {
        (self.pid, &self.name, self.cpu_usage, self.mem_bytes)
    }
}

/// `message Process { uint32 pid = 1; string name = 2; float cpu_usage = 3; uint64 mem_bytes = 4; }`
struct Msg<'a, R>(&'a R);

impl<R: ProcessRow> MessageWrite for Msg<'_, R> {
    fn get_size(&self) -> usize {
        let (pid, name, cpu_usage, mem_bytes) = self.0.fields();
        (if pid != 0 {
            1 + sizeof_varint(u64::from(pid))
        } else {
            0
        }) + (if !name.is_empty() {
            1 + sizeof_len(name.len())
        } else {
            0
        }) + (if cpu_usage != 0.0 { 1 + 4 } else { 0 })
            + (if mem_bytes != 0 {
                1 + sizeof_varint(mem_bytes)
            } else {
                0
            })
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> Result<()> {
        let (pid, name, cpu_usage, mem_bytes) = self.0.fields();
        if pid != 0 {
            w.write_with_tag(8, |w| w.write_uint32(pid))?;
        }
        if !name.is_empty() {
            w.write_with_tag(18, |w| w.write_string(name))?;
        }
        if cpu_usage != 0.0 {
            w.write_with_tag(29, |w| w.write_float(cpu_usage))?;
        }
        if mem_bytes != 0 {
            w.write_with_tag(32, |w| w.write_uint64(mem_bytes))?;
        }
        Ok(())
    }
}

/// `message ProcessList { uint32 process_count = 1; repeated Process processes = 2; }`
struct List<'a, R>(&'a [R]);

impl<R: ProcessRow> MessageWrite for List<'_, R> {
    fn get_size(&self) -> usize {
        let n = self.0.len() as u64;
        (if n != 0 { 1 + sizeof_varint(n) } else { 0 })
            + self
                .0
                .iter()
                .map(|p| 1 + sizeof_len(Msg(p).get_size()))
                .sum::<usize>()
    }

    fn write_message<W: WriterBackend>(&self, w: &mut Writer<W>) -> Result<()> {
        let n = self.0.len();
        if n != 0 {
            w.write_with_tag(8, |w| w.write_uint32(u32::try_from(n).unwrap_or(u32::MAX)))?;
        }
        for p in self.0 {
            w.write_with_tag(18, |w| w.write_message(&Msg(p)))?;
        }
        Ok(())
    }
}

/// Encodes the rows into `out` (cleared first).
pub fn encode_processes<R: ProcessRow>(rows: &[R], out: &mut Vec<u8>) {
    out.clear();
    let msg = List(rows);
    out.reserve(msg.get_size());
    let mut w = Writer::new(&mut *out);
    // Writing into a Vec cannot fail.
    let _ = msg.write_message(&mut w);
}

/// Decodes a process frame (not gzipped) back into rows: for tests and
/// the fuzz round trip. `None` on anything that is not such a frame.
pub fn decode_processes(buf: &[u8]) -> Option<(u32, Vec<Process>)> {
    use quick_protobuf::BytesReader;
    let mut r = BytesReader::from_bytes(buf);
    let (mut count, mut rows) = (0, Vec::new());
    while !r.is_eof() {
        match r.next_tag(buf).ok()? {
            8 => count = r.read_uint32(buf).ok()?,
            18 => {
                let sub = r.read_bytes(buf).ok()?;
                let mut rr = BytesReader::from_bytes(sub);
                let mut p = Process::default();
                while !rr.is_eof() {
                    match rr.next_tag(sub).ok()? {
                        8 => p.pid = rr.read_uint32(sub).ok()?,
                        18 => p.name = rr.read_string(sub).ok()?.to_string(),
                        29 => p.cpu_usage = rr.read_float(sub).ok()?,
                        32 => p.mem_bytes = rr.read_uint64(sub).ok()?,
                        t => rr.read_unknown(sub, t).ok()?,
                    }
                }
                rows.push(p);
            }
            t => r.read_unknown(buf, t).ok()?,
        }
    }
    Some((count, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_by_hand_decoding() {
        let rows = vec![
            Process {
                pid: 1,
                name: "init".into(),
                cpu_usage: 1.5,
                mem_bytes: 4096,
            },
            Process {
                pid: 584,
                name: "(a b ) ( c d) ".into(),
                cpu_usage: 0.0,
                mem_bytes: 0,
            },
        ];
        let mut out = Vec::new();
        encode_processes(&rows, &mut out);
        assert_eq!(out.len(), List(&rows).get_size());
        let (count, back) = decode_processes(&out).unwrap();
        assert_eq!(count, 2);
        assert_eq!(back, rows);
    }
}
