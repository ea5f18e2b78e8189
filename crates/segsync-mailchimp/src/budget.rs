//! The connection budget of a Mailchimp account: how many requests every run on the account,
//! together, keeps in flight.
//!
//! Mailchimp allows 10 simultaneous connections per user, shared by every key and app of the
//! account; the 11th gets 429. So the limit belongs to the account, not to a run: every client
//! of one process that talks to an account takes its slots from the same [`AccountBudget`],
//! found by account id in [`Budgets`].
//!
//! - **Fair**: each client is a *party* of the budget. A freed slot goes to the waiting party
//!   holding the fewest slots (the one served longest ago on a tie), so a small export is not
//!   starved behind a large one; each party also has its own cap (a run's `--max-in-flight`).
//! - **Adaptive** (additive increase, multiplicative decrease): a 429 (or a bodyless 403)
//!   means something else uses the account's connections; the budget shrinks by
//!   [`DECREASE`], once per round of requests (an attempt that started before the last cut
//!   does not cut again). Each success adds `1/budget` (one slot per round) until one slot
//!   below the level that was refused, then [`PROBE_SLOWDOWN`] times slower, so the budget
//!   probes that level again rarely. It never goes above the configured cap nor below 1.
//! - **Across processes**: with [`SlotLeases`] set (segsync's PostgreSQL state store), a
//!   request also holds one of the account's numbered slots as a lease in the shared store,
//!   so that workers together stay within the cap; a worker that dies stops renewing its
//!   leases and its slots come back when they expire.
//!
//! A slot is held for one attempt: a request waiting to retry holds none.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// The default budget of an account: 8 of Mailchimp's 10, leaving room for the account's
/// other apps (signup forms, integrations).
pub const DEFAULT_SLOT_BUDGET: usize = 8;

/// The factor a throttled budget is multiplied by.
pub const DECREASE: f64 = 0.7;

/// How much slower the budget grows at and above the level that was last refused.
pub const PROBE_SLOWDOWN: f64 = 16.0;

/// How long a process waits before asking the shared store again for a slot when all were
/// held (a random part is added, so that workers do not ask in step).
const LEASE_POLL: Duration = Duration::from_millis(15);

/// Slots of accounts held across processes, as leases that expire unless renewed. The
/// implementation renews the leases it holds on its own, while its process lives.
pub trait SlotLeases: Send + Sync {
    /// Takes one of slots `0..limit` of `account` that nobody holds (or whose lease expired);
    /// `None` when all are held. Blocking: called on a blocking thread.
    fn take(&self, account: &str, limit: usize) -> Result<Option<i32>, String>;
    /// Gives slot `slot` of `account` back. Blocking.
    fn give_back(&self, account: &str, slot: i32) -> Result<(), String>;
}

/// Every account budget of a process, by account id.
#[derive(Default)]
pub struct Budgets {
    accounts: Mutex<HashMap<String, Arc<AccountBudget>>>,
    leases: RwLock<Option<Arc<dyn SlotLeases>>>,
}

impl Budgets {
    /// The process's budgets, shared by every run of the process.
    pub fn shared() -> &'static Budgets {
        static SHARED: std::sync::OnceLock<Budgets> = std::sync::OnceLock::new();
        SHARED.get_or_init(Budgets::default)
    }

    /// Makes every budget also hold leases in `leases` (workers sharing a store).
    pub fn set_leases(&self, leases: Arc<dyn SlotLeases>) {
        *self.leases.write().expect("not poisoned") = Some(leases);
    }

    /// The budget of `account`, made with `cap` slots if new; an existing one takes `cap` as
    /// its new cap (a connection's budget was changed).
    pub fn account(&self, account: &str, cap: usize) -> Arc<AccountBudget> {
        let leases = self.leases.read().expect("not poisoned").clone();
        let mut map = self.accounts.lock().expect("not poisoned");
        let b = map
            .entry(account.to_string())
            .or_insert_with(|| Arc::new(AccountBudget::new(account, cap, leases)));
        b.set_cap(cap);
        b.clone()
    }

    /// Every account's budget now, by account id.
    pub fn views(&self) -> Vec<BudgetView> {
        let mut v: Vec<BudgetView> = self
            .accounts
            .lock()
            .expect("not poisoned")
            .values()
            .map(|b| b.view())
            .collect();
        v.sort_by(|a, b| a.account.cmp(&b.account));
        v
    }
}

