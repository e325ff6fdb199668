//! Choosing the checkpoint strategy: CRIU detection and the `auto` rule.
//!
//! - `criu` works only when the job is a container, the Docker daemon is experimental (the
//!   checkpoint endpoints are experimental API) and `criu check` succeeds on this host. When it
//!   does not, `--strategy criu` is refused with the reason, unless `--fallback app|none` says
//!   what to use instead.
//! - `app` and `none` are always possible.
//! - `auto`: `criu` if it works, else `app` if the job declares support (image label
//!   `qos.checkpoint=app`, or `--app-checkpoint` / `SHELL_TRAP_APP_CHECKPOINT`), else `none`.
//! - `criu` and `app` need the checkpoint directory; `none` does not. When the directory cannot
//!   be used, `auto` (and `--fallback none`) runs the job with `none`: nothing proves yet that
//!   the job would ever checkpoint, and running it without checkpoints is never worse than not
//!   running it at all. An explicit `--strategy app` or `criu` (or `--fallback app`) is refused.

use std::fmt;
use std::process::Stdio;
use std::time::Duration;

use crate::cli::{Fallback, StrategyArg};

/// A strategy shell-trap can carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `docker checkpoint create` / `docker start --checkpoint`.
    Criu,
    /// The job saves its own state on SIGTERM.
    App,
    /// No checkpoint.
    None,
}

impl Strategy {
    /// Its `--strategy` value (`criu`, `app`, `none`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Criu => "criu",
            Self::App => "app",
            Self::None => "none",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The strategy chosen and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What will be done.
    pub strategy: Strategy,
    /// A sentence for the log.
    pub why: String,
}

impl Decision {
    /// This decision once the checkpoint directory turns out unusable (`reason` names it), at
    /// the start or while the incarnation is prepared: `none` stays; what `auto` or
    /// `--fallback none` chose becomes `none`; an explicit `app` or `criu` is refused.
    ///
    /// # Errors
    /// The refusal message, naming the directory, when the strategy asked for needs it.
    pub fn without_dir(
        self,
        asked: StrategyArg,
        fallback: Option<Fallback>,
        reason: &str,
    ) -> Result<Self, String> {
        if self.strategy == Strategy::None {
            Ok(self)
        } else if asked == StrategyArg::Auto || fallback == Some(Fallback::None) {
            Ok(Self {
                strategy: Strategy::None,
                why: format!(
                    "{} would have been used ({}), but {reason}",
                    self.strategy, self.why
                ),
            })
        } else {
            Err(format!(
                "checkpoint strategy {} refused: {reason}, and {} needs it. Make it writable, \
                 or use --strategy none (or auto) to run the job without checkpoints",
                self.strategy, self.strategy
            ))
        }
    }
}

/// Picks the strategy, for a checkpoint directory that can be used (one that cannot is
/// [`Decision::without_dir`], applied where the directory is opened and prepared). `criu` is
/// `Ok(())` when CRIU works, else `Err(reason)`; `app_supported` says whether the job declared
/// app-assisted checkpoints.
///
/// # Errors
/// The refusal message when `criu` was asked for, does not work, and no fallback is configured.
pub fn decide(
    asked: StrategyArg,
    fallback: Option<Fallback>,
    criu: &Result<(), String>,
    app_supported: bool,
) -> Result<Decision, String> {
    let fb = |f: Fallback, reason: &str| {
        let strategy = match f {
            Fallback::App => Strategy::App,
            Fallback::None => Strategy::None,
        };
        Decision {
            strategy,
            why: format!("CRIU cannot be used ({reason}); falling back to --fallback {strategy}"),
        }
    };
    Ok(match (asked, criu) {
        (StrategyArg::Criu, Ok(())) => Decision {
            strategy: Strategy::Criu,
            why: "--strategy criu, and CRIU works here".into(),
        },
        (StrategyArg::Criu, Err(reason)) => match fallback {
            Some(f) => fb(f, reason),
            None => {
                return Err(format!(
                    "--strategy criu refused: {}. Use --strategy app (the job saves its own state \
                     on SIGTERM) or none, or add --fallback app|none",
                    reason.trim_end_matches('.')
                ));
            }
        },
        (StrategyArg::App, _) => Decision {
            strategy: Strategy::App,
            why: "--strategy app".into(),
        },
        (StrategyArg::None, _) => Decision {
            strategy: Strategy::None,
            why: "--strategy none".into(),
        },
        (StrategyArg::Auto, Ok(())) => Decision {
            strategy: Strategy::Criu,
            why: "auto: CRIU works here".into(),
        },
        (StrategyArg::Auto, Err(reason)) if app_supported => Decision {
            strategy: Strategy::App,
            why: format!("auto: CRIU cannot be used ({reason}); the job declares app checkpoints"),
        },
        (StrategyArg::Auto, Err(reason)) => match fallback {
            Some(f) => fb(f, reason),
            None => Decision {
                strategy: Strategy::None,
                why: format!(
                    "auto: CRIU cannot be used ({reason}) and the job declares no app checkpoints \
                     (image label qos.checkpoint=app or --app-checkpoint)"
                ),
            },
        },
    })
}

