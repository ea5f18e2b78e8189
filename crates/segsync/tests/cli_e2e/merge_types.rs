//! Issue 18, item 5: merge fields an export creates get the Mailchimp type that fits their
//! column (number, date, birthday, phone; text otherwise), and the values are sent in the
//! form Mailchimp documents for that type (a date as `YYYY-MM-DD`, a birthday as `MM/DD`),
//! which the audience keeps in the field's display format.

use serde_json::Value;

use crate::common::*;

const CSV: &str = "id,email,Lifetime value,Joined,Date of birth,Phone,City\n\
                   c1,ana.pop@posta.ro,\"1234,5\",2024-12-31,1990-07-04,+40 721 000 111,Cluj\n\
                   c2,ion.rus@posta.ro,\"87,14\",2023-03-15,1985-02-28,+40 722 000 222,Iasi\n";

fn field<'a>(fields: &'a [Value], tag: &str) -> &'a Value {
    fields
        .iter()
        .find(|f| f["tag"] == tag)
        .unwrap_or_else(|| panic!("merge field {tag} in {fields:?}"))
}

#[test]
fn created_merge_fields_get_the_type_of_their_column() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let file = s.home().join("typed.csv");
    std::fs::write(&file, CSV).unwrap();
    s.ok(&[
        "profiles",
        "import",
        file.to_str().unwrap(),
        "--key",
        "id",
        "--decimal-comma",
    ]);
    s.ok(&["segments", "add", "all", "--where", "1 = 1"]);
    s.connect();
    s.ok(&[
        "export",
        "add",
        EXPORT,
        "--connection",
        CONNECTION,
        "--audience",
        &list,
        "--email-field",
        "email",
        "--merge",
        "LTV=Lifetime value",
        "--merge",
        "JOINED=Joined",
        "--merge",
        "BDAY=Date of birth",
        "--merge",
        "PHONE=Phone",
        "--merge",
        "CITY=City",
        "--create-merge-fields",
        "--segment",
        "all",
    ]);
    s.run_settled(&sim, 0, &[]);

    let view = sim.view(&list);
    let types: Vec<(String, String)> = ["LTV", "JOINED", "BDAY", "PHONE", "CITY"]
        .iter()
        .map(|t| {
            let f = field(&view.merge_fields, t);
            (t.to_string(), f["type"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        types,
        [
            ("LTV", "number"),
            ("JOINED", "date"),
            ("BDAY", "birthday"),
            ("PHONE", "phone"),
            ("CITY", "text")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(
        field(&view.merge_fields, "JOINED")["options"]["date_format"],
        "MM/DD/YYYY"
    );
    assert_eq!(
        field(&view.merge_fields, "BDAY")["options"]["date_format"],
        "MM/DD"
    );
    let ana = member(&view, "ana.pop@posta.ro");
    assert_eq!(ana.merge_fields["LTV"], serde_json::json!(1234.5));
    assert_eq!(merge(ana, "JOINED"), "12/31/2024");
    assert_eq!(merge(ana, "BDAY"), "07/04");
    assert_eq!(merge(ana, "PHONE"), "+40 721 000 111");

    // The audience by its name, its id second.
    let listed = s.ok(&["export", "list"]).stdout;
    assert!(
        listed.contains(&format!("audience \"Newsletter\" ({list})")),
        "{listed}"
    );
    let shown = s.show(s.last_run());
    assert!(
        shown.contains(&format!("  audience \"Newsletter\" ({list})")),
        "{shown}"
    );

    // Nothing changed: the next run sends nothing.
    let before = sim.counters();
    s.run_export(0);
    assert_eq!(
        sim.counters().writes,
        before.writes,
        "{:?}",
        sim.counters().by_endpoint
    );
}
