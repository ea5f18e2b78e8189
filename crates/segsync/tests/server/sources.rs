//! Database profile sources through the HTTP API and the web UI (issue 19): a PostgreSQL and
//! a MariaDB source added by an admin (contributors and viewers refused), listed with their
//! status and never their URL's password, a source that is down showing why, segments on
//! each counting what the table gives, and removal refused while a segment reads a source.

use serde_json::json;

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

/// 30 customers, 12 of them in Cluj.
fn pg_customers() -> (TestDb, String) {
    let db = TestDb::create("srv_sources");
    let mut sql = String::from(
        "CREATE TABLE customers (customer_id text PRIMARY KEY, email text NOT NULL, \
         city text, lifetime_value numeric(10,2));",
    );
    for i in 0..30 {
        let city = if i % 5 < 2 { "Cluj" } else { "Iasi" };
        sql.push_str(&format!(
            "INSERT INTO customers VALUES ('c{i}', 'c{i}@example.com', '{city}', {i}.50);"
        ));
    }
    db.client().batch_execute(&sql).unwrap();
    let url = db.reader("GRANT SELECT ON customers TO {role}");
    (db, url)
}

/// 20 customers, 5 of them with a lifetime value over 15 (3 of those VIPs); the reader's URL holds its password.
fn mysql_customers() -> (MyTestDb, String) {
    let db = MyTestDb::create("srv_sources");
    let mut sql = String::from(
        "CREATE TABLE customers (customer_id VARCHAR(20) PRIMARY KEY, email VARCHAR(100) NOT NULL, \
         lifetime_value DECIMAL(10,2), vip TINYINT(1));",
    );
    for i in 0..20 {
        sql.push_str(&format!(
            "INSERT INTO customers VALUES ('m{i}', 'm{i}@example.com', {i}.25, {});",
            i % 2
        ));
    }
    db.exec(&sql);
    let url = db.reader("GRANT SELECT ON {db}.customers TO {user}", true);
    (db, url)
}

fn source_body(name: &str, kind: &str, url: &str) -> serde_json::Value {
    json!({"name": name, "kind": kind, "url": url, "table": "customers", "key": "customer_id"})
}

