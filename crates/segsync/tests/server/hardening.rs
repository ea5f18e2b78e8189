//! What a security review asked of the server's answers: CSV downloads safe to open in a
//! spreadsheet, bounded metrics, and the headers and checks that keep browsers from misusing
//! answers.

use crate::common::*;
use crate::harness::*;

/// The CSV of a run's errors, downloaded from the API (the UI links the same URL), never
/// holds a cell a spreadsheet would evaluate as a formula.
#[test]
fn the_errors_csv_download_neutralises_cells_that_start_like_formulas() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let s = Session::new(&sim);
    let mut profiles = vec![ana()];
    profiles.extend(formula_profiles());
    s.setup(&list, &profiles, &[]);
    s.run_export(3);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let csv = ada.send(ada.request("GET", "/api/runs/1/errors"));
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert!(
        csv.text.starts_with("profile_key,email,reason\n"),
        "{}",
        csv.text
    );
    assert_spreadsheet_safe(&csv.text);
}
