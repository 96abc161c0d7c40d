//! Each request end to end over a loopback WebSocket against the release
//! agent with its caches off. `cargo bench --bench requests`

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use tungstenite::{Message, WebSocket};

fn main() {
    divan::main();
}

struct Agent(Child);
impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn agent() -> &'static std::sync::Mutex<(Agent, WebSocket<TcpStream>)> {
    static A: OnceLock<std::sync::Mutex<(Agent, WebSocket<TcpStream>)>> = OnceLock::new();
    A.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_sockagent"))
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .env("SOCKTOP_AGENT_METRICS_TTL_MS", "0")
            .env("SOCKTOP_AGENT_DISKS_TTL_MS", "0")
            .env("SOCKTOP_AGENT_PROCESSES_TTL_MS", "0")
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("ws://127.0.0.1:{port}/ws");
        let ws = (0..100)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(30));
                tungstenite::connect(&url).ok()
            })
            .unwrap()
            .0;
        let ws = match ws.into_inner() {
            tungstenite::stream::MaybeTlsStream::Plain(s) => {
                tungstenite::WebSocket::from_raw_socket(
                    s,
                    tungstenite::protocol::Role::Client,
                    None,
                )
            }
            _ => unreachable!(),
        };
        std::sync::Mutex::new((Agent(child), ws))
    })
}

fn roundtrip(req: &str) -> usize {
    let mut g = agent().lock().unwrap();
    g.1.send(Message::text(req)).unwrap();
    match g.1.read().unwrap() {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    }
}

#[divan::bench(args = ["get_metrics", "get_disks", "get_processes", "get_process_metrics:1", "bogus"])]
fn request(b: divan::Bencher, req: &str) {
    roundtrip(req);
    b.bench(|| roundtrip(req));
}
