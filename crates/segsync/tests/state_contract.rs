//! The state store's contract, one suite run against both backends: every test body below
//! runs once on a SQLite file (`<test>::sqlite`) and once on a fresh PostgreSQL database
//! (`<test>::postgres`), with the same inputs and the same expected answers.
//!
//! The PostgreSQL side needs a server at `postgres://postgres@127.0.0.1:5432/postgres` that
//! lets `postgres` create databases; each test creates its own database and drops it at the
//! end, whether it passed or not. Without the server the PostgreSQL tests fail and say so:
//! they never skip silently.

use std::cell::RefCell;
use std::time::Duration;

use segsync::state::{
    copy_state, migrate, schema_version, Cell, ChangeAction, ConnectionHealth, ConnectionRecord,
    DiffCursor, ExportConfig, FieldMap, Outcome, PlanWriter, ProfileSourceRecord, QueueState,
    RefusalRecord, Role, RunChange, RunCounts, Schedule, SegmentTag, StageRow, StagedMember,
    StateError, StateStore, StateUrl, Suppression, SuppressionKind, UpsertPhase, TABLES,
};
use segsync_core::{
    MemberKey, MergeValues, NewStatus, RecordError, RemovalPolicy, SnapshotEntry, Status, TagSet,
};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    fn other(self) -> Kind {
        match self {
            Kind::Sqlite => Kind::Postgres,
            Kind::Postgres => Kind::Sqlite,
        }
    }
}

#[path = "support/pg.rs"]
mod pg_support;
use pg_support::TestDb as PgDb;

/// Where one test keeps its stores: a temporary folder for SQLite files, databases for
/// PostgreSQL (all removed at the end).
struct Env {
    kind: Kind,
    test: &'static str,
    dir: tempfile::TempDir,
    dbs: RefCell<Vec<PgDb>>,
    files: RefCell<u32>,
    /// The URL of the store the test body was given.
    url: String,
}

impl Env {
    fn new(kind: Kind, test: &'static str) -> Env {
        let mut env = Env {
            kind,
            test,
            dir: tempfile::tempdir().unwrap(),
            dbs: RefCell::new(Vec::new()),
            files: RefCell::new(0),
            url: String::new(),
        };
        env.url = env.new_url(kind);
        env
    }

    /// The URL of a new, empty store of `kind`.
    fn new_url(&self, kind: Kind) -> String {
        match kind {
            Kind::Sqlite => {
                let mut n = self.files.borrow_mut();
                *n += 1;
                format!(
                    "sqlite://{}",
                    self.dir.path().join(format!("state{n}.sqlite")).display()
                )
            }
            Kind::Postgres => {
                let db = PgDb::create(self.test);
                let url = db.url.clone();
                self.dbs.borrow_mut().push(db);
                url
            }
        }
    }

    /// A new, empty, migrated store of `kind`.
    fn new_store(&self, kind: Kind) -> StateStore {
        StateStore::open_url(&self.new_url(kind)).unwrap()
    }

    /// Another connection to the test's store.
    fn reopen(&self) -> StateStore {
        StateStore::open_url(&self.url).unwrap()
    }

    /// The test's PostgreSQL database (its first), for raw SQL.
    fn pg_client(&self) -> postgres::Client {
        self.dbs.borrow()[0].client()
    }
}

fn run_on(kind: Kind, test: &'static str, body: fn(&Env, &mut StateStore)) {
    let env = Env::new(kind, test);
    let mut store = StateStore::open_url(&env.url).unwrap();
    body(&env, &mut store);
}

/// Each body becomes `<name>::sqlite` and `<name>::postgres`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::run_on(super::Kind::Sqlite, stringify!($name), super::$name);
                }
                #[test]
                fn postgres() {
                    super::run_on(super::Kind::Postgres, stringify!($name), super::$name);
                }
            }
        )*
    };
}

contract!(
    connections_segments_sources_exports,
    snapshots_tags_intents_marks,
    runs_and_their_errors,
    people_and_their_traces,
    not_found_and_conflict,
    staging_gives_the_same_plan,
    leases,
    run_queue,
    migrations,
    copy_both_ways,
    urls,
    two_connections_write_at_once,
    suppressions_and_refusals,
);

// --- records ---

fn connection(name: &str) -> ConnectionRecord {
    ConnectionRecord {
        name: name.into(),
        display_name: format!("{name} account"),
        base_url: "http://127.0.0.1:8080/3.0".into(),
        credential_kind: segsync::mailchimp::CredentialKind::ApiKey,
        // Sealed bytes: anything, zeros and high bytes included.
        sealed_secret: vec![0, 1, 2, 0xfe, 0xff, 0, 42],
        consent_by: "ann".into(),
        consent_at: "2026-11-22T10:00:00Z".into(),
        shared_with_contributors: false,
        export_user: None,
        created_at: "2026-11-22T10:00:00Z".into(),
        account_id: None,
        slot_budget: None,
    }
}

fn export(name: &str, connection: &str, segments: &[&str]) -> ExportConfig {
    ExportConfig {
        name: name.into(),
        connection: connection.into(),
        audience_id: "a1ba488a2e".into(),
        email_field: "email".into(),
        fields: vec![FieldMap {
            tag: "FNAME".into(),
            column: "first_name".into(),
            kind: None,
        }],
        segments: segments
            .iter()
            .map(|s| SegmentTag {
                segment: s.to_string(),
                tag: format!("Tag {s}"),
            })
            .collect(),
        status_if_new: NewStatus::Pending,
        removal: RemovalPolicy::Archive,
        max_profiles: 1_000_000,
        create_merge_fields: true,
        updated_at_field: Some("updated_at".into()),
        schedule: Schedule::Cron {
            cron: "0 6 * * *".into(),
            timezone: "Europe/Paris".into(),
        },
        paused: false,
        audience_name: None,
    }
}

fn source(name: &str) -> ProfileSourceRecord {
    ProfileSourceRecord {
        name: name.into(),
        kind: "postgres".into(),
        sealed_url: vec![9, 8, 7, 0, 255],
        relation_kind: "table".into(),
        relation: "public.customers".into(),
        key_column: "customer_id".into(),
        email_hint: Some("email".into()),
        created_at: "2026-11-22T10:00:00Z".into(),
        cursor_column: Some("updated_at".into()),
    }
}

fn key(i: u32) -> MemberKey {
    MemberKey::of(&format!("member{i}@example.com"))
}

const STATUSES: [Status; 6] = [
    Status::Subscribed,
    Status::Unsubscribed,
    Status::Cleaned,
    Status::Pending,
    Status::Transactional,
    Status::Archived,
];

fn entry(i: u32) -> SnapshotEntry {
    SnapshotEntry {
        email: format!("member{i}@example.com"),
        // Above i64::MAX for a third of them, none for another third.
        fingerprint: match i % 3 {
            0 => None,
            1 => Some(u64::MAX - u64::from(i)),
            _ => Some(u64::from(i)),
        },
        tags: TagSet((1u64 << 63) | u64::from(i % 4)),
        status: STATUSES[i as usize % STATUSES.len()],
        owned: i.is_multiple_of(2),
        // The profiles behind it: unknown, one, or two merged onto one address.
        profiles: match i % 3 {
            0 => None,
            1 => Some(format!("C{i}")),
            _ => Some(format!("C{i}\u{1f}D{i}")),
        },
    }
}

fn kind_of(e: &StateError) -> &'static str {
    match e {
        StateError::NotFound(_) => "not found",
        StateError::Conflict(_) => "conflict",
        _ => "other",
    }
}

// --- the tests ---

