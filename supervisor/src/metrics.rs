//! `/metrics`: the thesis' metric catalogue (thesis-code.md §4.2) under `qos_` names with units,
//! one series per job labelled `uuid`, `name`, `framework` only; `qos_job_class` is a state set
//! (one series per class, 1 for the current one); request counts and latencies by matched route.
//! Series of finished jobs are retired after a retention period.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use qos_core::job::Phase;
use qos_core::{Class, Decision, Job};

use crate::summary::Summary;

/// Labels of every per-job series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct JobLabels {
    pub(crate) uuid: String,
    pub(crate) name: String,
    pub(crate) framework: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    uuid: String,
    name: String,
    framework: String,
    class: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: String,
    method: String,
}

type FGauge = Gauge<f64, AtomicU64>;
type HistFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

/// Handles to one job's series (cheap atomic updates).
#[derive(Debug, Clone)]
pub(crate) struct JobGauges {
    labels: JobLabels,
    prediction_vs_deadline: FGauge,
    band_upper: FGauge,
    band_lower: FGauge,
    remaining: FGauge,
    cpu: FGauge,
    last_iteration: FGauge,
    consumed: FGauge,
    desired: FGauge,
    ratio: FGauge,
    class: Vec<(Class, FGauge)>,
    resizes: Counter,
    /// Made on the first update of a continuous job (restarts) and on its first measured restart
    /// (cost): absent for jobs that never restart.
    restarts: Family<JobLabels, FGauge>,
    restart_cost: Family<JobLabels, FGauge>,
    lost_work: Family<JobLabels, FGauge>,
}

