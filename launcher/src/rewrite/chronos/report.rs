//! The command a Chronos run executes: the user's invocation, then the report of the run to the
//! supervisor (`POST /updateTask`), retried with back-off, the token kept off every command line.

use crate::rewrite::ReportPolicy;
use crate::shell::quote;

/// The task environment variable that carries the job's report token.
pub const TOKEN_VAR: &str = "QOS_REPORT_TOKEN";

/// Falls back to whole seconds where `date` has no `%N` (BusyBox prints it literally).
const PRECISE: &str = r#"case "$qos_s" in ''|*[!0-9.]*|*.*.*|.*|*.) qos_s=$(date +%s);; esac"#;

/// The whole rewritten command: run `invocation` (already quoted), then report. `name`, `uuid`
/// and `url` must have passed their character-set checks. With `auth`, the report carries the
/// token of [`TOKEN_VAR`] without it ever reaching an argument list: curl reads the
/// `Authorization` header from its standard input (`-H @-`, written by the shell's `printf`
/// builtin); wget, which takes headers only as arguments, posts a private temporary file (mode
/// 0600, removed after the report) whose body carries the token as `report_token`.
#[must_use]
pub fn report_command(
    invocation: &str,
    name: &str,
    uuid: &str,
    url: &str,
    auth: bool,
    policy: ReportPolicy,
) -> String {
    let url_q = quote(url);
    let ReportPolicy {
        attempts,
        first_delay_secs,
        max_delay_secs,
        timeout_secs,
    } = policy;
    let attempts = attempts.max(1);
    let first = first_delay_secs.max(1);
    let max = max_delay_secs.max(first);
    let timeout = timeout_secs.max(1);
    let curl_base =
        format!("curl -fsS -m {timeout} -o /dev/null -X POST -H 'Content-Type: application/json'");
    let wget_base = "$qos_t wget -q -O /dev/null --header 'Content-Type: application/json'";
    let (curl, wget) = if auth {
        (
            format!(
                r#"printf 'Authorization: Bearer %s\n' "${{{TOKEN_VAR}:-}}" | {curl_base} -H @- --data-binary "$qos_b" {url_q}"#
            ),
            format!(
                r#"if [ -z "$qos_p" ]; then qos_p=$(mktemp 2>/dev/null || printf '%s' "${{TMPDIR:-/tmp}}/qos-report.$$"); (umask 077; printf '%s,"report_token":"%s"}}' "${{qos_b%\}}}}" "${{{TOKEN_VAR}:-}}" > "$qos_p"); fi; {wget_base} --post-file "$qos_p" {url_q}"#
            ),
        )
    } else {
        (
            format!(r#"{curl_base} --data-binary "$qos_b" {url_q}"#),
            format!(r#"{wget_base} --post-data "$qos_b" {url_q}"#),
        )
    };
    let parts = [
        format!("qos_s=$(date +%s.%N 2>/dev/null); {PRECISE}"),
        invocation.to_owned(),
        "qos_rc=$?".to_owned(),
        format!(
            "qos_f=$(date +%s.%N 2>/dev/null); {}",
            PRECISE.replace("qos_s", "qos_f")
        ),
        r#"qos_h=$(hostname 2>/dev/null || printf '%s' "${HOST:-}")"#.to_owned(),
        r#"case "$qos_h" in ''|*[!A-Za-z0-9._-]*) qos_h=unknown;; esac"#.to_owned(),
        r#"case "$qos_s" in ''|*[!0-9.]*) qos_s=0;; esac"#.to_owned(),
        r#"case "$qos_f" in ''|*[!0-9.]*) qos_f=0;; esac"#.to_owned(),
        // The size this run had (Chronos 2.4+ sets it; a Java double), else null.
        r#"qos_c=${CHRONOS_RESOURCE_CPU:-}; case "$qos_c" in [0-9]*) case "$qos_c" in *[!0-9.Ee+-]*) qos_c=null;; esac;; *) qos_c=null;; esac"#.to_owned(),
        format!(
            r#"qos_b=$(printf '{{"name":"%s","uuid":"%s","started_at":%s,"finished_at":%s,"hostname":"%s","exit_code":%s,"cpus":%s}}' {} {} "$qos_s" "$qos_f" "$qos_h" "$qos_rc" "$qos_c")"#,
            quote(name),
            quote(uuid)
        ),
        format!("qos_n=1; qos_d={first}; qos_t=; qos_p="),
        // BusyBox 1.35's `wget -T` crashes; bound wget with `timeout` when the image has it.
        format!("if command -v timeout >/dev/null 2>&1; then qos_t='timeout {timeout}'; fi"),
        format!(
            "while :; do \
             if command -v curl >/dev/null 2>&1; then \
             {curl} && break; \
             elif command -v wget >/dev/null 2>&1; then \
             {wget} && break; \
             else echo 'qos-elastic: neither curl nor wget in this image: iteration not reported' >&2; break; fi; \
             if [ \"$qos_n\" -ge {attempts} ]; then echo \"qos-elastic: iteration report failed $qos_n times; giving up\" >&2; break; fi; \
             echo \"qos-elastic: iteration report failed (try $qos_n), retrying in ${{qos_d}}s\" >&2; \
             sleep \"$qos_d\"; qos_n=$((qos_n + 1)); qos_d=$((qos_d * 2)); \
             if [ \"$qos_d\" -gt {max} ]; then qos_d={max}; fi; \
             done"
        ),
        r#"if [ -n "$qos_p" ]; then rm -f "$qos_p"; fi"#.to_owned(),
        r#"exit "$qos_rc""#.to_owned(),
    ];
    parts.join("; ")
}
