//! PostgreSQL as the installation's state store and as a profile source (issue 5), through
//! the command line: an installation moves from SQLite to PostgreSQL without losing its
//! snapshot or its history, and profiles that stay in a PostgreSQL table are exported with
//! their segments evaluated by PostgreSQL.

use mailchimp_sim::Status;

use crate::common::*;

/// What a profile source's role needs: reading `crm.customers`, nothing more.
const READ_CUSTOMERS: &str =
    "GRANT USAGE ON SCHEMA crm TO {role}; GRANT SELECT ON crm.customers TO {role}";

#[test]
fn an_installation_moves_from_sqlite_to_postgres_and_carries_on_where_it_was() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let mut profiles = people(40);
    let s = Session::new(&sim);
    s.setup(&list, &profiles, &[]);
    s.run_export(0);
    let want = expected(&profiles, Status::Subscribed);
    assert_eq!(holding(&sim.view(&list), FIELDS), want);

    // An existing SQLite home is at the latest schema: migrate says so and changes nothing.
    let out = s.ok(&["migrate"]);
    assert!(out.stdout.contains("up to date"), "{}", out.text());

    let db = TestDb::create("copy");
    let sqlite = format!("sqlite:{}", s.home().join("state.sqlite").display());
    let out = s.ok(&["state", "copy", "--from", &sqlite, "--to", &db.url]);
    for table in ["connections", "segments", "exports", "snapshot", "runs"] {
        assert!(out.stdout.contains(table), "{table} copied: {}", out.text());
    }

    // Copying again into the same database is refused and leaves it as it was.
    let runs_before: i64 = db
        .client()
        .query_one("SELECT count(*) FROM runs", &[])
        .unwrap()
        .get(0);
    let out = s.sh(&["state", "copy", "--from", &sqlite, "--to", &db.url]);
    assert_ne!(out.code, 0, "a second copy is refused: {}", out.text());
    assert!(
        out.text().contains("is not empty"),
        "the refusal says why: {}",
        out.text()
    );
    let runs_after: i64 = db
        .client()
        .query_one("SELECT count(*) FROM runs", &[])
        .unwrap()
        .get(0);
    assert_eq!(runs_before, runs_after);

    // From now on the installation lives in PostgreSQL: its history is there...
    s.set_env("SEGSYNC_STATE", &db.url);
    let out = s.ok(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).expect("runs as JSON");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");

    // ... and so is its snapshot: after one profile changes, the next run sends that one
    // change and nothing else, and it is recorded in PostgreSQL.
    profiles[0].city = "Sibiu".into();
    s.import(&profiles);
    let writes_before = sim.counters().writes;
    let out = s.run_export(0);
    let writes = sim.counters().writes - writes_before;
    assert_eq!(
        writes,
        1,
        "one upsert for one changed profile: {}",
        out.text()
    );
    let want = expected(&profiles, Status::Subscribed);
    assert_eq!(holding(&sim.view(&list), FIELDS), want);
    let n: i64 = db
        .client()
        .query_one("SELECT count(*) FROM runs WHERE outcome = 'succeeded'", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2, "both runs are in PostgreSQL's history");
    // The SQLite file was left as it was: one run.
    s.set_env("SEGSYNC_STATE", &sqlite);
    let out = s.ok(&["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).expect("runs as JSON");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
}

#[test]
fn profiles_in_a_postgres_table_are_exported_with_segments_evaluated_by_postgres() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = people(60);
    let db = TestDb::create("source");
    write_pg_table(&db, &profiles);
    let reader = db.reader(READ_CUSTOMERS);
    let s = Session::new(&sim);

    // A password on the command line is refused (the process list would show it) ...
    let with_password = reader.replace("_reader@", "_reader:s3cret-pw@");
    let out = s.expect(
        2,
        &[
            "profiles",
            "source",
            "add",
            "crm",
            "--postgres",
            &with_password,
            "--table",
            "crm.customers",
            "--key",
            "customer_id",
        ],
    );
    assert!(out.text().contains("process list"), "{}", out.text());
    assert!(out.text().contains("_reader:***@"), "{}", out.text());
    let mut printed = out.text();
    // ... but it may come in an environment variable (trust auth ignores it here).
    s.set_env("CRM_URL", &with_password);
    let out = s.ok(&[
        "profiles",
        "source",
        "add",
        "crm",
        "--postgres",
        "env:CRM_URL",
        "--table",
        "crm.customers",
        "--key",
        "customer_id",
    ]);
    assert!(out.stdout.contains("lifetime_value"), "{}", out.text());
    assert!(
        !out.stderr.contains("warning"),
        "a role that reads only the profiles: {}",
        out.text()
    );
    printed.push_str(&out.text());

    // A wrong key column is refused with the columns there are.
    let out = s.expect(
        2,
        &[
            "profiles",
            "source",
            "add",
            "crm2",
            "--postgres",
            &reader,
            "--table",
            "crm.customers",
            "--key",
            "id",
        ],
    );
    assert!(out.text().contains("customer_id"), "{}", out.text());

    // Segments over the source are checked by PostgreSQL when they are added.
    let out = s.expect(
        2,
        &[
            "segments", "add", "big", "--where", "ltv > 5", "--source", "crm",
        ],
    );
    assert!(
        out.text().contains("column \"ltv\" does not exist"),
        "PostgreSQL's own message: {}",
        out.text()
    );
    let out = s.ok(&[
        "segments",
        "add",
        "high_value",
        "--where",
        "lifetime_value >= 500",
        "--source",
        "crm",
    ]);
    let high = profiles.iter().filter(|p| p.high_value()).count();
    assert!(
        out.stdout.contains(&format!("{high} profiles match")),
        "{}",
        out.text()
    );
    s.ok(&[
        "segments",
        "add",
        "romania",
        "--where",
        "country ILIKE 'ro'",
        "--source",
        "crm",
    ]);

    // The standard export, from PostgreSQL: the audience gets exactly the segments.
    s.connect();
    s.add_export(&list, &[]);
    s.run_export(0);
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed)
    );
    // A re-run reads a PostgreSQL source whole (no cursor column): a full pass, which says so.
    s.run_export(0);
    let run = s.show_json(s.last_run());
    let e = &run["counts"]["evaluation"];
    assert_eq!(e["mode"], "full", "{run}");
    assert_eq!(
        e["reason"], "PostgreSQL sources without a cursor column are read whole",
        "{run}"
    );

    // An export cannot mix profiles from two places.
    s.import(&profiles);
    s.ok(&["segments", "add", "local_ro", "--where", "country = 'RO'"]);
    let mut args = s.export_args(&list, &["--segment", "local_ro"]);
    args[2] = "mixed".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.expect(2, &args);
    assert!(out.text().contains("one source"), "{}", out.text());

    // A source that segments read cannot be removed; the password is never shown.
    let out = s.expect(2, &["profiles", "source", "remove", "crm"]);
    assert!(out.text().contains("high_value"), "{}", out.text());
    let out = s.ok(&["profiles", "source", "list"]);
    assert!(out.stdout.contains("crm.customers"), "{}", out.text());
    printed.push_str(&out.text());
    assert!(
        !printed.contains("s3cret-pw"),
        "the password never shows: {printed}"
    );
    let state = std::fs::read(s.home().join("state.sqlite")).unwrap();
    assert!(
        !state.windows(9).any(|w| w == b"s3cret-pw"),
        "the URL is sealed at rest"
    );
}

