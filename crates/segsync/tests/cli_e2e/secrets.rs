//! The API key is a secret: after it goes in through an environment variable it never shows
//! again, in any output of a whole session (debug logs included) or in any file of the home
//! folder; the master key that seals it is 32 bytes that only the owner can read.

use std::path::Path;

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

    let transcript = s.transcript();
    assert!(
        transcript.contains("DEBUG") && transcript.contains("TRACE"),
        "verbose logs were on:\n{transcript}"
    );
    let key = sim.key.as_str();
    let hex_part = key.split('-').next().unwrap();
    assert_eq!(hex_part.len(), 32);
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
