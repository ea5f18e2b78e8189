//! Alerts of `segsync serve`, end to end: a run that fails for good reaches a webhook (a
//! small HTTP receiver here) and an SMTP server (a small sink here) once, with the export,
//! the run, the error and a link; a run that met transient errors and recovered alerts no
//! one; the settings are for admins, checked, and never show the SMTP password, which is
//! given once (stored sealed) or comes from the operator's SEGSYNC_SMTP_PASSWORD, never
//! from an environment variable a request names.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::api::installation;
use crate::common::*;
use crate::harness::*;

// --- a webhook receiver ---

/// An HTTP server on 127.0.0.1 that records every request; it answers each with the next
/// status of its script (200 once the script is spent).
pub struct Webhook {
    pub url: String,
    seen: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl Webhook {
    pub fn start(script: &[u16]) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/services/T000/B000/s3cr3tT0ken",
            listener.local_addr().unwrap()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.to_vec()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (s, script) = (s.clone(), script.clone());
                std::thread::spawn(move || serve_http(stream, &s, &script));
            }
        });
        Webhook { url, seen }
    }

    /// (method, path, JSON body) of every request so far.
    pub fn seen(&self) -> Vec<(String, String, Value)> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_http(
    stream: TcpStream,
    seen: &Mutex<Vec<(String, String, Value)>>,
    script: &Mutex<Vec<u16>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push((method, path, json));
    let status = {
        let mut s = script.lock().unwrap();
        if s.is_empty() {
            200
        } else {
            s.remove(0)
        }
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
    );
}

// --- an SMTP sink ---