/// The audit's finding: a URL with several hosts (which a URL parser refuses, the driver
/// reads) was shown and stored with its password. It never is, wherever the URL appears: the
/// source listing, segments over it, the errors of a source that cannot be reached, and the
/// state store's file.
#[test]
fn a_source_url_with_several_hosts_never_shows_its_password() {
    let sim = Sim::start();
    let profiles = people(20);
    let db = TestDb::create("multihost");
    write_pg_table(&db, &profiles);
    let reader = db.reader(READ_CUSTOMERS);
    let s = Session::new(&sim);
    let secret = "Mh-s3cret-PW";
    // The first host refuses; the driver goes on to the second (trust auth ignores the
    // password).
    let url = reader.replace(
        "_reader@127.0.0.1:5432",
        &format!("_reader:{secret}@127.0.0.1:1,127.0.0.1:5432"),
    );
    assert_ne!(url, reader, "the URL has several hosts: {url}");
    s.set_env("CRM_URL", &url);
    let mut printed = String::new();
    let args = [
        "profiles",
        "source",
        "add",
        "crm",
        "--postgres",
        "env:CRM_URL",
        "--table",
        "crm.customers",
        "--key",
        "customer_id",
    ];
    printed.push_str(&s.ok(&args).text());
    let out = s.ok(&["profiles", "source", "list"]);
    assert!(
        out.stdout
            .contains("_reader:***@127.0.0.1:1,127.0.0.1:5432"),
        "{}",
        out.text()
    );
    printed.push_str(&out.text());
    printed.push_str(
        &s.ok(&[
            "segments", "add", "all", "--where", "TRUE", "--source", "crm",
        ])
        .text(),
    );
    printed.push_str(&s.ok(&["segments", "list"]).text());
    // A source that cannot be reached says so, without the password.
    s.set_env(
        "DEAD_URL",
        &format!("postgres://postgres:{secret}@127.0.0.1:1,127.0.0.1:2/nothing"),
    );
    let out = s.sh(&[
        "profiles",
        "source",
        "add",
        "dead",
        "--postgres",
        "env:DEAD_URL",
        "--table",
        "crm.customers",
        "--key",
        "customer_id",
    ]);
    assert_ne!(out.code, 0, "{}", out.text());
    printed.push_str(&out.text());
    assert!(
        !printed.contains(secret),
        "the password never shows: {printed}"
    );
    for file in ["state.sqlite", "state.sqlite-wal", "profiles.sqlite"] {
        let Ok(bytes) = std::fs::read(s.home().join(file)) else {
            continue;
        };
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the password is not in {file} in clear"
        );
    }
}