fn connections_segments_sources_exports(_env: &Env, s: &mut StateStore) {
    let mut main = connection("main");
    s.add_connection(&main).unwrap();
    let mut other = connection("other");
    other.shared_with_contributors = true;
    other.export_user = Some("bob".into());
    other.account_id = Some("8d3a3db4d97663a9074efcc16".into());
    other.slot_budget = Some(5);
    s.add_connection(&other).unwrap();
    assert_eq!(s.connection("main").unwrap(), main);
    assert_eq!(s.connections().unwrap(), vec![main.clone(), other.clone()]);
    main.sealed_secret = vec![0xff; 40];
    main.credential_kind = segsync::mailchimp::CredentialKind::OAuth;
    main.shared_with_contributors = true;
    main.slot_budget = Some(3);
    s.update_connection(&main).unwrap();
    assert_eq!(s.connection("main").unwrap(), main);
    assert_eq!(main.budget(), 3);
    assert_eq!(other.budget(), 5);
    assert_eq!(connection("x").budget(), 8, "the default budget");
    // The account, once learned, is recorded on its own.
    s.set_connection_account("main", "8d3a3db4d97663a9074efcc16")
        .unwrap();
    main.account_id = Some("8d3a3db4d97663a9074efcc16".into());
    assert_eq!(s.connection("main").unwrap(), main);
    assert!(matches!(
        s.set_connection_account("missing", "x"),
        Err(segsync::state::StateError::NotFound(_))
    ));
    let shown = format!("{main:?}");
    assert!(!shown.contains("255"), "{shown}");

    // Its health: none until checked; a check without the account's name keeps the one
    // learned before.
    assert_eq!(s.connection_health("main").unwrap(), None);
    let ok = ConnectionHealth {
        account_name: Some("Ana's \"Shop\"".into()),
        status: "ok".into(),
        detail: None,
        checked_at: "2026-12-01T10:00:00Z".into(),
    };
    s.set_connection_health("main", &ok).unwrap();
    assert_eq!(s.connection_health("main").unwrap(), Some(ok.clone()));
    let revoked = ConnectionHealth {
        account_name: None,
        status: "revoked".into(),
        detail: Some("refused".into()),
        checked_at: "2026-12-02T10:00:00Z".into(),
    };
    s.set_connection_health("main", &revoked).unwrap();
    assert_eq!(
        s.connection_health("main").unwrap(),
        Some(ConnectionHealth {
            account_name: ok.account_name.clone(),
            ..revoked.clone()
        })
    );
    assert_eq!(
        s.connection("main").unwrap(),
        main,
        "the record is unchanged"
    );
    assert!(matches!(
        s.set_connection_health("missing", &ok),
        Err(segsync::state::StateError::NotFound(_))
    ));
    assert!(matches!(
        s.connection_health("missing"),
        Err(segsync::state::StateError::NotFound(_))
    ));

    // Profile sources: sealed URL round-trips, Debug hides it.
    let warehouse = source("warehouse");
    s.add_profile_source(&warehouse).unwrap();
    let mut query = source("recent");
    query.relation_kind = "query".into();
    query.relation = "SELECT * FROM customers WHERE updated_at > now() - interval '1 day'".into();
    query.email_hint = None;
    s.add_profile_source(&query).unwrap();
    assert_eq!(s.profile_source("warehouse").unwrap(), warehouse);
    assert_eq!(
        s.profile_sources().unwrap(),
        vec![query.clone(), warehouse.clone()]
    );
    let shown = format!("{warehouse:?}");
    assert!(
        shown.contains("<redacted>") && !shown.contains("255"),
        "{shown}"
    );

    // Segments with and without a source.
    s.add_segment("high-value", "lifetime_value > 500").unwrap();
    s.add_segment_from(
        "recent-buyers",
        "last_order_date > '2026-01-01'",
        Some("warehouse"),
    )
    .unwrap();
    let segs = s.segments().unwrap();
    assert_eq!(
        segs.iter()
            .map(|g| (g.name.as_str(), g.predicate.as_str(), g.source.as_deref()))
            .collect::<Vec<_>>(),
        vec![
            ("high-value", "lifetime_value > 500", None),
            (
                "recent-buyers",
                "last_order_date > '2026-01-01'",
                Some("warehouse")
            ),
        ]
    );
    assert_eq!(s.segment("recent-buyers").unwrap(), segs[1]);
    s.set_segment_predicate("high-value", "lifetime_value > 600")
        .unwrap();
    assert_eq!(
        s.segment("high-value").unwrap().predicate,
        "lifetime_value > 600"
    );
    // A segment built from a rule keeps the rule next to its SQL; SQL written over it drops
    // the rule (it no longer says what the predicate does).
    let rule = r#"{"condition":{"column":"country","op":"is","value":"RO"}}"#;
    s.add_segment_with("romania", "\"country\" = 'RO'", Some(rule), None)
        .unwrap();
    let ro = s.segment("romania").unwrap();
    assert_eq!(
        (ro.predicate.as_str(), ro.rule.as_deref()),
        ("\"country\" = 'RO'", Some(rule))
    );
    assert_eq!(s.segment("high-value").unwrap().rule, None);
    let rule2 = r#"{"condition":{"column":"country","op":"is","value":"FR"}}"#;
    s.set_segment_definition("romania", "\"country\" = 'FR'", Some(rule2))
        .unwrap();
    let ro = s.segment("romania").unwrap();
    assert_eq!(
        (ro.predicate.as_str(), ro.rule.as_deref()),
        ("\"country\" = 'FR'", Some(rule2))
    );
    s.set_segment_predicate("romania", "country = 'FR'")
        .unwrap();
    assert_eq!(s.segment("romania").unwrap().rule, None);
    assert_eq!(
        s.set_segment_definition("nope", "1", Some(rule))
            .unwrap_err()
            .to_string(),
        s.set_segment_predicate("nope", "1")
            .unwrap_err()
            .to_string()
    );
    s.remove_segment("romania").unwrap();
    // A source in use stays; unused, it goes.
    let e = s.remove_profile_source("warehouse").unwrap_err();
    assert_eq!(
        e.to_string(),
        "profile source \"warehouse\" is used by segment(s) recent-buyers: remove them first"
    );
    s.remove_profile_source("recent").unwrap();
    assert_eq!(s.profile_sources().unwrap(), vec![warehouse]);

    // Exports: the configuration round-trips whole.
    let news = export("newsletter", "main", &["high-value", "recent-buyers"]);
    s.add_export(&news).unwrap();
    let mut promo = export("promo", "other", &["high-value"]);
    promo.schedule = Schedule::AfterRefresh;
    promo.paused = true;
    s.add_export(&promo).unwrap();
    assert_eq!(s.export("newsletter").unwrap(), news);
    assert_eq!(s.exports().unwrap(), vec![news.clone(), promo.clone()]);
    let e = s.remove_segment("recent-buyers").unwrap_err();
    assert_eq!(kind_of(&e), "conflict");
    assert_eq!(
        e.to_string(),
        "segment \"recent-buyers\" is used by export(s) newsletter: remove it from them first"
    );

    // Replacing keeps the snapshot on the same audience, drops it on another.
    s.tag_bits("newsletter", &["Tag high-value".into()])
        .unwrap();
    s.save_snapshot("newsletter", &[(key(1), entry(1))])
        .unwrap();
    s.set_audience_read_at("newsletter", "2026-11-22T10:00:00Z")
        .unwrap();
    let mut renamed = news.clone();
    renamed.fields.push(FieldMap {
        tag: "CITY".into(),
        column: "city".into(),
        kind: None,
    });
    s.replace_export(&renamed).unwrap();
    assert_eq!(s.export("newsletter").unwrap(), renamed);
    assert!(s.has_snapshot("newsletter").unwrap());
    let mut moved = renamed.clone();
    moved.audience_id = "ffff000011".into();
    s.replace_export(&moved).unwrap();
    assert!(!s.has_snapshot("newsletter").unwrap());
    assert!(s.tag_names("newsletter").unwrap().is_empty());
    assert_eq!(s.audience_read_at("newsletter").unwrap(), None);

    // Removing an export takes its snapshot, keeps its runs.
    s.save_snapshot("promo", &[(key(2), entry(2))]).unwrap();
    let run = s.start_run("promo", "manual").unwrap();
    s.remove_export("promo").unwrap();
    assert!(!s.has_snapshot("promo").unwrap());
    assert_eq!(s.run(run).unwrap().export, "promo");
    s.remove_connection("other").unwrap();
    assert_eq!(s.connections().unwrap(), vec![main]);
    assert_eq!(s.integrity_check().unwrap(), "ok");
}

