//! From the command line, the environment and the TOML file to a validated [`Config`]: flags
//! over the file over the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use frameworks::{ChronosApiVersion, Credentials};
use qos_core::Cpus;
use qos_core::policy::Policy;
use qos_core::predictive::{PredictiveConfig, ResizeMode};
use qos_core::thesis::ThesisConfig;

use super::args::Args;
use super::error::{ConfigError, err, finite_non_neg, finite_pos, from_toml};
use super::file::{FileConfig, parse_file};
use super::resolved::{AuthConfig, Config};
use super::settings::Settings;

impl Args {
    /// Resolves the command line, the environment and the TOML file into a validated
    /// [`Config`].
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
                parse_file(&text)?
            }
            None => FileConfig::default(),
        };
        resolve(self, &file)
    }
}

/// Parses a TOML configuration text (exposed for tests and tools).
///
/// # Errors
/// A [`ConfigError`] naming the key.
pub fn check_file(text: &str) -> Result<Config, ConfigError> {
    resolve(&Args::default(), &parse_file(text)?)
}

/// A number of CPUs from the file, when given: positive and at most a million.
fn cpus_key(key: &str, v: Option<f64>) -> Result<Option<Cpus>, ConfigError> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && x > 0.0 && x <= 1_000_000.0 => Ok(Some(Cpus::from_f64(x))),
        Some(x) => Err(err(
            key,
            format!("must be a positive number of CPUs, got {x}"),
        )),
    }
}

/// A token from the first line of a file.
fn read_token_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))?;
    Ok(text.lines().next().unwrap_or("").trim().to_owned())
}

/// A framework's credential file `{"url","user","password"}`.
fn load_credentials(key: &str, path: &Path) -> Result<Credentials, ConfigError> {
    Credentials::load(path).map_err(|e| err(key, e.to_string()))
}

/// Flags over the file over the defaults, one setting after the other, in the order their
/// errors are reported.
fn resolve(args: &Args, file: &FileConfig) -> Result<Config, ConfigError> {
    let given = args.settings.over(&file.settings);
    let (policy, resize_mode) = resolve_policy(&given, file)?;
    let listen_text = given.listen.as_deref().unwrap_or("0.0.0.0:30000");
    let listen: SocketAddr = listen_text.trim().parse().map_err(|e| {
        err(
            "listen",
            format!("{listen_text:?} is not an address like 0.0.0.0:30000: {e}"),
        )
    })?;
    let mut control = file.control.clone().unwrap_or_default();
    if let Some(p) = args.control_period {
        control.period = p;
    }
    if let Some(c) = args.marathon_completion {
        control.marathon_completion = c;
    }
    let auth = resolve_auth(args, &given)?;
    let marathon = match &given.marathon {
        Some(p) => Some(load_credentials("marathon", p)?),
        None => None,
    };
    let chronos = match &given.chronos {
        Some(p) => Some(load_credentials("chronos", p)?),
        None => None,
    };
    let chronos_api = match given.chronos_api.as_deref().map(str::trim) {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("auto") => None,
        Some(v) => Some(v.parse::<ChronosApiVersion>().map_err(|e| {
            err(
                "chronos_api",
                format!("{e}; or auto (the default: asked of the server)"),
            )
        })?),
    };
    let config = Config {
        listen,
        db: given.db.unwrap_or_else(|| PathBuf::from("supervisor.db")),
        log_dir: given.log_dir,
        policy,
        resize_mode,
        control,
        limits: file.limits.clone().unwrap_or_default(),
        storage: file.storage.clone().unwrap_or_default(),
        auth,
        marathon,
        chronos,
        chronos_api,
    };
    config.validate()?;
    Ok(config)
}

/// The policy by name with the file's constants, and the resize mode.
fn resolve_policy(
    given: &Settings,
    file: &FileConfig,
) -> Result<(Policy, ResizeMode), ConfigError> {
    let policy_name = given.policy.as_deref().unwrap_or("predictive");
    let mut policy = Policy::by_name(policy_name).map_err(|m| err("policy", m))?;
    let resize_mode = match &given.resize_mode {
        None => ResizeMode::Restart,
        Some(m) => match m.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "restart" => ResizeMode::Restart,
            "in-place" | "inplace" => ResizeMode::InPlace,
            other => {
                return Err(err(
                    "resize_mode",
                    format!("unknown mode {other:?} (expected restart or in-place)"),
                ));
            }
        },
    };
    let cpus = CpuKeys::from_file(file)?;
    match &mut policy {
        Policy::Thesis(t) => apply_thesis(t, file, &cpus)?,
        Policy::Predictive(p) | Policy::Static(p) => {
            apply_predictive(p, file, &cpus, resize_mode)?;
        }
    }
    Ok((policy, resize_mode))
}

/// The file's top-level CPU constants, each checked.
struct CpuKeys {
    min: Option<Cpus>,
    max: Option<Cpus>,
    increment: Option<Cpus>,
    decrement: Option<Cpus>,
}