/// One e-mail an SMTP client handed over.
#[derive(Clone, Debug, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body), dot-unstuffed.
    pub data: String,
    /// The AUTH exchange, decoded: (user, password).
    pub login: Option<(String, String)>,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        head.split("\r\n").find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        })
    }

    /// The body, its quoted-printable encoding undone.
    pub fn body(&self) -> String {
        let raw = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if !self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"))
        {
            return raw.to_string();
        }
        let joined = raw.replace("=\r\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// An SMTP server on 127.0.0.1 that speaks just enough SMTP (with AUTH PLAIN and LOGIN, no
/// TLS) and keeps every e-mail.
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let m = m.clone();
                std::thread::spawn(move || {
                    let _ = smtp_session(stream, &m);
                });
            }
        });
        SmtpSink { port, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

fn b64(s: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn smtp_session(stream: TcpStream, mails: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    let mut read = move || -> std::io::Result<String> {
        let mut l = String::new();
        if lines.read_line(&mut l)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(l.trim_end_matches(['\r', '\n']).to_string())
    };
    out.write_all(b"220 sink.test ESMTP ready\r\n")?;
    let mut mail = Mail::default();
    loop {
        let line = read()?;
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            out.write_all(b"250-sink.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")?;
        } else if upper.starts_with("HELO") {
            out.write_all(b"250 sink.test\r\n")?;
        } else if upper.starts_with("AUTH PLAIN") {
            let arg = line[10..].trim().to_string();
            let arg = if arg.is_empty() {
                out.write_all(b"334 \r\n")?;
                read()?
            } else {
                arg
            };
            let decoded = b64(&arg);
            let mut parts = decoded.split('\0').skip(1);
            mail.login = Some((
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            ));
            out.write_all(b"235 2.7.0 accepted\r\n")?;
        } else if upper.starts_with("AUTH LOGIN") {
            out.write_all(b"334 VXNlcm5hbWU6\r\n")?;
            let user = b64(&read()?);
            out.write_all(b"334 UGFzc3dvcmQ6\r\n")?;
            let password = b64(&read()?);
            mail.login = Some((user, password));
            out.write_all(b"235 2.7.0 accepted\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line[10..].trim().trim_matches(['<', '>']).to_string();
            out.write_all(b"250 2.1.0 ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            let to = line[8..].trim();
            let to = to.split_whitespace().next().unwrap_or("");
            mail.to.push(to.trim_matches(['<', '>']).to_string());
            out.write_all(b"250 2.1.5 ok\r\n")?;
        } else if upper == "DATA" {
            out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
            let mut data = Vec::new();
            loop {
                let l = read()?;
                if l == "." {
                    break;
                }
                data.push(l.strip_prefix('.').map(str::to_string).unwrap_or(l));
            }
            mail.data = data.join("\r\n");
            mails.lock().unwrap().push(mail.clone());
            mail = Mail {
                login: mail.login.clone(),
                ..Mail::default()
            };
            out.write_all(b"250 2.0.0 queued\r\n")?;
        } else if upper == "QUIT" {
            out.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            out.write_all(b"250 ok\r\n")?;
        } else {
            out.write_all(b"502 5.5.2 not implemented\r\n")?;
        }
    }
}

// --- the tests ---

fn revoke(sim: &Sim) {
    let (code, body) = sim.admin(
        "POST",
        "/_sim/revoke",
        Some(json!({ "credential": sim.key })),
    );
    assert!((200..300).contains(&code), "{code} {body}");
}

/// The standard installation with a manual export, and a server.
fn served(sim: &Sim, list: &str) -> (Session, Server) {
    let s = installation(sim, &people(80));
    s.connect();
    s.add_export(list, &[]);
    let server = Server::start(&s, &[]);
    (s, server)
}

fn run_now(c: &Client) -> Value {
    let (code, started) = c.post(&format!("/api/exports/{EXPORT}/runs"), json!({}));
    assert_eq!(code, 202, "{started}");
    c.wait_run(started["run_id"].as_i64().unwrap())
}

/// Waits for a run's alert, then a little more: the alerts that arrived.
fn settle<T>(secs: u64, what: &str, mut f: impl FnMut() -> Vec<T>) -> Vec<T> {
    wait_for(secs, what, || (!f().is_empty()).then_some(()));
    // Long enough for a duplicate (a retry of a delivered alert, a second event) to show.
    std::thread::sleep(Duration::from_secs(3));
    f()
}

#[test]
fn a_run_that_fails_for_good_alerts_the_webhook_once_and_one_that_recovers_does_not() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let hook = Webhook::start(&[]);
    let (_s, server) = served(&sim, &list);
    let ada = server.token_client(ADMIN);
    let (code, body) = ada.put("/api/settings/alerts", json!({ "webhook_url": hook.url }));
    assert_eq!(code, 200, "{body}");

    // Mailchimp has a bad minute: 5xx and 429 bursts, retried until the run gets through.
    sim.settings(|st| {
        st.faults.error_5xx_rate = 0.25;
        st.faults.burst_429_rate = 0.05;
        st.faults.burst_429_len = 3;
        st.faults.seed = 7;
    });
    let recovered = run_now(&ada);
    assert_eq!(recovered["outcome"], "succeeded", "{recovered}");
    assert!(
        recovered["counts"]["retries"].as_u64().unwrap() > 0,
        "the run met transient errors: {recovered}"
    );
    sim.settings(|st| st.faults = Default::default());

    // Then the key is revoked: the next run fails for good.
    revoke(&sim);
    let failed = run_now(&ada);
    assert_eq!(failed["outcome"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap().to_string();
    let run_id = failed["id"].as_i64().unwrap();

    let seen = settle(30, "the webhook's alert", || hook.seen());
    assert_eq!(
        seen.len(),
        1,
        "one alert, for the failed run only: {seen:#?}"
    );
    let (method, path, body) = &seen[0];
    assert_eq!(method, "POST");
    assert_eq!(path, "/services/T000/B000/s3cr3tT0ken");
    let text = body["text"].as_str().expect("a Slack-compatible text");
    for want in [
        format!("export \"{EXPORT}\" failed"),
        format!("run {run_id}"),
        error.clone(),
        format!("{}/exports/{EXPORT}", server.url),
    ] {
        assert!(text.contains(&want), "{want:?} in the alert: {text}");
    }
    assert_eq!(body["segsync"]["event"], "run_failed", "{body}");
    assert_eq!(body["segsync"]["export"], EXPORT, "{body}");
    assert_eq!(body["segsync"]["run_id"], run_id, "{body}");
    assert_eq!(body["segsync"]["error"], error.as_str(), "{body}");

    // The webhook's address (its token) never shows in the server's log.
    assert!(
        !server.output().contains("s3cr3tT0ken"),
        "{}",
        server.output()
    );
}

#[test]
fn a_webhook_that_fails_is_tried_again_and_the_server_keeps_serving() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    // The chat service is down for a moment: 503, then 502, then it takes the alert.
    let hook = Webhook::start(&[503, 502]);
    let (_s, server) = served(&sim, &list);
    let ada = server.token_client(ADMIN);
    let (code, body) = ada.put("/api/settings/alerts", json!({ "webhook_url": hook.url }));
    assert_eq!(code, 200, "{body}");
    revoke(&sim);
    let failed = run_now(&ada);
    assert_eq!(failed["outcome"], "failed", "{failed}");

    let seen = settle(60, "three deliveries", || {
        let seen = hook.seen();
        if seen.len() >= 3 {
            seen
        } else {
            vec![]
        }
    });
    assert_eq!(
        seen.len(),
        3,
        "tried until it was taken, then no more: {seen:#?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].2 == w[1].2),
        "the same alert each time"
    );
    let (code, _) = ada.get("/api/me");
    assert_eq!(code, 200, "the server is fine");
}

/// The alert settings of `sink` with the relay login `segsync-bot`.
fn smtp_settings(sink: &SmtpSink) -> Value {
    json!({
        "email_to": ["ops@example.org", "oncall@example.org"],
        "smtp": {
            "host": "127.0.0.1", "port": sink.port, "from": "segsync <alerts@example.org>",
            "username": "segsync-bot", "starttls": false
        }
    })
}

#[test]
fn an_email_alert_reaches_the_admins_through_smtp_with_the_password_given_once() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let sink = SmtpSink::start();
    let s = installation(&sim, &people(80));
    s.connect();
    s.add_export(&list, &[]);
    const PASSWORD: &str = "smtp-pa55word-given-once";
    s.set_env("SEGSYNC_LOG", "segsync=debug");
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);

    let mut settings = smtp_settings(&sink);
    settings["smtp"]["password"] = json!(PASSWORD);
    let (code, body) = ada.put("/api/settings/alerts", settings);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["smtp_password_set"], true, "{body}");
    assert_eq!(body["smtp_password_from"], "settings", "{body}");
    assert!(body["smtp"].get("password").is_none(), "{body}");
    assert_eq!(body["warnings"], json!([]), "{body}");
    // Sent again as read (without the password), the settings keep it.
    let (code, body) = ada.put("/api/settings/alerts", smtp_settings(&sink));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["smtp_password_from"], "settings", "{body}");

    // The test button: one e-mail, and the answer says what each channel did.
    let (code, report) = ada.post("/api/settings/alerts/test", json!({}));
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["email"]["status"], "sent", "{report}");
    assert_eq!(report["webhook"]["status"], "not_configured", "{report}");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("segsync: test alert")
    );

    // A run that fails for good: an e-mail to both, saying which export, run and error.
    revoke(&sim);
    let failed = run_now(&ada);
    assert_eq!(failed["outcome"], "failed", "{failed}");
    let run_id = failed["id"].as_i64().unwrap();
    let mails = settle(30, "the alert e-mail", || {
        let m = sink.mails();
        if m.len() >= 2 {
            m
        } else {
            vec![]
        }
    });
    assert_eq!(mails.len(), 2, "the test, then one alert: {mails:#?}");
    let mail = &mails[1];
    assert_eq!(mail.from, "alerts@example.org");
    assert_eq!(mail.to, ["ops@example.org", "oncall@example.org"]);
    assert_eq!(
        mail.login,
        Some(("segsync-bot".to_string(), PASSWORD.to_string())),
        "logged in with the password given once"
    );
    assert_eq!(
        mail.header("Subject"),
        Some(format!(
            "segsync: export \"{EXPORT}\" failed (run {run_id})"
        ))
    );
    let body = mail.body();
    for want in [
        failed["error"].as_str().unwrap().to_string(),
        format!("{}/exports/{EXPORT}", server.url),
    ] {
        assert!(body.contains(&want), "{want:?} in the e-mail:\n{body}");
    }

    // The password is nowhere the server shows or keeps.
    let (code, shown) = ada.get("/api/settings/alerts");
    assert_eq!(code, 200);
    let (_, audit) = ada.get("/api/audit");
    assert!(
        audit.to_string().contains("settings.alerts"),
        "the change is audited: {audit}"
    );
    let mut store = std::fs::read(s.path("state.sqlite")).unwrap_or_default();
    store.extend(std::fs::read(s.path("state.sqlite-wal")).unwrap_or_default());
    for (what, text) in [
        ("the settings", shown.to_string()),
        ("the audit log", audit.to_string()),
        ("the server's log", server.output()),
        (
            "the state store",
            String::from_utf8_lossy(&store).into_owned(),
        ),
    ] {
        assert!(!text.contains(PASSWORD), "the SMTP password in {what}");
    }
}