fn snapshots_tags_intents_marks(_env: &Env, s: &mut StateStore) {
    s.add_export(&export("e", "main", &[])).unwrap();
    // Tag bits: assigned in order, stable, never reused.
    let tags: Vec<String> = vec!["VIP".into(), "Newsletter".into()];
    assert_eq!(s.tag_bits("e", &tags).unwrap(), vec![0, 1]);
    assert_eq!(
        s.tag_bits("e", &["Newsletter".into(), "Promo".into()])
            .unwrap(),
        vec![1, 2]
    );
    let names = s.tag_names("e").unwrap();
    assert_eq!(names.len(), 3);
    assert_eq!(names[&2], "Promo");
    let many: Vec<String> = (0..70).map(|i| format!("t{i}")).collect();
    let e = s.tag_bits("e", &many).unwrap_err();
    assert_eq!(kind_of(&e), "conflict");
    assert_eq!(
        e.to_string(),
        "export \"e\" has used 64 tag names; create a new export"
    );
    assert_eq!(s.tag_names("e").unwrap().len(), 3, "all or nothing");

    // Snapshot: every status, fingerprints above i64::MAX, the top tag bit.
    let entries: Vec<(MemberKey, SnapshotEntry)> = (0..50).map(|i| (key(i), entry(i))).collect();
    assert!(!s.has_snapshot("e").unwrap());
    s.save_snapshot("e", &entries[..30]).unwrap();
    s.save_snapshot("e", &entries[20..]).unwrap();
    let mut changed = entry(7);
    changed.status = Status::Unsubscribed;
    changed.fingerprint = Some(u64::MAX);
    s.save_snapshot("e", &[(key(7), changed.clone())]).unwrap();
    let mut want: std::collections::HashMap<_, _> = entries.iter().cloned().collect();
    want.insert(key(7), changed.clone());
    assert_eq!(s.snapshot("e").unwrap(), want);
    assert!(s.has_snapshot("e").unwrap());
    let some = s
        .snapshot_entries("e", &[key(7), key(8), key(999)])
        .unwrap();
    assert_eq!(some.len(), 2);
    assert_eq!(some[&key(7)], changed);
    assert_eq!(some[&key(8)], entry(8));
    let mut ordered = Vec::new();
    s.snapshot_in_key_order("e", &mut |batch| {
        ordered.extend(batch.iter().map(|(k, _)| *k));
        Ok(())
    })
    .unwrap();
    let mut sorted: Vec<MemberKey> = want.keys().copied().collect();
    sorted.sort();
    assert_eq!(ordered, sorted);
    // A member moved away leaves no entry behind.
    s.remove_snapshot_entries("e", &[key(8), key(999)]).unwrap();
    want.remove(&key(8));
    assert_eq!(s.snapshot("e").unwrap(), want);
    s.save_snapshot("e", &[(key(8), entry(8))]).unwrap();
    want.insert(key(8), entry(8));

    // The statuses its members hold, each once: every one here; in another export, only
    // those its members hold (subscribed among them or not).
    let mut statuses = s.snapshot_statuses("e").unwrap();
    statuses.sort_by_key(|st| st.as_str());
    let mut every = STATUSES.to_vec();
    every.sort_by_key(|st| st.as_str());
    assert_eq!(statuses, every);
    s.add_export(&export("f", "main", &[])).unwrap();
    assert!(s.snapshot_statuses("f").unwrap().is_empty());
    let at = |i: u32, status: Status| (key(i), SnapshotEntry { status, ..entry(i) });
    s.save_snapshot("f", &[at(1, Status::Pending), at(2, Status::Pending)])
        .unwrap();
    assert_eq!(s.snapshot_statuses("f").unwrap(), vec![Status::Pending]);
    s.save_snapshot("f", &[at(2, Status::Subscribed), at(3, Status::Cleaned)])
        .unwrap();
    let mut statuses = s.snapshot_statuses("f").unwrap();
    statuses.sort_by_key(|st| st.as_str());
    assert_eq!(
        statuses,
        vec![Status::Cleaned, Status::Pending, Status::Subscribed]
    );

    // Create intents.
    s.record_create_intents(
        "e",
        &[
            (key(100), "member100@example.com"),
            (key(101), "member101@example.com"),
        ],
    )
    .unwrap();
    s.record_create_intents("e", &[(key(100), "member100@example.com")])
        .unwrap();
    let mut intents = s.create_intents("e").unwrap();
    intents.sort();
    let mut expected = vec![
        (key(100), "member100@example.com".to_string()),
        (key(101), "member101@example.com".to_string()),
    ];
    expected.sort();
    assert_eq!(intents, expected);
    s.forget_create_intents("e", &[key(100)]).unwrap();
    assert_eq!(
        s.create_intents("e").unwrap(),
        vec![(key(101), "member101@example.com".to_string())]
    );
    s.clear_create_intents("e").unwrap();
    assert!(s.create_intents("e").unwrap().is_empty());

    // Sync marks.
    assert_eq!(s.audience_read_at("e").unwrap(), None);
    s.set_audience_read_at("e", "2026-11-22T10:00:00Z").unwrap();
    s.set_audience_read_at("e", "2026-11-22T11:00:00Z").unwrap();
    assert_eq!(
        s.audience_read_at("e").unwrap().as_deref(),
        Some("2026-11-22T11:00:00Z")
    );
}

fn runs_and_their_errors(_env: &Env, s: &mut StateStore) {
    let a = s.start_run("a", "manual").unwrap();
    let b = s.start_run("b", "schedule").unwrap();
    let c = s.start_run("a", "api").unwrap();
    assert!(a < b && b < c);
    assert_eq!(
        s.exports_with_running_runs().unwrap(),
        vec!["a".to_string(), "b".to_string()]
    );
    let counts = RunCounts {
        profiles: 1162,
        members: 1145,
        duplicates: 14,
        refused: 3,
        created: 1145,
        tagged: 1284,
        requests: u64::from(u32::MAX) + 7,
        ..Default::default()
    };
    s.update_run_counts(a, &counts).unwrap();
    let run = s.run(a).unwrap();
    assert_eq!((run.outcome, &run.counts), (Outcome::Running, &counts));
    s.finish_run(a, Outcome::SucceededWithErrors, &counts, None)
        .unwrap();
    s.finish_run(
        b,
        Outcome::Failed,
        &RunCounts::default(),
        Some("Mailchimp refused"),
    )
    .unwrap();
    let run = s.run(b).unwrap();
    assert_eq!(run.outcome, Outcome::Failed);
    assert_eq!(run.error.as_deref(), Some("Mailchimp refused"));
    assert!(run.finished_at.is_some());
    assert_eq!(s.interrupt_stale_runs("a").unwrap(), 1);
    let run = s.run(c).unwrap();
    assert_eq!(run.outcome, Outcome::Interrupted);
    assert!(run.error.unwrap().contains("resumes from its checkpoint"));
    assert!(s.exports_with_running_runs().unwrap().is_empty());
    for outcome in [Outcome::Succeeded, Outcome::Cancelled] {
        let id = s.start_run("c", "manual").unwrap();
        s.finish_run(id, outcome, &RunCounts::default(), None)
            .unwrap();
        assert_eq!(s.run(id).unwrap().outcome, outcome);
    }

    // Listing: newest first, by export, limited.
    let all: Vec<i64> = s.runs(None, 10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0] > w[1]));
    let of_a: Vec<i64> = s
        .runs(Some("a"), 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(of_a, vec![c, a]);
    assert_eq!(s.runs(None, 2).unwrap().len(), 2);
    assert_eq!(s.runs(Some("a"), 10).unwrap()[1], s.run(a).unwrap());
    // Each run's number counts its own export's runs only.
    let numbers = |export: &str| -> Vec<i64> {
        let runs = s.runs(Some(export), 10).unwrap();
        runs.iter().map(|r| r.number).collect()
    };
    assert_eq!(numbers("a"), vec![2, 1]);
    assert_eq!(numbers("b"), vec![1]);
    assert_eq!(numbers("c"), vec![2, 1]);
    assert_eq!((s.run(c).unwrap().number, s.run(b).unwrap().number), (2, 1));

    // Errors: appended in order, counted, paged.
    let errors: Vec<RecordError> = (0..2500)
        .map(|i| RecordError {
            profile_key: format!("C{i:05}"),
            email: format!("bad{i}@"),
            reason: format!("invalid email address \"bad{i}@\": no domain; \"quoted\", 'too'"),
        })
        .collect();
    s.add_run_errors(a, &errors[..1000]).unwrap();
    s.add_run_errors(a, &errors[1000..]).unwrap();
    s.add_run_errors(a, &[]).unwrap();
    assert_eq!(s.run_error_count(a).unwrap(), 2500);
    assert_eq!(s.run_error_count(b).unwrap(), 0);
    assert_eq!(s.run_errors(a).unwrap(), errors);
    assert_eq!(s.run_errors_head(a, 3).unwrap(), errors[..3].to_vec());
    assert!(s.run_errors(b).unwrap().is_empty());
    let page = s.run_errors_page(a, 998, 3).unwrap();
    assert_eq!(
        page.iter().map(|p| p.0).collect::<Vec<_>>(),
        [999, 1000, 1001]
    );
    assert_eq!(page[1].1, errors[1000]);

    // The change log: appended in order, read in pages after a line, per run.
    let changes: Vec<RunChange> = (0..2500).map(change).collect();
    s.add_run_changes(a, &changes[..1200]).unwrap();
    s.add_run_changes(a, &changes[1200..]).unwrap();
    s.add_run_changes(a, &[]).unwrap();
    s.add_run_changes(b, &changes[..1]).unwrap();
    let mut read = Vec::new();
    let mut after = -1;
    loop {
        let page = s.run_changes_page(a, after, 1000).unwrap();
        let Some(last) = page.last() else { break };
        after = last.0;
        read.extend(page.into_iter().map(|p| p.1));
    }
    assert_eq!(read, changes);
    assert_eq!(
        s.run_changes_page(b, -1, 10).unwrap(),
        [(0, changes[0].clone())]
    );
    assert!(s.run_changes_page(c, -1, 10).unwrap().is_empty());
}

/// The `i`th line of a change log, of every action but `refused` (the run's errors).
fn change(i: u32) -> RunChange {
    let actions = [
        ChangeAction::Created,
        ChangeAction::Updated,
        ChangeAction::Moved,
        ChangeAction::Tagged,
        ChangeAction::Untagged,
        ChangeAction::Unsubscribed,
        ChangeAction::Archived,
        ChangeAction::Forgotten,
    ];
    RunChange {
        action: actions[i as usize % actions.len()],
        email: format!("m{i}@example.com"),
        detail: format!("Tag \"{i}\", 'quoted'"),
        profile_key: format!("C{i};D{i}"),
    }
}

