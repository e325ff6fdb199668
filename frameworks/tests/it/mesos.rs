//! `MesosAgentClient` against fake agents of both generations.

use frameworks::{FrameworkError, MesosAgentApi, MesosAgentClient};

use testkit::wire::agent::AgentServer;

use crate::support::{creds, fast_config, fixture};

fn client(agent: &AgentServer) -> MesosAgentClient {
    MesosAgentClient::with_config(&creds(&agent.url), fast_config()).expect("client")
}

#[tokio::test]
async fn reads_monitor_statistics() {
    let agent = AgentServer::start(true, false, &fixture("mesos/statistics.json")).await;
    let mesos = client(&agent);
    let stats = mesos.statistics().await.expect("statistics");
    assert_eq!(stats.len(), 2);
    let marathon_task = &stats[0];
    assert_eq!(marathon_task.executor_id, marathon_task.source);
    assert!(
        marathon_task
            .executor_name
            .starts_with("Command Executor (Task: qos_job-a.")
    );
    let s = &marathon_task.statistics;
    assert_eq!(s.timestamp, 1_388_534_400.0);
    assert_eq!(s.cpus_limit, Some(0.6));
    assert_eq!(s.cpus_nr_throttled, Some(1046));
    assert_eq!(s.mem_limit_bytes, Some(301_989_888));

    let chronos_task = &stats[1].statistics;
    assert_eq!(
        chronos_task.cpus_nr_periods, None,
        "no CFS fields without quota"
    );
    assert!(chronos_task.extra.contains_key("perf"));
    assert!(chronos_task.extra.contains_key("mem_file_bytes"));

    let one = mesos
        .statistics_for("ct:1499688000000:0:openmpLinpack1:")
        .await
        .expect("lookup");
    assert_eq!(one.expect("present").statistics.cpu_time_secs(), Some(13.0));
    assert!(
        mesos
            .statistics_for("nope")
            .await
            .expect("lookup")
            .is_none()
    );
    assert_eq!(
        agent.state().legacy_hits,
        0,
        "no fallback on a modern agent"
    );
}

#[tokio::test]
async fn falls_back_to_the_json_endpoint_once_and_remembers() {
    let agent = AgentServer::start(false, true, &fixture("mesos/statistics.json")).await;
    let mesos = client(&agent);
    assert_eq!(mesos.statistics().await.expect("legacy").len(), 2);
    assert_eq!(mesos.statistics().await.expect("legacy again").len(), 2);
    assert_eq!(
        agent.state().modern_hits,
        1,
        "the modern path is tried once"
    );
    assert_eq!(agent.state().legacy_hits, 2);
}

#[tokio::test]
async fn neither_endpoint_is_not_found() {
    let agent = AgentServer::start(false, false, "[]").await;
    let api: Box<dyn MesosAgentApi> = Box::new(client(&agent));
    let err = api.statistics().await.expect_err("404");
    match err {
        FrameworkError::NotFound { url, .. } => {
            assert!(url.ends_with("/monitor/statistics.json"), "{url}")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}
