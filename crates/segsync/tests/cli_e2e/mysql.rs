//! MySQL / MariaDB as a profile source (issue 19), through the command line, against the
//! machine's MariaDB (`scripts/setup-mariadb.sh`): profiles that stay in the shop's table are
//! exported with their segments evaluated by the server, the URL's password never shows, and
//! predicates that try to escape their place in the query are refused or harmless.

use mailchimp_sim::Status;

use crate::common::*;

/// What a profile source's user needs: reading `customers`, nothing more.
const READ_CUSTOMERS: &str = "GRANT SELECT ON {db}.customers TO {user}";

fn add_source<'a>(name: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        "profiles",
        "source",
        "add",
        name,
        "--mysql",
        url,
        "--table",
        "customers",
        "--key",
        "customer_id",
    ]
}

#[test]
fn a_hundred_thousand_profiles_in_mariadb_are_exported_with_segments_evaluated_there() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let profiles = people(100_000);
    let db = MyTestDb::create("e2e");
    write_mysql_table(&db, &profiles);
    let s = Session::new(&sim);

    // A password on the command line is refused (the process list would show it) ...
    let with_password = db.reader(READ_CUSTOMERS, true);
    let out = s.expect(2, &add_source("shop", &with_password));
    assert!(out.text().contains("process list"), "{}", out.text());
    assert!(out.text().contains("_r:***@"), "{}", out.text());
    let mut printed = out.text();
    // ... but the whole URL may come in an environment variable.
    s.set_env("SHOP_URL", &with_password);
    let out = s.ok(&add_source("shop", "env:SHOP_URL"));
    for (column, kind) in [
        ("lifetime_value", "real"),
        ("updated_at", "timestamp"),
        ("email", "text"),
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains(column) && l.trim_end().ends_with(kind)),
            "{column} {kind}: {}",
            out.text()
        );
    }
    assert!(
        !out.stderr.contains("warning"),
        "a user that reads only the profiles: {}",
        out.text()
    );
    printed.push_str(&out.text());

    // Segments are checked by the server when they are added: its own message.
    let out = s.expect(
        2,
        &[
            "segments", "add", "big", "--where", "ltv > 5", "--source", "shop",
        ],
    );
    assert!(
        out.text().contains("Unknown column 'ltv'"),
        "MariaDB's own message: {}",
        out.text()
    );
    let out = s.ok(&[
        "segments",
        "add",
        "high_value",
        "--where",
        "lifetime_value >= 500",
        "--source",
        "shop",
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
        "country = \"RO\" # MySQL's comments and both quote styles",
        "--source",
        "shop",
    ]);

    // The standard export, from MariaDB: the audience gets exactly the segments.
    s.connect();
    s.add_export(&list, &[]);
    // (Under the pessimistic simulator, some new addresses are refused for now: runs again
    // until they are sent.)
    s.run_settled(&sim, 0, &[]);
    let want = expected(&profiles, Status::Subscribed);
    assert!(want.len() > 50_000, "{}", want.len());
    assert_eq!(holding(&sim.view(&list), FIELDS), want);

    let out = s.ok(&["profiles", "source", "list"]);
    assert!(out.stdout.contains("mysql"), "{}", out.text());
    assert!(out.stdout.contains("customers"), "{}", out.text());
    printed.push_str(&out.text());
    assert!(
        !printed.contains(READER_PASSWORD),
        "the password never shows: {printed}"
    );
    for file in ["state.sqlite", "state.sqlite-wal"] {
        let Ok(bytes) = std::fs::read(s.home().join(file)) else {
            continue;
        };
        assert!(
            !bytes
                .windows(READER_PASSWORD.len())
                .any(|w| w == READER_PASSWORD.as_bytes()),
            "the password is not in {file} in clear"
        );
    }
}

#[test]
fn predicates_that_try_to_escape_are_refused_or_harmless() {
    let sim = Sim::start();
    let profiles = people(20);
    let db = MyTestDb::create("escape");
    write_mysql_table(&db, &profiles);
    db.exec("CREATE TABLE secrets (secret VARCHAR(50)); INSERT INTO secrets VALUES ('hunter2')");
    let s = Session::new(&sim);
    s.set_env("MYSQL_PWD", READER_PASSWORD);
    let url = db.reader(READ_CUSTOMERS, false);
    s.ok(&add_source("shop", &url));

    let refused = [
        (
            "country = 'RO'; DROP TABLE customers",
            "more than one statement",
        ),
        ("country = 'RO", "unterminated string"),
        ("1=1 /*!50000 ) OR (1=1 */", "version comments"),
        ("SLEEP(5) = 0", "SLEEP()"),
        ("LOAD_FILE('/etc/passwd') IS NOT NULL", "LOAD_FILE()"),
        (
            "customer_id IN (SELECT customer_id FROM customers INTO OUTFILE '/tmp/segsync-out')",
            "INTO",
        ),
        ("1=1) OR (1=1", "unbalanced parentheses"),
        (
            "EXISTS (SELECT 1 FROM secrets WHERE secret LIKE 'h%')",
            "SELECT command denied",
        ),
    ];
    for (i, (predicate, words)) in refused.iter().enumerate() {
        let name = format!("bad{i}");
        let out = s.expect(
            2,
            &[
                "segments", "add", &name, "--where", predicate, "--source", "shop",
            ],
        );
        assert!(
            out.text().contains(words),
            "{predicate}: {words}: {}",
            out.text()
        );
    }
    let out = s.ok(&["segments", "list"]);
    assert!(!out.stdout.contains("bad"), "{}", out.text());

    // A comment that hides a second statement is only a comment: harmless.
    let out = s.ok(&[
        "segments",
        "add",
        "ro",
        "--where",
        "country = 'RO' -- ; DROP TABLE customers",
        "--source",
        "shop",
    ]);
    let ro = profiles.iter().filter(|p| p.romanian()).count();
    assert!(
        out.stdout.contains(&format!("{ro} profiles match")),
        "{}",
        out.text()
    );
    // A backslash escapes the quote: the rest is part of the string, which no one matches.
    let out = s.ok(&[
        "segments",
        "add",
        "quoted",
        "--where",
        "country = 'RO\\' OR 1=1 -- '",
        "--source",
        "shop",
    ]);
    assert!(out.stdout.contains("0 profiles match"), "{}", out.text());
    assert_eq!(db.count("customers"), 20);
    assert_eq!(db.count("secrets"), 1);
    assert!(!std::path::Path::new("/tmp/segsync-out").exists());
}

