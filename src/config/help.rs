//! `--help`: every flag and variable, its defaults taken from their owners.

use super::{DEFAULT_HISTORY_S, DEFAULT_PORT, DEFAULT_TLS_PORT, MAX_HISTORY_S, MAX_TOP_N};
use crate::answers::{Ttls, PROM_TOP_CGROUPS, PROM_TOP_N};
use crate::server::Limits;

/// The text `--help` prints.
pub fn help() -> String {
    let t = Ttls::default();
    let l = Limits::default();
    let ms = |d: std::time::Duration| d.as_millis();
    format!(
        "\
sockagent: a light Linux metrics agent speaking the socktop WebSocket API

Usage: sockagent [OPTIONS]
       sockagent bench [-n N]   time each collector N times (default 200) and exit

Options:
  -p, --port N        listening port (default {DEFAULT_PORT}; {DEFAULT_TLS_PORT} with --enableSSL) [SOCKTOP_PORT]
      --bind ADDR     address to listen on (default 0.0.0.0; e.g. 127.0.0.1, ::)
      --enableSSL     serve wss:// (TLS) [SOCKTOP_ENABLE_SSL=1]
      --cert PATH     TLS certificate chain (PEM), with --key
      --key PATH      TLS private key (PEM), with --cert
      --client-ca PATH
                      with TLS, admit only clients whose certificate is signed by
                      a CA in this PEM file [SOCKAGENT_CLIENT_CA]
      --allow-origin ORIGIN
                      a web page at ORIGIN (scheme://host[:port]) may open /ws
                      without the token, e.g. a dashboard served elsewhere;
                      repeatable [SOCKAGENT_ALLOWED_ORIGINS, comma-separated]
      --history SECONDS
                      keep one sample a second for this long, for the history
                      request (default {DEFAULT_HISTORY_S}; 0 = off, no wakeups while idle;
                      at most {MAX_HISTORY_S}) [SOCKAGENT_HISTORY]
      --remote-write URL
                      push /metrics and the history's seconds to this Prometheus
                      remote-write endpoint (http:// or https://)
                      [SOCKAGENT_REMOTE_WRITE_URL]
      --alerts FILE   change the built-in alert rules (TOML: threshold, for,
                      severity, enabled per rule) [SOCKAGENT_ALERTS]
      --alertmanager URL
                      send alerts to this Alertmanager (http/https; repeatable)
                      [SOCKAGENT_ALERTMANAGERS, comma-separated]
  -V, --version       print the version and exit
  -h, --help          print this help and exit

Environment:
  SOCKTOP_TOKEN                   require ?token=<value> on /ws
  SOCKTOP_AGENT_TEMP=0            no temperatures
  SOCKTOP_AGENT_GPU=0             no GPU probing
  SOCKAGENT_NVML_LIB              NVIDIA's NVML library to load (default libnvidia-ml.so.1)
  SOCKTOP_AGENT_METRICS_TTL_MS    metrics cache window ({}; 0 = off)
  SOCKTOP_AGENT_DISKS_TTL_MS      disks cache window ({}; 0 = off)
  SOCKTOP_AGENT_PROCESSES_TTL_MS  processes cache window ({}; 0 = off)
  SOCKTOP_WORKER_THREADS          accepted and ignored (one thread by design)
  SOCKAGENT_ROOT                  read /proc and /sys under this directory (default /)
  SOCKAGENT_JOURNALCTL            journal reader for journal_entries (default journalctl)
  SOCKAGENT_MAX_CONNECTIONS       open connections before new ones get 503 ({})
  SOCKAGENT_MAX_QUEUED_BYTES      output waiting for one client that does not read before it is dropped ({})
  SOCKAGENT_MAX_QUEUED_TOTAL      output held for all clients together; past it the largest is dropped ({})
  SOCKAGENT_HANDSHAKE_TIMEOUT_MS  time to finish the TLS handshake and send the request head ({})
  SOCKAGENT_IDLE_TIMEOUT_MS       close a WebSocket client silent this long (0 = never, the default)
  SOCKAGENT_PROM_TOP_N            processes listed by /metrics, the top N by CPU ({PROM_TOP_N}; 0-{MAX_TOP_N})
  SOCKAGENT_PROM_TOP_CGROUPS      cgroups listed by /metrics, the top N by CPU ({PROM_TOP_CGROUPS}; 0-{MAX_TOP_N})
  SOCKTOP_AGENT_EXTRA_SANS        extra DNS names / IPs for the self-signed certificate (comma-separated);
                                  also names a browser may reach this agent by (Origin and Host checks)
  SOCKAGENT_REMOTE_WRITE_INTERVAL_MS     push period with --remote-write ({}; at least {})
  SOCKAGENT_REMOTE_WRITE_INSTANCE        the pushed `instance` label (default the host name)
  SOCKAGENT_REMOTE_WRITE_BEARER_FILE     file holding a bearer token for the endpoint
  SOCKAGENT_REMOTE_WRITE_BASIC_AUTH_FILE file holding user:password for the endpoint
  SOCKAGENT_REMOTE_WRITE_CA              CAs (PEM) the https endpoint is checked against
                                         (default SSL_CERT_FILE, else the system's bundle)
  RUST_LOG                        log level: error, warn, info (default), debug, trace
",
        ms(t.metrics),
        ms(t.disks),
        ms(t.processes),
        l.max_connections,
        l.max_queued_output,
        l.max_queued_total,
        ms(l.handshake_timeout),
        ms(crate::remote::target::DEFAULT_INTERVAL),
        ms(crate::remote::target::MIN_INTERVAL),
    )
}