fn people_and_their_traces(_env: &Env, s: &mut StateStore) {
    s.add_user("ann", Role::Admin, "$argon2id$ann").unwrap();
    s.add_user("bob", Role::Viewer, "$argon2id$bob").unwrap();
    s.add_user("Carl", Role::Contributor, "$argon2id$carl")
        .unwrap();
    // Byte order, as SQLite sorts: upper case first.
    let names: Vec<String> = s.users().unwrap().into_iter().map(|u| u.name).collect();
    assert_eq!(names, vec!["Carl", "ann", "bob"]);
    assert_eq!(s.user("bob").unwrap().role, Role::Viewer);
    assert_eq!(s.count_admins().unwrap(), 1);
    s.set_role("bob", Role::Admin).unwrap();
    assert_eq!(s.count_admins().unwrap(), 2);
    assert_eq!(
        s.password_hash("ann").unwrap().as_deref(),
        Some("$argon2id$ann")
    );
    assert_eq!(s.password_hash("nobody").unwrap(), None);

    // Tokens.
    let t1 = s.add_token("ann", "ci", &[1u8; 32]).unwrap();
    let t2 = s.add_token("bob", "laptop", &[2u8; 32]).unwrap();
    assert!(t2 > t1);
    assert_eq!(s.tokens(None).unwrap().len(), 2);
    assert_eq!(s.tokens(Some("bob")).unwrap()[0].label, "laptop");
    assert_eq!(s.tokens(Some("bob")).unwrap()[0].last_used_at, None);
    assert_eq!(s.token_user(&[2u8; 32]).unwrap().unwrap().name, "bob");
    assert!(s.tokens(Some("bob")).unwrap()[0].last_used_at.is_some());
    assert_eq!(s.token_user(&[3u8; 32]).unwrap(), None);
    let revoked = s.revoke_token(t1).unwrap();
    assert_eq!((revoked.id, revoked.user.as_str()), (t1, "ann"));
    assert_eq!(s.token_user(&[1u8; 32]).unwrap(), None);

    // Sessions: live ones only; a new password ends them.
    s.add_session(&[7u8; 32], "ann", "csrf-1", "2999-01-01T00:00:00Z")
        .unwrap();
    s.add_session(&[8u8; 32], "ann", "csrf-2", "2000-01-01T00:00:00Z")
        .unwrap();
    s.add_session(&[9u8; 32], "bob", "csrf-3", "2999-01-01T00:00:00Z")
        .unwrap();
    let live = s.session(&[7u8; 32]).unwrap().unwrap();
    assert_eq!(
        (live.user.name.as_str(), live.csrf.as_str()),
        ("ann", "csrf-1")
    );
    assert!(s.session(&[8u8; 32]).unwrap().is_none(), "expired");
    s.set_password_hash("ann", "$argon2id$new").unwrap();
    assert!(s.session(&[7u8; 32]).unwrap().is_none());
    assert!(s.session(&[9u8; 32]).unwrap().is_some());
    s.remove_session(&[9u8; 32]).unwrap();
    assert!(s.session(&[9u8; 32]).unwrap().is_none());
    // Removing a user takes their tokens and sessions.
    s.add_session(&[10u8; 32], "bob", "csrf-4", "2999-01-01T00:00:00Z")
        .unwrap();
    s.remove_user("bob").unwrap();
    assert!(s.session(&[10u8; 32]).unwrap().is_none());
    assert!(s.tokens(Some("bob")).unwrap().is_empty());

    // Audit: newest first, paged with `before`.
    for i in 0..5 {
        s.audit("ann", "export.run", &format!("e{i}"), "run now")
            .unwrap();
    }
    let page = s.audit_log(2, None).unwrap();
    assert_eq!(
        page.iter().map(|a| a.target.as_str()).collect::<Vec<_>>(),
        vec!["e4", "e3"]
    );
    let next = s.audit_log(2, Some(page[1].id)).unwrap();
    assert_eq!(
        next.iter().map(|a| a.target.as_str()).collect::<Vec<_>>(),
        vec!["e2", "e1"]
    );
    assert_eq!(next[0].actor, "ann");

    // Settings.
    assert_eq!(s.setting("alerts").unwrap(), None);
    s.set_setting("alerts", Some("{\"to\":[]}")).unwrap();
    s.set_setting("alerts", Some("{\"to\":[\"a\"]}")).unwrap();
    assert_eq!(
        s.setting("alerts").unwrap().as_deref(),
        Some("{\"to\":[\"a\"]}")
    );
    s.set_setting("alerts", None).unwrap();
    assert_eq!(s.setting("alerts").unwrap(), None);

    // OAuth flows: taken once.
    s.add_oauth_flow("st4te", "ann", "{\"name\":\"main\"}")
        .unwrap();
    let (user, request, _) = s.take_oauth_flow("st4te").unwrap().unwrap();
    assert_eq!(
        (user.as_str(), request.as_str()),
        ("ann", "{\"name\":\"main\"}")
    );
    assert_eq!(s.take_oauth_flow("st4te").unwrap(), None);
}

fn not_found_and_conflict(_env: &Env, s: &mut StateStore) {
    s.add_connection(&connection("main")).unwrap();
    s.add_segment("seg", "1 = 1").unwrap();
    s.add_profile_source(&source("src")).unwrap();
    s.add_export(&export("exp", "main", &["seg"])).unwrap();
    s.add_user("ann", Role::Admin, "h").unwrap();
    let mut missing = connection("nope");
    missing.display_name = "x".into();
    let checks: Vec<(StateError, &str, &str)> = vec![
        (
            s.add_connection(&connection("main")).unwrap_err(),
            "conflict",
            "a connection named \"main\" exists already",
        ),
        (
            s.connection("nope").unwrap_err(),
            "not found",
            "no connection named \"nope\" (see `segsync connection list`)",
        ),
        (
            s.update_connection(&missing).unwrap_err(),
            "not found",
            "no connection named \"nope\"",
        ),
        (
            s.remove_connection("nope").unwrap_err(),
            "not found",
            "no connection named \"nope\"",
        ),
        (
            s.add_segment("seg", "2 = 2").unwrap_err(),
            "conflict",
            "a segment named \"seg\" exists already (remove it first to change it)",
        ),
        (
            s.segment("nope").unwrap_err(),
            "not found",
            "no segment named \"nope\" (see `segsync segments list`)",
        ),
        (
            s.set_segment_predicate("nope", "1").unwrap_err(),
            "not found",
            "no segment named \"nope\"",
        ),
        (
            s.remove_segment("nope").unwrap_err(),
            "not found",
            "no segment named \"nope\"",
        ),
        (
            s.add_segment_from("other", "1 = 1", Some("nope"))
                .unwrap_err(),
            "not found",
            "no profile source named \"nope\"",
        ),
        (
            s.add_profile_source(&source("src")).unwrap_err(),
            "conflict",
            "a profile source named \"src\" exists already",
        ),
        (
            s.profile_source("nope").unwrap_err(),
            "not found",
            "no profile source named \"nope\"",
        ),
        (
            s.remove_profile_source("nope").unwrap_err(),
            "not found",
            "no profile source named \"nope\"",
        ),
        (
            s.add_export(&export("exp", "main", &[])).unwrap_err(),
            "conflict",
            "an export named \"exp\" exists already",
        ),
        (
            s.export("nope").unwrap_err(),
            "not found",
            "no export named \"nope\" (see `segsync export list`)",
        ),
        (
            s.replace_export(&export("nope", "main", &[])).unwrap_err(),
            "not found",
            "no export named \"nope\" (see `segsync export list`)",
        ),
        (
            s.remove_export("nope").unwrap_err(),
            "not found",
            "no export named \"nope\"",
        ),
        (
            s.run(12345).unwrap_err(),
            "not found",
            "no run 12345 (see `segsync runs`)",
        ),
        (
            s.add_user("ann", Role::Viewer, "h").unwrap_err(),
            "conflict",
            "a user named \"ann\" exists already",
        ),
        (
            s.user("nope").unwrap_err(),
            "not found",
            "no user named \"nope\"",
        ),
        (
            s.set_password_hash("nope", "h").unwrap_err(),
            "not found",
            "no user named \"nope\"",
        ),
        (
            s.set_role("nope", Role::Admin).unwrap_err(),
            "not found",
            "no user named \"nope\"",
        ),
        (
            s.remove_user("nope").unwrap_err(),
            "not found",
            "no user named \"nope\"",
        ),
        (
            s.revoke_token(999).unwrap_err(),
            "not found",
            "no API token 999",
        ),
        (
            s.complete_queued_run(999, "w", None).unwrap_err(),
            "not found",
            "no queued run 999",
        ),
    ];
    for (e, kind, text) in checks {
        assert_eq!((kind_of(&e), e.to_string().as_str()), (kind, text));
    }
    // Nothing above changed anything.
    assert_eq!(s.connections().unwrap(), vec![connection("main")]);
    assert_eq!(s.segment("seg").unwrap().predicate, "1 = 1");
    assert_eq!(s.exports().unwrap().len(), 1);
    assert_eq!(s.segments().unwrap().len(), 1);
}

/// What a diff visited and the plan it wrote, read back page by page.
#[derive(Debug, PartialEq, Eq)]
struct PlanSeen {
    visited: Vec<Visit>,
    upserts: Vec<SeenUpsert>,
    tags: Vec<(usize, bool, i64, MemberKey, String)>,
    archives: Vec<(i64, MemberKey, String)>,
    staged: u64,
}

type Visit = (MemberKey, Option<(String, u64, u64)>, Option<SnapshotEntry>);
type SeenUpsert = (
    UpsertPhase,
    i64,
    MemberKey,
    String,
    Status,
    Option<u64>,
    Option<String>,
);

fn bits(set: u64) -> impl Iterator<Item = usize> {
    (0..64).filter(move |b| set & (1u64 << b) != 0)
}

