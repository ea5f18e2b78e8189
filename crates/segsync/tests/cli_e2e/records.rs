//! Records as they come in real data: the same address twice in different case, addresses
//! that are not addresses, and addresses Mailchimp refuses.

use mailchimp_sim::Status;

use crate::common::*;

#[test]
fn duplicate_emails_in_different_case_become_one_member_with_the_newest_attributes() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let at = |p: Profile, t: &str| Profile {
        updated_at: t.into(),
        ..p
    };
    let profiles = vec![
        // Maria: the newest profile comes first in the file.
        at(
            Profile::new(
                "C001",
                "Maria.Ionescu@Gmail.com",
                "Maria",
                "Ionescu",
                "Iași",
                "RO",
                100.0,
            ),
            "2026-03-01T10:00:00Z",
        ),
        at(
            Profile::new(
                "C002",
                "maria.ionescu@gmail.com",
                "Mărioara",
                "Ionescu-Old",
                "Paris",
                "FR",
                900.0,
            ),
            "2025-11-20T08:00:00Z",
        ),
        // Luca: the newest profile comes last.
        at(
            Profile::new(
                "C003",
                "LUCA.ROSSI@LIBERO.IT",
                "Luca",
                "Rossi",
                "Roma",
                "RO",
                20.0,
            ),
            "2025-06-01T00:00:00Z",
        ),
        at(
            Profile::new(
                "C004",
                "luca.rossi@libero.it",
                "Luca-Andrei",
                "Rossi",
                "Cluj-Napoca",
                "RO",
                30.0,
            ),
            "2026-02-10T12:00:00Z",
        ),
        at(
            Profile::new(
                "C005",
                "Luca.Rossi@Libero.it",
                "Lucian",
                "Rossi",
                "Sibiu",
                "DE",
                700.0,
            ),
            "2026-01-05T12:00:00Z",
        ),
        // Someone with one profile.
        Profile::new(
            "C006",
            "chloe.dubois@orange.fr",
            "Chloé",
            "Dubois",
            "Lyon",
            "FR",
            990.0,
        ),
    ];
    s.setup(&list, &profiles, &["--updated-at-field", "updated_at"]);
    let out = s.run_export(0);
    assert!(out.stdout.contains("duplicates merged 3"), "{}", out.stdout);

    let v = sim.view(&list);
    assert_eq!(
        emails(&v),
        [
            "chloe.dubois@orange.fr",
            "luca.rossi@libero.it",
            "maria.ionescu@gmail.com"
        ],
        "one member per address"
    );
    let maria = member(&v, "maria.ionescu@gmail.com");
    assert_eq!(
        maria.tags,
        [HIGH_VALUE_TAG, "romania"],
        "tags of every duplicate, united"
    );
    assert_eq!(
        (
            merge(maria, "FNAME"),
            merge(maria, "LNAME"),
            merge(maria, "CITY")
        ),
        ("Maria".into(), "Ionescu".into(), "Iași".into()),
        "the newest profile's attributes"
    );
    assert_eq!(maria.status, Status::Subscribed);
    let luca = member(&v, "luca.rossi@libero.it");
    assert_eq!(luca.tags, [HIGH_VALUE_TAG, "romania"]);
    assert_eq!(
        (merge(luca, "FNAME"), merge(luca, "CITY")),
        ("Luca-Andrei".into(), "Cluj-Napoca".into()),
        "the newest profile's attributes"
    );
    assert_eq!(
        sim.counters().members_created,
        3,
        "each address created once"
    );

    let run = s.show_json(1);
    assert_eq!(
        (
            count(&run, "profiles"),
            count(&run, "members"),
            count(&run, "duplicates")
        ),
        (6, 3, 3)
    );
    assert_eq!(
        run["outcome"], "succeeded",
        "a merged duplicate is not an error"
    );

    // Merged the same way every time: nothing to send on a re-run.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes);

    // Without --updated-at-field, the first profile of an address gives its attributes.
    let plain = sim.new_list("Plain");
    s.ok(&[
        "export",
        "add",
        "plain",
        "--connection",
        CONNECTION,
        "--audience",
        &plain,
        "--email-field",
        "email",
        "--first-name",
        "first_name",
        "--merge",
        "CITY=city",
        "--create-merge-fields",
        "--segment",
        "high_value",
        "--segment",
        "romania",
    ]);
    s.ok(&["run", "plain", "--quiet"]);
    let v = sim.view(&plain);
    assert_eq!(v.members.len(), 3);
    let maria = member(&v, "maria.ionescu@gmail.com");
    assert_eq!(
        (merge(maria, "FNAME"), merge(maria, "CITY")),
        ("Maria".into(), "Iași".into()),
        "the first profile's attributes"
    );
    assert_eq!(maria.tags, ["high_value", "romania"]);
    let luca = member(&v, "luca.rossi@libero.it");
    assert_eq!(
        (merge(luca, "FNAME"), merge(luca, "CITY")),
        ("Luca".into(), "Roma".into()),
        "the first profile's attributes"
    );
}

