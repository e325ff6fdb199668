//! Finding (and building) the component binaries.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

/// The binaries the demo runs, by package and binary name (they are the same).
pub const COMPONENTS: [&str; 7] = [
    "testbed",
    "supervisor",
    "launcher",
    "cgroup-collector",
    "shell-trap",
    "linpack",
    "burn",
];

/// Where the binaries come from: the flags `--bin-dir`, `--no-build` and `--profile` of the
/// demo and of `study real`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildOptions {
    /// Use the component binaries in this directory instead of building them.
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Do not run cargo: use the binaries next to this executable (or --bin-dir).
    #[arg(long)]
    pub no_build: bool,
    /// Cargo profile of the component build (`release`, or `dev` for debug binaries).
    #[arg(long, default_value = "release", value_name = "PROFILE")]
    pub profile: String,
}

/// Where each binary is.
#[derive(Debug, Clone)]
pub struct Binaries {
    paths: BTreeMap<&'static str, PathBuf>,
    /// Their directory (put on the agents' `PATH`).
    pub dir: PathBuf,
}

impl Binaries {
    /// The path of one binary of [`COMPONENTS`].
    #[must_use]
    pub fn get(&self, name: &str) -> &Path {
        match self.paths.get(name) {
            Some(p) => p,
            None => Path::new("/nonexistent"),
        }
    }
}

/// The workspace root, when the demo runs from a checkout (its manifest is two levels up).
#[must_use]
pub fn workspace_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().ok()?;
    root.join("Cargo.toml").is_file().then_some(root)
}

/// Builds the components with one `cargo build` (cargo's own progress on stderr), or takes
/// them from `--bin-dir` / this executable's directory.
///
/// # Errors
/// A failed build or a missing binary.
pub fn locate(args: &BuildOptions, say: &dyn Fn(&str)) -> anyhow::Result<Binaries> {
    if let Some(dir) = &args.bin_dir {
        return from_dir(dir);
    }
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let root = workspace_root();
    match (&root, args.no_build) {
        (Some(root), false) => build(root, &args.profile, say),
        _ => {
            let Some(dir) = here else {
                bail!("cannot tell where this executable is; pass --bin-dir DIR");
            };
            from_dir(&dir).context(
                "the component binaries are not next to the demo (build them with \
                 `cargo build --release --bin testbed --bin supervisor --bin launcher \
                 --bin cgroup-collector --bin shell-trap --bin linpack --bin burn`, or pass \
                 --bin-dir)",
            )
        }
    }
}

fn from_dir(dir: &Path) -> anyhow::Result<Binaries> {
    let mut paths = BTreeMap::new();
    let mut missing = Vec::new();
    for name in COMPONENTS {
        let p = dir.join(name);
        if p.is_file() {
            paths.insert(name, p);
        } else {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        bail!("{} has no {}", dir.display(), missing.join(", "));
    }
    Ok(Binaries {
        paths,
        dir: dir.to_path_buf(),
    })
}

fn build(root: &Path, profile: &str, say: &dyn Fn(&str)) -> anyhow::Result<Binaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root)
        .arg("build")
        .arg("--profile")
        .arg(profile)
        .arg("--message-format")
        .arg("json-render-diagnostics");
    // `--bin`, not `-p`: with no package named, cargo resolves features over the whole
    // workspace, as it did for `cargo run --release --bin demo`, so the dependencies that build
    // built are reused as they are instead of built again with other features.
    for p in COMPONENTS {
        cmd.arg("--bin").arg(p);
    }
    say(&format!(
        "building the components: cargo build --profile {profile} --bin {}",
        COMPONENTS.join(" --bin ")
    ));
    // stdout: JSON messages (the artifacts' paths); stderr: cargo's progress, shown as is.
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {}", Path::new(&cargo).display()))?;
    let mut paths = BTreeMap::new();
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let (Some(exe), Some(name)) =
                (msg["executable"].as_str(), msg["target"]["name"].as_str())
            else {
                continue;
            };
            if let Some(c) = COMPONENTS.iter().find(|c| **c == name) {
                paths.insert(*c, PathBuf::from(exe));
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status}); see its messages above");
    }
    let missing: Vec<_> = COMPONENTS
        .iter()
        .filter(|c| !paths.contains_key(*c))
        .copied()
        .collect();
    if !missing.is_empty() {
        bail!("cargo build produced no binary for {}", missing.join(", "));
    }
    let dir = paths
        .get("supervisor")
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Ok(Binaries { paths, dir })
}
