//! The frame every page shares (header, navigation, the person and their role, log out,
//! notices), the one style sheet, and small components used across pages.

use std::sync::LazyLock;

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::super::auth::Authed;
use crate::state::{Outcome, Role};

/// The longest notice shown.
pub const NOTICE_CHARS: usize = 400;

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Segments,
    Sources,
    Exports,
    Connections,
    Users,
    Alerts,
    Audit,
    Suppressions,
}

/// A page being built: its frame around a body.
pub struct Page<'a> {
    who: Option<&'a Authed>,
    nav: Nav,
    title: String,
    notice: Option<String>,
    error: Option<String>,
    refresh: Option<(u32, String)>,
    script: Option<&'static str>,
    heading: bool,
}

impl<'a> Page<'a> {
    pub fn new(who: Option<&'a Authed>, nav: Nav, title: impl Into<String>) -> Page<'a> {
        Page {
            who,
            nav,
            title: title.into(),
            notice: None,
            error: None,
            refresh: None,
            script: None,
            heading: true,
        }
    }

    /// A success message shown at the top (after a change, from `?notice=`; as anyone can
    /// write a link with one, it is plain text and short).
    pub fn notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice
            .filter(|n| !n.trim().is_empty())
            .map(|n| n.chars().take(NOTICE_CHARS).collect());
        self
    }

    /// A refusal or failure shown at the top.
    pub fn error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }

    /// Loads `url` (the page itself, without its one-time notice) after a few seconds, while
    /// something runs: live progress without JavaScript.
    pub fn refresh(mut self, every: Option<(u32, String)>) -> Self {
        self.refresh = every;
        self
    }

    /// Adds the small progressive-enhancement script (live totals on the export form).
    pub fn with_script(mut self) -> Self {
        self.script = Some(SCRIPT);
        self
    }

    /// Adds the segment builder's script (conditions, pickers, live count; see
    /// [`super::builder_js`]).
    pub fn with_builder_script(mut self) -> Self {
        self.script = Some(super::builder_js::SCRIPT);
        self
    }

    /// No `h1` from the title (the body has its own heading, as the login page).
    pub fn without_heading(mut self) -> Self {
        self.heading = false;
        self
    }

    pub fn render(self, body: Markup) -> Markup {
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    @if let Some((s, url)) = &self.refresh {
                        meta http-equiv="refresh" content=(format!("{s}; url={url}"));
                    }
                    title { (self.title) " · segsync" }
                    link rel="icon" href=(FAVICON);
                    style { (PreEscaped(CSS)) }
                }
                body {
                    (header(self.who, self.nav))
                    main {
                        @if self.heading {
                            h1 { (self.title) }
                        }
                        @if let Some(n) = &self.notice {
                            div class="flash flash-ok" role="status" id="notice" { (n) }
                        }
                        @if let Some(e) = &self.error {
                            div class="flash flash-error" role="alert" id="error" { (e) }
                        }
                        (body)
                    }
                    footer { "segsync · exports segments of customer profiles to Mailchimp audiences" }
                    @if let Some(js) = self.script {
                        script { (PreEscaped(js)) }
                    }
                }
            }
        }
    }
}

fn header(who: Option<&Authed>, nav: Nav) -> Markup {
    let link = |n: Nav, href: &str, label: &str| {
        html! {
            a href=(href) class=[(n == nav).then_some("current")] aria-current=[(n == nav).then_some("page")] { (label) }
        }
    };
    html! {
        header class="top" {
            a class="brand" href="/" {
                span class="logo" aria-hidden="true" { "s" }
                "segsync"
            }
            @if let Some(who) = who {
                nav aria-label="Main" {
                    div class="group" {
                        span class="group-label" { "Data" }
                        (link(Nav::Segments, "/segments", "Segments"))
                        (link(Nav::Sources, "/sources", "Sources"))
                        (link(Nav::Exports, "/exports", "Exports"))
                    }
                    @if who.actor.role == Role::Admin {
                        div class="group" {
                            span class="group-label" { "Admin" }
                            (link(Nav::Connections, "/admin/connections", "Connections"))
                            (link(Nav::Users, "/admin/users", "Users"))
                            (link(Nav::Alerts, "/admin/alerts", "Alerts"))
                            (link(Nav::Audit, "/admin/audit", "Audit log"))
                            (link(Nav::Suppressions, "/admin/suppressions", "Suppressions"))
                        }
                    }
                }
                div class="me" {
                    span class="who" id="who" {
                        span class="who-name" { (who.actor.name) }
                        span class="role" { (who.actor.role.as_str()) }
                    }
                    form method="post" action="/logout" class="inline" {
                        (csrf(who))
                        button type="submit" class="btn btn-ghost" { "Log out" }
                    }
                }
            }
        }
    }
}