#[test]
fn alert_settings_are_for_admins_and_checked_with_clear_messages() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let (_s, server) = served(&sim, &list);
    let ada = server.token_client(ADMIN);

    for who in [CONTRIBUTOR, VIEWER] {
        let c = server.login(who);
        for (method, path, body) in [
            ("GET", "/api/settings/alerts", None),
            (
                "PUT",
                "/api/settings/alerts",
                Some(json!({"webhook_url": "https://hooks.slack.com/x"})),
            ),
            ("POST", "/api/settings/alerts/test", Some(json!({}))),
        ] {
            let (code, answer) = c.call(method, path, body);
            assert_eq!(code, 403, "{} {method} {path}: {answer}", who.0);
            assert_eq!(answer["error"], "forbidden");
            assert!(
                answer["message"].as_str().unwrap().contains("admin"),
                "{answer}"
            );
        }
    }
    let (code, _) = server.anonymous().get("/api/settings/alerts");
    assert_eq!(code, 401);
    let (_, unchanged) = ada.get("/api/settings/alerts");
    assert!(unchanged["webhook_url"].is_null(), "{unchanged}");

    for (body, says) in [
        (
            json!({"webhook_url": "hooks.slack.com/services/x"}),
            "webhook_url is not a URL",
        ),
        (
            json!({"webhook_url": "ftp://hooks.example.org/x"}),
            "http:// or https://",
        ),
        (
            json!({"email_to": ["ops@example.org"]}),
            "email_to needs a mail server",
        ),
        (
            json!({"email_to": ["ops at example.org"], "smtp": {"host": "smtp.example.org", "from": "a@example.org"}}),
            "\"ops at example.org\" is not an e-mail address",
        ),
        (
            json!({"email_to": ["ops@example.org"], "smtp": {"host": "smtp.example.org", "from": "a@example.org", "password": "hunter2"}}),
            "smtp.password needs smtp.username (the login)",
        ),
        (
            json!({"email_to": ["ops@example.org"], "smtp": {"host": "smtp.example.org", "from": "a@example.org", "username": "bot"}}),
            "smtp.username is set but no password is",
        ),
        (
            json!({"email_to": ["ops@example.org"], "smtp": {"host": "smtp.example.org", "from": "a@example.org", "username": "bot", "password_env": "hunter2!"}}),
            "smtp.password_env is no longer accepted",
        ),
        (json!({"webhook": "https://x.org"}), "unknown field"),
        (json!(["https://x.org"]), "JSON object"),
    ] {
        let (code, answer) = ada.put("/api/settings/alerts", body.clone());
        assert_eq!(code, 422, "{body}: {answer}");
        assert_eq!(answer["error"], "invalid", "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
        assert!(!message.contains("hunter2"), "a secret repeated: {message}");
    }

    // A webhook nobody listens at: the test says so, per channel; the server goes on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/hooks/s3cr3t", closed.local_addr().unwrap());
    drop(closed);
    let (code, body) = ada.put("/api/settings/alerts", json!({ "webhook_url": dead }));
    assert_eq!(code, 200, "{body}");
    let (code, report) = ada.post("/api/settings/alerts/test", json!({}));
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["webhook"]["status"], "failed", "{report}");
    assert!(
        !report["webhook"]["message"]
            .as_str()
            .unwrap()
            .contains("s3cr3t"),
        "{report}"
    );
    assert_eq!(report["email"]["status"], "not_configured", "{report}");

    // `{}` turns alerts off.
    let (code, body) = ada.put("/api/settings/alerts", json!({}));
    assert_eq!(code, 200, "{body}");
    assert!(body["webhook_url"].is_null(), "{body}");
    assert_eq!(body["email_to"], json!([]), "{body}");
}