/// The registry and its families.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    prediction_vs_deadline: Family<JobLabels, FGauge>,
    band_upper: Family<JobLabels, FGauge>,
    band_lower: Family<JobLabels, FGauge>,
    remaining: Family<JobLabels, FGauge>,
    cpu: Family<JobLabels, FGauge>,
    last_iteration: Family<JobLabels, FGauge>,
    consumed: Family<JobLabels, FGauge>,
    desired: Family<JobLabels, FGauge>,
    ratio: Family<JobLabels, FGauge>,
    class: Family<ClassLabels, FGauge>,
    resizes: Family<JobLabels, Counter>,
    restarts: Family<JobLabels, FGauge>,
    restart_cost: Family<JobLabels, FGauge>,
    lost_work: Family<JobLabels, FGauge>,
    met: Family<JobLabels, FGauge>,
    lost: Family<JobLabels, FGauge>,
    jobs_lost: Counter,
    requests: Family<RouteLabels, Counter>,
    latency: HistFamily,
    reconciles: Counter,
    reconcile_errors: Counter,
    decisions: Counter,
    clock_skew_refusals: Counter,
    held_refusals: Counter,
    store_wal: Gauge,
    store_wal_peak: Gauge,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl Metrics {
    /// Every family registered with its help text: long, a list that reads as the `/metrics`
    /// catalogue.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            registry: Arc::new(Registry::default()),
            prediction_vs_deadline: Family::default(),
            band_upper: Family::default(),
            band_lower: Family::default(),
            remaining: Family::default(),
            cpu: Family::default(),
            last_iteration: Family::default(),
            consumed: Family::default(),
            desired: Family::default(),
            ratio: Family::default(),
            class: Family::default(),
            resizes: Family::default(),
            restarts: Family::default(),
            restart_cost: Family::default(),
            lost_work: Family::default(),
            met: Family::default(),
            lost: Family::default(),
            jobs_lost: Counter::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            reconciles: Counter::default(),
            reconcile_errors: Counter::default(),
            decisions: Counter::default(),
            clock_skew_refusals: Counter::default(),
            held_refusals: Counter::default(),
            store_wal: Gauge::default(),
            store_wal_peak: Gauge::default(),
        };
        registry.register(
            "qos_prediction_vs_deadline_seconds",
            "Predicted finish minus deadline (> 0: predicted late)",
            m.prediction_vs_deadline.clone(),
        );
        registry.register(
            "qos_band_upper_seconds",
            "Chronos jobs: the upper band minus the deadline (prediction − deadline above it is \
             UNDER_PERFORMANT)",
            m.band_upper.clone(),
        );
        registry.register(
            "qos_band_lower_seconds",
            "Chronos jobs: the lower band minus the deadline (prediction − deadline below it is \
             OVER_PERFORMANT)",
            m.band_lower.clone(),
        );
        registry.register(
            "qos_remaining_iterations",
            "Iterations not yet reported (Chronos jobs)",
            m.remaining.clone(),
        );
        registry.register(
            "qos_cpu_allocated",
            "CPUs allocated to the job",
            m.cpu.clone(),
        );
        registry.register(
            "qos_last_iteration_seconds",
            "Measured duration of the last iteration (Chronos) or run time (Marathon, at the end)",
            m.last_iteration.clone(),
        );
        registry.register(
            "qos_cputime_consumed_seconds",
            "CPU-seconds consumed (Marathon jobs, Eq. 3 numerator)",
            m.consumed.clone(),
        );
        registry.register(
            "qos_cputime_desired_seconds",
            "CPU-seconds that should have been consumed by now (Eq. 2)",
            m.desired.clone(),
        );
        registry.register(
            "qos_progress_ratio",
            "Consumed / desired CPU time (Eq. 3); progress fraction for Chronos jobs",
            m.ratio.clone(),
        );
        registry.register(
            "qos_job_class",
            "State set of the job's class: 1 for the current class, 0 for the others",
            m.class.clone(),
        );
        registry.register(
            "qos_resizes",
            "Resizes applied to the job",
            m.resizes.clone(),
        );
        registry.register(
            "qos_restarts",
            "Restarts of the job's task to apply a resize (Marathon jobs in restart mode)",
            m.restarts.clone(),
        );
        registry.register(
            "qos_restart_cost_seconds",
            "Mean measured restart cost: seconds from the restart request to the restored task \
             running (absent until one is measured)",
            m.restart_cost.clone(),
        );
        registry.register(
            "qos_lost_cpu_seconds",
            "CPU-seconds of work thrown away by restarts that started the job again from scratch \
             (it could not checkpoint); Marathon jobs",
            m.lost_work.clone(),
        );
        registry.register(
            "qos_deadline_met",
            "1 if the job finished by its deadline, 0 if not (absent while it runs)",
            m.met.clone(),
        );
        registry.register(
            "qos_job_lost",
            "1 if the job is LOST: its framework no longer has it (absent otherwise)",
            m.lost.clone(),
        );
        registry.register(
            "qos_jobs_lost",
            "Jobs marked LOST since the supervisor started",
            m.jobs_lost.clone(),
        );
        registry.register(
            "qos_http_requests",
            "HTTP requests by matched route, method and status",
            m.requests.clone(),
        );
        registry.register(
            "qos_http_request_duration_seconds",
            "HTTP request latency by matched route and method",
            m.latency.clone(),
        );
        registry.register(
            "qos_reconciles",
            "Reconciles run by the control loop",
            m.reconciles.clone(),
        );
        registry.register(
            "qos_decisions",
            "Decisions made by the control loop",
            m.decisions.clone(),
        );
        registry.register(
            "qos_reconcile_errors",
            "Resizes or cleanups that failed (retried with backoff)",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "qos_clock_skew_refusals",
            "Client times refused for being ahead of the supervisor's clock by more than \
             limits.clock_skew",
            m.clock_skew_refusals.clone(),
        );
        registry.register(
            "qos_held_refusals",
            "Reports for jobs not registered yet refused because what is held reached its bound \
             (count or bytes)",
            m.held_refusals.clone(),
        );
        registry.register_with_unit(
            "qos_store_wal",
            "Size of the database's write-ahead log at this scrape",
            Unit::Bytes,
            m.store_wal.clone(),
        );
        registry.register_with_unit(
            "qos_store_wal_peak",
            "Largest the database's write-ahead log has been at the end of a transaction since \
             start (storage.wal_max_bytes keeps it to about twice that bound)",
            Unit::Bytes,
            m.store_wal_peak.clone(),
        );
        Self {
            registry: Arc::new(registry),
            ..m
        }
    }

    /// The series handles of a job (created on first use).
    pub(crate) fn job(&self, labels: JobLabels) -> JobGauges {
        let class = Class::ALL
            .iter()
            .map(|&c| {
                let l = ClassLabels {
                    uuid: labels.uuid.clone(),
                    name: labels.name.clone(),
                    framework: labels.framework.clone(),
                    class: c.as_str().to_owned(),
                };
                (c, self.class.get_or_create_owned(&l))
            })
            .collect();
        JobGauges {
            prediction_vs_deadline: self.prediction_vs_deadline.get_or_create_owned(&labels),
            band_upper: self.band_upper.get_or_create_owned(&labels),
            band_lower: self.band_lower.get_or_create_owned(&labels),
            remaining: self.remaining.get_or_create_owned(&labels),
            cpu: self.cpu.get_or_create_owned(&labels),
            last_iteration: self.last_iteration.get_or_create_owned(&labels),
            consumed: self.consumed.get_or_create_owned(&labels),
            desired: self.desired.get_or_create_owned(&labels),
            ratio: self.ratio.get_or_create_owned(&labels),
            resizes: self.resizes.get_or_create_owned(&labels),
            restarts: self.restarts.clone(),
            restart_cost: self.restart_cost.clone(),
            lost_work: self.lost_work.clone(),
            class,
            labels,
        }
    }

    /// Removes every series of a job.
    pub(crate) fn retire(&self, g: &JobGauges) {
        let l = &g.labels;
        for f in [
            &self.prediction_vs_deadline,
            &self.band_upper,
            &self.band_lower,
            &self.remaining,
            &self.cpu,
            &self.last_iteration,
            &self.consumed,
            &self.desired,
            &self.ratio,
            &self.restarts,
            &self.restart_cost,
            &self.lost_work,
            &self.met,
            &self.lost,
        ] {
            f.remove(l);
        }
        self.resizes.remove(l);
        for c in Class::ALL {
            self.class.remove(&ClassLabels {
                uuid: l.uuid.clone(),
                name: l.name.clone(),
                framework: l.framework.clone(),
                class: c.as_str().to_owned(),
            });
        }
    }

    /// Records whether a finished job met its deadline.
    pub(crate) fn deadline_met(&self, g: &JobGauges, met: bool) {
        self.met
            .get_or_create(&g.labels)
            .set(if met { 1.0 } else { 0.0 });
    }

    /// Shows a job as `LOST`; `newly`: it just became so (counted once).
    pub(crate) fn job_lost(&self, g: &JobGauges, newly: bool) {
        self.lost.get_or_create(&g.labels).set(1.0);
        if newly {
            self.jobs_lost.inc();
        }
    }

    /// Counts one HTTP request.
    pub(crate) fn request(&self, route: &str, method: &str, status: u16, secs: f64) {
        self.requests
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(secs);
    }

    pub(crate) fn reconciled(&self) {
        self.reconciles.inc();
    }

    pub(crate) fn apply_failed(&self) {
        self.reconcile_errors.inc();
    }

    pub(crate) fn clock_skew_refused(&self) {
        self.clock_skew_refusals.inc();
    }

    pub(crate) fn held_refused(&self) {
        self.held_refusals.inc();
    }

    pub(crate) fn decided(&self) {
        self.decisions.inc();
    }

    /// The database's WAL: its size now and the largest it has been, bytes.
    pub(crate) fn store_wal(&self, now: u64, peak: u64) {
        self.store_wal.set(i64::try_from(now).unwrap_or(i64::MAX));
        self.store_wal_peak
            .set(i64::try_from(peak).unwrap_or(i64::MAX));
    }

    /// Decisions made so far.
    pub(crate) fn decisions(&self) -> u64 {
        self.decisions.get()
    }

    /// The Prometheus text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl JobGauges {
    /// Updates the series from a job and, when there is one, the decision just made.
    pub(crate) fn update(&self, job: &Job, decision: Option<&Decision>) {
        self.cpu.set(job.cpus.as_f64());
        self.show(&Summary::of(job));
        if let qos_core::Work::Continuous(w) = &job.work {
            self.consumed.set(w.cpu.total());
            self.restarts
                .get_or_create(&self.labels)
                .set(f64::from(w.restarts));
            self.lost_work.get_or_create(&self.labels).set(w.cpu.lost());
        }
        let Some(d) = decision else { return };
        let f = &d.figures;
        if let Some(p) = f.prediction {
            self.prediction_vs_deadline.set(p - job.qos.deadline_at);
        }
        if matches!(job.work, qos_core::Work::Iterative(_)) {
            if let Some(b) = f.band_sup {
                self.band_upper.set(b - job.qos.deadline_at);
            }
            if let Some(b) = f.band_inf {
                self.band_lower.set(b - job.qos.deadline_at);
            }
        }
        if let Some(c) = f.cpu_consumed {
            self.consumed.set(c);
        }
        if let Some(c) = f.cpu_desired {
            self.desired.set(c);
        }
        match (f.ratio, f.progress) {
            (Some(r), _) => {
                self.ratio.set(r);
            }
            (None, Some(p)) if matches!(job.work, qos_core::Work::Iterative(_)) => {
                self.ratio.set(p);
            }
            _ => {}
        }
        let class = if matches!(job.phase, Phase::Completed { .. }) {
            Class::OnPlan
        } else {
            d.class
        };
        for (c, g) in &self.class {
            g.set(if *c == class { 1.0 } else { 0.0 });
        }
    }

    /// Updates the series of a job whose lists are not in memory, from its summary.
    pub(crate) fn update_summary(&self, job: &Job, s: &Summary) {
        self.update(job, None);
        self.show(s);
    }

    /// The series a [`Summary`] holds: computed from a job in memory, or kept for one that is not.
    fn show(&self, s: &Summary) {
        self.remaining.set(f64::from(s.remaining_iterations));
        if let Some(x) = s.last_iteration_secs {
            self.last_iteration.set(x);
        }
        if let Some(c) = s.restart_cost_secs {
            self.restart_cost.get_or_create(&self.labels).set(c);
        }
    }

    /// Counts an applied resize.
    pub(crate) fn resized(&self) {
        self.resizes.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(uuid: &str, name: &str, framework: &str) -> JobLabels {
        JobLabels {
            uuid: uuid.into(),
            name: name.into(),
            framework: framework.into(),
        }
    }

    #[test]
    fn series_and_retirement() {
        let m = Metrics::new();
        let g = m.job(labels("u1", "j", "chronos"));
        g.resized();
        m.request("/updateTask", "POST", 200, 0.001);
        let text = m.encode();
        assert!(
            text.contains("qos_resizes_total{uuid=\"u1\",name=\"j\",framework=\"chronos\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "qos_job_class{uuid=\"u1\",name=\"j\",framework=\"chronos\",class=\"NO_DATA\"} 0"
        ));
        assert!(text.contains(
            "qos_http_requests_total{route=\"/updateTask\",method=\"POST\",status=\"200\"} 1"
        ));
        m.retire(&g);
        assert!(!m.encode().contains("u1"));
    }

    #[test]
    fn restarts_and_their_cost() {
        use qos_core::job::Observation;
        use qos_core::spec::{Deadline, QosSpec};
        use qos_core::{Cpus, Job};

        let m = Metrics::new();
        let g = m.job(labels("m1", "app", "marathon"));
        let qos = QosSpec {
            duration: 400.0,
            deadline: Deadline::Relative(480.0),
            desv_deadline: 0.1,
        }
        .resolve(0.0);
        let mut job = Job::continuous("app", qos, Cpus::ONE);
        job.observe(Observation::Started {
            at: 0.0,
            restored: None,
        })
        .unwrap();
        g.update(&job, None);
        let text = m.encode();
        let series =
            |name: &str| format!("{name}{{uuid=\"m1\",name=\"app\",framework=\"marathon\"}}");
        assert!(
            text.contains(&format!("{} 0.0", series("qos_restarts"))),
            "{text}"
        );
        assert!(
            !text.contains(&series("qos_restart_cost_seconds")),
            "absent until measured"
        );
        for (at, back, cpus) in [(100.0, 104.0, 1.5), (200.0, 210.0, 0.8)] {
            job.observe(Observation::Resized {
                at,
                cpus: Cpus::from_f64(cpus),
                restart: true,
            })
            .unwrap();
            job.observe(Observation::Started {
                at: back,
                restored: Some(true),
            })
            .unwrap();
        }
        g.update(&job, None);
        let text = m.encode();
        assert!(
            text.contains(&format!("{} 2.0", series("qos_restarts"))),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} 7.0", series("qos_restart_cost_seconds"))),
            "{text}"
        );
        m.retire(&g);
        assert!(!m.encode().contains("m1"));
    }
}
