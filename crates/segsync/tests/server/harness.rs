//! A `segsync serve` child process on a free port, and HTTP clients that talk to it as a
//! browser session (cookie + CSRF token) or a script (API token) would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::common::Session;

/// Passwords of the three users every server test has.
pub const ADMIN: (&str, &str) = ("ada", "admin-password-1");
pub const CONTRIBUTOR: (&str, &str) = ("carl", "contributor-password-1");
pub const VIEWER: (&str, &str) = ("vera", "viewer-password-1");

/// Adds the admin, the contributor and the viewer with `segsync user add`.
pub fn add_users(s: &Session) {
    for ((name, password), role) in
        [ADMIN, CONTRIBUTOR, VIEWER]
            .into_iter()
            .zip(["admin", "contributor", "viewer"])
    {
        let args = [
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-env",
            "E2E_PASSWORD",
        ];
        let mut c = s.command(&args);
        c.env("E2E_PASSWORD", password);
        let out = s.run_command(&args, c);
        assert_eq!(out.code, 0, "user add {name}: {}", out.text());
    }
}

/// A running `segsync serve`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// Everything it printed on stdout after the first line, and on stderr.
    output: Arc<Mutex<String>>,
    args: Vec<String>,
}

impl Server {
    /// `segsync serve --listen 127.0.0.1:0 EXTRA...` in the session's home; waits until it
    /// listens.
    pub fn start(s: &Session, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec!["serve".into(), "--listen".into(), "127.0.0.1:0".into()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = s.command(&argv);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("segsync serve starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .expect("segsync serve prints its address");
        let url = first
            .trim()
            .strip_prefix("segsync serve: listening on ")
            .unwrap_or_else(|| {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("segsync serve did not start: {first:?}\n{err}")
            })
            .to_string();
        let output = Arc::new(Mutex::new(String::new()));
        let (o1, o2) = (output.clone(), output.clone());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                o1.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                o2.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Server {
            child: Some(child),
            url,
            output,
            args,
        }
    }

    /// What the server printed so far (after its first line).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for the process to end; its exit code.
    pub fn terminate(&mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        // Not reaped yet, so the pid is still this child's.
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM to segsync serve");
        let status = child.wait().expect("segsync serve ends");
        status.code().unwrap_or(-1)
    }

    /// Sends SIGTERM and waits at most `limit` for the process to end: its exit code, or
    /// `None` when it was still running then (it is killed).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM to segsync serve");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("segsync serve's status") {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A client with no credentials.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.url)
    }

    /// A browser-like client logged in with a password (session cookie and CSRF token).
    pub fn login(&self, (name, password): (&str, &str)) -> Client {
        let mut c = Client::new(&self.url);
        let (code, body) = c.post("/api/login", json!({ "name": name, "password": password }));
        assert_eq!(code, 200, "login {name}: {body}");
        c.csrf = body["csrf_token"].as_str().map(str::to_string);
        c
    }

    /// A script-like client with an API token created by `who` for themselves.
    pub fn token_client(&self, who: (&str, &str)) -> Client {
        let session = self.login(who);
        let (code, body) = session.post("/api/tokens", json!({ "label": "tests" }));
        assert_eq!(code, 201, "token for {}: {body}", who.0);
        let mut c = Client::new(&self.url);
        c.token = body["token"].as_str().map(str::to_string);
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP client of the server's API.
pub struct Client {
    http: reqwest::blocking::Client,
    pub base: String,
    pub csrf: Option<String>,
    pub token: Option<String>,
}

/// An answer: status, headers and body.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::blocking::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
            base: base.to_string(),
            csrf: None,
            token: None,
        }
    }

    pub fn request(&self, method: &str, path: &str) -> reqwest::blocking::RequestBuilder {
        self.request_url(method, &format!("{}{path}", self.base))
    }

    /// A request to any URL (another host, a full callback URL), with this client's cookies
    /// and credentials.
    pub fn request_url(&self, method: &str, url: &str) -> reqwest::blocking::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut r = self.http.request(m, url);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(c) = &self.csrf {
            r = r.header("x-csrf-token", c);
        }
        r
    }

    pub fn send(&self, r: reqwest::blocking::RequestBuilder) -> Answer {
        let resp = r.send().expect("segsync serve answers");
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().unwrap_or_default(),
        }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.request(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let a = self.send(r);
        (a.status, a.json())
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }
    pub fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PUT", path, Some(body))
    }
    pub fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PATCH", path, Some(body))
    }
    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None)
    }

    /// Waits until run `id` is over; its record.
    pub fn wait_run(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (code, body) = self.get(&format!("/api/runs/{id}"));
            assert_eq!(code, 200, "run {id}: {body}");
            if body["run"]["outcome"] != "running" && body["progress"].is_null() {
                return body["run"].clone();
            }
            assert!(Instant::now() < deadline, "run {id} still running: {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A client that connects to `base` (`http://HOST:PORT`), sends `bytes`, then nothing.
pub fn hanging_client(base: &str, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("a TCP connection");
    stream.write_all(bytes).expect("the first bytes are sent");
    stream
}

/// Waits at most `limit` for the server to close `stream`: how long it took and what the
/// server sent before; `None` if the connection is still open then.
pub fn closed_within(
    stream: &mut std::net::TcpStream,
    limit: Duration,
) -> Option<(Duration, String)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("a read timeout");
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            // Reset by the server: closed too.
            Err(_) => break,
        }
    }
    Some((start.elapsed(), String::from_utf8_lossy(&got).into_owned()))
}

/// Polls `f` until it gives `Some`, for at most `secs` seconds.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {secs}s for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The standard export's body for the API, on `list`.
pub fn export_body(name: &str, list: &str) -> Value {
    json!({
        "name": name,
        "connection": crate::common::CONNECTION,
        "audience": list,
        "email_field": "email",
        "first_name": "first_name",
        "last_name": "last_name",
        "merge": [{"tag": "CITY", "column": "city"}],
        "create_merge_fields": true,
        "segments": [
            {"segment": "high_value", "tag": crate::common::HIGH_VALUE_TAG},
            {"segment": "romania"}
        ]
    })
}