/// A small planning rule (the engine's `decide`, simplified) that uses every kind of plan row.
/// One key of the diff: recorded in `visited`, planned by [`plan_rule`].
fn visit(
    visited: &mut Vec<Visit>,
    (key, want, snap): (MemberKey, Option<&StagedMember>, Option<&SnapshotEntry>),
    w: &mut PlanWriter<'_>,
) -> segsync::state::Result<()> {
    visited.push((
        key,
        want.map(|m| (m.email.clone(), m.fingerprint, m.tags.0)),
        snap.cloned(),
    ));
    plan_rule(key, want, snap, w)
}

fn plan_rule(
    key: MemberKey,
    want: Option<&StagedMember>,
    snap: Option<&SnapshotEntry>,
    w: &mut PlanWriter<'_>,
) -> segsync::state::Result<()> {
    match (want, snap) {
        (Some(m), None) => {
            w.upsert(
                UpsertPhase::Create,
                key,
                &m.email,
                Status::Subscribed,
                Some(m.fingerprint),
                TagSet::default(),
            )?;
            for bit in bits(m.tags.0) {
                w.tag(bit, true, key, &m.email)?;
            }
        }
        (Some(m), Some(e)) => {
            if e.fingerprint != Some(m.fingerprint) {
                w.upsert(
                    UpsertPhase::Update,
                    key,
                    &m.email,
                    e.status,
                    Some(m.fingerprint),
                    TagSet::default(),
                )?;
            }
            for bit in bits(m.tags.0 & !e.tags.0) {
                w.tag(bit, true, key, &m.email)?;
            }
            for bit in bits(e.tags.0 & !m.tags.0) {
                w.tag(bit, false, key, &m.email)?;
            }
        }
        (None, Some(e)) => {
            for bit in bits(e.tags.0) {
                w.tag(bit, false, key, &e.email)?;
            }
            if e.owned && e.status == Status::Subscribed {
                w.upsert(
                    UpsertPhase::Unsubscribe,
                    key,
                    &e.email,
                    Status::Unsubscribed,
                    None,
                    TagSet::default(),
                )?;
            } else if e.owned {
                w.archive(key, &e.email)?;
            }
        }
        (None, None) => unreachable!("the join gives one side at least"),
    }
    Ok(())
}

/// Rows to stage: (member, fingerprint, tags, updated_at).
type StageInput<'a> = [(u32, u64, u64, Option<&'a str>)];

/// How rows reach the keyed stage: streamed through the unsorted table in batches, or held
/// in memory and sorted there; in the order of their positions, or in the reverse order
/// (a second pass reads profiles that a full pass reads earlier).
#[derive(Clone, Copy, Debug)]
enum Staging {
    Streamed,
    Sorted,
    StreamedReversed,
    SortedReversed,
}

fn stage_and_plan(s: &mut StateStore, export: &str, rows: &StageInput<'_>) -> PlanSeen {
    stage_and_plan_by(s, export, rows, Staging::Streamed, None)
}

/// Stages `rows` (`how`), then diffs them whole, or `parts` staged members at a time.
fn stage_and_plan_by(
    s: &mut StateStore,
    export: &str,
    rows: &StageInput<'_>,
    how: Staging,
    parts: Option<usize>,
) -> PlanSeen {
    s.stage_begin().unwrap();
    let mut staged: Vec<StageRow> = rows
        .iter()
        .enumerate()
        .map(|(n, &(i, fp, tags, updated_at))| {
            let mut merge = MergeValues::new();
            merge.insert("FNAME".into(), json!(format!("Name{i}-{n}")));
            StageRow {
                key: key(i),
                email: format!("member{i}@example.com"),
                merge_json: serde_json::to_string(&merge).unwrap(),
                fingerprint: fp,
                tags: TagSet(tags),
                updated_at: updated_at.map(str::to_string),
                profile_key: format!("P{n}"),
                position: n as i64,
            }
        })
        .collect();
    if matches!(how, Staging::StreamedReversed | Staging::SortedReversed) {
        staged.reverse();
    }
    match how {
        Staging::Streamed | Staging::StreamedReversed => {
            for chunk in staged.chunks(7) {
                s.stage_rows(chunk).unwrap();
            }
            s.stage_end().unwrap();
        }
        Staging::Sorted | Staging::SortedReversed => s.stage_sorted(staged).unwrap(),
    }
    let mut visited = Vec::new();
    let mut cursor = DiffCursor::default();
    while !cursor.done() {
        s.diff_stage_part(export, false, &mut cursor, parts, |k, want, snap, w| {
            visit(&mut visited, (k, want, snap), w)
        })
        .unwrap();
    }
    let mut upserts = Vec::new();
    for phase in [
        UpsertPhase::Create,
        UpsertPhase::Update,
        UpsertPhase::Unsubscribe,
    ] {
        let mut after = 0;
        loop {
            let page = s.planned_upserts(phase, after, 3).unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            upserts.extend(page.into_iter().map(|u| {
                (
                    phase,
                    u.seq,
                    u.key,
                    u.email,
                    u.status,
                    u.fingerprint,
                    u.merge_json,
                )
            }));
        }
    }
    let mut tags = Vec::new();
    for bit in s.planned_tag_bits().unwrap() {
        for adding in [true, false] {
            let mut after = 0;
            loop {
                let page = s.planned_tags(bit, adding, after, 2).unwrap();
                let Some(last) = page.last() else { break };
                after = last.0;
                tags.extend(page.into_iter().map(|(seq, k, e)| (bit, adding, seq, k, e)));
            }
        }
    }
    let mut archives = Vec::new();
    let mut after = 0;
    loop {
        let page = s.planned_archives(after, 2).unwrap();
        let Some(last) = page.last() else { break };
        after = last.0;
        archives.extend(page);
    }
    PlanSeen {
        visited,
        upserts,
        tags,
        archives,
        staged: s.staged_count().unwrap(),
    }
}

const TOP: u64 = 1 << 63;

/// Two runs of a plan on the store under test and on a SQLite reference store, from the same
/// inputs: the same visits in the same order, the same plan rows, page by page.
fn staging_gives_the_same_plan(env: &Env, s: &mut StateStore) {
    let mut reference = env.new_store(Kind::Sqlite);
    let snapshot: Vec<(MemberKey, SnapshotEntry)> = (0..40).map(|i| (key(i), entry(i))).collect();
    let first: Vec<(u32, u64, u64, Option<&str>)> = (20..60)
        .map(|i| (i, u64::MAX - u64::from(i % 5), TOP | u64::from(i % 3), None))
        .chain([
            // Duplicates of member 25: tags united; the newest gives the attributes.
            (25, 1, 0b100, Some("2026-01-01")),
            (25, 2, 0b1000, Some("2026-06-01")),
            (25, 3, 0b10000, Some("2026-03-01")),
            // A duplicate without a time keeps the first one's attributes.
            (30, 4, 0b100000, None),
        ])
        .collect();
    let mut plans = Vec::new();
    for store in [&mut *s, &mut reference] {
        store.add_export(&export("e", "main", &[])).unwrap();
        store.save_snapshot("e", &snapshot).unwrap();
        plans.push(stage_and_plan(store, "e", &first));
    }
    assert_eq!(plans[0], plans[1]);
    // Held in memory and sorted there, or coming in another order with the same positions,
    // the same rows make the same stage and plan.
    for how in [
        Staging::Sorted,
        Staging::StreamedReversed,
        Staging::SortedReversed,
    ] {
        let again = stage_and_plan_by(s, "e", &first, how, None);
        assert_eq!(again, plans[0], "{how:?}");
    }
    // Diffed a part at a time (as a run that sends while it diffs), the same visits and
    // the same plan rows.
    for n in [1, 3, 7, 40] {
        let again = stage_and_plan_by(s, "e", &first, Staging::Streamed, Some(n));
        assert_eq!(again, plans[0], "in parts of {n}");
    }
    let plan = &plans[0];
    assert_eq!(plan.staged, 40);
    assert_eq!(plan.visited.len(), 60);
    let keys: Vec<MemberKey> = plan.visited.iter().map(|v| v.0).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "the join runs in key order");
    let m25 = plan.visited.iter().find(|v| v.0 == key(25)).unwrap();
    assert_eq!(
        m25.1,
        Some(("member25@example.com".to_string(), 2, TOP | 0b11101))
    );
    let m30 = plan.visited.iter().find(|v| v.0 == key(30)).unwrap();
    assert_eq!(m30.1.as_ref().unwrap().1, u64::MAX);
    let up25 = plan.upserts.iter().find(|u| u.2 == key(25)).unwrap();
    assert_eq!(up25.6.as_deref(), Some("{\"FNAME\":\"Name25-41\"}"));
    assert!(plan.upserts.iter().any(|u| u.0 == UpsertPhase::Create));
    assert!(plan.upserts.iter().any(|u| u.0 == UpsertPhase::Update));
    assert!(plan.upserts.iter().any(|u| u.0 == UpsertPhase::Unsubscribe));
    assert!(!plan.archives.is_empty());
    assert!(plan.tags.iter().any(|t| t.0 == 63 && t.1));
    assert!(plan.tags.iter().any(|t| !t.1));
    for store in [&*s, &reference] {
        assert_eq!(
            store.staged_profile_key(&key(25)).unwrap().as_deref(),
            Some("P5")
        );
        assert_eq!(store.staged_profile_key(&key(1)).unwrap(), None);
    }

    // Checkpoints move the snapshot; the next run stages afresh and diffs against it.
    let acked: Vec<(MemberKey, SnapshotEntry)> = (20..60)
        .map(|i| {
            (
                key(i),
                SnapshotEntry {
                    email: format!("member{i}@example.com"),
                    fingerprint: Some(u64::MAX - u64::from(i % 5)),
                    tags: TagSet(TOP | u64::from(i % 3)),
                    status: Status::Subscribed,
                    owned: true,
                    profiles: Some(format!("C{i}")),
                },
            )
        })
        .collect();
    let second: Vec<(u32, u64, u64, Option<&str>)> =
        (35..45).map(|i| (i, 7, u64::from(i % 2), None)).collect();
    let mut plans = Vec::new();
    for store in [&mut *s, &mut reference] {
        store.save_snapshot("e", &acked).unwrap();
        plans.push(stage_and_plan(store, "e", &second));
    }
    assert_eq!(plans[0], plans[1]);
    assert_eq!(plans[0].staged, 10);
    assert_eq!(plans[0].visited.len(), 60);
    // The snapshot's keys before, between and after the staged ones, a part at a time.
    for n in [1, 4, 10, 11] {
        let again = stage_and_plan_by(s, "e", &second, Staging::Streamed, Some(n));
        assert_eq!(again, plans[0], "in parts of {n}");
    }
    // Another export's snapshot is not in this one's diff.
    s.add_export(&export("f", "main", &[])).unwrap();
    let other = stage_and_plan(s, "f", &second);
    assert_eq!(other.visited.len(), 10);
}

