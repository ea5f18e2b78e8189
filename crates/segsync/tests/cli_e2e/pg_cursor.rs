//! A PostgreSQL source with a cursor column (issue 17): re-runs evaluate only the rows
//! written since the last run (and find the rows that left by their keys), and leave the
//! audience as a full pass leaves it.

use mailchimp_sim::Status;
use serde_json::Value;

use crate::common::*;

const READ_CUSTOMERS: &str =
    "GRANT USAGE ON SCHEMA crm TO {role}; GRANT SELECT ON crm.customers TO {role}";

/// The export that re-runs with `--full` every time, into an audience of its own.
const MIRROR: &str = "mirror";

fn evaluation(s: &Session) -> Value {
    s.show_json(s.last_run())["counts"]["evaluation"].clone()
}

/// Both exports run: the incremental one, then the mirror with `--full`.
fn run_both(s: &Session) -> Value {
    s.run_export(0);
    let e = evaluation(s);
    s.ok(&["run", MIRROR, "--quiet", "--full"]);
    e
}

fn add_source(s: &Session, reader: &str, cursor: &str) -> Out {
    s.sh(&[
        "profiles",
        "source",
        "add",
        "crm",
        "--postgres",
        reader,
        "--table",
        "crm.customers",
        "--key",
        "customer_id",
        "--cursor",
        cursor,
    ])
}

#[test]
fn a_postgres_source_with_a_cursor_column_re_runs_only_the_rows_written_since() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let mirror_list = sim.new_list("Mirror");
    let mut profiles = people(60);
    let db = TestDb::create("cursor");
    write_pg_table(&db, &profiles);
    // Rows written an hour apart, long ago; C00000 the newest.
    db.client()
        .batch_execute(
            "UPDATE crm.customers SET updated_at = timestamptz '2026-01-01 00:00:00+00'
               - substring(customer_id from 2)::int * interval '1 hour'",
        )
        .unwrap();
    let reader = db.reader(READ_CUSTOMERS);
    let s = Session::new(&sim);

    // A cursor must be a column the database orders writes by.
    let out = add_source(&s, &reader, "changed");
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(
        out.text()
            .contains("no column \"changed\" to use as the cursor")
            && out.text().contains("updated_at"),
        "{}",
        out.text()
    );
    let out = add_source(&s, &reader, "email");
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(
        out.text().contains("\"email\" is of type text"),
        "{}",
        out.text()
    );
    let out = add_source(&s, &reader, "updated_at");
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(out.stdout.contains("cursor updated_at"), "{}", out.text());
    let out = s.ok(&["profiles", "source", "list"]);
    assert!(out.stdout.contains("cursor updated_at"), "{}", out.text());

    for (name, predicate) in [
        ("high_value", "lifetime_value >= 500"),
        ("romania", "country = 'RO'"),
    ] {
        s.ok(&[
            "segments", "add", name, "--where", predicate, "--source", "crm",
        ]);
    }
    s.connect();
    s.add_export(&list, &[]);
    let mut args = s.export_args(&mirror_list, &[]);
    args[2] = MIRROR.into();
    s.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let e = run_both(&s);
    assert_eq!(
        (e["mode"].as_str(), e["reason"].as_str()),
        (Some("full"), Some("first run")),
        "{e}"
    );
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Subscribed)
    );

    // Nothing written since: only the newest row is read again (the look-back), no write.
    let writes = sim.counters().writes;
    s.run_export(0);
    let e = evaluation(&s);
    assert_eq!(e["mode"], "incremental", "{e}");
    assert_eq!(e["changed_profiles"], 1, "{e}");
    assert_eq!(sim.counters().writes, writes);

    // In the database: C00000 moves, a Romanian high-value customer leaves both segments,
    // one customer is deleted, one is added.
    let leaver = profiles
        .iter()
        .position(|p| p.romanian() && p.high_value() && p.id != "C00000")
        .expect("a Romanian high-value profile");
    let gone = profiles
        .iter()
        .rposition(|p| p.high_value() && !p.romanian())
        .expect("a high-value profile");
    let gone_email = profiles[gone].email.to_lowercase();
    let mut pg = db.client();
    pg.execute(
        "UPDATE crm.customers SET city = 'Iasi', updated_at = now() WHERE customer_id = 'C00000'",
        &[],
    )
    .unwrap();
    pg.execute(
        "UPDATE crm.customers SET country = 'FR', lifetime_value = 10, updated_at = now()
         WHERE customer_id = $1",
        &[&profiles[leaver].id],
    )
    .unwrap();
    pg.execute(
        "DELETE FROM crm.customers WHERE customer_id = $1",
        &[&profiles[gone].id],
    )
    .unwrap();
    pg.execute(
        "INSERT INTO crm.customers VALUES ('N00001', 'nadia.nou@gmail.com', 'Nadia',
           'Nou', 'Cluj', 'RO', 42, now())",
        &[],
    )
    .unwrap();
    profiles[0].city = "Iasi".into();
    profiles[leaver].country = "FR".into();
    profiles[leaver].ltv = 10.0;
    profiles.remove(gone);
    profiles.push(Profile::new(
        "N00001",
        "nadia.nou@gmail.com",
        "Nadia",
        "Nou",
        "Cluj",
        "RO",
        42.0,
    ));

    let e = run_both(&s);
    assert_eq!(e["mode"], "incremental", "{e}");
    assert_eq!(
        e["changed_profiles"], 4,
        "three rows written, one deleted: {e}"
    );
    assert!(e["cursor"].as_str().is_some(), "the mark is recorded: {e}");
    let shown = s.show(s.last_run() - 1);
    assert!(shown.contains("incremental: "), "{shown}");
    // What a full pass leaves, member for member.
    let audience = holding(&sim.view(&list), FIELDS);
    assert_eq!(audience, holding(&sim.view(&mirror_list), FIELDS));
    assert!(member(&sim.view(&list), &gone_email).tags.is_empty());
    let want = expected(&profiles, Status::Subscribed);
    for (email, m) in &want {
        assert_eq!(audience.get(email), Some(m), "{email}");
    }

    // The rows written at the last run are read again within the look-back: nothing sent.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(evaluation(&s)["mode"], "incremental");
    assert_eq!(sim.counters().writes, writes);
}

#[test]
fn a_mysql_source_refuses_a_cursor_column() {
    let sim = Sim::start();
    let s = Session::new(&sim);
    let out = s.sh(&[
        "profiles",
        "source",
        "add",
        "shop",
        "--mysql",
        "mysql://root@127.0.0.1:3306/mysql",
        "--table",
        "user",
        "--key",
        "User",
        "--cursor",
        "updated_at",
    ]);
    assert_ne!(out.code, 0, "{}", out.text());
    assert!(
        out.text()
            .contains("a cursor column is for PostgreSQL sources"),
        "{}",
        out.text()
    );
}
