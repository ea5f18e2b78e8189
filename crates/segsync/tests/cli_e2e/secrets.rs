//! The API key is a secret: after it goes in through an environment variable it never shows
//! again, in any output of a whole session (debug logs included), in the process list or the
//! environment of a run in flight, in run reports, in any file of the home folder or any
//! value of its SQLite files; the master key that seals it is 32 bytes that only the owner
//! can read and that show nowhere else.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;

use crate::common::*;

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The command line of every process (what `ps -eo args` lists), and the environment of
/// segsync's own process `pid`: none holds the key. Processes that end meanwhile are skipped.
/// Tells whether `pid` was seen running segsync's run.
fn no_key_in_processes(key: &str, pid: u32) -> bool {
    let mut seen_ours = false;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(p) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        assert!(
            !contains(&cmdline, key.as_bytes()),
            "process {p} has the key on its command line: {}",
            String::from_utf8_lossy(&cmdline).replace('\0', " ")
        );
        if p == pid.to_string() {
            seen_ours = String::from_utf8_lossy(&cmdline).contains("newsletter");
            if let Ok(env) = std::fs::read(entry.path().join("environ")) {
                assert!(
                    !contains(&env, key.as_bytes()),
                    "the run's environment holds the key"
                );
            }
        }
    }
    if let Ok(ps) = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
    {
        assert!(
            !contains(&ps.stdout, key.as_bytes()),
            "`ps -eo args` shows the key"
        );
    }
    seen_ours
}

/// Every value of every table of a SQLite file, as bytes, with its table's name.
fn sqlite_values(path: &Path) -> Vec<(String, Vec<u8>)> {
    use rusqlite::types::ValueRef;
    let db = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let mut st = db
            .prepare(&format!("SELECT * FROM \"{}\"", t.replace('"', "\"\"")))
            .unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..n {
                let bytes = match r.get_ref(i).unwrap() {
                    ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
                    other => format!("{other:?}").into_bytes(),
                };
                out.push((t.clone(), bytes));
            }
        }
    }
    assert!(!out.is_empty(), "{} has rows", path.display());
    out
}