#[test]
fn admins_add_postgres_and_mysql_sources_that_segments_read() {
    let sim = Sim::start();
    let s = installation(&sim, &people(10));
    let server = Server::start(&s, &[]);
    let (_pg, pg_url) = pg_customers();
    let (_my, my_url) = mysql_customers();
    assert!(my_url.contains(READER_PASSWORD));
    let admin = server.token_client(ADMIN);
    let carl = server.login(CONTRIBUTOR);
    let vera = server.login(VIEWER);

    // Contributors and viewers may not add sources.
    for who in [&carl, &vera] {
        let (code, body) = who.post("/api/sources", source_body("crm", "postgres", &pg_url));
        assert_eq!(code, 403, "{body}");
        assert_eq!(body["error"], "forbidden");
    }
    // Neither a table nor a query: refused, saying so.
    let (code, body) = admin.post(
        "/api/sources",
        json!({"name": "x", "kind": "postgres", "url": pg_url, "key": "customer_id"}),
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("\"table\""),
        "{body}"
    );
    // A URL of another kind than the one named.
    let (code, body) = admin.post("/api/sources", source_body("x", "postgres", &my_url));
    assert_eq!(code, 422, "{body}");
    assert!(!body.to_string().contains(READER_PASSWORD), "{body}");

    // A cursor column must be one the database orders writes by (a timestamp, a number).
    let mut with_cursor = source_body("crm", "postgres", &pg_url);
    with_cursor["cursor"] = json!("city");
    let (code, body) = admin.post("/api/sources", with_cursor);
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("\"city\" is of type text"),
        "{body}"
    );
    let (code, body) = admin.post("/api/sources", source_body("crm", "postgres", &pg_url));
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["kind"], "postgres");
    assert_eq!(body["relation"], "customers");
    let (code, body) = admin.post("/api/sources", source_body("shop", "mysql", &my_url));
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["kind"], "mysql");
    assert!(body["url"].as_str().unwrap().contains(":***@"), "{body}");
    assert!(!body.to_string().contains(READER_PASSWORD), "{body}");

    // Viewers list them, without the password.
    let (code, list) = vera.get("/api/sources");
    assert_eq!(code, 200, "{list}");
    assert!(!list.to_string().contains(READER_PASSWORD), "{list}");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["crm", "shop"]);
    // Each with its live status.
    let (code, crm) = vera.get("/api/sources/crm");
    assert_eq!(code, 200, "{crm}");
    assert_eq!(crm["status"]["reachable"], true, "{crm}");
    assert_eq!(crm["status"]["count"], 30, "{crm}");
    let cols: Vec<&str> = crm["status"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["customer_id", "email", "city", "lifetime_value"]);
    let (code, shop) = vera.get("/api/sources/shop");
    assert_eq!(code, 200, "{shop}");
    assert_eq!(shop["status"]["count"], 20, "{shop}");
    assert!(!shop.to_string().contains(READER_PASSWORD), "{shop}");

    // Segments on each count what the table gives.
    let (code, body) = carl.post(
        "/api/segments",
        json!({"name": "cluj", "predicate": "city = 'Cluj'", "source": "crm"}),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["count"], 12, "{body}");
    let (code, body) = carl.post(
        "/api/segments",
        json!({"name": "big_spenders", "predicate": "lifetime_value > 15 AND vip = 1", "source": "shop"}),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["count"], 3, "{body}");
    let (_, crm) = vera.get("/api/sources/crm");
    assert_eq!(crm["segments"], json!(["cluj"]));

    // The web UI lists the imported profiles and both sources with their status.
    let page = vera.send(vera.request("GET", "/sources"));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Imported profiles"), "{}", page.text);
    assert!(page.text.contains("data-source=\"crm\""), "{}", page.text);
    assert!(page.text.contains("data-source=\"shop\""), "{}", page.text);
    assert_eq!(page.text.matches("data-status=\"reachable\"").count(), 3);
    assert!(!page.text.contains(READER_PASSWORD));
    assert!(!page.text.contains("Add source"), "viewers get no form");
    let page = vera.send(vera.request("GET", "/sources/shop"));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("big_spenders"), "{}", page.text);
    assert!(page.text.contains("vip"), "{}", page.text);
    assert!(!page.text.contains(READER_PASSWORD));

    // Removal: refused for contributors, and while a segment reads the source.
    let (code, body) = carl.delete("/api/sources/shop");
    assert_eq!(code, 403, "{body}");
    let (code, body) = admin.delete("/api/sources/shop");
    assert_eq!(code, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("big_spenders"),
        "{body}"
    );
    let (code, body) = carl.delete("/api/segments/big_spenders");
    assert_eq!(code, 204, "{body}");
    let (code, body) = admin.delete("/api/sources/shop");
    assert_eq!(code, 204, "{body}");
    let (code, _) = vera.get("/api/sources/shop");
    assert_eq!(code, 404);

    // The audit log names who added and removed them, never the password.
    let (code, audit) = admin.get("/api/audit");
    assert_eq!(code, 200);
    let audit = audit.to_string();
    assert!(audit.contains("profile_source.add"), "{audit}");
    assert!(audit.contains("profile_source.remove"), "{audit}");
    assert!(!audit.contains(READER_PASSWORD), "{audit}");
    assert!(!server.output().contains(READER_PASSWORD));
}

#[test]
fn a_source_that_is_down_shows_why() {
    let sim = Sim::start();
    let s = installation(&sim, &people(5));
    let server = Server::start(&s, &[]);
    let admin = server.token_client(ADMIN);
    let (pg, url) = pg_customers();
    let (code, body) = admin.post("/api/sources", source_body("gone", "postgres", &url));
    assert_eq!(code, 201, "{body}");
    let name = pg.name.clone();
    drop(pg);

    let (code, body) = admin.get("/api/sources/gone");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"]["reachable"], false, "{body}");
    assert_eq!(body["status"]["count"], json!(null), "{body}");
    let error = body["status"]["error"].as_str().unwrap();
    assert!(
        error.contains("does not exist") && error.contains(&name),
        "{error}"
    );
    let page = admin.send(admin.request("GET", "/sources"));
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("data-status=\"unreachable\""),
        "{}",
        page.text
    );
    assert!(page.text.contains("does not exist"), "{}", page.text);
    let page = admin.send(admin.request("GET", "/sources/gone"));
    assert_eq!(page.status, 200);
    assert!(page.text.contains("cannot be read now"), "{}", page.text);
}