/// The hidden CSRF field of every form that changes something.
pub fn csrf(who: &Authed) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf()); }
}

/// A one-button form (POST) with the CSRF token.
pub fn post_button(who: &Authed, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            (csrf(who))
            button type="submit" class=(format!("btn {class}")) { (label) }
        }
    }
}

/// A run's outcome as a coloured badge.
/// What a removal confirmation page says and where its buttons go.
pub struct Removal<'a> {
    pub nav: Nav,
    /// "connection", "export", "segment", "user".
    pub what: &'a str,
    /// The object as the question names it (already marked up: name, code, role).
    pub object: Markup,
    /// What removing it does.
    pub consequences: &'a str,
    /// A warning shown above the buttons, if any.
    pub warning: Option<Markup>,
    /// Where the confirming form posts.
    pub action: String,
    /// Where "Cancel" goes back to.
    pub back: String,
}

/// The page that asks "Remove X?" before a removal, with the removing button (a CSRF-checked
/// form) and Cancel.
pub fn removal_page(who: &Authed, r: Removal<'_>) -> Markup {
    let label = format!("Remove {}", r.what);
    let body = maud::html! {
        div class="card" {
            p class="lead" { (label) " " (r.object) "?" }
            p { (r.consequences) }
            @if let Some(w) = r.warning {
                div class="flash flash-warn" { (w) }
            }
            div class="actions" {
                (post_button(who, &r.action, &label, "btn-danger"))
                a class="btn btn-secondary" href=(r.back) { "Cancel" }
            }
        }
    };
    Page::new(Some(who), r.nav, label).render(body)
}

pub fn outcome_badge(o: Outcome) -> Markup {
    let (class, label) = match o {
        Outcome::Running => ("badge-info", "running"),
        Outcome::Succeeded => ("badge-ok", "succeeded"),
        Outcome::SucceededWithErrors => ("badge-warn", o.label()),
        Outcome::Failed => ("badge-error", "failed"),
        Outcome::Interrupted => ("badge-warn", "interrupted"),
        Outcome::Cancelled => ("badge-muted", "cancelled"),
    };
    html! { span class=(format!("badge {class}")) data-outcome=(o.as_str()) { (label) } }
}

pub fn badge(class: &str, label: &str) -> Markup {
    html! { span class=(format!("badge {class}")) { (label) } }
}

/// Who may use a connection, in words.
pub fn sharing(shared_with_contributors: bool) -> &'static str {
    if shared_with_contributors {
        "Admins and contributors"
    } else {
        "Admins only"
    }
}

/// A credential kind, in words.
pub fn kind_label(kind: &str) -> &str {
    match kind {
        "oauth" => "OAuth",
        "api_key" => "API key",
        other => other,
    }
}

/// The content security policy of every page: scripts and styles only this server's own
/// inline ones, by hash; scripts may call this server's API (the segment builder's live
/// count, the export form's sizes); forms go to this server, which may send the browser on to
/// Mailchimp's login server (`login_origin`) for "Authenticate with Mailchimp".
pub fn content_security_policy(login_origin: Option<&str>) -> String {
    static HASHES: LazyLock<(String, String)> = LazyLock::new(|| {
        (
            sha256_source(CSS),
            format!(
                "{}' '{}",
                sha256_source(SCRIPT),
                sha256_source(super::builder_js::SCRIPT)
            ),
        )
    });
    format!(
        "default-src 'none'; img-src 'self' data:; style-src '{}'; script-src '{}'; connect-src 'self'; form-action 'self'{}{}; frame-ancestors 'none'; base-uri 'none'",
        HASHES.0,
        HASHES.1,
        if login_origin.is_some() { " " } else { "" },
        login_origin.unwrap_or("")
    )
}

fn sha256_source(text: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes()))
    )
}

const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect width='32' height='32' rx='8' fill='%232563eb'/%3E%3Ctext x='16' y='22' font-size='18' font-family='sans-serif' font-weight='700' text-anchor='middle' fill='white'%3Es%3C/text%3E%3C/svg%3E";

