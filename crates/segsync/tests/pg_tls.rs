//! PostgreSQL over TLS (issue 19): a PostgreSQL server of the test's own, started in a
//! temporary folder with a certificate authority and a server certificate the test makes,
//! that accepts TLS connections only. Every `sslmode` that encrypts is checked — `prefer`
//! (the default), `require`, `verify-ca`, `verify-full` — and the refusals say clearly why:
//! a certificate from another authority, a host name the certificate is not made out to, a
//! server that wants TLS when `disable` is asked for.
//!
//! The server runs as the `postgres` system user (PostgreSQL refuses to run as root) from the
//! binaries of Debian's package (`/usr/lib/postgresql/*/bin`, or `SEGSYNC_TEST_PG_BIN`);
//! `scripts/setup-postgres.sh` installs them. Without them the test fails, saying so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use segsync::pg::{PgThread, PgUse};
use segsync::profiles::{PgRelation, PgSource};

/// The folder of `initdb` and `postgres`.
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEGSYNC_TEST_PG_BIN") {
        return dir.into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").is_file());
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "this test needs PostgreSQL's initdb and postgres (/usr/lib/postgresql/*/bin, or \
             SEGSYNC_TEST_PG_BIN; scripts/setup-postgres.sh installs them)"
        )
    })
}

/// A certificate authority: its certificate (PEM) and what signs with it.
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

/// Runs `program args` as the `postgres` system user.
fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ])
    .arg(program);
    c
}

/// A PostgreSQL server of this test's own, TLS only, stopped when dropped.
struct TlsServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl TlsServer {
    fn start(ca: &Authority) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        // The server certificate: for "localhost" only (not for 127.0.0.1).
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        std::fs::write(dir.path().join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let bin = pg_bin();
        let out = as_postgres(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .output()
            .unwrap_or_else(|e| panic!("initdb (as the postgres user, with setpriv): {e}"));
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // TLS only: a connection without it is refused.
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
            .arg("-c")
            .arg(format!("port={port}"))
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                dir.path().join("server.crt").display()
            ))
            .arg("-c")
            .arg(format!(
                "ssl_key_file={}",
                dir.path().join("server.key").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let server = TlsServer { dir, port, child };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the test's PostgreSQL does not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        server
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.port)
    }

    /// Writes `pem` in the test's folder; its path.
    fn file(&self, name: &str, pem: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        // A fast shutdown (SIGINT): the server stops its sessions and exits.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
    }
}

/// Connects (as the state store would) and says whether the session is encrypted.
fn encrypted(url: &str) -> Result<bool, String> {
    let conn = PgThread::connect(url, PgUse::State).map_err(|e| e.to_string())?;
    let ssl = conn
        .call(|c| {
            c.query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .map(|r| r.get::<_, bool>(0))
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    conn.discard();
    Ok(ssl)
}

fn refused(url: &str) -> String {
    match encrypted(url) {
        Ok(_) => panic!("connected: {url}"),
        Err(e) => e,
    }
}

#[test]
fn tls_modes_connect_and_refuse_with_clear_messages() {
    let ca = authority("segsync test CA");
    let server = TlsServer::start(&ca);
    let root = server.file("ca.pem", &ca.pem);
    let other = server.file("other-ca.pem", &authority("another CA").pem);

    // Encrypted without checking: the default (prefer) and require.
    assert_eq!(encrypted(&server.url("127.0.0.1", "")), Ok(true));
    assert_eq!(
        encrypted(&server.url("127.0.0.1", "sslmode=require")),
        Ok(true)
    );
    // The server wants TLS: disable is refused by it, in its words.
    let e = refused(&server.url("127.0.0.1", "sslmode=disable"));
    assert!(e.contains("no encryption"), "{e}");

    // verify-ca: the authority is checked, the host name is not (the certificate is for
    // localhost, the URL says 127.0.0.1).
    let verify_ca = format!("sslmode=verify-ca&sslrootcert={root}");
    assert_eq!(encrypted(&server.url("127.0.0.1", &verify_ca)), Ok(true));
    // require with a root certificate checks it, as libpq does.
    let e = refused(&server.url("127.0.0.1", &format!("sslmode=require&sslrootcert={other}")));
    assert!(e.contains("not signed by a certificate authority"), "{e}");
    // verify-full: both.
    let verify_full = format!("sslmode=verify-full&sslrootcert={root}");
    assert_eq!(encrypted(&server.url("localhost", &verify_full)), Ok(true));

    // A wrong authority, in both verifying modes.
    for mode in ["verify-ca", "verify-full"] {
        let e = refused(&server.url("localhost", &format!("sslmode={mode}&sslrootcert={other}")));
        assert!(
            e.contains(&format!(
                "the server's certificate is not signed by a certificate authority in sslrootcert {other} (sslmode={mode})"
            )),
            "{mode}: {e}"
        );
    }
    // A wrong host name.
    let e = refused(&server.url("127.0.0.1", &verify_full));
    assert!(
        e.contains("the server's certificate is not made out to the host name \"127.0.0.1\""),
        "{e}"
    );
    // A missing or unreadable authority file, and an unknown mode, said before connecting.
    let e = refused(&server.url(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nowhere/ca.pem",
    ));
    assert!(e.contains("cannot read sslrootcert /nowhere/ca.pem"), "{e}");
    let e = refused(&server.url("localhost", "sslmode=sometimes"));
    assert!(e.contains("sslmode \"sometimes\" is not one of"), "{e}");

    // A profile source over verify-full reads its table through TLS.
    let admin = format!("{}&dbname=postgres", server.url("localhost", &verify_full));
    let conn = PgThread::connect(&admin, PgUse::State).unwrap();
    conn.call(|c| {
        c.batch_execute(
            "CREATE TABLE customers (id text, email text); INSERT INTO customers VALUES ('c1', 'a@x')",
        )
    })
    .unwrap()
    .unwrap();
    conn.discard();
    let source = PgSource::connect(
        &server.url("localhost", &verify_full),
        PgRelation::Table("customers".into()),
        "id",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(source.row_count().unwrap(), 1);
}
