//! The home folder: where everything segsync keeps lives (`--home DIR`, else `SEGSYNC_HOME`,
//! else the platform's data folder).
//!
//! ```text
//! HOME/profiles.sqlite   imported profiles (segment predicates read only this file)
//! HOME/state.sqlite      connections, segments, exports, snapshots, runs
//! HOME/master.key        the key that seals credentials (0600), unless SEGSYNC_MASTER_KEY
//! HOME/locks/            one lock file per export, held while it runs
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::profiles::ProfileStore;
use crate::secrets::MasterKey;
use crate::state::StateStore;

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

    pub fn at(root: PathBuf) -> anyhow::Result<Home> {
        std::fs::create_dir_all(root.join("locks")).map_err(|e| {
            anyhow::anyhow!("cannot create the home folder {}: {e}", root.display())
        })?;
        Ok(Home { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state(&self) -> anyhow::Result<StateStore> {
        Ok(StateStore::open(&self.root.join("state.sqlite"))?)
    }

    pub fn profiles(&self) -> anyhow::Result<ProfileStore> {
        Ok(ProfileStore::open(&self.root.join("profiles.sqlite"))?)
    }

    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        Ok(MasterKey::load_or_create(&self.root)?)
    }

    /// Takes the run lock of `export`; `None` when another process holds it. The operating
    /// system releases it when the process ends, however it ends (kill -9 included).
    pub fn lock_export(&self, export: &str) -> anyhow::Result<Option<File>> {
        let safe: String = export
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.root.join("locks").join(format!(
            "{safe}-{}.lock",
            &segsync_core::MemberKey::of(export).hex()[..8]
        ));
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}
