//! Progress reports against a recording HTTP server standing in for the supervisor.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{fraction, supervisor};
use linpack::cli::{Signals, exit, run_cli};
use testkit::wire::Scripted;

struct Ran {
    code: u8,
    out: String,
    err: String,
    wall: Duration,
}

fn run(args: &[&str], env: &[(&str, String)]) -> Ran {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let lookup = move |k: &str| env.iter().find(|(e, _)| e == k).map(|(_, v)| v.clone());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args = std::iter::once("linpack").chain(args.iter().copied());
    let started = Instant::now();
    let code = run_cli(
        args,
        &lookup,
        Path::new("/nonexistent-root"),
        &Signals::default(),
        &mut out,
        &mut err,
    );
    Ran {
        code,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
        wall: started.elapsed(),
    }
}

#[test]
fn reports_reach_the_supervisor_with_token_and_increasing_fractions() {
    let server = supervisor();
    let env = [
        ("QOS_SUPERVISOR_URL", format!("{}/", server.url)),
        ("QOS_UUID", "job-42".to_owned()),
        ("QOS_REPORT_TOKEN", "tok-123".to_owned()),
        ("QOS_PROGRESS_INTERVAL", "0.05".to_owned()),
    ];
    let ran = run(
        &["200", "--repeat", "8", "--threads", "2", "-o", "json"],
        &env,
    );
    assert_eq!(ran.code, exit::OK, "{}", ran.err);
    assert!(ran.err.is_empty(), "{}", ran.err);
    let reqs = server.requests();
    assert!(reqs.len() >= 3, "{} requests", reqs.len());
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/v1/jobs/job-42/progress");
        assert_eq!(r.header("authorization"), Some("Bearer tok-123"));
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let v = r.json();
        assert!(v["at"].as_f64().unwrap() > 1.6e9, "{v}");
    }
    let fractions: Vec<f64> = reqs.iter().map(fraction).collect();
    assert_eq!(*fractions.last().unwrap(), 1.0, "{fractions:?}");
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]), "{fractions:?}");
    assert!(
        fractions.iter().any(|f| *f > 0.0 && *f < 1.0),
        "{fractions:?}"
    );
    // At most one report per interval, plus the final one.
    let bound = ran.wall.as_secs_f64() / 0.05 + 2.0;
    assert!(
        f64::from(u32::try_from(reqs.len()).unwrap()) <= bound,
        "{} > {bound}",
        reqs.len()
    );
}

#[test]
fn hanging_supervisor_does_not_slow_the_computation() {
    let server = Scripted::hanging();
    let env = [
        ("QOS_SUPERVISOR_URL", server.url.clone()),
        ("QOS_UUID", "job-2".to_owned()),
        ("QOS_PROGRESS_INTERVAL", "0.01".to_owned()),
    ];
    let ran = run(
        &["150", "--repeat", "4", "--threads", "2", "-o", "json"],
        &env,
    );
    assert_eq!(ran.code, exit::OK, "{}", ran.err);
    let v: serde_json::Value = serde_json::from_str(&ran.out).unwrap();
    assert_eq!(v["passed"], true);
    // The requests hang until their 1 s timeout; the run does not wait for them beyond the
    // bounded final wait.
    assert!(ran.wall < Duration::from_secs(8), "{:?}", ran.wall);
    assert!(!server.requests().is_empty());
}
