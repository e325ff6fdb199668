//! Integration tests of the supervisor: HTTP routes (in-process and over TCP with the typed
//! client), random bodies, persistence across restarts (including `kill -9` of the binary), and
//! the control loop on paused time against the testkit fakes; the Grafana dashboards' structure
//! and every one of their queries against a real Prometheus; the `/ui` page in headless Chromium;
//! the fault suite (`faults`, run and tabulated by `scripts/faults`).

mod api;
mod control;
mod e2e;
mod faults;
mod fuzz;
mod grafana;
mod limits;
mod operator;
mod persistence;
mod prometheus;
mod replay;
mod support;
mod testbed;
mod ui;
mod views;