/// A run writes through two connections at once: its sending task records create intents,
/// its checkpoint thread saves snapshot entries and the run's errors (a read, then a write).
/// Neither may fail with "database is locked" for the other: each waits its turn.
fn two_connections_write_at_once(env: &Env, s: &mut StateStore) {
    const ROUNDS: u32 = 300;
    let run = s.start_run("news", "manual").unwrap();
    let mut other = env.reopen();
    let checkpoints = std::thread::spawn(move || {
        for i in 0..ROUNDS {
            other.save_snapshot("news", &[(key(i), entry(i))]).unwrap();
            let error = RecordError {
                profile_key: format!("P{i}"),
                email: format!("member{i}@example.com"),
                reason: "refused".into(),
            };
            other.add_run_errors(run, &[error]).unwrap();
        }
    });
    for i in 0..ROUNDS {
        let email = format!("member{}@example.com", ROUNDS + i);
        s.record_create_intents("news", &[(key(ROUNDS + i), email.as_str())])
            .unwrap();
        s.tag_bits("news", &[format!("tag{}", i % 50)]).unwrap();
    }
    checkpoints.join().unwrap();
    assert_eq!(s.run_errors(run).unwrap().len(), ROUNDS as usize);
    assert_eq!(s.create_intents("news").unwrap().len(), ROUNDS as usize);
    let keys: Vec<MemberKey> = (0..ROUNDS).map(key).collect();
    assert_eq!(
        s.snapshot_entries("news", &keys).unwrap().len(),
        ROUNDS as usize
    );
}

fn leases(env: &Env, s: &mut StateStore) {
    let other = env.reopen();
    let ttl = Duration::from_millis(400);
    assert!(s.try_lease("export:newsletter", "w1", ttl).unwrap());
    assert!(!other.try_lease("export:newsletter", "w2", ttl).unwrap());
    // Its holder renews it; another name is free.
    assert!(s.try_lease("export:newsletter", "w1", ttl).unwrap());
    assert!(other.try_lease("export:promo", "w2", ttl).unwrap());
    // Only the holder lets it go.
    other.release_lease("export:newsletter", "w2").unwrap();
    assert!(!other.try_lease("export:newsletter", "w2", ttl).unwrap());
    // Expired, it goes to the next one who asks.
    std::thread::sleep(Duration::from_millis(600));
    assert!(other
        .try_lease("export:newsletter", "w2", Duration::from_secs(60))
        .unwrap());
    assert!(!s.try_lease("export:newsletter", "w1", ttl).unwrap());
    other.release_lease("export:newsletter", "w2").unwrap();
    assert!(s.try_lease("export:newsletter", "w1", ttl).unwrap());
}

fn run_queue(env: &Env, s: &mut StateStore) {
    let ttl = Duration::from_secs(60);
    let tick = Some("2026-11-23T06:00:00Z");
    // Exactly once per schedule tick, from any worker.
    let id = s
        .enqueue_run("daily", "schedule", "scheduler", tick)
        .unwrap();
    assert!(id.is_some());
    assert_eq!(
        s.enqueue_run("daily", "schedule", "scheduler", tick)
            .unwrap(),
        None
    );
    assert_eq!(
        env.reopen()
            .enqueue_run("daily", "schedule", "other-worker", tick)
            .unwrap(),
        None
    );
    // Runs asked for by people have no tick and never conflict.
    let a = s.enqueue_run("manual", "manual", "ann", None).unwrap();
    let b = s.enqueue_run("manual", "manual", "ann", None).unwrap();
    assert!(a.is_some() && b.is_some() && a != b);
    let queued = s.queued_runs(None).unwrap();
    assert_eq!(queued.len(), 3);
    assert_eq!(queued[0].id, id.unwrap());
    assert_eq!(queued[0].tick.as_deref(), tick);
    assert_eq!(queued[0].state, QueueState::Pending);
    assert_eq!(queued[0].requested_by, "scheduler");
    assert_eq!(s.queued_runs(Some("manual")).unwrap().len(), 2);

    // Oldest first; a second run of an export waits while the first is held.
    let first = s.claim_queued_run("w1", ttl).unwrap().unwrap();
    assert_eq!(first.id, id.unwrap());
    assert_eq!(first.state, QueueState::Claimed);
    assert_eq!(first.worker.as_deref(), Some("w1"));
    assert!(first.lease_until.is_some());
    let second = s.claim_queued_run("w2", ttl).unwrap().unwrap();
    assert_eq!(second.id, a.unwrap());
    assert_eq!(s.claim_queued_run("w3", ttl).unwrap(), None);
    assert!(s.renew_queued_run(second.id, "w2", ttl).unwrap());
    assert!(!s.renew_queued_run(second.id, "w1", ttl).unwrap());
    s.complete_queued_run(second.id, "w2", Some(17)).unwrap();
    let e = s
        .complete_queued_run(second.id, "w2", Some(17))
        .unwrap_err();
    assert_eq!(kind_of(&e), "conflict");
    // Now the export's next run may go.
    let third = s.claim_queued_run("w3", ttl).unwrap().unwrap();
    assert_eq!(third.id, b.unwrap());
    s.complete_queued_run(first.id, "w1", None).unwrap();
    s.complete_queued_run(third.id, "w3", Some(18)).unwrap();
    assert!(s.queued_runs(None).unwrap().is_empty());
    assert_eq!(
        s.enqueue_run("daily", "schedule", "scheduler", tick)
            .unwrap(),
        None,
        "a tick that ran is not queued again"
    );

    // A dead worker's claim is taken over once its lease runs out.
    let dead = s.enqueue_run("x", "manual", "ann", None).unwrap().unwrap();
    let held = s
        .claim_queued_run("dead", Duration::from_millis(300))
        .unwrap()
        .unwrap();
    assert_eq!(held.id, dead);
    assert_eq!(s.claim_queued_run("w1", ttl).unwrap(), None);
    std::thread::sleep(Duration::from_millis(500));
    let taken = s.claim_queued_run("w1", ttl).unwrap().unwrap();
    assert_eq!((taken.id, taken.worker.as_deref()), (dead, Some("w1")));
    assert!(!s.renew_queued_run(dead, "dead", ttl).unwrap());
    assert_eq!(
        kind_of(&s.complete_queued_run(dead, "dead", None).unwrap_err()),
        "conflict"
    );
    s.complete_queued_run(dead, "w1", None).unwrap();

    // Two workers claiming at once never get the same run.
    let mut ids: Vec<i64> = (0..24)
        .map(|i| {
            s.enqueue_run(&format!("export{i}"), "manual", "ann", None)
                .unwrap()
                .unwrap()
        })
        .collect();
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let store = env.reopen();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(r) = store.claim_queued_run(&format!("w{w}"), ttl).unwrap() {
                    got.push(r.id);
                }
                got
            })
        })
        .collect();
    let mut claimed: Vec<i64> = workers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    claimed.sort();
    ids.sort();
    assert_eq!(claimed, ids);
}

/// The version-1 tables, with a segment and a run, as a SQLite file made before migrations
/// were recorded had them (the rest of version 1 is created by the upgrade).
const OLD_SQLITE: &str = r#"
CREATE TABLE segments (name TEXT PRIMARY KEY, predicate TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, export TEXT NOT NULL, trigger TEXT NOT NULL,
  started_at TEXT NOT NULL, finished_at TEXT, outcome TEXT NOT NULL, counts TEXT NOT NULL, error TEXT);
