//! The Grafana files under `grafana/`: dashboards are current-schema JSON whose panels have
//! unique ids, use the `${DS_PROMETHEUS}` data source variable and only variables they define;
//! provisioning and the Prometheus scrape configuration are where a stock Grafana and
//! Prometheus expect them. Every PromQL expression is extracted here for the live Prometheus
//! test (`prometheus.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Variables Grafana defines itself.
const BUILTIN: &[&str] = &[
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__all",
    "__dashboard",
    "__from",
    "__to",
    "timeFilter",
];

/// The data source every panel and query must use.
const DS_VAR: &str = "${DS_PROMETHEUS}";

/// One PromQL expression of a dashboard.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// File name of the dashboard.
    pub(crate) dashboard: String,
    /// Panel title, or `variable <name>` for a template variable's query.
    pub(crate) panel: String,
    /// The expression as written (with `$variables`).
    pub(crate) expr: String,
}

pub(crate) fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

/// Every dashboard file, parsed, by file name.
pub(crate) fn dashboards() -> BTreeMap<String, Value> {
    let dir = grafana_dir().join("dashboards");
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.insert(p.file_name().unwrap().to_string_lossy().into_owned(), v);
        }
    }
    out
}

/// Panels, nested rows' panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        for q in p["panels"].as_array().into_iter().flatten() {
            out.push(q);
        }
    }
    out
}

/// Every PromQL expression of every dashboard: panel targets, and template variables'
/// `label_values(SELECTOR, label)` / `query_result(EXPR)` queries as their inner expression.
pub(crate) fn queries() -> Vec<Query> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(Query {
                        dashboard: file.clone(),
                        panel: p["title"].as_str().unwrap_or("?").to_owned(),
                        expr: expr.to_owned(),
                    });
                }
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] != "query" {
                continue;
            }
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .unwrap_or_default();
            let inner = if let Some(rest) = q.strip_prefix("label_values(") {
                let body = rest.strip_suffix(')').unwrap_or(rest);
                body.rsplit_once(',').map_or(body, |(sel, _)| sel).trim()
            } else if let Some(rest) = q.strip_prefix("query_result(") {
                rest.strip_suffix(')').unwrap_or(rest).trim()
            } else {
                panic!("{file}: variable {}: unsupported query {q:?}", v["name"]);
            };
            out.push(Query {
                dashboard: file.clone(),
                panel: format!("variable {}", v["name"].as_str().unwrap_or("?")),
                expr: inner.to_owned(),
            });
        }
    }
    out
}

/// `$name`, `${name}`, `${name:format}` and `[[name]]` references in a string.
fn variable_refs(s: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = s.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            if b.get(i + 1) == Some(&b'{') {
                let end = s[i + 2..].find('}').map_or(b.len(), |e| i + 2 + e);
                let name = s[i + 2..end].split(':').next().unwrap_or_default();
                out.insert(name.to_owned());
                i = end;
            } else if b
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
            {
                let mut j = i + 1;
                while j < b.len() && ident(b[j]) {
                    j += 1;
                }
                out.insert(s[i + 1..j].to_owned());
                i = j;
            }
            // `$1` (label_replace's capture group) is not a variable.
        } else if b[i..].starts_with(b"[[") {
            if let Some(e) = s[i + 2..].find("]]") {
                out.insert(s[i + 2..i + 2 + e].split(':').next().unwrap().to_owned());
                i += 2 + e;
            }
        }
        i += 1;
    }
    out
}

fn all_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| all_strings(x, out)),
        _ => {}
    }
}

fn check_ds(where_: &str, ds: &Value) -> Result<(), String> {
    if ds["type"] == "prometheus" && ds["uid"] == DS_VAR {
        Ok(())
    } else {
        Err(format!(
            "{where_}: datasource {ds} is not {{type: prometheus, uid: {DS_VAR}}}"
        ))
    }
}