/// One account's budget at one moment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BudgetView {
    pub account: String,
    /// The configured cap.
    pub cap: usize,
    /// Slots usable now (the adaptive budget, at most the cap).
    pub budget: usize,
    /// Slots held now by this process.
    pub in_use: usize,
    /// Requests waiting for a slot.
    pub waiting: usize,
    /// Attempts Mailchimp refused for too many connections (429 or bodyless 403).
    pub throttled: u64,
    /// Attempts that held a slot.
    pub attempts: u64,
}

struct PartyState {
    cap: usize,
    held: usize,
    waiters: VecDeque<oneshot::Sender<u64>>,
    /// When it was last given a slot (a sequence number), for ties.
    served: u64,
}

struct State {
    cap: usize,
    budget: f64,
    /// The level at which the account was last refused, if it was.
    ceiling: Option<f64>,
    in_use: usize,
    /// Bumped at each cut: an attempt that started in an older epoch does not cut again.
    epoch: u64,
    seq: u64,
    next_party: u64,
    parties: HashMap<u64, PartyState>,
}

impl State {
    fn limit(&self) -> usize {
        (self.budget.floor() as usize).clamp(1, self.cap.max(1))
    }

    /// The waiting party to serve next: the fewest slots held, then served longest ago.
    fn next(&self) -> Option<u64> {
        self.parties
            .iter()
            .filter(|(_, p)| !p.waiters.is_empty() && p.held < p.cap)
            .min_by_key(|(_, p)| (p.held, p.served))
            .map(|(id, _)| *id)
    }

    /// A slot for party `me` at once, if one is free and nobody else waits for one (taking
    /// it does not jump a queue); the epoch it was taken in.
    fn take_directly(&mut self, me: u64) -> Option<u64> {
        let others_wait = self
            .parties
            .iter()
            .any(|(id, p)| *id != me && !p.waiters.is_empty() && p.held < p.cap);
        let p = self.parties.get(&me)?;
        if self.in_use >= self.limit() || others_wait || !p.waiters.is_empty() || p.held >= p.cap {
            return None;
        }
        self.seq += 1;
        let seq = self.seq;
        let p = self.parties.get_mut(&me).expect("listed");
        p.held += 1;
        p.served = seq;
        self.in_use += 1;
        Some(self.epoch)
    }

    /// Hands free slots to waiting parties.
    fn dispatch(&mut self) {
        while self.in_use < self.limit() {
            let Some(id) = self.next() else { return };
            self.seq += 1;
            let (seq, epoch) = (self.seq, self.epoch);
            let p = self.parties.get_mut(&id).expect("listed");
            let tx = p.waiters.pop_front().expect("has waiters");
            if tx.send(epoch).is_ok() {
                p.held += 1;
                p.served = seq;
                self.in_use += 1;
            }
        }
    }
}

/// The slots of one Mailchimp account in this process.
pub struct AccountBudget {
    account: String,
    state: Mutex<State>,
    leases: Option<Arc<dyn SlotLeases>>,
    throttled: AtomicU64,
    attempts: AtomicU64,
}

impl std::fmt::Debug for AccountBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountBudget")
            .field("view", &self.view())
            .finish()
    }
}

impl AccountBudget {
    /// A budget of `cap` slots, shared across processes through `leases` when given.
    pub fn new(account: &str, cap: usize, leases: Option<Arc<dyn SlotLeases>>) -> AccountBudget {
        let cap = cap.max(1);
        AccountBudget {
            account: account.to_string(),
            state: Mutex::new(State {
                cap,
                budget: cap as f64,
                ceiling: None,
                in_use: 0,
                epoch: 0,
                seq: 0,
                next_party: 0,
                parties: HashMap::new(),
            }),
            leases,
            throttled: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
        }
    }