/// On the export form: the distinct members the chosen segments give (asked of
/// `POST /api/export-sizes` as boxes are ticked, the email column or the limit change), their
/// overlaps, and the over-the-limit warning against that number (the server computes the
/// same on every re-render).
const SCRIPT: &str = r#"
(function () {
  var form = document.getElementById('export-form');
  if (!form) return;
  var fmt = new Intl.NumberFormat('en-US');
  var csrf = (form.querySelector('input[name="csrf"]') || {}).value || '';
  var timer = null, seq = 0;
  function set(id, text) { var e = document.getElementById(id); if (e) e.textContent = text; }
  function update() {
    var chosen = [];
    form.querySelectorAll('input[name="segment"]').forEach(function (b) { if (b.checked) chosen.push(b.value); });
    var max = Number((document.getElementById('max_profiles') || {}).value || 0);
    var email = (document.getElementById('email_field') || {}).value || '';
    set('limit-value', fmt.format(max));
    var mine = ++seq;
    function show(j) {
      if (mine !== seq) return;
      set('segment-total', fmt.format(j.members));
      set('segment-profiles', fmt.format(j.profiles));
      set('segment-refused', fmt.format(j.refused));
      form.querySelectorAll('td[data-members]').forEach(function (td) {
        var s = (j.segments || []).filter(function (x) { return x.segment === td.getAttribute('data-members'); })[0];
        td.textContent = s ? fmt.format(s.members) : '—';
      });
      var ul = document.getElementById('segment-overlaps');
      if (ul) {
        ul.textContent = '';
        (j.overlaps || []).forEach(function (o) {
          var li = document.createElement('li');
          li.textContent = 'In both ' + o.a + ' and ' + o.b + ': ' + fmt.format(o.members) + ' members';
          ul.appendChild(li);
        });
      }
      var w = document.getElementById('limit-warning');
      if (w) w.hidden = !(max > 0 && j.members > max);
    }
    if (!chosen.length || !email) { show({members: 0, profiles: 0, refused: 0, segments: [], overlaps: []}); return; }
    fetch('/api/export-sizes', {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
      body: JSON.stringify({segments: chosen, email_field: email, max_profiles: max})})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { if (j) show(j); });
  }
  function later() { clearTimeout(timer); timer = setTimeout(update, 250); }
  form.addEventListener('change', later);
  form.addEventListener('input', later);
})();
"#;

