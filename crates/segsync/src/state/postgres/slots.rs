//! The connection slots of Mailchimp accounts, held as leases by the processes that share a
//! PostgreSQL state store: the [`SlotLeases`] of the account budgets
//! ([`crate::mailchimp::budget`]).
//!
//! Each account has numbered slots, one row each in `account_slots`. A request takes a free
//! one (no holder, or a lease that ran out) with `FOR UPDATE SKIP LOCKED`, so that two
//! workers never take the same slot and neither waits on the other's lock; it gives the slot
//! back when its answer is in. A thread renews every slot its process holds each third of
//! the lease; a process that dies stops renewing, and its slots are free again when their
//! lease runs out. Deadlines are the database's clock (`now()`), so workers whose clocks
//! differ still agree.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::mailchimp::SlotLeases;
use crate::pg::{error_text, PgThread, PgUse};

/// The slot leases of one process.
pub struct PgSlotLeases {
    pg: PgThread,
    /// Who holds a slot: this process (host, process id and a random part).
    holder: String,
    lease: Duration,
    /// The (account, slot count) whose rows exist already.
    seeded: Mutex<HashSet<(String, usize)>>,
}

impl std::fmt::Debug for PgSlotLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSlotLeases")
            .field("database", &self.pg.url())
            .field("holder", &self.holder)
            .field("lease", &self.lease)
            .finish()
    }
}

impl PgSlotLeases {
    /// Slot leases in the state store at `url` (its schema migrated already), each held for
    /// `lease` unless renewed; starts the renewing thread, which stops when the leases are
    /// dropped.
    pub fn connect(url: &str, lease: Duration) -> Result<Arc<PgSlotLeases>, String> {
        let pg = PgThread::connect(url, PgUse::State).map_err(|e| e.to_string())?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
        let leases = Arc::new(PgSlotLeases {
            pg,
            holder: format!(
                "{host}:{}:{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            lease: lease.max(Duration::from_secs(1)),
            seeded: Mutex::new(HashSet::new()),
        });
        let weak = Arc::downgrade(&leases);
        std::thread::Builder::new()
            .name("segsync-slot-leases".into())
            .spawn(move || renew_while_alive(weak))
            .map_err(|e| format!("cannot start the slot lease thread: {e}"))?;
        Ok(leases)
    }

    /// Who this process is in `account_slots.holder`.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn seconds(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    fn seed(&self, account: &str, limit: usize) -> Result<(), String> {
        let key = (account.to_string(), limit);
        if self.seeded.lock().expect("not poisoned").contains(&key) {
            return Ok(());
        }
        let (a, n) = (account.to_string(), limit as i32);
        self.pg
            .call(move |c| {
                c.execute(
                    "INSERT INTO account_slots (account_id, slot)
                     SELECT $1, g FROM generate_series(0, $2 - 1) AS g
                     ON CONFLICT DO NOTHING",
                    &[&a, &n],
                )
                .map_err(|e| format!("seed the slots of an account: {}", error_text(&e)))
            })
            .map_err(|e| e.to_string())??;
        self.seeded.lock().expect("not poisoned").insert(key);
        Ok(())
    }

    /// Renews every slot this process holds; the number renewed.
    fn renew(&self) -> Result<u64, String> {
        let (holder, secs) = (self.holder.clone(), self.seconds());
        self.pg
            .call(move |c| {
                c.execute(
                    "UPDATE account_slots SET expires_at = now() + make_interval(secs => $2)
                     WHERE holder = $1",
                    &[&holder, &secs],
                )
                .map_err(|e| format!("renew slot leases: {}", error_text(&e)))
            })
            .map_err(|e| e.to_string())?
    }
}

fn renew_while_alive(leases: Weak<PgSlotLeases>) {
    loop {
        let every = match leases.upgrade() {
            Some(l) => l.lease / 3,
            None => return,
        };
        std::thread::sleep(every);
        let Some(l) = leases.upgrade() else { return };
        if let Err(e) = l.renew() {
            tracing::warn!(error = %e, "the connection slot leases could not be renewed");
        }
    }
}

impl SlotLeases for PgSlotLeases {
    fn take(&self, account: &str, limit: usize) -> Result<Option<i32>, String> {
        self.seed(account, limit)?;
        let (a, n, holder, secs) = (
            account.to_string(),
            limit as i32,
            self.holder.clone(),
            self.seconds(),
        );
        let row = self
            .pg
            .call(move |c| {
                c.query_opt(
                    "UPDATE account_slots SET holder = $3, expires_at = now() + make_interval(secs => $4)
                     WHERE (account_id, slot) = (
                         SELECT account_id, slot FROM account_slots
                         WHERE account_id = $1 AND slot < $2
                           AND (holder IS NULL OR expires_at <= now())
                         ORDER BY slot LIMIT 1
                         FOR UPDATE SKIP LOCKED)
                     RETURNING slot",
                    &[&a, &n, &holder, &secs],
                )
                .map_err(|e| format!("take a connection slot: {}", error_text(&e)))
            })
            .map_err(|e| e.to_string())??;
        Ok(row.map(|r| r.get::<_, i32>(0)))
    }

    fn give_back(&self, account: &str, slot: i32) -> Result<(), String> {
        let (a, holder) = (account.to_string(), self.holder.clone());
        self.pg
            .call(move |c| {
                c.execute(
                    "UPDATE account_slots SET holder = NULL, expires_at = NULL
                     WHERE account_id = $1 AND slot = $2 AND holder = $3",
                    &[&a, &slot, &holder],
                )
                .map_err(|e| format!("give a connection slot back: {}", error_text(&e)))
            })
            .map_err(|e| e.to_string())??;
        Ok(())
    }
}