/// The audit's finding 12: a source's role is what segment predicates (written by
/// contributors) run as. `profiles source add` refuses a superuser unless told to take one,
/// and names what else a role can read, there and when segments over the source are added.
#[test]
fn a_source_role_that_reads_more_than_the_profiles_is_named_and_a_superuser_refused() {
    let sim = Sim::start();
    let profiles = people(10);
    let db = TestDb::create("reach");
    write_pg_table(&db, &profiles);
    db.client()
        .batch_execute(
            "CREATE SCHEMA hidden; CREATE TABLE hidden.secrets (secret text);
             CREATE TABLE crm.invoices (id int)",
        )
        .unwrap();
    let s = Session::new(&sim);
    let add = |name: &str, url: &str, extra: &[&str]| {
        let mut args = vec![
            "profiles",
            "source",
            "add",
            name,
            "--postgres",
            url,
            "--table",
            "crm.customers",
            "--key",
            "customer_id",
        ];
        args.extend_from_slice(extra);
        s.sh(&args)
    };

    // The tests' server user, postgres, is a superuser: refused, saying what to do.
    let out = add("as_postgres", &db.url, &[]);
    assert_eq!(out.code, 2, "{}", out.text());
    for words in [
        "\"postgres\" is a PostgreSQL superuser",
        "--allow-superuser",
        "GRANT SELECT",
    ] {
        assert!(out.stderr.contains(words), "{words}: {}", out.text());
    }
    let out = s.ok(&["profiles", "source", "list"]);
    assert!(!out.stdout.contains("as_postgres"), "{}", out.text());
    // Taken when asked for, with a warning.
    let out = add("as_postgres", &db.url, &["--allow-superuser"]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(
        out.stderr
            .contains("warning: the source's role \"postgres\" is a PostgreSQL superuser"),
        "{}",
        out.text()
    );

    // A role that can read two more tables than its profiles: added, and both are named.
    let url = db.reader(
        "GRANT USAGE ON SCHEMA crm, hidden TO {role};
         GRANT SELECT ON crm.customers, crm.invoices, hidden.secrets TO {role}",
    );
    let out = add("crm", &url, &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let warning = out
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("a warning: {}", out.text()));
    for words in ["can also read 2 other", "crm.invoices", "hidden.secrets"] {
        assert!(warning.contains(words), "{words}: {warning}");
    }
    assert!(!warning.contains("crm.customers"), "{warning}");
    // Each segment over it says so again.
    let out = s.ok(&[
        "segments", "add", "all", "--where", "TRUE", "--source", "crm",
    ]);
    assert!(out.stdout.contains("10 profiles match"), "{}", out.text());
    assert!(out.stderr.contains("hidden.secrets"), "{}", out.text());
}