const CSS: &str = r#"
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif;color:#1f2933;background:#f4f6f9}
a{color:#1d4ed8;text-decoration:none}
a:hover{text-decoration:underline}
header.top{display:flex;align-items:center;gap:28px;padding:0 28px;height:56px;background:#14213d;color:#e5e9f0}
.brand{display:flex;align-items:center;gap:9px;color:#fff;font-weight:650;font-size:17px;letter-spacing:.2px}
.brand:hover{text-decoration:none}
.logo{display:inline-grid;place-items:center;width:26px;height:26px;border-radius:7px;background:linear-gradient(135deg,#38bdf8,#2563eb);color:#fff;font-size:15px;font-weight:700}
header nav{display:flex;gap:26px;flex:1}
.group{display:flex;align-items:center;gap:4px}
.group-label{font-size:11px;text-transform:uppercase;letter-spacing:.08em;color:#8b9bb4;margin-right:6px}
header nav a{color:#d6deeb;padding:6px 10px;border-radius:6px;font-size:14px}
header nav a:hover{background:#1f3057;text-decoration:none;color:#fff}
header nav a.current{background:#25396a;color:#fff}
.me{display:flex;align-items:center;gap:12px;margin-left:auto}
.who{display:flex;align-items:center;gap:8px;font-size:14px}
.who-name{color:#fff;font-weight:600}
.role{font-size:11px;text-transform:uppercase;letter-spacing:.06em;padding:2px 8px;border-radius:999px;background:#25396a;color:#bcd0f5}
main{max-width:1120px;margin:0 auto;padding:28px 28px 48px}
h1{font-size:24px;font-weight:650;margin:4px 0 20px;color:#0f1b33;overflow-wrap:anywhere}
h2{font-size:16px;font-weight:650;margin:0 0 14px;color:#0f1b33}
h3{font-size:14px;font-weight:650;margin:18px 0 8px}
p{margin:0 0 12px}
.lead{font-size:16px}
.muted{color:#5f6b7a}
.small{font-size:13px}
footer{max-width:1120px;margin:0 auto;padding:0 28px 28px;color:#8a94a3;font-size:12px;text-align:center}
.card{background:#fff;border:1px solid #e2e7ef;border-radius:10px;padding:20px 22px;margin-bottom:20px;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.card.narrow{max-width:440px;margin:40px auto}
.card-head{display:flex;align-items:center;justify-content:space-between;gap:12px;margin-bottom:14px}
.card-head h2{margin:0}
.toolbar{display:flex;align-items:center;justify-content:space-between;gap:12px;margin:-6px 0 18px}
.toolbar p{margin:0}
.actions{display:flex;flex-wrap:wrap;align-items:center;gap:8px}
form.inline{display:inline}
table{width:100%;border-collapse:collapse;font-size:14px}
th{text-align:left;font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.05em;color:#5f6b7a;padding:8px 12px;border-bottom:1px solid #e2e7ef;white-space:nowrap}
td{padding:10px 12px;border-bottom:1px solid #eef1f5;vertical-align:middle}
tbody tr:hover{background:#f8fafc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.table-wrap{overflow-x:auto}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
code{background:#f1f4f8;padding:1px 6px;border-radius:4px;color:#243b53}
.badge{display:inline-block;padding:2px 9px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap;border:1px solid transparent}
.badge-ok{background:#e7f6ec;color:#17663a;border-color:#bfe5cc}
.badge-warn{background:#fff5e0;color:#8a5300;border-color:#f5d9a3}
.badge-error{background:#fdecec;color:#a4161a;border-color:#f5c2c2}
.badge-info{background:#e8f0fe;color:#1e4fb8;border-color:#c5d7fb}
.badge-muted{background:#f1f4f8;color:#52606d;border-color:#dde3ea}
.btn{display:inline-flex;align-items:center;justify-content:center;gap:6px;padding:8px 15px;border-radius:7px;font:inherit;font-size:14px;font-weight:600;cursor:pointer;border:1px solid transparent;line-height:1.2;white-space:nowrap}
.btn:hover{text-decoration:none}
.btn-primary{background:#2563eb;color:#fff}
.btn-primary:hover{background:#1d4ed8}
.btn-secondary{background:#fff;color:#1f2933;border-color:#cbd2d9}
.btn-secondary:hover{background:#f4f6f9}
.btn-danger{background:#dc2626;color:#fff}
.btn-danger:hover{background:#b91c1c}
.btn-mailchimp{background:#ffe01b;color:#241c15;border-color:#e6c800}
.btn-mailchimp:hover{background:#f5d400}
.btn-ghost{background:transparent;color:#d6deeb;border-color:#3a4d75;padding:6px 12px}
.btn-ghost:hover{background:#1f3057;color:#fff}
.btn-small{padding:5px 10px;font-size:13px}
.default-submit{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}
.field{margin-bottom:16px}
.field>label,.label{display:block;font-weight:600;font-size:14px;margin-bottom:5px}
.hint{display:block;font-size:13px;color:#5f6b7a;margin-top:4px}
input[type=text],input[type=password],input[type=number],input:not([type]),select,textarea{width:100%;max-width:520px;padding:8px 10px;border:1px solid #cbd2d9;border-radius:7px;font:inherit;font-size:14px;background:#fff;color:#1f2933}
textarea{max-width:100%;min-height:70px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
input:focus,select:focus,textarea:focus{outline:2px solid #93b4f8;outline-offset:0;border-color:#2563eb}
td input[type=text],td input:not([type]),td select{max-width:none}
td form.actions{flex-wrap:nowrap}
td form.actions select,td form.actions input{width:auto;min-width:150px}
.check{display:flex;align-items:flex-start;gap:9px;font-weight:500;margin:6px 0}
.check input{margin-top:4px}
fieldset{border:0;padding:0;margin:0 0 16px}
legend{font-weight:600;font-size:14px;margin-bottom:6px;padding:0}
.statement{background:#f8fafc;border:1px solid #e2e7ef;border-radius:8px;padding:12px 14px;font-size:14px;color:#334e68;max-width:760px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.or{display:flex;align-items:center;gap:12px;color:#8a94a3;font-size:12px;text-transform:uppercase;letter-spacing:.08em;margin:18px 0}
.or::before,.or::after{content:"";flex:1;border-top:1px solid #e2e7ef}
.flash{padding:11px 14px;border-radius:8px;margin-bottom:18px;border:1px solid;white-space:pre-line}
.flash-ok{background:#ecfdf3;border-color:#b7e4c7;color:#14532d}
.flash-error{background:#fef2f2;border-color:#f5c2c2;color:#7f1d1d}
.flash-warn{background:#fffbeb;border-color:#f5d9a3;color:#78350f}
dl.summary{display:grid;grid-template-columns:220px 1fr;gap:8px 16px;margin:0}
dl.summary dt{color:#5f6b7a;font-size:14px}
dl.summary dd{margin:0;min-width:0;overflow-wrap:anywhere}
.empty{text-align:center;padding:34px 20px;color:#5f6b7a}
.empty p{margin-bottom:14px}
.progress-line{display:flex;justify-content:space-between;gap:12px;font-size:14px;margin-bottom:6px}
progress{width:100%;height:12px;border-radius:6px;overflow:hidden;appearance:none;-webkit-appearance:none;border:0;background:#e7ecf3}
progress::-webkit-progress-bar{background:#e7ecf3;border-radius:6px}
progress::-webkit-progress-value{background:#2563eb;border-radius:6px}
progress::-moz-progress-bar{background:#2563eb}
progress:not([value])::-webkit-progress-bar{background:repeating-linear-gradient(-45deg,#c9d9fb 0 10px,#e7eefc 10px 20px);background-size:28px 28px;animation:stripes 1s linear infinite}
@keyframes stripes{to{background-position:28px 0}}
.stats{display:flex;flex-wrap:wrap;gap:28px;margin-top:12px}
.stat .v{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums}
.stat .k{font-size:12px;color:#5f6b7a;text-transform:uppercase;letter-spacing:.05em}
.chart svg{width:100%;height:auto;display:block}
.legend{display:flex;gap:16px;font-size:13px;color:#52606d;margin-top:6px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.sw-created{background:#2563eb}
.sw-updated{background:#7dd3fc}
.sw-removed{background:#f59e0b}
@media (max-width:600px){#attributes,#segment-choice{display:block;overflow-x:auto}table.stack thead{display:none}table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}table.stack tr{border-bottom:1px solid #e2e7ef;padding:8px 0}table.stack td{border:none;padding:3px 12px;text-align:left;white-space:normal;overflow-wrap:anywhere}table.stack td[data-label]::before{content:attr(data-label);display:block;font-size:11px;font-weight:600;text-transform:uppercase;letter-spacing:.05em;color:#5f6b7a}table.stack td form.actions{flex-wrap:wrap}}
#words{margin-top:16px}
.card.missing{border-color:#e11d48;box-shadow:0 0 0 2px #fecdd3}
.field-error{color:#b91c1c;font-weight:600;margin:6px 0 0}
.danger-zone{border-color:#f5c2c2}
.login-brand{text-align:center;margin-top:56px}
.login-brand .logo{width:44px;height:44px;font-size:24px;border-radius:11px}
@media (max-width:760px){header.top{flex-wrap:wrap;height:auto;padding:10px 16px;gap:10px}header nav{flex-wrap:wrap;flex-basis:100%;order:3;gap:6px 16px}.group{flex-wrap:wrap}header nav a{padding:5px 8px}main{padding:20px 16px}.grid2{grid-template-columns:1fr}dl.summary{grid-template-columns:1fr}}
.rule-group{border:1px solid #d0d7e2;border-radius:8px;padding:10px;margin:6px 0;background:#fafbfd;min-width:0}
.rule-group.nested{background:#fff;margin-left:8px}
.group-head,.group-tools,.cond{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:4px 0}
.cond{padding:6px 0;border-top:1px dashed #e2e6ee}
.cond select,.cond input{width:auto;max-width:100%;min-width:0}
.cond-values{display:flex;flex-wrap:wrap;gap:6px;align-items:center;min-width:0;max-width:100%}
.cond-sql textarea{flex:1 1 220px;min-width:0}
.pickers{display:flex;flex-wrap:wrap;gap:4px}
.chip{border:1px solid #c8d1e0;background:#eef2f8;border-radius:12px;padding:2px 8px;font-size:12px;cursor:pointer;max-width:100%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.builder-status .live{font-size:18px;margin:8px 0}
#view-sql pre,#segment-sql pre{white-space:pre-wrap;word-break:break-word}
.overlaps{margin:6px 0;padding-left:18px}
"#;
