//! Binaries of other workspace packages for end-to-end tests (`shell-trap`, `linpack`, …): a
//! test has `CARGO_BIN_EXE_*` only for its own package, so one `cargo build --message-format
//! json` makes sure they are built from this tree (a no-op when they are up to date; it waits
//! for the build lock if another build holds it) and says where they are. Built once per test
//! process, in the profile of the running test (release when the test runs from `release/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The workspace root (the parent of every member's manifest directory).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The executables of `packages` (every binary target of each), by target name. Panics with
/// cargo's message when the build fails, or when a package has no binary.
#[must_use]
pub fn workspace_bins(packages: &[&str]) -> BTreeMap<String, PathBuf> {
    static BUILT: OnceLock<Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !built.contains_key(*p))
        .collect();
    if !missing.is_empty() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let release = std::env::current_exe()
            .is_ok_and(|p| p.components().any(|c| c.as_os_str() == "release"));
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "--message-format", "json", "--bins"]);
        for p in &missing {
            cmd.args(["-p", p]);
        }
        if release {
            cmd.arg("--release");
        }
        let out = cmd.stderr(Stdio::inherit()).output().expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo build -p {} failed",
            missing.join(" -p ")
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let (Some(exe), Some(name)) =
                (msg["executable"].as_str(), msg["target"]["name"].as_str())
            {
                built.insert(name.to_owned(), PathBuf::from(exe));
            }
        }
    }
    packages
        .iter()
        .map(|p| {
            let exe = built
                .get(*p)
                .unwrap_or_else(|| panic!("cargo built no {p}: {built:?}"));
            ((*p).to_owned(), exe.clone())
        })
        .collect()
}

/// A command for `package`'s binary of the same name, built from this tree (see
/// [`workspace_bins`]): a test runs a service as its users do, over its command line and HTTP.
#[must_use]
pub fn command(package: &str) -> Command {
    Command::new(&workspace_bins(&[package])[package])
}