impl CpuKeys {
    /// Reads and checks each key.
    fn from_file(file: &FileConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            max: cpus_key("cpu_max", file.cpu_max)?,
            min: cpus_key("cpu_min", file.cpu_min)?,
            increment: cpus_key("cpu_increment", file.cpu_increment)?,
            decrement: cpus_key("cpu_decrement", file.cpu_decrement)?,
        })
    }
}

/// The tokens (a flag, else its file) and whether an open API is accepted.
fn resolve_auth(args: &Args, given: &Settings) -> Result<AuthConfig, ConfigError> {
    let admin_token = match (&args.admin_token, &given.admin_token_file) {
        (Some(t), _) => Some(t.trim().to_owned()),
        (None, Some(p)) => Some(read_token_file("admin-token-file", p)?),
        (None, None) => None,
    };
    let agent_token = match (&args.agent_token, &given.agent_token_file) {
        (Some(t), _) => Some(t.trim().to_owned()),
        (None, Some(p)) => Some(read_token_file("agent-token-file", p)?),
        (None, None) => None,
    };
    Ok(AuthConfig {
        admin_token,
        insecure: given.insecure,
        agent_token,
    })
}

/// The predictive (or static) policy: the `[predictive]` table, then the top-level keys it
/// shares with the thesis; the thesis-only ones are still checked.
fn apply_predictive(
    p: &mut PredictiveConfig,
    file: &FileConfig,
    cpus: &CpuKeys,
    resize_mode: ResizeMode,
) -> Result<(), ConfigError> {
    if let Some(table) = &file.predictive {
        *p = serde_path_to_error::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| from_toml(Some("predictive"), &e))?;
    }
    set(&mut p.cpu_min, cpus.min);
    set(&mut p.cpu_max, cpus.max);
    set(&mut p.deployment_time, file.deployment_time);
    p.resize_mode = resize_mode;
    for (key, v) in [
        ("monitoring_period", file.monitoring_period),
        ("sleeping_time", file.sleeping_time),
    ] {
        if let Some(v) = v {
            finite_non_neg(key, v)?;
        }
    }
    Ok(())
}

/// The thesis policy: the top-level constants and the `[thesis]` variants.
fn apply_thesis(
    t: &mut ThesisConfig,
    file: &FileConfig,
    cpus: &CpuKeys,
) -> Result<(), ConfigError> {
    set(&mut t.cpu_min, cpus.min);
    set(&mut t.cpu_max, cpus.max);
    set(&mut t.cpu_increment, cpus.increment);
    set(&mut t.cpu_decrement, cpus.decrement);
    if let Some(v) = file.monitoring_period {
        finite_pos("monitoring_period", v)?;
        t.monitoring_period = v;
    }
    if let Some(v) = file.deployment_time {
        finite_non_neg("deployment_time", v)?;
        t.deployment_time = v;
    }
    if let Some(v) = file.sleeping_time {
        finite_non_neg("sleeping_time", v)?;
        t.sleeping_time = v;
    }
    if let Some(x) = &file.thesis {
        set(&mut t.chronos_inf_band, x.chronos_inf_band);
        set(&mut t.marathon_under, x.marathon_under);
        set(&mut t.sup_margin, x.sup_margin);
        set(&mut t.missing_cpu_as_zero, x.missing_cpu_as_zero);
    }
    Ok(())
}