    /// A budget of its own for one client (no account id known): the client's cap alone.
    pub fn private(cap: usize) -> Arc<AccountBudget> {
        Arc::new(AccountBudget::new("", cap, None))
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    /// Changes the cap; the adaptive budget is brought under it at once.
    pub fn set_cap(&self, cap: usize) {
        let mut s = self.lock();
        let cap = cap.max(1);
        if s.cap != cap {
            if s.ceiling.is_none() && s.budget >= s.cap as f64 {
                s.budget = cap as f64;
            }
            s.cap = cap;
            s.budget = s.budget.min(cap as f64);
            s.dispatch();
        }
    }

    pub fn view(&self) -> BudgetView {
        let s = self.lock();
        BudgetView {
            account: self.account.clone(),
            cap: s.cap,
            budget: s.limit(),
            in_use: s.in_use,
            waiting: s.parties.values().map(|p| p.waiters.len()).sum(),
            throttled: self.throttled.load(Ordering::Relaxed),
            attempts: self.attempts.load(Ordering::Relaxed),
        }
    }

    /// Joins the budget as a party that holds at most `cap` slots at once.
    pub fn join(self: &Arc<Self>, cap: usize) -> BudgetParty {
        let mut s = self.lock();
        s.next_party += 1;
        let id = s.next_party;
        s.parties.insert(
            id,
            PartyState {
                cap: cap.max(1),
                held: 0,
                waiters: VecDeque::new(),
                served: 0,
            },
        );
        BudgetParty {
            budget: self.clone(),
            id,
        }
    }

    fn release(&self, party: u64) {
        let mut s = self.lock();
        s.in_use -= 1;
        if let Some(p) = s.parties.get_mut(&party) {
            p.held -= 1;
        }
        s.dispatch();
    }

    /// A refusal for load, of an attempt whose slot was taken in `epoch`: the level refused
    /// is what this process holds now (the refused attempt's slot included).
    fn throttle(&self, epoch: u64) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        if epoch != s.epoch {
            return;
        }
        let level = s.in_use;
        s.epoch += 1;
        s.ceiling = Some(level as f64);
        s.budget = (s.budget.min(level as f64) * DECREASE).max(1.0);
        tracing::debug!(
            account = %self.account,
            budget = s.budget,
            level,
            "Mailchimp refused a connection: the account's budget shrinks"
        );
    }

    fn succeed(&self) {
        let mut s = self.lock();
        let cap = s.cap as f64;
        if s.budget >= cap {
            return;
        }
        let step = 1.0 / s.budget.max(1.0);
        let below_ceiling = s.ceiling.is_none_or(|c| s.budget + 1.0 < c);
        s.budget += if below_ceiling {
            step
        } else {
            step / PROBE_SLOWDOWN
        };
        s.budget = s.budget.min(cap);
        s.dispatch();
    }
}

/// A member of an account budget (one client); leaves the budget when dropped.
pub struct BudgetParty {
    budget: Arc<AccountBudget>,
    id: u64,
}

impl std::fmt::Debug for BudgetParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetParty")
            .field("account", &self.budget.account)
            .field("party", &self.id)
            .finish()
    }
}

impl Drop for BudgetParty {
    fn drop(&mut self) {
        let mut s = self.budget.lock();
        s.parties.remove(&self.id);
        s.dispatch();
    }
}

/// A receiver that gives its slot back if it is dropped after the slot was handed to it but
/// before it was taken (the waiting call was cancelled).
struct Pending<'a> {
    rx: Option<oneshot::Receiver<u64>>,
    party: &'a BudgetParty,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.party.budget.release(self.party.id);
            }
        }
    }
}

impl BudgetParty {
    pub fn budget(&self) -> &Arc<AccountBudget> {
        &self.budget
    }

    /// Changes how many slots this party may hold at once.
    pub fn set_cap(&self, cap: usize) {
        let mut s = self.budget.lock();
        if let Some(p) = s.parties.get_mut(&self.id) {
            p.cap = cap.max(1);
        }
        s.dispatch();
    }

    /// Waits for a slot (and, across processes, its lease).
    pub async fn acquire(&self) -> Slot<'_> {
        let rx = {
            let mut s = self.budget.lock();
            match s.take_directly(self.id) {
                Some(epoch) => Err(epoch),
                None => {
                    let (tx, rx) = oneshot::channel();
                    let p = s.parties.get_mut(&self.id).expect("listed while it lives");
                    p.waiters.push_back(tx);
                    Ok(rx)
                }
            }
        };
        let epoch = match rx {
            Err(epoch) => epoch,
            Ok(rx) => {
                let mut pending = Pending {
                    rx: Some(rx),
                    party: self,
                };
                let got = pending.rx.as_mut().expect("set").await;
                pending.rx = None;
                got.expect("a waiter's sender lives in the budget until it is served")
            }
        };
        let lease = self.lease().await;
        self.budget.attempts.fetch_add(1, Ordering::Relaxed);
        Slot {
            party: self,
            epoch,
            lease,
            since: Instant::now(),
        }
    }

    /// Takes a slot lease in the shared store, waiting while all are held; none without a
    /// shared store. A store that fails is logged and not waited for: a run is not stopped by
    /// its state store's hiccup, only Mailchimp's own cap then applies.
    async fn lease(&self) -> Option<i32> {
        let leases = self.budget.leases.clone()?;
        loop {
            let limit = self.budget.lock().limit();
            let (l, account) = (leases.clone(), self.budget.account.clone());
            let got = tokio::task::spawn_blocking(move || l.take(&account, limit))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match got {
                Ok(Some(slot)) => return Some(slot),
                Ok(None) => {
                    let jitter = rand::random::<u64>() % 10;
                    tokio::time::sleep(LEASE_POLL + Duration::from_millis(jitter)).await;
                }
                Err(e) => {
                    tracing::warn!(account = %self.budget.account, error = %e, "the shared slot leases could not be read; sending without one");
                    return None;
                }
            }
        }
    }
}