/// Runs `criu check` (10 s at most): `Ok(())` when it passes, else the reason.
///
/// # Errors
/// Why CRIU does not work: not installed, or the check's own message.
pub async fn criu_check() -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("criu");
    cmd.arg("check")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(Duration::from_secs(10), cmd.output()).await {
        Err(_) => return Err("`criu check` did not finish within 10 s".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("criu is not installed on this host (`criu` is not on PATH)".into());
        }
        Ok(Err(e)) => return Err(format!("cannot run `criu check`: {e}")),
        Ok(Ok(o)) => o,
    };
    if out.status.success() {
        return Ok(());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    // The first lines name the cause (here: "vdso: Unexpected rt vDSO area bounds"); the last
    // ones only say that initialisation failed.
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim().trim_end_matches('.'))
        .filter(|l| !l.is_empty())
        .collect();
    let head = lines[..lines.len().min(2)].join(" | ");
    Err(format!("`criu check` failed ({}): {head}", out.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        use Strategy::{App, Criu, None as Nothing};
        let works = Ok(());
        let broken = Err("vdso: Unexpected rt vDSO area bounds".to_owned());

        // (asked, fallback, criu works, app declared) → strategy.
        let cases = [
            (StrategyArg::Criu, None, &works, false, Criu),
            (StrategyArg::Criu, Some(Fallback::App), &broken, false, App),
            (
                StrategyArg::Criu,
                Some(Fallback::None),
                &broken,
                false,
                Nothing,
            ),
            (StrategyArg::Auto, None, &works, true, Criu),
            (StrategyArg::Auto, None, &broken, true, App),
            (StrategyArg::Auto, None, &broken, false, Nothing),
            (StrategyArg::Auto, Some(Fallback::App), &broken, false, App),
            (StrategyArg::App, None, &broken, false, App),
            (StrategyArg::None, None, &works, true, Nothing),
        ];
        for (asked, fallback, criu, app, want) in cases {
            let got = decide(asked, fallback, criu, app).unwrap().strategy;
            assert_eq!(got, want, "{asked:?} {fallback:?} {criu:?} app={app}");
        }

        let e = decide(StrategyArg::Criu, None, &broken, true).unwrap_err();
        assert!(e.contains("vDSO") && e.contains("refused"), "{e}");
        let fb = decide(StrategyArg::Criu, Some(Fallback::App), &broken, false).unwrap();
        assert!(fb.why.contains("vDSO"), "{}", fb.why);
        let none = decide(StrategyArg::Auto, None, &broken, false).unwrap();
        assert!(none.why.contains("qos.checkpoint=app"), "{}", none.why);
    }

    #[test]
    fn an_unusable_directory_leaves_none_or_refuses() {
        let works = Ok(());
        let broken = Err("no criu".to_owned());
        let dir = "checkpoint directory /ro/u cannot be used: read-only";
        let decide = |asked, fallback, criu, app| {
            decide(asked, fallback, criu, app).and_then(|d| d.without_dir(asked, fallback, dir))
        };
        // What does not need the directory runs without it; what does is refused.
        let runs = [
            (StrategyArg::None, None, &works, true),
            (StrategyArg::Auto, None, &works, true),
            (StrategyArg::Auto, None, &broken, true),
            (StrategyArg::Auto, None, &broken, false),
            (StrategyArg::Auto, Some(Fallback::App), &broken, false),
            (StrategyArg::Criu, Some(Fallback::None), &works, false),
            (StrategyArg::Criu, Some(Fallback::None), &broken, false),
        ];
        for (asked, fallback, criu, app) in runs {
            let d = decide(asked, fallback, criu, app).unwrap();
            assert_eq!(
                d.strategy,
                Strategy::None,
                "{asked:?} {fallback:?} {criu:?}"
            );
        }
        let auto = decide(StrategyArg::Auto, None, &broken, true).unwrap();
        assert!(auto.why.starts_with("app would have been used") && auto.why.contains("/ro/u"));
        let refused = [
            (StrategyArg::App, None, &works),
            (StrategyArg::Criu, None, &works),
            (StrategyArg::Criu, Some(Fallback::App), &broken),
        ];
        for (asked, fallback, criu) in refused {
            let e = decide(asked, fallback, criu, false).unwrap_err();
            assert!(
                e.contains("refused") && e.contains("/ro/u"),
                "{asked:?}: {e}"
            );
        }
    }
}