fn csrf_in(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("a form with a CSRF token in:\n{page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("the token ends")].to_string()
}

fn post_form(c: &Client, path: &str, form: &[(&str, &str)]) -> Answer {
    c.send(c.request("POST", path).form(form))
}

/// The web UI: an admin adds a MariaDB source with the Data > Sources form (a mistake shown
/// by the form, the URL never sent back), a contributor adds segments on each source with
/// the Data > Segments form's "Profiles from" selector, counted where the profiles are, and
/// an admin removes a source once no segment reads it.
#[test]
fn the_ui_adds_sources_and_segments_on_them() {
    let sim = Sim::start();
    let s = installation(&sim, &people(10));
    let server = Server::start(&s, &[]);
    let (_pg, pg_url) = pg_customers();
    let (_my, my_url) = mysql_customers();
    let ada = server.login(ADMIN);
    let carl = server.login(CONTRIBUTOR);
    let (code, body) = server
        .token_client(ADMIN)
        .post("/api/sources", source_body("crm", "postgres", &pg_url));
    assert_eq!(code, 201, "{body}");

    // Admins get the form; a wrong key column is refused by the form, saying why.
    let page = ada.send(ada.request("GET", "/sources")).text;
    assert!(page.contains("id=\"add-source\""), "{page}");
    let token = csrf_in(&page);
    let mut form = vec![
        ("csrf", token.as_str()),
        ("name", "shop"),
        ("kind", "mysql"),
        ("url", my_url.as_str()),
        ("relation_kind", "table"),
        ("relation", "customers"),
        ("key", "nope"),
    ];
    let a = post_form(&ada, "/sources", &form);
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("id=\"source-error\""), "{}", a.text);
    assert!(a.text.contains("nope"), "{}", a.text);
    assert!(
        !a.text.contains(READER_PASSWORD),
        "the URL is not sent back"
    );
    form[6] = ("key", "customer_id");
    let a = post_form(&ada, "/sources", &form);
    assert_eq!(a.status, 303, "{}", a.text);
    let (code, shop) = ada.get("/api/sources/shop");
    assert_eq!(code, 200, "{shop}");
    assert_eq!(shop["status"]["count"], 20, "{shop}");
    // Contributors cannot add one.
    let page = carl.send(carl.request("GET", "/sources")).text;
    assert!(!page.contains("id=\"add-source\""));
    let a = post_form(
        &carl,
        "/sources",
        &[("csrf", &csrf_in(&page)), ("name", "x")],
    );
    assert_eq!(a.status, 403, "{}", a.text);

    // The segment form reads any source.
    let page = carl.send(carl.request("GET", "/segments")).text;
    assert!(page.contains("id=\"seg-source\""), "{page}");
    assert!(page.contains("<option value=\"shop\""), "{page}");
    let token = csrf_in(&page);
    for (name, predicate, source, count) in [
        ("ui_cluj", "city = 'Cluj'", "crm", "12"),
        ("ui_vip", "vip = 1", "shop", "10"),
    ] {
        let a = post_form(
            &carl,
            "/segments",
            &[
                ("csrf", &token),
                ("name", name),
                ("predicate", predicate),
                ("rule", ""),
                ("source", source),
            ],
        );
        assert_eq!(a.status, 303, "{}", a.text);
        let (code, body) = carl.get(&format!("/api/segments/{name}"));
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["count"].to_string(), count, "{body}");
        let (_, list) = carl.get("/api/segments");
        let listed = list
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_default();
        assert_eq!(listed["source"], source, "{list}");
    }
    // A condition over a column the source lacks: the database's message, on the form.
    let a = post_form(
        &carl,
        "/segments",
        &[
            ("csrf", &token),
            ("name", "ui_bad"),
            ("predicate", "vip = 1"),
            ("rule", ""),
            ("source", "crm"),
        ],
    );
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("vip"), "{}", a.text);
    // The builder's live count reads the chosen source too.
    let (code, body) = carl.post(
        "/api/segment-preview",
        json!({"predicate": "vip = 1", "source": "shop"}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["count"], 10, "{body}");

    // The source's page lists the segments that read it; removal waits for them.
    let page = ada.send(ada.request("GET", "/sources/shop")).text;
    assert!(page.contains("ui_vip"), "{page}");
    let a = post_form(&ada, "/sources/shop/remove", &[("csrf", &csrf_in(&page))]);
    assert_eq!(a.status, 409, "{}", a.text);
    let (code, _) = carl.delete("/api/segments/ui_vip");
    assert_eq!(code, 204);
    let a = post_form(&ada, "/sources/shop/remove", &[("csrf", &csrf_in(&page))]);
    assert_eq!(a.status, 303, "{}", a.text);
    let (code, _) = ada.get("/api/sources/shop");
    assert_eq!(code, 404);
}