INSERT INTO segments VALUES ('old', 'country = ''RO''', '2026-01-01T00:00:00Z');
INSERT INTO runs (export, trigger, started_at, outcome, counts)
  VALUES ('e', 'manual', '2026-01-01T00:00:00Z', 'succeeded', '{}');
"#;

/// A PostgreSQL database taken back to version 1, with the same segment and run.
const BACK_TO_V1_POSTGRES: &str = r#"
DELETE FROM schema_migrations WHERE version IN (2, 3, 4, 5, 6, 7, 8, 9);
DROP INDEX snapshot_not_subscribed;
DROP TABLE profile_sources, leases, run_queue, account_slots, suppressions, refusals, run_changes;
ALTER TABLE connections DROP COLUMN account_id, DROP COLUMN slot_budget, DROP COLUMN account_name,
  DROP COLUMN health, DROP COLUMN health_detail, DROP COLUMN health_checked_at;
ALTER TABLE segments DROP COLUMN rule;
ALTER TABLE snapshot DROP COLUMN profiles;
ALTER TABLE segments DROP COLUMN source;
INSERT INTO segments VALUES ('old', 'country = ''RO''', '2026-01-01T00:00:00Z');
INSERT INTO runs (export, trigger, started_at, outcome, counts)
  VALUES ('e', 'manual', '2026-01-01T00:00:00Z', 'succeeded', '{}');
"#;

fn migrations(env: &Env, s: &mut StateStore) {
    // Opening again, or migrating, changes nothing.
    assert_eq!(s.schema_version().unwrap(), 9);
    assert_eq!(schema_version(&env.url).unwrap(), (9, 9));
    let report = migrate(&env.url).unwrap();
    assert_eq!((report.from_version, report.to_version), (9, 9));
    assert!(report.applied.is_empty());
    s.add_segment("kept", "1 = 1").unwrap();
    drop(env.reopen());
    assert_eq!(s.segments().unwrap().len(), 1);

    // A fresh store, migrated by several processes at once: each migration applied once.
    let fresh = env.new_url(env.kind);
    assert_eq!(schema_version(&fresh).unwrap(), (0, 9));
    let racers: Vec<_> = (0..3)
        .map(|_| {
            let url = fresh.clone();
            std::thread::spawn(move || migrate(&url).unwrap())
        })
        .collect();
    let mut applied: Vec<(u32, String)> = racers
        .into_iter()
        .flat_map(|h| h.join().unwrap().applied)
        .collect();
    applied.sort();
    assert_eq!(
        applied.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
        "{applied:?}"
    );
    assert!(applied.iter().all(|a| !a.1.is_empty()));

    // A store at version 1 (before profile sources, leases and the queue; on SQLite, a file
    // made before migrations were recorded) upgrades and keeps what it holds.
    let old = env.new_url(env.kind);
    let expected_from = match env.kind {
        Kind::Sqlite => {
            let path = old.strip_prefix("sqlite://").unwrap();
            let c = rusqlite::Connection::open(path).unwrap();
            c.execute_batch(OLD_SQLITE).unwrap();
            0
        }
        Kind::Postgres => {
            migrate(&old).unwrap();
            let db = env.dbs.borrow().last().unwrap().url.clone();
            let mut c = postgres::Client::connect(&db, postgres::NoTls).unwrap();
            c.batch_execute(BACK_TO_V1_POSTGRES).unwrap();
            1
        }
    };
    assert_eq!(schema_version(&old).unwrap().0, expected_from);
    let upgraded = StateStore::open_url(&old).unwrap();
    assert_eq!(upgraded.schema_version().unwrap(), 9);
    let seg = upgraded.segment("old").unwrap();
    assert_eq!(
        (seg.predicate.as_str(), seg.source),
        ("country = 'RO'", None)
    );
    assert_eq!(seg.rule, None);
    assert_eq!(upgraded.run(1).unwrap().outcome, Outcome::Succeeded);
    assert_eq!(upgraded.start_run("e", "manual").unwrap(), 2);
    assert!(upgraded
        .try_lease("l", "me", Duration::from_secs(1))
        .unwrap());
    if env.kind == Kind::Postgres {
        // The history is recorded, with names.
        let names: Vec<String> = env
            .pg_client()
            .query("SELECT name FROM schema_migrations ORDER BY version", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(names.len(), 9);
    }
}

/// Writes one of every kind of record, and enough snapshot rows and run errors to cross
/// several copy batches.
fn fill(s: &mut StateStore) {
    s.add_connection(&connection("main")).unwrap();
    s.add_profile_source(&source("warehouse")).unwrap();
    s.add_segment("high-value", "lifetime_value > 500").unwrap();
    s.add_segment_from("dw", "1 = 1", Some("warehouse"))
        .unwrap();
    s.add_export(&export("newsletter", "main", &["high-value", "dw"]))
        .unwrap();
    s.tag_bits("newsletter", &["Tag high-value".into(), "Tag dw".into()])
        .unwrap();
    let snapshot: Vec<(MemberKey, SnapshotEntry)> = (0..5000).map(|i| (key(i), entry(i))).collect();
    for chunk in snapshot.chunks(500) {
        s.save_snapshot("newsletter", chunk).unwrap();
    }
    s.record_create_intents("newsletter", &[(key(9000), "member9000@example.com")])
        .unwrap();
    s.set_audience_read_at("newsletter", "2026-11-22T10:00:00Z")
        .unwrap();
    s.add_suppression(&suppression(None, SuppressionKind::Key, "C7"))
        .unwrap();
    s.remember_refusals(&[refusal("newsletter", "fake@example.com", 1)])
        .unwrap();
    let run = s.start_run("newsletter", "manual").unwrap();
    let errors: Vec<RecordError> = (0..4500)
        .map(|i| RecordError {
            profile_key: format!("C{i}"),
            email: format!("x{i}@"),
            reason: "bad domain".into(),
        })
        .collect();
    s.add_run_errors(run, &errors).unwrap();
    let changes: Vec<RunChange> = (0..3000).map(change).collect();
    s.add_run_changes(run, &changes).unwrap();
    s.finish_run(
        run,
        Outcome::SucceededWithErrors,
        &RunCounts {
            created: 5000,
            refused: 4500,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    s.start_run("newsletter", "schedule").unwrap();
    s.add_user("ann", Role::Admin, "$argon2id$ann").unwrap();
    s.add_user("bob", Role::Viewer, "$argon2id$bob").unwrap();
    s.add_token("ann", "kept", &[1u8; 32]).unwrap();
    let gone = s.add_token("bob", "revoked", &[2u8; 32]).unwrap();
    s.revoke_token(gone).unwrap();
    s.token_user(&[1u8; 32]).unwrap();
    s.add_session(&[5u8; 32], "bob", "csrf", "2999-01-01T00:00:00Z")
        .unwrap();
    s.audit("ann", "connection.add", "main", "api key").unwrap();
    s.audit("ann", "export.add", "newsletter", "").unwrap();
    s.set_setting("alerts", Some("{}")).unwrap();
    s.add_oauth_flow("st4te", "ann", "{}").unwrap();
    s.try_lease("scheduler", "w1", Duration::from_secs(3600))
        .unwrap();
    s.enqueue_run("newsletter", "schedule", "scheduler", Some("t1"))
        .unwrap();
    s.enqueue_run("newsletter", "manual", "ann", None).unwrap();
    s.claim_queued_run("w1", Duration::from_secs(3600))
        .unwrap()
        .unwrap();
}

type Dump = Vec<(&'static str, Vec<Vec<Cell>>)>;

/// Every row of every durable table.
fn dump(s: &StateStore) -> Dump {
    TABLES
        .iter()
        .map(|t| {
            let mut rows = Vec::new();
            s.copy_out(t, &mut |row| {
                rows.push(row);
                Ok(())
            })
            .unwrap();
            (t.name, rows)
        })
        .collect()
}

/// SQLite → PostgreSQL → a new SQLite (and PostgreSQL → SQLite → a new PostgreSQL): the
/// same rows in every table, ids continuing after the copied ones; a copy into a store that
/// holds something is refused and changes nothing.
fn copy_both_ways(env: &Env, s: &mut StateStore) {
    fill(s);
    let original = dump(s);
    for (name, rows) in &original {
        assert!(!rows.is_empty(), "table {name} was not filled");
    }
    let mut there = env.new_store(env.kind.other());
    let report = copy_state(s, &mut there).unwrap();
    assert_eq!(report.rows["snapshot"], 5000);
    assert_eq!(report.rows["run_errors"], 4500);
    assert_eq!(report.rows["run_changes"], 3000);
    assert_eq!(report.rows["runs"], 2);
    assert_eq!(report.rows.len(), TABLES.len());
    assert_eq!(dump(&there), original);
    let mut back = env.new_store(env.kind);
    copy_state(&there, &mut back).unwrap();
    assert_eq!(dump(&back), original);

    // Records read the same through the other backend.
    assert_eq!(
        there.export("newsletter").unwrap(),
        s.export("newsletter").unwrap()
    );
    assert_eq!(
        there.snapshot("newsletter").unwrap(),
        s.snapshot("newsletter").unwrap()
    );
    assert_eq!(there.runs(None, 10).unwrap(), s.runs(None, 10).unwrap());
    assert_eq!(there.run_errors(1).unwrap(), s.run_errors(1).unwrap());
    assert_eq!(there.segments().unwrap(), s.segments().unwrap());
    assert_eq!(there.tokens(None).unwrap(), s.tokens(None).unwrap());
    assert_eq!(
        there.audit_log(10, None).unwrap(),
        s.audit_log(10, None).unwrap()
    );
    assert_eq!(
        there.queued_runs(None).unwrap(),
        s.queued_runs(None).unwrap()
    );

    // Ids continue after the copied ones (the revoked token's id is not handed out again).
    for store in [&mut there, &mut back] {
        assert_eq!(store.start_run("newsletter", "manual").unwrap(), 3);
        assert_eq!(store.add_token("ann", "new", &[3u8; 32]).unwrap(), 3);
        store.audit("ann", "x", "y", "z").unwrap();
        assert_eq!(store.audit_log(1, None).unwrap()[0].id, 3);
    }

    // Into a store that holds anything: refused, nothing changed.
    let before = dump(&there);
    let e = copy_state(s, &mut there).unwrap_err();
    assert_eq!(kind_of(&e), "conflict");
    assert!(e.to_string().contains("is not empty"), "{e}");
    assert_eq!(dump(&there), before);
    let mut users_only = env.new_store(env.kind.other());
    users_only.add_user("zed", Role::Viewer, "h").unwrap();
    let e = copy_state(s, &mut users_only).unwrap_err();
    assert!(e.to_string().contains("table users holds 1 row"), "{e}");
    assert_eq!(users_only.users().unwrap().len(), 1);
    assert!(users_only.connections().unwrap().is_empty());
}

fn urls(env: &Env, s: &mut StateStore) {
    let kind = match env.kind {
        Kind::Sqlite => "sqlite",
        Kind::Postgres => "postgres",
    };
    assert_eq!(s.kind(), kind);
    assert_eq!(
        StateUrl::parse("sqlite:state.sqlite").unwrap(),
        StateUrl::Sqlite("state.sqlite".into())
    );
    assert_eq!(
        StateUrl::parse("sqlite://data/state.sqlite").unwrap(),
        StateUrl::Sqlite("data/state.sqlite".into())
    );
    assert_eq!(
        StateUrl::parse("sqlite:///var/lib/segsync/state.sqlite").unwrap(),
        StateUrl::Sqlite("/var/lib/segsync/state.sqlite".into())
    );
    assert_eq!(
        StateUrl::parse("postgresql://ann@db/segsync").unwrap(),
        StateUrl::Postgres("postgresql://ann@db/segsync".into())
    );
    let e = StateStore::open_url("mysql://ann:s3cret@db/segsync").unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("unknown state store URL") && !text.contains("s3cret"),
        "{text}"
    );
    // A password never shows, in errors or in Debug.
    let e = StateStore::open_url("postgres://ann:s3cret@127.0.0.1:1/segsync").unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StateError::Postgres(_)), "{e:?}");
    assert!(!text.contains("s3cret") && text.contains("***"), "{text}");
    assert!(!format!("{e:?}").contains("s3cret"));
    let shown = format!("{s:?}");
    assert!(shown.contains(kind) && !shown.contains("s3cret"), "{shown}");
    // The path opener and open_url reach the same file.
    let path = env.dir.path().join("plain.sqlite");
    StateStore::open(&path)
        .unwrap()
        .add_segment("x", "1 = 1")
        .unwrap();
    let same = StateStore::open_url(&format!("sqlite:{}", path.display())).unwrap();
    assert_eq!(same.segment("x").unwrap().predicate, "1 = 1");
}

/// The connection slots workers hold as leases in a PostgreSQL store: never more holders than
/// slots, a slot given back is free at once, and one whose holder stopped renewing it (a
/// killed worker) is free once its lease runs out.
#[test]
fn slot_leases_on_postgres() {
    use segsync::mailchimp::SlotLeases;
    use segsync::state::postgres::slots::PgSlotLeases;
    let env = Env::new(Kind::Postgres, "slot_leases");
    drop(StateStore::open_url(&env.url).unwrap()); // migrated
    let lease = std::time::Duration::from_secs(1);
    let first = PgSlotLeases::connect(&env.url, lease).unwrap();
    let second = PgSlotLeases::connect(&env.url, lease).unwrap();
    let a = first.take("acc", 3).unwrap().expect("a free slot");
    let b = second.take("acc", 3).unwrap().expect("a free slot");
    let c = first.take("acc", 3).unwrap().expect("a free slot");
    let mut taken = vec![a, b, c];
    taken.sort();
    assert_eq!(taken, [0, 1, 2]);
    assert_eq!(second.take("acc", 3).unwrap(), None, "all 3 are held");
    assert_eq!(
        second.take("other-account", 3).unwrap(),
        Some(0),
        "accounts apart"
    );
    // A slot given back is free at once, for anyone; not by a process that does not hold it.
    second.give_back("acc", a).unwrap();
    assert_eq!(second.take("acc", 3).unwrap(), None, "not second's to give");
    first.give_back("acc", a).unwrap();
    assert_eq!(second.take("acc", 3).unwrap(), Some(a));
    // The first process stops (its renewing thread with it): its slots come back once their
    // lease runs out, and not before a renewal lapses.
    let held_by_first: i64 = env
        .pg_client()
        .query_one(
            "SELECT count(*) FROM account_slots WHERE holder = $1 AND expires_at > now()",
            &[&first.holder()],
        )
        .unwrap()
        .get(0);
    assert_eq!(held_by_first, 1);
    drop(first);
    let got = (0..60).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        second.take("acc", 3).unwrap()
    });
    assert_eq!(got, Some(c), "the stopped process's slot came back");
    // A smaller limit only hands out slots under it.
    assert_eq!(second.take("acc", 2).unwrap(), None);
}