#[test]
fn invalid_emails_are_reported_and_the_others_delivered() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let good = vec![
        ana(),
        helene(),
        Profile::new(
            "C003",
            "ioana.pop+promo@yahoo.ro",
            "Ioana",
            "Pop",
            "Iași",
            "RO",
            30.0,
        ),
    ];
    let bad = vec![
        Profile::new(
            "X001",
            "ana.popescu@",
            "Ana",
            "Popescu",
            "Cluj-Napoca",
            "RO",
            820.0,
        ),
        Profile::new(
            "X002",
            "no-at-sign.gmail.com",
            "Mihai",
            "Ionescu",
            "Iași",
            "RO",
            10.0,
        ),
        Profile::new(
            "X003",
            "luca rossi@libero.it",
            "Luca",
            "Rossi",
            "Milano",
            "IT",
            700.0,
        ),
        Profile::new(
            "X004",
            "chloe@orange",
            "Chloé",
            "Moreau",
            "Lyon",
            "FR",
            550.0,
        ),
        Profile::new("X005", "", "Zoë", "Schäfer", "Timișoara", "RO", 5.0),
    ];
    let profiles: Vec<Profile> = good.iter().chain(&bad).cloned().collect();
    s.setup(&list, &profiles, &[]);

    let out = s.run_export(3);
    assert!(
        out.stdout.contains(": succeeded with errors in "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("not sent ana.popescu@: invalid email address"),
        "{}",
        out.stdout
    );
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&good, Status::Subscribed),
        "the valid ones are delivered"
    );

    let errors = s.errors_csv(1);
    let keys: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(errors.len(), 5, "{errors:?}");
    for p in &bad {
        assert!(
            keys.contains(&p.id.as_str()),
            "{} is reported: {errors:?}",
            p.id
        );
    }
    let reason = |id: &str| {
        errors
            .iter()
            .find(|e| e.0 == id)
            .map(|e| e.2.clone())
            .unwrap()
    };
    assert!(
        reason("X002").contains("invalid email address") && reason("X002").contains("no @"),
        "{}",
        reason("X002")
    );
    assert!(reason("X003").contains("spaces"), "{}", reason("X003"));
    assert!(
        reason("X005").contains("no email address"),
        "{}",
        reason("X005")
    );
    assert_eq!(
        errors.iter().find(|e| e.0 == "X003").unwrap().1,
        "luca rossi@libero.it",
        "the address as given"
    );

    assert_eq!(s.listed_outcome(1), "succeeded_with_errors");
    let run = s.show_json(1);
    assert_eq!((count(&run, "created"), count(&run, "refused")), (3, 5));
    let shown = s.show(1);
    assert!(
        shown.contains("not sent no-at-sign.gmail.com (X002): invalid email address"),
        "{shown}"
    );

    // Still wrong in the data, still reported; nothing else to send.
    let writes = sim.counters().writes;
    s.run_export(3);
    assert_eq!(sim.counters().writes, writes);
    assert_eq!(s.errors_csv(2).len(), 5);
}

/// The one test with an address at example.com: Mailchimp refuses such addresses as
/// fake-looking; segsync reports Mailchimp's reason for that record and sends the rest.
#[test]
fn an_address_mailchimp_refuses_is_reported_with_mailchimps_reason() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let good = vec![ana(), helene()];
    let fake = Profile::new(
        "C003",
        "jean.dupont@example.com",
        "Jean",
        "Dupont",
        "Paris",
        "RO",
        900.0,
    );
    let profiles: Vec<Profile> = good.iter().cloned().chain([fake]).collect();
    s.setup(&list, &profiles, &[]);

    let out = s.run_export(3);
    assert!(
        out.stdout.contains(": succeeded with errors in "),
        "{}",
        out.stdout
    );
    let v = sim.view(&list);
    assert_eq!(holding(&v, FIELDS), expected(&good, Status::Subscribed));
    assert!(find(&v, "jean.dupont@example.com").is_none());

    let errors = s.errors_csv(1);
    assert_eq!(
        errors.len(),
        1,
        "one record, reported once (not again for its tags): {errors:?}"
    );
    let (key, email, reason) = &errors[0];
    assert_eq!(
        (key.as_str(), email.as_str()),
        ("C003", "jean.dupont@example.com")
    );
    assert!(
        reason.starts_with("Mailchimp:") && reason.contains("fake"),
        "Mailchimp's reason: {reason}"
    );
    let run = s.show_json(1);
    assert_eq!((count(&run, "created"), count(&run, "failed")), (2, 1));
}

/// `runs errors RUN --csv` is opened in spreadsheets: a key or an address that starts like a
/// formula (`=`, `+`, `-`, `@`, tab, carriage return) must come out as text, behind a `'`.
#[test]
fn the_errors_csv_neutralises_cells_that_start_like_formulas() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let mut profiles = vec![ana()];
    profiles.extend(formula_profiles());
    s.setup(&list, &profiles, &[]);
    s.run_export(3);
    let out = s.ok(&["runs", "errors", "1", "--csv"]);
    assert!(
        out.stdout.starts_with("profile_key,email,reason\n"),
        "{}",
        out.stdout
    );
    assert_spreadsheet_safe(&out.stdout);
    // The other forms give the values as they are.
    let json = s.ok(&["runs", "errors", "1", "--json"]).stdout;
    assert!(json.contains("\"profile_key\": \"=1+1\""), "{json}");
}