#[test]
fn the_api_key_never_shows_in_output_or_in_the_home_folder() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    // Logs at their most verbose for the whole session: they must not show the key either.
    s.set_env("SEGSYNC_LOG", "trace");
    let mut profiles = people(30);
    profiles.push(Profile::new(
        "X001",
        "not-an-address",
        "Ana",
        "Pop",
        "Iași",
        "RO",
        10.0,
    ));
    s.setup(&list, &profiles, &[]);
    s.ok(&["connection", "list"]);
    s.ok(&["connection", "test", CONNECTION]);
    s.ok(&["export", "list"]);
    s.ok(&["export", "show", EXPORT]);
    s.ok(&["plan", EXPORT]);
    s.ok(&["plan", EXPORT, "--json"]);
    s.expect(3, &["run", EXPORT]);
    s.expect(3, &["run", EXPORT, "--json"]);
    let key = sim.key.clone();
    let hex_part = key.split('-').next().unwrap().to_string();
    assert_eq!(hex_part.len(), 32);

    // A run in flight (its profiles changed, Mailchimp slow): neither the process list, as
    // `ps -eo args` shows it, nor the run's own environment holds the key.
    let mut changed = profiles.clone();
    for p in &mut changed {
        p.city = "Oradea".into();
    }
    s.import(&changed);
    sim.settings(|st| st.latency.base_ms = 150.0);
    let args = ["run", EXPORT];
    let mut child = s.spawn(&args);
    let pid = child.id();
    let writes = sim.counters().writes;
    let mut seen = 0;
    wait_until(
        "the run sends its first write",
        Duration::from_secs(120),
        || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before it was seen in flight"
            );
            seen += usize::from(no_key_in_processes(&hex_part, pid));
            sim.counters().writes > writes
        },
    );
    seen += usize::from(no_key_in_processes(&hex_part, pid));
    assert!(
        seen > 0,
        "segsync run (pid {pid}) was seen in the process list"
    );
    assert_eq!(s.wait(&args, child).code, 3);
    sim.settings(|st| st.latency = Default::default());
    s.ok(&["runs"]);
    s.ok(&["runs", "show", "1"]);
    s.ok(&["runs", "show", "1", "--json"]);
    s.ok(&["runs", "errors", "1", "--csv"]);
    s.ok(&["profiles", "show"]);
    s.ok(&["segments", "list"]);
    // Mistakes and refusals print messages too.
    s.expect(
        2,
        &[
            "connection",
            "add",
            CONNECTION,
            "--api-key-env",
            "SEGSYNC_E2E_UNSET_VARIABLE",
            "--base-url",
            &s.api_url,
            "--accept-privacy-terms",
        ],
    );
    let args = [
        "connection",
        "add",
        "again",
        "--api-key-env",
        KEY_ENV,
        "--base-url",
        &s.api_url,
        "--accept-privacy-terms",
    ];
    let mut dup = s.command(&args);
    dup.env(KEY_ENV, &sim.key);
    let again = s.run_command(&args, dup);
    assert_eq!(again.code, 0, "{}", again.text());
    let revoked = sim.admin(
        "POST",
        "/_sim/revoke",
        Some(serde_json::json!({"credential": sim.key})),
    );
    assert!((200..300).contains(&revoked.0), "{revoked:?}");
    let refused = s.sh(&["connection", "test", CONNECTION]);
    assert_ne!(
        refused.code,
        0,
        "a revoked key is refused: {}",
        refused.text()
    );
    let failed = s.expect(1, &["run", EXPORT]);
    assert!(!failed.stderr.is_empty());
    s.ok(&["connection", "remove", "again"]);

    // The run reports, every one of them.
    for run in 1..=4 {
        let run = run.to_string();
        for report in [
            s.ok(&["runs", "show", &run, "--json"]).stdout,
            s.ok(&["runs", "errors", &run, "--csv"]).stdout,
        ] {
            assert!(!report.contains(&hex_part), "run {run}'s report: {report}");
        }
    }

    let transcript = s.transcript();
    assert!(
        transcript.contains("DEBUG") && transcript.contains("TRACE"),
        "verbose logs were on:\n{transcript}"
    );
    let hex_part = hex_part.as_str();
    assert!(
        !transcript.contains(hex_part),
        "the API key shows in the output:\n{transcript}"
    );
    assert!(!transcript.to_lowercase().contains(&hex_part.to_lowercase()));

    let mut all = Vec::new();
    files(s.home(), &mut all);
    let names: Vec<String> = all
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["state.sqlite", "profiles.sqlite", "master.key"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in the home folder: {names:?}"
        );
    }
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !contains(&bytes, hex_part.as_bytes()),
            "the API key is in {} in clear",
            f.display()
        );
        let utf16: Vec<u8> = hex_part.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert!(
            !contains(&bytes, &utf16),
            "the API key is in {} as UTF-16",
            f.display()
        );
    }

    // The SQLite files, read as SQL: no value of any table holds the key in clear.
    for db in ["state.sqlite", "profiles.sqlite"] {
        for (table, value) in sqlite_values(&s.path(db)) {
            assert!(
                !contains(&value, hex_part.as_bytes()),
                "the API key is in {db}, table {table}, in clear"
            );
        }
    }

    // The master key itself (32 bytes in HOME/master.key) shows nowhere else, in any form.
    let master_bytes = std::fs::read(s.path("master.key")).unwrap();
    let master_hex = hex(&master_bytes);
    let master_b64 = base64::engine::general_purpose::STANDARD.encode(&master_bytes);
    for form in [&master_hex, &master_hex.to_uppercase(), &master_b64] {
        assert!(
            !transcript.contains(form.as_str()),
            "the master key shows in the output"
        );
    }
    for f in all
        .iter()
        .filter(|f| f.file_name().unwrap() != "master.key")
    {
        let bytes = std::fs::read(f).unwrap();
        for form in [
            &master_bytes[..],
            master_hex.as_bytes(),
            master_b64.as_bytes(),
        ] {
            assert!(
                !contains(&bytes, form),
                "the master key is in {}",
                f.display()
            );
        }
    }

    let master = s.path("master.key");
    assert_eq!(
        std::fs::metadata(&master).unwrap().len(),
        32,
        "the master key is 32 bytes"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&master).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the owner reads the master key: {mode:o}");
    }
}

/// The home folder holds password hashes, personal data, run errors with addresses and the
/// audit log: a new one is private to its owner (0700, its SQLite files 0600), and an older
/// one left readable by others is tightened when segsync opens it.
#[cfg(unix)]
#[test]
fn the_home_folder_and_its_databases_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let sim = Sim::start();
    let s = Session::new(&sim);
    // A home folder segsync creates itself (the session's folder is already private).
    let home = s.path("installation");
    s.set_env("SEGSYNC_HOME", home.to_str().unwrap());
    s.import(&[ana(), helene()]);
    s.segments();
    s.ok(&["runs"]);
    let check = |when: &str| {
        assert_eq!(mode(&home), 0o700, "{when}: the home folder");
        assert_eq!(mode(&home.join("locks")), 0o700, "{when}: locks/");
        for f in ["state.sqlite", "profiles.sqlite"] {
            assert_eq!(mode(&home.join(f)), 0o600, "{when}: {f}");
        }
        for entry in std::fs::read_dir(&home).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                assert_eq!(mode(&p) & 0o077, 0, "{when}: {} is private", p.display());
            }
        }
    };
    check("created");

    // An installation from before: everything readable by everybody.
    let open =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    open(&home, 0o755);
    open(&home.join("locks"), 0o755);
    open(&home.join("state.sqlite"), 0o644);
    open(&home.join("profiles.sqlite"), 0o644);
    s.ok(&["segments", "preview", "high_value"]);
    check("tightened on open");
}
