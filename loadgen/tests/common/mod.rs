//! What the loadgen tests share: the `millrace` binary they run beside
//! `millrace-loadgen`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `millrace` binary next to `millrace-loadgen` (integration tests of
/// this package cannot name another package's binary), brought up to date
/// first by the workspace's own test build (`cargo test --workspace
/// --no-run`, same profile): a no-op under `cargo test --workspace`, which
/// has just built it. `cargo build -p millrace` would instead build it and
/// every dependency again without the dev-dependencies' features, a second
/// copy of the whole dependency tree on disk.
pub fn millrace_binary() -> PathBuf {
    let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_millrace-loadgen"));
    let millrace = loadgen.with_file_name("millrace");
    let profile_dir = loadgen.parent().expect("the binary has a directory");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut build = Command::new(env!("CARGO"));
    build.args(["test", "--workspace", "--no-run", "--quiet"]);
    // Cargo gives this test process the package's CARGO_PKG_*, CARGO_MANIFEST_*
    // and the like; a build script that watches one (ring's watches
    // CARGO_MANIFEST_DIR and CARGO_PKG_NAME) would see them changed in the
    // nested cargo and rebuild itself and everything above it.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                key,
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
            )
        {
            build.env_remove(key);
        }
    }
    if release {
        build.arg("--release");
    }
    let status = build
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .status()
        .expect("run cargo to build the millrace binary");
    assert!(status.success(), "cargo test --workspace --no-run failed");
    assert!(
        millrace.is_file(),
        "{} missing after the build",
        millrace.display()
    );
    millrace
}