fn suppression(export: Option<&str>, kind: SuppressionKind, value: &str) -> Suppression {
    Suppression {
        export: export.map(str::to_string),
        kind,
        value: value.to_string(),
        note: "asked to".into(),
        added_by: "ann".into(),
        added_at: "2026-12-01T10:00:00Z".into(),
    }
}

fn refusal(export: &str, email: &str, fingerprint: u64) -> RefusalRecord {
    RefusalRecord {
        export: export.to_string(),
        email: email.to_string(),
        profile_key: "C1".into(),
        fingerprint,
        reason: "Mailchimp: looks fake".into(),
        refused_at: "2026-12-01T10:00:00Z".into(),
        run_id: 1,
    }
}

/// Lists per export and for the installation, kept apart; refusals remembered (the newest
/// per address, all 64 bits of the fingerprint kept), forgotten; an export's removal takes
/// its list and refusals with it, and a move to another audience its refusals.
fn suppressions_and_refusals(_env: &Env, s: &mut StateStore) {
    s.add_connection(&connection("main")).unwrap();
    s.add_segment("all", "1 = 1").unwrap();
    s.add_export(&export("news", "main", &["all"])).unwrap();
    let install = suppression(None, SuppressionKind::Email, "a@x.io");
    let own = suppression(Some("news"), SuppressionKind::Email, "a@x.io");
    let key = suppression(Some("news"), SuppressionKind::Key, "C9");
    for e in [&install, &own, &key] {
        s.add_suppression(e).unwrap();
    }
    let again = s.add_suppression(&own).unwrap_err();
    assert_eq!(kind_of(&again), "conflict");
    assert!(again.to_string().contains("export \"news\""), "{again}");
    assert_eq!(s.suppressions(None).unwrap(), vec![install.clone()]);
    assert_eq!(
        s.suppressions(Some("news")).unwrap(),
        vec![own.clone(), key]
    );
    s.remove_suppression(Some("news"), SuppressionKind::Key, "C9")
        .unwrap();
    let gone = s
        .remove_suppression(Some("news"), SuppressionKind::Key, "C9")
        .unwrap_err();
    assert_eq!(kind_of(&gone), "not found");

    let big = u64::MAX - 3;
    s.remember_refusals(&[refusal("news", "b@x.io", 1), refusal("news", "c@x.io", 2)])
        .unwrap();
    s.remember_refusals(&[refusal("news", "b@x.io", big)])
        .unwrap();
    let kept = s.refusals("news").unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(
        (kept[0].email.as_str(), kept[0].fingerprint),
        ("b@x.io", big)
    );
    assert_eq!(
        s.forget_refusals("news", &["c@x.io".into(), "nobody@x.io".into()])
            .unwrap(),
        1
    );
    assert_eq!(s.refusals("news").unwrap().len(), 1);

    // Another audience: the refusals belonged to the old one; the list stays.
    let mut moved = export("news", "main", &["all"]);
    moved.audience_id = "other".into();
    s.replace_export(&moved).unwrap();
    assert!(s.refusals("news").unwrap().is_empty());
    assert_eq!(s.suppressions(Some("news")).unwrap(), vec![own]);

    s.remember_refusals(&[refusal("news", "b@x.io", 1)])
        .unwrap();
    s.remove_export("news").unwrap();
    assert!(s.suppressions(Some("news")).unwrap().is_empty());
    assert!(s.refusals("news").unwrap().is_empty());
    assert_eq!(s.suppressions(None).unwrap(), vec![install]);
}
