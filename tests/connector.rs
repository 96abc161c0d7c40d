//! The real client library (socktop_connector 1.60.1) against our agent.

mod common;
use common::Agent;
use socktop_connector::{AgentRequest, AgentResponse, ConnectorConfig, SocktopConnector};

async fn metrics(c: &mut SocktopConnector) -> socktop_connector::Metrics {
    match c
        .request(AgentRequest::Metrics)
        .await
        .expect("metrics parse")
    {
        AgentResponse::Metrics(m) => m,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn real_connector_parses_every_core_answer() {
    let agent = Agent::start(&[], &[]);
    let mut c = socktop_connector::connect_to_socktop_agent(agent.url())
        .await
        .expect("connect");
    let m = metrics(&mut c).await;
    assert!(m.mem_total > 0);
    assert!(!m.cpu_per_core.is_empty());
    assert!(m.networks.iter().any(|n| n.name == "lo"));
    assert!(m.sampled_at_ms.is_some());
    assert!(m.process_count.is_some_and(|n| n > 1));
    let AgentResponse::Disks(d) = c.request(AgentRequest::Disks).await.expect("disks parse") else {
        panic!()
    };
    assert!(!d.is_empty());
    let AgentResponse::Processes(p) = c
        .request(AgentRequest::Processes)
        .await
        .expect("processes parse")
    else {
        panic!()
    };
    assert_eq!(p.process_count, p.top_processes.len());
    assert!(p.top_processes.iter().any(|r| r.pid == std::process::id()));
    // and again, from the caches
    metrics(&mut c).await;
    assert!(c.request(AgentRequest::Processes).await.is_ok());
}

#[tokio::test(flavor = "current_thread")]
async fn real_connector_with_subprotocol_and_token() {
    let agent = Agent::start(&[], &[("SOCKTOP_TOKEN", "abc")]);
    let cfg = ConnectorConfig::new(format!("{}?token=abc", agent.url()))
        .with_protocols(vec!["socktop".into()]);
    let mut c = SocktopConnector::new(cfg);
    c.connect().await.expect("connect with subprotocol");
    metrics(&mut c).await;
    let bad =
        socktop_connector::connect_to_socktop_agent(format!("{}?token=nope", agent.url())).await;
    assert!(bad.is_err(), "a wrong token must fail the handshake");
}

#[tokio::test(flavor = "current_thread")]
async fn real_connector_process_window_requests() {
    let agent = Agent::start(&[], &[("SOCKAGENT_JOURNALCTL", "/nonexistent/journalctl")]);
    let mut c = socktop_connector::connect_to_socktop_agent(agent.url())
        .await
        .expect("connect");
    let pid = std::process::id();
    match c
        .request(AgentRequest::ProcessMetrics { pid })
        .await
        .expect("process metrics parse")
    {
        AgentResponse::ProcessMetrics(r) => assert_eq!(r.process.pid, pid),
        other => panic!("{other:?}"),
    }
    match c
        .request(AgentRequest::JournalEntries { pid })
        .await
        .expect("journal parse")
    {
        AgentResponse::JournalEntries(r) => assert!(r.notice.is_some()),
        other => panic!("{other:?}"),
    }
}