/// Audit 15, finding 5: an admin could name any environment variable of the server as the
/// SMTP password and have it sent to a mail server of their choice (the OAuth client secret
/// reached a fake one). No request names a variable any more: the attempt is refused, and
/// nothing of the server's environment reaches the relay.
#[test]
fn an_admin_cannot_send_an_environment_variable_of_the_server_to_a_mail_server() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let sink = SmtpSink::start();
    const SECRET: &str = "oauth-client-secret-0123456789";
    let s = installation(&sim, &people(20));
    s.connect();
    s.add_export(&list, &[]);
    s.set_env("SEGSYNC_OAUTH_CLIENT_SECRET", SECRET);
    let server = Server::start(&s, &["--oauth-client-id", "segsync-app"]);
    let ada = server.login(ADMIN);

    let mut settings = smtp_settings(&sink);
    settings["smtp"]["password_env"] = json!("SEGSYNC_OAUTH_CLIENT_SECRET");
    let (code, body) = ada.put("/api/settings/alerts", settings);
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"], "invalid");
    assert_eq!(
        body["message"],
        "smtp.password_env is no longer accepted: the server reads no environment variable \
         named in a request. Give the password itself as smtp.password (stored sealed, never \
         shown again), or start the server with SEGSYNC_SMTP_PASSWORD set"
    );
    // Without a password the login is refused too: nothing to fall back on.
    let (code, body) = ada.put("/api/settings/alerts", smtp_settings(&sink));
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "smtp.username is set but no password is: give smtp.password (stored sealed, never \
         shown again) or start the server with SEGSYNC_SMTP_PASSWORD set"
    );
    // Whether a variable exists is not told either.
    let (code, shown) = ada.get("/api/settings/alerts");
    assert_eq!(code, 200, "{shown}");
    assert!(shown.get("smtp_password_available").is_none(), "{shown}");
    let (_, report) = ada.post("/api/settings/alerts/test", json!({}));
    assert_eq!(report["email"]["status"], "not_configured", "{report}");
    for m in sink.mails() {
        assert!(!format!("{m:?}").contains(SECRET), "{m:?}");
    }

    // A stored password goes only to the relay it was given for: pointing the settings at
    // another host needs it again.
    let mut given = smtp_settings(&sink);
    given["smtp"]["password"] = json!("the-relay-password");
    assert_eq!(ada.put("/api/settings/alerts", given).0, 200);
    let other = SmtpSink::start();
    let (code, body) = ada.put("/api/settings/alerts", smtp_settings(&other));
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "smtp.host, smtp.port or smtp.username changed: give smtp.password again (a stored \
         password is only sent to the relay it was given for)"
    );
    let (_, report) = ada.post("/api/settings/alerts/test", json!({}));
    assert_eq!(report["email"]["status"], "sent", "{report}");
    assert!(other.mails().is_empty(), "{:?}", other.mails());
    assert_eq!(
        sink.mails().last().and_then(|m| m.login.clone()),
        Some(("segsync-bot".into(), "the-relay-password".into()))
    );
}