#[test]
fn a_user_with_global_privileges_is_refused_and_one_that_reads_more_is_named() {
    let sim = Sim::start();
    let db = MyTestDb::create("reach");
    write_mysql_table(&db, &people(5));
    db.exec("CREATE TABLE invoices (id INT)");
    let s = Session::new(&sim);

    // The tests' server user, root, has every global privilege: refused, saying what to do.
    let out = s.expect(2, &add_source("as_root", &db.url));
    for words in ["has global privileges", "--allow-superuser", "GRANT SELECT"] {
        assert!(out.stderr.contains(words), "{words}: {}", out.text());
    }
    let out = s.ok(&[&add_source("as_root", &db.url)[..], &["--allow-superuser"]].concat());
    assert!(out.stderr.contains("warning"), "{}", out.text());

    s.set_env("MYSQL_PWD", READER_PASSWORD);
    let url = db.reader(
        "GRANT SELECT ON {db}.customers TO {user}; GRANT SELECT ON {db}.invoices TO {user}",
        false,
    );
    let out = s.ok(&add_source("shop", &url));
    assert!(
        out.stderr.contains("can also read 1 other table"),
        "{}",
        out.text()
    );
    assert!(out.stderr.contains("invoices"), "{}", out.text());
}

/// `apply` declares a MySQL source whose URL comes from an environment variable and a segment
/// on it; a URL with its password written in the file is refused; `dump` writes the source
/// without its URL's password, and applying the dump changes nothing.
#[test]
fn apply_declares_a_mysql_source_from_an_environment_variable_and_a_segment_on_it() {
    let sim = Sim::start();
    let profiles = people(20);
    let db = MyTestDb::create("apply");
    write_mysql_table(&db, &profiles);
    let url = db.reader(READ_CUSTOMERS, true);
    let s = Session::new(&sim);
    let file = |url_value: &str| {
        format!(
            "[[source]]\nname = \"shop\"\nkind = \"mysql\"\nurl = \"{url_value}\"\n\
             table = \"customers\"\nkey = \"customer_id\"\n\n\
             [[segment]]\nname = \"everyone\"\nwhere = \"email LIKE '%@%'\"\nsource = \"shop\"\n"
        )
    };
    let path = s.path("segsync.toml");

    // A password in the file: refused, saying where and why, without showing it.
    std::fs::write(&path, file(&url)).unwrap();
    let out = s.expect(2, &["apply", path.to_str().unwrap()]);
    assert!(out.text().contains("segsync.toml:4:7"), "{}", out.text());
    assert!(out.text().contains("holds a password"), "{}", out.text());
    assert!(out.text().contains("env:VAR"), "{}", out.text());
    assert!(!out.text().contains(READER_PASSWORD), "{}", out.text());
    // A variable that is not set: refused too.
    std::fs::write(&path, file("env:SHOP_URL")).unwrap();
    let out = s.expect(2, &["apply", path.to_str().unwrap()]);
    assert!(
        out.text()
            .contains("url env:SHOP_URL: the variable is not set"),
        "{}",
        out.text()
    );
    s.ok(&["profiles", "source", "list"]);

    // From the environment: the source and the segment on it are created.
    s.set_env("SHOP_URL", &url);
    let out = s.ok(&["apply", path.to_str().unwrap()]);
    assert!(out.stdout.contains("+ source shop"), "{}", out.text());
    assert!(out.stdout.contains("+ segment everyone"), "{}", out.text());
    assert!(!out.text().contains(READER_PASSWORD), "{}", out.text());
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("+ segment everyone") && l.contains("20 profiles")),
        "the segment counts what the table gives: {}",
        out.text()
    );
    let out = s.ok(&["apply", path.to_str().unwrap()]);
    assert!(out.stdout.contains("= source shop"), "{}", out.text());

    // The dump: the source with a variable for its URL, never the password.
    let dumped = s.path("dumped.toml");
    s.ok(&["dump", "-o", dumped.to_str().unwrap()]);
    let text = std::fs::read_to_string(&dumped).unwrap();
    assert!(text.contains("[[source]]"), "{text}");
    assert!(text.contains("url = \"env:SEGSYNC_SOURCE_SHOP\""), "{text}");
    assert!(text.contains("_r:***@"), "{text}");
    assert!(!text.contains(READER_PASSWORD), "{text}");
    let out = s.ok(&["apply", dumped.to_str().unwrap()]);
    assert!(out.stdout.contains("= source shop"), "{}", out.text());
    assert!(out.stdout.contains("= segment everyone"), "{}", out.text());
    assert!(!db_files_hold(&s, READER_PASSWORD));
}

/// Whether a file of the installation's home holds `needle` in clear.
fn db_files_hold(s: &Session, needle: &str) -> bool {
    std::fs::read_dir(s.home())
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}