/// One slot of the account, held for one attempt; given back when dropped.
pub struct Slot<'a> {
    party: &'a BudgetParty,
    epoch: u64,
    lease: Option<i32>,
    since: Instant,
}

impl Slot<'_> {
    /// Mailchimp refused the attempt for too many connections: the budget shrinks.
    pub fn throttled(&self) {
        self.party.budget.throttle(self.epoch);
    }

    /// The attempt got an answer that was not a refusal for load: the budget may grow.
    pub fn succeeded(&self) {
        self.party.budget.succeed();
    }

    /// How long the slot has been held.
    pub fn held(&self) -> Duration {
        self.since.elapsed()
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let b = &self.party.budget;
        if let (Some(slot), Some(leases)) = (self.lease, b.leases.clone()) {
            let account = b.account.clone();
            let give = move || {
                if let Err(e) = leases.give_back(&account, slot) {
                    tracing::warn!(%account, slot, error = %e, "a slot lease could not be given back; it expires on its own");
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn_blocking(give);
                }
                Err(_) => give(),
            }
        }
        b.release(self.party.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parties_share_the_cap_and_waiters_are_served_fairly() {
        let b = Arc::new(AccountBudget::new("acc", 4, None));
        let big = b.join(10);
        let small = b.join(10);
        let mut held: Vec<_> = futures_util::future::join_all((0..4).map(|_| big.acquire())).await;
        assert_eq!(b.view().in_use, 4);
        // The big party queues more; the small one asks after. A freed slot goes to the small one.
        let big_next = big.acquire();
        let small_next = small.acquire();
        tokio::pin!(big_next, small_next);
        assert!(futures_util::poll!(&mut big_next).is_pending());
        assert!(futures_util::poll!(&mut small_next).is_pending());
        drop(held.pop());
        let small_got = futures_util::poll!(&mut small_next);
        assert!(small_got.is_ready());
        assert!(futures_util::poll!(&mut big_next).is_pending());
        assert_eq!(b.view().in_use, 4);
    }

    #[tokio::test]
    async fn a_party_cap_holds_within_the_budget() {
        let b = Arc::new(AccountBudget::new("acc", 8, None));
        let p = b.join(2);
        let _a = p.acquire().await;
        let _b = p.acquire().await;
        let third = p.acquire();
        tokio::pin!(third);
        assert!(futures_util::poll!(&mut third).is_pending());
        assert_eq!(b.view().in_use, 2);
    }

    #[tokio::test]
    async fn throttles_cut_once_per_round_and_successes_grow_back_under_the_cap() {
        let b = Arc::new(AccountBudget::new("acc", 8, None));
        let p = b.join(8);
        let slots: Vec<_> = futures_util::future::join_all((0..8).map(|_| p.acquire())).await;
        for s in &slots {
            s.throttled();
        }
        // One cut for the whole round: 8 x 0.7.
        assert_eq!(b.view().budget, 5);
        assert_eq!(b.view().throttled, 8);
        drop(slots);
        for _ in 0..2000 {
            let s = p.acquire().await;
            s.succeeded();
        }
        assert_eq!(b.view().budget, 8);
        let s = p.acquire().await;
        s.succeeded();
        assert_eq!(b.view().budget, 8, "never above the cap");
    }

    #[tokio::test]
    async fn a_cancelled_waiter_gives_its_slot_back() {
        let b = Arc::new(AccountBudget::new("acc", 1, None));
        let p = b.join(1);
        let first = p.acquire().await;
        {
            let waiting = p.acquire();
            tokio::pin!(waiting);
            assert!(futures_util::poll!(&mut waiting).is_pending());
            drop(first);
        }
        assert_eq!(b.view().in_use, 0);
        let _again = p.acquire().await;
        assert_eq!(b.view().in_use, 1);
    }
}
