//! The static build of `build-image.sh` (slow: a separate release build of the whole dependency
//! tree). Run with `cargo test -p linpack --test it static_build -- --ignored`.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "slow: a full release build for the x86_64-unknown-linux-gnu target with crt-static"]
fn build_image_script_builds_a_static_binary_that_solves() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("build-image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--binary-only")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        bin.ends_with("x86_64-unknown-linux-gnu/release/linpack"),
        "{bin}"
    );
    let ldd = Command::new("ldd").arg(&bin).output().unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout) + String::from_utf8_lossy(&ldd.stderr);
    assert!(!ldd.contains("=>"), "dynamically linked: {ldd}");
    let run = Command::new(&bin)
        .args(["120", "-o", "json"])
        .output()
        .unwrap();
    assert!(run.status.success());
    assert!(String::from_utf8_lossy(&run.stdout).contains("\"passed\":true"));
}
