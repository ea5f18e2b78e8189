//! MySQL / MariaDB profile sources over TLS (issue 19): a MariaDB server of the test's own,
//! started in a temporary folder with a certificate authority and a server certificate the
//! test makes, that accepts secure connections only (`require_secure_transport`). Each
//! `ssl-mode` is checked — `PREFERRED` (the default), `REQUIRED`, `VERIFY_CA`,
//! `VERIFY_IDENTITY` — and the refusals: a certificate from another authority, a host name the
//! certificate is not made out to, `DISABLED` against a server that wants TLS.
//!
//! The server is Debian's `mariadbd` (`scripts/setup-mariadb.sh` installs it), run as the
//! `mysql` system user. Without it the test fails, saying so.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use segsync::profiles::{MySqlSource, Relation};

struct Authority {
    pem: String,
    issuer: rcgen::Issuer<'static, KeyPair>,
}

fn authority(name: &str) -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Authority {
        pem,
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// `name` from /usr/sbin or /usr/bin when it is there (root's PATH may lack /usr/sbin), else
/// as found in PATH.
fn sbin(name: &str) -> std::path::PathBuf {
    ["/usr/sbin", "/usr/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| name.into())
}

/// A MariaDB server of this test's own, secure transport only, stopped when dropped.
struct TlsServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl TlsServer {
    fn start(ca: &Authority) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        std::fs::write(dir.path().join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
        let out = Command::new(sbin("mariadb-install-db"))
            .args(["--no-defaults", "--user=mysql", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs MariaDB's mariadb-install-db (scripts/setup-mariadb.sh): {e}"
                )
            });
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let chown = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let d = dir.path();
        let child = Command::new(sbin("mariadbd"))
            .arg("--no-defaults")
            .arg("--user=mysql")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg("--require-secure-transport=ON")
            .arg(format!("--ssl-ca={}", d.join("ca.pem").display()))
            .arg(format!("--ssl-cert={}", d.join("server.crt").display()))
            .arg(format!("--ssl-key={}", d.join("server.key").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        let server = TlsServer { dir, port, child };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the test's MariaDB does not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server.admin(
            "CREATE USER segsync@'%'; CREATE DATABASE shop;
             GRANT SELECT ON shop.* TO segsync@'%';
             CREATE TABLE shop.customers (id INT PRIMARY KEY, email TEXT);
             INSERT INTO shop.customers VALUES (1, 'a@x'), (2, 'b@x')",
        );
        server
    }

    /// Runs `sql` as root through the server's socket (root logs in as the system's root).
    fn admin(&self, sql: &str) {
        let out = Command::new("mariadb")
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .args(["-u", "root", "-e", sql])
            .output()
            .expect("the mariadb client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("mysql://segsync@{host}:{}/shop?{params}", self.port)
    }

    fn file(&self, name: &str, pem: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn source(url: &str) -> Result<u64, String> {
    MySqlSource::connect(url, Relation::Table("customers".into()), "id")
        .and_then(|s| s.row_count())
        .map_err(|e| e.to_string())
}

#[test]
fn ssl_modes_connect_and_refuse_with_clear_messages() {
    let ca = authority("segsync test CA");
    let server = TlsServer::start(&ca);
    let root = server.file("trusted.pem", &ca.pem);
    let other = server.file("other.pem", &authority("another CA").pem);
    assert_eq!(source(&server.url("127.0.0.1", "")), Ok(2), "PREFERRED");
    assert_eq!(source(&server.url("127.0.0.1", "ssl-mode=REQUIRED")), Ok(2));
    let e = source(&server.url("127.0.0.1", "ssl-mode=DISABLED")).unwrap_err();
    // The server refuses in its words (MariaDB's are those of a denied login).
    assert!(
        e.contains("insecure transport are prohibited") || e.contains("Access denied"),
        "the server's words: {e}"
    );
    // VERIFY_CA: the authority is checked, not the name (the certificate is for localhost).
    let verify_ca = format!("ssl-mode=VERIFY_CA&ssl-ca={root}");
    assert_eq!(source(&server.url("127.0.0.1", &verify_ca)), Ok(2));
    let verify_identity = format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={root}");
    assert_eq!(source(&server.url("localhost", &verify_identity)), Ok(2));
    for mode in ["VERIFY_CA", "VERIFY_IDENTITY"] {
        let e = source(&server.url("localhost", &format!("ssl-mode={mode}&ssl-ca={other}")))
            .unwrap_err();
        assert!(
            e.contains(
                "the server's certificate is not signed by a certificate authority in ssl-ca"
            ),
            "{mode}: {e}"
        );
    }
    let e = source(&server.url("127.0.0.1", &verify_identity)).unwrap_err();
    assert!(
        e.contains("the server's certificate is not made out to the host name \"127.0.0.1\""),
        "{e}"
    );
}
