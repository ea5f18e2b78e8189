//! What the reliability examples (`torture`, `soak`) share: finding the `segsync` binary
//! they drive (Cargo tells integration tests where it is, not examples) and reading
//! `--name value` options.

use std::path::PathBuf;
use std::process::Command;

/// The `segsync` binary of this build profile, built first when run through Cargo
/// (`SEGSYNC_BIN` overrides).
pub fn segsync_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SEGSYNC_BIN") {
        return PathBuf::from(p);
    }
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut c = Command::new(cargo);
        // Without what `cargo run` sets for this example (CARGO_PKG_NAME, CARGO_MANIFEST_DIR,
        // ...): build scripts that watch those variables would otherwise rebuild their crates
        // here, and again at the next plain `cargo` command.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            let keep = [
                "CARGO_HOME",
                "CARGO_TARGET_DIR",
                "CARGO_INCREMENTAL",
                "CARGO_BUILD_",
                "CARGO_TERM_",
                "CARGO_NET_",
                "CARGO_HTTP_",
                "CARGO_REGISTR",
                "CARGO_PROFILE_",
            ]
            .iter()
            .any(|p| k.starts_with(p));
            if (k.starts_with("CARGO_") && !keep) || k == "OUT_DIR" {
                c.env_remove(k.as_ref());
            }
        }
        // With the examples, so that features resolve as for this very build (the
        // examples' dev-dependencies included): nothing is rebuilt.
        c.args(["build", "--quiet", "-p", "segsync", "--bins", "--examples"]);
        if !cfg!(debug_assertions) {
            c.arg("--release");
        }
        let status = c.status().expect("cargo runs");
        assert!(status.success(), "building the segsync binary failed");
    }
    let exe = std::env::current_exe().expect("the example's own path");
    // target/<profile>/examples/<name> -> target/<profile>/segsync
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target/<profile>");
    let bin = dir.join(format!("segsync{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it (cargo build --release -p segsync) or set SEGSYNC_BIN",
        bin.display()
    );
    bin
}

/// The value of `--name` on the command line, parsed.
pub fn option<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    let v = args
        .get(i + 1)
        .unwrap_or_else(|| panic!("{name} needs a value"));
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name} {v}: not a valid value")),
    )
}