/// A setting given in the file replaces its default.
fn set<T>(slot: &mut T, given: Option<T>) {
    if let Some(v) = given {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use qos_core::thesis::ChronosInfBand;

    use super::*;

    #[test]
    fn the_example_configuration_is_accepted() {
        let c = check_file(include_str!("../../../examples/jobs/supervisor.toml")).unwrap();
        assert_eq!(c.policy.name(), "predictive");
        assert_eq!(c.continuous_period(), 5.0);
        assert_eq!(c.limits.deadline_horizon, 7.0 * 86_400.0);
        assert_eq!(c.limits.clock_skew, 5.0);
    }

    #[test]
    fn the_chronos_api_is_asked_of_the_server_unless_given() {
        let api = |line: &str| {
            check_file(&format!("listen = \"127.0.0.1:0\"\n{line}"))
                .unwrap()
                .chronos_api
        };
        assert_eq!(api(""), None);
        assert_eq!(api("chronos_api = \"auto\""), None);
        assert_eq!(api("chronos_api = \"v2\""), Some(ChronosApiVersion::V2));
        assert_eq!(api("chronos_api = \"3.x\""), Some(ChronosApiVersion::V3));
    }

    #[test]
    fn thesis_constants_from_the_file() {
        let c = check_file(
            r#"
policy = "thesis"
listen = "127.0.0.1:0"
cpu_max = 2.0
cpu_min = 0.1
cpu_increment = 0.3
cpu_decrement = 0.2
monitoring_period = 120
deployment_time = 45
sleeping_time = 5
[thesis]
chronos_inf_band = "code"
"#,
        )
        .unwrap();
        let Policy::Thesis(t) = c.policy else {
            panic!("thesis")
        };
        assert_eq!(t.cpu_increment, Cpus::from_milli(300));
        assert_eq!(t.cpu_decrement, Cpus::from_milli(200));
        assert_eq!(t.sleeping_time, 5.0);
        assert_eq!(t.chronos_inf_band, ChronosInfBand::Code);
        assert_eq!(c.continuous_period(), 120.0);
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("cpu_min = -1", "cpu_min"),
            ("cpu_min = 3\ncpu_max = 2", "cpu_min"),
            ("cpu_mx = 3", "cpu_mx"),
            ("policy = \"vpa\"", "policy"),
            ("[control]\nperiod = 0", "control.period"),
            ("[predictive]\ncooldwn = 1", "predictive.cooldwn"),
            ("[limits]\nclock_skew = -1", "limits.clock_skew"),
            ("[limits]\nheld_max_bytes = 10", "limits.held_max_bytes"),
            ("[storage]\nwal_max_bytes = 1", "storage.wal_max_bytes"),
            ("[limits]\nskew = 1", "limits.skew"),
            ("insecure = \"yes\"", "insecure"),
            ("[control]\nperiod = \"2s\"", "control.period"),
            ("[storage]\nfull_sync = \"yes\"", "storage.full_sync"),
            ("[predictive]\ncooldown = \"1\"", "predictive.cooldown"),
            (
                "[thesis]\nchronos_inf_band = \"both\"",
                "thesis.chronos_inf_band",
            ),
            ("cpu_max = [1]", "cpu_max"),
            ("chronos_api = \"v4\"", "chronos_api"),
        ] {
            let e = check_file(&format!("listen = \"127.0.0.1:0\"\n{text}")).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
        }
        let e = check_file("listen = 5").unwrap_err();
        assert_eq!(e.key, "listen", "{e}");
        assert!(e.message.contains("expected a string"), "{e}");
        let e = check_file("listen = ").unwrap_err();
        assert_eq!(e.key, "config", "{e}");
        let e = check_file("listen = \"nowhere\"").unwrap_err();
        assert_eq!(e.key, "listen");
    }

    #[test]
    fn open_api_on_a_public_address_is_refused() {
        let e = check_file("").unwrap_err();
        assert_eq!(e.key, "listen");
        assert!(e.message.contains("--insecure"), "{e}");
        assert!(check_file("insecure = true").is_ok());
        let args = Args {
            admin_token: Some("0123456789abcdef0123".into()),
            ..Args::default()
        };
        let c = resolve(&args, &FileConfig::default()).unwrap();
        assert!(c.auth_enabled());
        assert_eq!(c.listen.port(), 30000);
        let short = Args {
            admin_token: Some("short".into()),
            ..Args::default()
        };
        assert_eq!(
            resolve(&short, &FileConfig::default()).unwrap_err().key,
            "admin-token"
        );
    }

    #[test]
    fn tokens_are_never_printed() {
        let c = Config {
            auth: AuthConfig {
                admin_token: Some("admin-secret-0123456789".into()),
                agent_token: Some("agent-secret-0123456789".into()),
                insecure: false,
            },
            ..Config::for_tests("x.db", Policy::default())
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn in_place_needs_the_agent_token() {
        let e = check_file("listen = \"127.0.0.1:0\"\nresize_mode = \"in-place\"").unwrap_err();
        assert_eq!(e.key, "agent-token");
    }

    #[test]
    fn the_agent_token_comes_from_a_flag_its_file_or_the_file_key() {
        let dir = tempfile::tempdir().unwrap();
        let (by_flag, by_key) = (dir.path().join("flag"), dir.path().join("key"));
        std::fs::write(&by_flag, "agent-from-flag-0123456789\n").unwrap();
        std::fs::write(&by_key, "agent-from-key-0123456789\n").unwrap();
        let file = parse_file(&format!(
            "listen = \"127.0.0.1:0\"\nresize_mode = \"in-place\"\nagent_token_file = {:?}",
            by_key.display().to_string()
        ))
        .unwrap();
        let token = |args: &Args| resolve(args, &file).map(|c| c.auth.agent_token);
        assert_eq!(
            token(&Args::default()).unwrap().as_deref(),
            Some("agent-from-key-0123456789")
        );
        let mut flag = Args::default();
        flag.settings.agent_token_file = Some(by_flag);
        assert_eq!(
            token(&flag).unwrap().as_deref(),
            Some("agent-from-flag-0123456789")
        );
        let given = Args {
            agent_token: Some("agent-given-0123456789".into()),
            ..Args::default()
        };
        assert_eq!(
            token(&given).unwrap().as_deref(),
            Some("agent-given-0123456789")
        );
        let mut missing = Args::default();
        missing.settings.agent_token_file = Some(dir.path().join("absent"));
        assert_eq!(token(&missing).unwrap_err().key, "agent-token-file");
        let both = <Args as clap::Parser>::try_parse_from([
            "supervisor",
            "--agent-token",
            "x",
            "--agent-token-file",
            "/f",
        ]);
        assert!(
            both.is_err(),
            "--agent-token and --agent-token-file together"
        );
    }
}