#[test]
fn dashboards_are_well_formed() {
    let boards = dashboards();
    let names: BTreeSet<&str> = boards.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["chronos-qos.json", "marathon-qos.json", "nodes.json"])
    );
    let mut errors = Vec::new();
    let mut uids = BTreeSet::new();
    for (file, d) in &boards {
        if d["schemaVersion"].as_u64().unwrap_or(0) < 39 {
            errors.push(format!("{file}: schemaVersion {} < 39", d["schemaVersion"]));
        }
        let uid = d["uid"].as_str().unwrap_or_default();
        if uid.is_empty() || !uids.insert(uid.to_owned()) {
            errors.push(format!("{file}: missing or duplicate uid {uid:?}"));
        }
        if d["title"].as_str().is_none_or(str::is_empty) {
            errors.push(format!("{file}: no title"));
        }
        // Variables: the data source variable and the templating one (job or node).
        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut defined: BTreeSet<String> = BUILTIN.iter().map(|s| (*s).to_owned()).collect();
        for v in &vars {
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            if !defined.insert(name.clone()) {
                errors.push(format!("{file}: variable {name:?} defined twice"));
            }
            if v["type"] == "query" {
                if let Err(e) = check_ds(&format!("{file}: variable {name}"), &v["datasource"]) {
                    errors.push(e);
                }
            }
        }
        let ds_var = vars.iter().find(|v| v["name"] == "DS_PROMETHEUS");
        if !ds_var.is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus") {
            errors.push(format!(
                "{file}: no DS_PROMETHEUS datasource variable of type prometheus"
            ));
        }
        let templated = if file.starts_with("nodes") {
            "node"
        } else {
            "job"
        };
        if !defined.contains(templated) {
            errors.push(format!("{file}: not templated by {templated:?}"));
        }
        // Panels: unique ids, a grid position, the data source variable, queries.
        let mut ids = BTreeSet::new();
        for p in panels(d) {
            let title = p["title"].as_str().unwrap_or("?");
            let where_ = format!("{file}: panel {title:?}");
            match p["id"].as_u64() {
                Some(id) if ids.insert(id) => {}
                other => errors.push(format!("{where_}: missing or duplicate id {other:?}")),
            }
            for k in ["h", "w", "x", "y"] {
                if p["gridPos"][k].as_u64().is_none() {
                    errors.push(format!("{where_}: gridPos.{k} missing"));
                }
            }
            if p["type"] == "row" {
                continue;
            }
            if let Err(e) = check_ds(&where_, &p["datasource"]) {
                errors.push(e);
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                errors.push(format!("{where_}: no queries"));
            }
            let mut refs = BTreeSet::new();
            for t in &targets {
                if let Err(e) =
                    check_ds(&format!("{where_} target {}", t["refId"]), &t["datasource"])
                {
                    errors.push(e);
                }
                if t["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                    errors.push(format!("{where_}: target {} has no expr", t["refId"]));
                }
                if !refs.insert(t["refId"].to_string()) {
                    errors.push(format!("{where_}: duplicate refId {}", t["refId"]));
                }
            }
        }
        // Bounded panels: over All a per-job panel (one series per `{{name}}`) draws at most the
        // 20 most pressing jobs (the same ranking in every panel, so they show the same jobs); a
        // per-container panel its top 20. Selected values go in as Grafana's `regex` format in a
        // raw (backquoted) string, where a `"` or `\` in a value cannot break the query.
        for p in panels(d) {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_default();
                let legend = t["legendFormat"].as_str().unwrap_or_default();
                let where_ = format!("{file}: panel {title:?}: {expr:?}");
                for var in ["job", "node"] {
                    let refs = expr.matches(&format!("${var}")).count()
                        + expr.matches(&format!("${{{var}")).count();
                    let quoted = expr.matches(&format!("=~`${{{var}:regex}}`")).count();
                    if refs != quoted {
                        errors.push(format!(
                            "{where_}: ${var} not as =~`${{{var}:regex}}` ({quoted} of {refs})"
                        ));
                    }
                }
                // A series per job (`name`) or per container (`name` of cAdvisor).
                let per_item = legend.contains("{{name}}");
                let bound = if file.starts_with("nodes") {
                    "topk(20, "
                } else {
                    "and on (name) topk(20, "
                };
                if per_item && !expr.contains(bound) {
                    errors.push(format!(
                        "{where_}: series per name not bounded by {bound:?}"
                    ));
                }
                if per_item != title.ends_with("(top 20)") {
                    errors.push(format!("{where_}: the title does not say whether (top 20)"));
                }
            }
        }
        // Every `$var` anywhere in the dashboard is defined.
        let mut strings = Vec::new();
        all_strings(d, &mut strings);
        for s in strings {
            for r in variable_refs(s) {
                if !defined.contains(&r) {
                    errors.push(format!("{file}: undefined variable ${r} in {s:?}"));
                }
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    let qs = queries();
    for file in boards.keys() {
        assert!(
            qs.iter().filter(|q| &q.dashboard == file).count() >= 5,
            "{file}: too few queries"
        );
    }
    eprintln!("{} PromQL expressions:", qs.len());
    for q in &qs {
        eprintln!(
            "  {} / {}: {}",
            q.dashboard,
            q.panel,
            q.expr.replace('\n', " ")
        );
    }
}

#[test]
fn variable_references_are_parsed() {
    let got = variable_refs(
        r#"a{x=~"$job", y="${DS_PROMETHEUS}", z="$1"} [$__rate_interval] [[node]] ${v:csv}"#,
    );
    let want: BTreeSet<String> = ["job", "DS_PROMETHEUS", "__rate_interval", "node", "v"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn provisioning_and_scrape_config_are_in_place() {
    let g = grafana_dir();
    let read =
        |p: &str| std::fs::read_to_string(g.join(p)).unwrap_or_else(|e| panic!("grafana/{p}: {e}"));
    let ds = read("provisioning/datasources/prometheus.yml");
    for want in ["apiVersion: 1", "type: prometheus", "uid: qos-prometheus"] {
        assert!(ds.contains(want), "datasource provisioning lacks {want:?}");
    }
    let dash = read("provisioning/dashboards/qos.yml");
    for want in ["apiVersion: 1", "type: file", "/dashboards"] {
        assert!(dash.contains(want), "dashboard provisioning lacks {want:?}");
    }
    // The dashboards' default data source is the provisioned one.
    for (file, d) in dashboards() {
        let v = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "DS_PROMETHEUS")
            .cloned()
            .unwrap();
        assert_eq!(v["current"]["value"], "qos-prometheus", "{file}");
    }
    let prom = read("prometheus.yml");
    for want in [
        "job_name: qos-supervisor",
        "job_name: qos-collector",
        "targets/supervisor*.json",
        "targets/collectors*.json",
    ] {
        assert!(prom.contains(want), "prometheus.yml lacks {want:?}");
    }
    for t in ["targets/supervisor.json", "targets/collectors.json"] {
        let v: Value = serde_json::from_str(&read(t)).unwrap();
        assert!(v[0]["targets"][0].is_string(), "{t}");
    }
}