/// The operator may give the relay's password at start-up in SEGSYNC_SMTP_PASSWORD: the
/// settings then need none, and the answer tells where it comes from.
#[test]
fn the_smtp_password_may_come_from_segsync_smtp_password_at_start_up() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let sink = SmtpSink::start();
    let s = installation(&sim, &people(20));
    s.connect();
    s.add_export(&list, &[]);
    s.set_env("SEGSYNC_SMTP_PASSWORD", "operator-given-password");
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let (code, body) = ada.put("/api/settings/alerts", smtp_settings(&sink));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["smtp_password_set"], true, "{body}");
    assert_eq!(body["smtp_password_from"], "environment", "{body}");
    let (_, report) = ada.post("/api/settings/alerts/test", json!({}));
    assert_eq!(report["email"]["status"], "sent", "{report}");
    assert_eq!(
        sink.mails()[0].login,
        Some(("segsync-bot".into(), "operator-given-password".into()))
    );
}

/// Settings stored by an older segsync name a variable (`smtp.password_env`): the server
/// starts and serves them, never reads that variable, and says what to do instead.
#[test]
fn settings_that_name_a_password_variable_still_load_and_say_what_to_do() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let sink = SmtpSink::start();
    let s = installation(&sim, &people(20));
    s.connect();
    s.add_export(&list, &[]);
    {
        let mut old = smtp_settings(&sink);
        old["smtp"]["port"] = json!(sink.port);
        old["smtp"]["password_env"] = json!("OLD_SMTP_PASSWORD");
        let db = rusqlite::Connection::open(s.path("state.sqlite")).unwrap();
        db.execute(
            "INSERT INTO settings (name, value) VALUES ('alerts', ?1)",
            [old.to_string()],
        )
        .unwrap();
    }
    s.set_env("OLD_SMTP_PASSWORD", "must-never-be-read");
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let (code, body) = ada.get("/api/settings/alerts");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["smtp"]["username"], "segsync-bot", "{body}");
    assert!(body["smtp"].get("password_env").is_none(), "{body}");
    assert_eq!(body["smtp_password_set"], false, "{body}");
    let warnings = body["warnings"].to_string();
    assert!(
        warnings.contains(
            "the stored settings name the environment variable OLD_SMTP_PASSWORD for the SMTP \
             password (smtp.password_env): the server no longer reads variables named in settings"
        ),
        "{warnings}"
    );
    let (_, report) = ada.post("/api/settings/alerts/test", json!({}));
    assert_eq!(report["email"]["status"], "failed", "{report}");
    assert!(
        report["email"]["message"]
            .as_str()
            .unwrap()
            .starts_with("smtp.username is set but no password is"),
        "{report}"
    );
    assert!(sink.mails().is_empty(), "{:?}", sink.mails());
    assert!(
        server.output().contains("no longer read"),
        "the log says so at start-up: {}",
        server.output()
    );
}

