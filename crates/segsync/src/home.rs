//! The home folder: where everything segsync keeps lives (`--home DIR`, else `SEGSYNC_HOME`,
//! else the platform's data folder). Paths only: what is opened from them, and the state
//! store (which may live elsewhere), belong to [`App`](crate::app::App).
//!
//! ```text
//! HOME/profiles.sqlite   imported profiles (segment predicates read only this file)
//! HOME/state.sqlite      connections, segments, exports, snapshots, runs (unless --state)
//! HOME/master.key        the key that seals credentials (0600), unless SEGSYNC_MASTER_KEY
//! HOME/locks/            one lock file per export, held while it runs
//! ```
//!
//! Its files hold personal data, password hashes, the audit log and the key to every
//! credential, so the folder is private to its owner: created 0700 (with `locks/`), and the
//! SQLite files (with their `-wal` and `-shm`) 0600, created so and tightened when opened
//! ([`private_sqlite_file`]). An existing home folder that already holds segsync's files is
//! tightened to 0700 too.

use std::path::{Path, PathBuf};

pub const HOME_ENV: &str = "SEGSYNC_HOME";

#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The folder from the flag, the environment or the platform, created if missing.
    pub fn resolve(flag: Option<PathBuf>) -> anyhow::Result<Home> {
        let root = match flag.or_else(|| std::env::var_os(HOME_ENV).map(PathBuf::from)) {
            Some(p) => p,
            None => directories::ProjectDirs::from("dev", "segsync", "segsync")
                .map(|d| d.data_dir().to_path_buf())
                .ok_or_else(|| {
                    anyhow::anyhow!("no home folder: pass --home DIR or set {HOME_ENV}")
                })?,
        };
        Home::at(root)
    }

    /// The home folder at `root`, created (with its lock folder) if missing, private to its
    /// owner.
    pub fn at(root: PathBuf) -> anyhow::Result<Home> {
        let fail = |e: std::io::Error| {
            anyhow::anyhow!("cannot create the home folder {}: {e}", root.display())
        };
        let existed = root.is_dir();
        private_dirs(&root.join("locks")).map_err(fail)?;
        if existed {
            tighten_existing_home(&root).map_err(fail)?;
        }
        Ok(Home { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state store's file, when the state is not elsewhere.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.sqlite")
    }

    /// The embedded profile store.
    pub fn profiles_file(&self) -> PathBuf {
        self.root.join("profiles.sqlite")
    }

    /// Where export lock files go.
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }
}

/// Creates `dir` and its missing parents, each new one 0700 (on Unix).
fn private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// The files that mark a folder as a segsync home.
const HOME_FILES: [&str; 3] = ["state.sqlite", "profiles.sqlite", "master.key"];

/// An existing home folder made before homes were private (0755): 0700 when it holds
/// segsync's files. A folder others share on purpose (a sticky bit, as `/tmp`) is left alone.
fn tighten_existing_home(root: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if !HOME_FILES.iter().any(|f| root.join(f).exists()) {
            return Ok(());
        }
        let mode = std::fs::metadata(root)?.permissions().mode();
        if mode & 0o1000 != 0 {
            return Ok(());
        }
        for dir in [root.to_path_buf(), root.join("locks")] {
            let m = std::fs::metadata(&dir)?.permissions().mode();
            if m & 0o077 != 0 {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m & 0o700))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = root;
    Ok(())
}

/// Makes the SQLite database at `path` private to its owner before SQLite opens it: created
/// empty with mode 0600 when missing (SQLite gives its `-wal` and `-shm` files the database's
/// mode), tightened to 0600 with its `-wal` and `-shm` when they are looser. Names SQLite
/// does not read as a file (`:memory:`, empty, `file:` URIs) are left to SQLite.
pub(crate) fn private_sqlite_file(path: &Path) -> std::io::Result<()> {
    let name = path.as_os_str();
    if name.is_empty() || name == ":memory:" || path.to_string_lossy().starts_with("file:") {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = PathBuf::from(p);
            let mode = match std::fs::metadata(&p) {
                Ok(m) => m.permissions().mode(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o600))?;
            }
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// SQLite's `-wal` and `-shm` exist only while a connection is open: they are 0600 then,
    /// for the state store and the profile store, and a looser database is tightened.
    #[test]
    fn sqlite_files_and_their_wal_and_shm_are_0600() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("home")).unwrap();
        assert_eq!(mode(home.root()), 0o700);
        let state = crate::state::StateStore::open(&home.state_file()).unwrap();
        let profiles = crate::profiles::ProfileStore::open(&home.profiles_file()).unwrap();
        for f in [home.state_file(), home.profiles_file()] {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = f.as_os_str().to_owned();
                p.push(suffix);
                let p = PathBuf::from(p);
                assert!(p.exists(), "{} while open", p.display());
                assert_eq!(mode(&p), 0o600, "{}", p.display());
            }
        }
        drop((state, profiles));
        let loose = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(home.state_file(), loose).unwrap();
        drop(crate::state::StateStore::open(&home.state_file()).unwrap());
        assert_eq!(mode(&home.state_file()), 0o600);
    }
}
