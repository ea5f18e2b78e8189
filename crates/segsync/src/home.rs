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

    /// The home folder at `root`, created (with its lock folder) if missing.
    pub fn at(root: PathBuf) -> anyhow::Result<Home> {
        std::fs::create_dir_all(root.join("locks")).map_err(|e| {
            anyhow::anyhow!("cannot create the home folder {}: {e}", root.display())
        })?;
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