/// The OpenAPI document describes every field of the alert settings' answer, and the
/// write-only password of the request.
#[test]
fn the_openapi_document_describes_the_alert_settings_as_answered() {
    let sim = Sim::start();
    let list = sim.new_list("Newsletter");
    let (_s, server) = served(&sim, &list);
    let (code, doc) = server.anonymous().get("/api/openapi.json");
    assert_eq!(code, 200);
    let schemas = &doc["components"]["schemas"];
    let props = |name: &str| -> Vec<String> {
        let mut p: Vec<String> = schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: {}", schemas[name]))
            .keys()
            .cloned()
            .collect();
        p.sort();
        p
    };
    let ada = server.token_client(ADMIN);
    let (_, answer) = ada.get("/api/settings/alerts");
    let mut answered: Vec<String> = answer.as_object().unwrap().keys().cloned().collect();
    answered.sort();
    assert_eq!(props("AlertSettingsView"), answered, "{answer}");
    for field in ["smtp_password_set", "smtp_password_from", "warnings"] {
        assert!(answered.contains(&field.to_string()), "{answer}");
    }
    assert!(!props("SmtpSettings").contains(&"password_env".to_string()));
    assert!(!props("SmtpSettings").contains(&"password".to_string()));
    assert_eq!(
        schemas["SmtpChange"]["properties"]["password"]["writeOnly"],
        true
    );
    let put = &doc["paths"]["/api/settings/alerts"]["put"]["requestBody"];
    assert!(put.to_string().contains("AlertSettingsChange"), "{put}");
}

