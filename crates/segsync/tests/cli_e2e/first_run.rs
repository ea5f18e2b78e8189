//! The first run of an export into an audience that holds none of its people.

use mailchimp_sim::Status;

use crate::common::*;

/// Five customers: in both segments, in one, in the other, in none, and one whose address has
/// capitals (sent lower-cased).
fn five() -> Vec<Profile> {
    vec![
        ana(),
        helene(),
        stefan(),
        Profile::new(
            "C004",
            "matteo.bianchi+news@libero.it",
            "Matteo",
            "Bianchi",
            "Milano",
            "IT",
            120.0,
        ),
        Profile::new(
            "C005",
            "Raul.Lopez@Outlook.com",
            "Raúl",
            "López",
            "Sevilla",
            "ES",
            990.0,
        ),
    ]
}

#[test]
fn first_run_creates_members_with_merge_fields_and_a_tag_per_segment() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = five();
    s.setup(&list, &profiles, &[]);
    assert_eq!(sim.view(&list).member_count, 0, "export add writes nothing");

    // Not --quiet: stderr is not a terminal, so progress comes as plain lines.
    let out = s.expect(0, &["run", EXPORT]);
    assert!(
        out.stdout
            .contains("run 1 of export \"newsletter\": succeeded"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("created 4, updated 0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("sending members: 4/4 members"),
        "plain progress lines:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\r') && !out.stderr.contains('\u{1b}'),
        "no terminal control codes off a terminal:\n{:?}",
        out.stderr
    );

    let view = sim.view(&list);
    assert_eq!(
        holding(&view, FIELDS),
        expected(&profiles, Status::Subscribed)
    );
    assert!(
        find(&view, "matteo.bianchi+news@libero.it").is_none(),
        "a profile in no chosen segment is not sent"
    );
    assert_eq!(
        member(&view, "raul.lopez@outlook.com").email_address,
        "raul.lopez@outlook.com",
        "addresses are sent lower-cased"
    );
    assert!(
        view.merge_fields
            .iter()
            .any(|f| f["tag"] == "CITY" && f["type"] == "text"),
        "--create-merge-fields created CITY: {:?}",
        view.merge_fields
    );
    let tag_count = |name: &str| {
        view.tags
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.member_count)
    };
    assert_eq!(
        tag_count(HIGH_VALUE_TAG),
        Some(3),
        "--tag high_value=\"High value\" names the tag"
    );
    assert_eq!(
        tag_count("romania"),
        Some(2),
        "the tag of a segment is its name by default"
    );
    assert_eq!(view.tags.len(), 2);

    let c = sim.counters();
    assert_eq!(c.members_created, 4);
    assert_eq!(c.members_updated, 0);
    assert_eq!(c.compliance_refusals, 0);
    assert!(
        c.by_endpoint
            .get("POST /3.0/lists/{list_id}")
            .copied()
            .unwrap_or(0)
            >= 1,
        "members go in batch upserts: {:?}",
        c.by_endpoint
    );

    assert_eq!(s.listed_outcome(1), "succeeded");
    let run = s.show_json(1);
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(run["export"], EXPORT);
    assert_eq!(
        (
            count(&run, "members"),
            count(&run, "created"),
            count(&run, "tagged")
        ),
        (4, 4, 5)
    );
    assert_eq!(
        (
            count(&run, "updated"),
            count(&run, "refused"),
            count(&run, "failed")
        ),
        (0, 0, 0)
    );
    let shown = s.show(1);
    assert!(
        shown.contains("run 1 of export \"newsletter\" (manual): succeeded"),
        "{shown}"
    );
    assert!(
        shown.contains("created 4, updated 0, unchanged 0, tagged 5"),
        "{shown}"
    );
    assert!(s.errors_csv(1).is_empty());
}

/// The merge fields a first run creates go in one after another, beside the tags' read and
/// creates: Mailchimp lists them in the order the mapping names them, and every member
/// carries its fields and tags.
#[test]
fn first_run_creates_its_merge_fields_in_the_mappings_order_and_its_tags() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let profiles = five();
    let extra = [
        "--merge",
        "COUNTRY=country",
        "--merge",
        "LTV=lifetime_value",
    ];
    s.setup(&list, &profiles, &extra);
    s.run_export(0);

    let view = sim.view(&list);
    let mut created: Vec<(u64, &str)> = view
        .merge_fields
        .iter()
        .map(|f| {
            (
                f["display_order"].as_u64().unwrap(),
                f["tag"].as_str().unwrap(),
            )
        })
        .filter(|(_, tag)| ["CITY", "COUNTRY", "LTV"].contains(tag))
        .collect();
    created.sort();
    let order: Vec<&str> = created.iter().map(|(_, tag)| *tag).collect();
    assert_eq!(order, ["CITY", "COUNTRY", "LTV"], "{:?}", view.merge_fields);
    assert_eq!(
        holding(&view, FIELDS),
        expected(&profiles, Status::Subscribed)
    );
    let sent: Vec<(String, String, String)> = view
        .members
        .iter()
        .map(|m| {
            let (country, ltv) = (merge(m, "COUNTRY"), merge(m, "LTV"));
            (m.email_address.clone(), country, ltv)
        })
        .collect();
    assert!(
        sent.contains(&("ana.popescu@gmail.com".into(), "RO".into(), "820".into())),
        "{sent:?}"
    );
    assert!(
        sent.iter().all(|(_, c, l)| !c.is_empty() && !l.is_empty()),
        "{sent:?}"
    );
    let mut sizes: Vec<(String, usize)> = view
        .tags
        .iter()
        .map(|t| (t.name.clone(), t.member_count))
        .collect();
    sizes.sort();
    assert_eq!(
        sizes,
        [(HIGH_VALUE_TAG.to_string(), 3), ("romania".to_string(), 2)]
    );
}

#[test]
fn first_run_with_status_if_new_pending_adds_members_as_pending() {
    let sim = Sim::start();
    let list = sim.new_list("Double opt-in newsletter");
    let s = Session::new(&sim);
    let profiles = five();
    s.setup(&list, &profiles, &["--status-if-new", "pending"]);

    let out = s.run_export(0);
    assert!(out.stdout.contains("created 4"), "{}", out.stdout);
    let view = sim.view(&list);
    assert_eq!(holding(&view, FIELDS), expected(&profiles, Status::Pending));
    assert_eq!(sim.counters().compliance_refusals, 0);

    // Pending members are left pending: a second run has nothing to send.
    let writes = sim.counters().writes;
    s.run_export(0);
    assert_eq!(sim.counters().writes, writes, "a re-run sends no write");
    assert_eq!(
        holding(&sim.view(&list), FIELDS),
        expected(&profiles, Status::Pending)
    );
}