/// Admin > Alerts and Admin > Audit log: the settings as pages, for admins only, through the
/// API's checks (a refused form is shown as filled, with why), a test alert from the page.
#[test]
fn admins_set_alerts_send_a_test_and_read_the_audit_log_on_pages() {
    let sim = Sim::start();
    let sink = SmtpSink::start();
    let s = Session::new(&sim);
    add_users(&s);
    let server = Server::start(&s, &[]);
    let ada = server.login(ADMIN);
    let csrf = ada.csrf.clone().expect("a session's CSRF token");
    let form = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        ada.send(ada.request("POST", "/admin/alerts").form(&all))
    };

    let page = ada.send(ada.request("GET", "/admin/alerts"));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("id=\"alerts-form\""), "{}", page.text);
    let carl = server.login(CONTRIBUTOR);
    for path in ["/admin/alerts", "/admin/audit"] {
        assert_eq!(carl.send(carl.request("GET", path)).status, 403, "{path}");
    }

    // A relay without a sender is refused with the API's words; nothing is stored.
    let port = sink.port.to_string();
    let a = form(&[
        ("email_to", "ops@example.org"),
        ("smtp_host", "127.0.0.1"),
        ("smtp_port", &port),
    ]);
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("id=\"error\""), "{}", a.text);
    assert!(
        a.text.contains("value=\"ops@example.org\""),
        "the form as filled: {}",
        a.text
    );
    let (_, stored) = ada.get("/api/settings/alerts");
    assert_eq!(stored["email_to"], json!([]), "{stored}");

    const PASSWORD: &str = "relay-pa55word-from-the-page";
    let a = form(&[
        ("email_to", "ops@example.org, oncall@example.org"),
        ("smtp_host", "127.0.0.1"),
        ("smtp_port", &port),
        ("smtp_from", "segsync <alerts@example.org>"),
        ("smtp_username", "segsync-bot"),
        ("smtp_password", PASSWORD),
    ]);
    assert_eq!(a.status, 303, "{}", a.text);
    let (_, stored) = ada.get("/api/settings/alerts");
    assert_eq!(
        stored["email_to"],
        json!(["ops@example.org", "oncall@example.org"]),
        "{stored}"
    );
    assert_eq!(stored["smtp"]["port"], sink.port, "{stored}");
    assert_eq!(stored["smtp"]["starttls"], false, "unchecked box: {stored}");
    assert_eq!(stored["smtp_password_set"], true, "{stored}");
    let page = ada.send(ada.request("GET", "/admin/alerts"));
    assert!(!page.text.contains(PASSWORD), "never shown again");
    assert!(page.text.contains("One is set"), "{}", page.text);

    let a = ada.send(
        ada.request("POST", "/admin/alerts/test")
            .form(&[("csrf", csrf.as_str())]),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.text.contains("id=\"test-report\""), "{}", a.text);
    assert!(a.text.contains("data-status=\"sent\""), "{}", a.text);
    assert_eq!(sink.mails().len(), 1);

    let page = ada.send(ada.request("GET", "/admin/audit"));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("data-action=\"settings.alerts\""),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("data-action=\"settings.alerts.test\""),
        "{}",
        page.text
    );
    assert!(!page.text.contains(PASSWORD));
}
