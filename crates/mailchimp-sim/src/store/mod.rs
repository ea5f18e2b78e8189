//! The simulator's state: accounts with their credentials, audiences and batch jobs, the
//! settings in force, and the counters that tests and benchmarks read.
//!
//! Each account sits behind its own lock, so accounts never see or slow each other; the
//! HTTP layer holds a lock only while it applies a request, never while it waits.

pub mod list;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use indexmap::IndexMap;
use parking_lot::{Mutex, RwLock};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

use crate::config::{OAuthClient, Settings, SimConfig, Variants};
use list::{Key, List};

/// What an API key must look like: 32 hex characters, a dash, a data center such as `us6`.
pub fn valid_api_key(key: &str) -> bool {
    let Some((hex, dc)) = key.split_once('-') else {
        return false;
    };
    hex.len() == 32
        && hex
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        && valid_dc(dc)
}

fn valid_dc(dc: &str) -> bool {
    let letters = dc.trim_end_matches(|c: char| c.is_ascii_digit());
    !letters.is_empty()
        && letters.len() < dc.len()
        && letters.chars().all(|c| c.is_ascii_lowercase())
}

/// A fresh API key of Mailchimp's form in data center `dc`.
pub fn new_api_key(dc: &str) -> String {
    format!("{}-{dc}", random_hex(16))
}

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill(&mut b[..]);
    hex::encode(b)
}

/// A `/batches` job.
pub struct Batch {
    pub id: String,
    pub status: &'static str,
    pub operations: Vec<serde_json::Value>,
    pub total: usize,
    pub finished: usize,
    pub errored: usize,
    pub submitted_at: i64,
    pub completed_at: Option<i64>,
    /// The gzipped tar of results, once finished.
    pub results: Option<Arc<Vec<u8>>>,
    pub cancelled: bool,
}

/// Everything one account owns.
pub struct AccountData {
    pub lists: IndexMap<String, List>,
    pub batches: IndexMap<String, Batch>,
    pub next_segment_id: u32,
    pub next_list_web_id: u64,
}

impl AccountData {
    /// Contacts over all audiences (members that are not archived).
    pub fn contacts(&self) -> u64 {
        self.lists.values().map(|l| l.contacts()).sum()
    }
}

pub struct Account {
    pub id: String,
    pub name: String,
    pub login: String,
    pub email: String,
    pub dc: String,
    pub created_at: i64,
    pub in_flight: AtomicUsize,
    /// Slots held by "other apps" of the account (`PUT /_sim/accounts/{id}/outside-load`),
    /// counted in `in_flight` the whole time.
    pub outside_load: Mutex<usize>,
    /// 429 answers still owed by a burst in progress.
    pub burst_left: AtomicU32,
    /// Whether a task is running this account's `/batches` jobs.
    pub batch_runner: std::sync::atomic::AtomicBool,
    pub data: Mutex<AccountData>,
}

impl Account {
    fn new(n: usize, dc: &str) -> Account {
        Account {
            id: random_hex(12),
            name: format!("Simulated Account {n}"),
            login: format!("sim_user_{n}"),
            email: format!("owner{n}@segsync-sim.dev"),
            dc: dc.to_string(),
            created_at: list::now_micros(),
            in_flight: AtomicUsize::new(0),
            outside_load: Mutex::new(0),
            burst_left: AtomicU32::new(0),
            batch_runner: std::sync::atomic::AtomicBool::new(false),
            data: Mutex::new(AccountData {
                lists: IndexMap::new(),
                batches: IndexMap::new(),
                next_segment_id: 10_001,
                next_list_web_id: 100_001,
            }),
        }
    }
}

/// Counters of what the simulator saw and did, for tests and benchmarks.
#[derive(Default)]
pub struct Counters {
    pub by_endpoint: Mutex<BTreeMap<String, u64>>,
    pub by_status: Mutex<BTreeMap<u16, u64>>,
    pub requests: AtomicU64,
    pub writes: AtomicU64,
    pub too_many_requests: AtomicU64,
    pub injected_5xx: AtomicU64,
    pub injected_429: AtomicU64,
    pub dropped: AtomicU64,
    pub slowed: AtomicU64,
    pub abandoned: AtomicU64,
    pub compliance_refusals: AtomicU64,
    pub max_in_flight: AtomicUsize,
    pub members_created: AtomicU64,
    pub members_updated: AtomicU64,
    pub items: AtomicU64,
    /// Microseconds of in-flight slots held, summed over requests.
    pub in_flight_micros: AtomicU64,
}

/// A snapshot of the counters, as `GET /_sim/counters` serves it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq, Default)]
pub struct CountersView {
    pub requests: u64,
    /// Requests that were not GET.
    pub writes: u64,
    /// Requests by `METHOD /route/template`.
    pub by_endpoint: BTreeMap<String, u64>,
    pub by_status: BTreeMap<u16, u64>,
    /// 429 answers for going over the in-flight limit.
    pub too_many_requests: u64,
    pub injected_5xx: u64,
    pub injected_429: u64,
    pub dropped: u64,
    pub slowed: u64,
    /// Admitted requests whose client went away before the answer was ready.
    #[serde(default)]
    pub abandoned: u64,
    /// Writes refused because they would have resubscribed an unsubscribed, cleaned or
    /// permanently deleted contact.
    pub compliance_refusals: u64,
    /// The largest number of requests one account had in flight at once.
    pub max_in_flight: usize,
    pub members_created: u64,
    pub members_updated: u64,
    /// Items over all requests, as the latency model counts them (members of a batch upsert
    /// or segment batch, 1 for any other request): the modelled time of the requests seen is
    /// `requests x base_ms + items x per_item_ms`.
    pub items: u64,
    /// The time every admitted request held its in-flight slot (handler and modelled latency),
    /// summed over requests, in microseconds. The difference between two snapshots divided by
    /// the wall time between them is the average number of requests in flight over that time.
    #[serde(default)]
    pub in_flight_micros: u64,
}

impl Counters {
    pub fn view(&self) -> CountersView {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersView {
            requests: l(&self.requests),
            writes: l(&self.writes),
            by_endpoint: self.by_endpoint.lock().clone(),
            by_status: self.by_status.lock().clone(),
            too_many_requests: l(&self.too_many_requests),
            injected_5xx: l(&self.injected_5xx),
            injected_429: l(&self.injected_429),
            dropped: l(&self.dropped),
            slowed: l(&self.slowed),
            abandoned: l(&self.abandoned),
            compliance_refusals: l(&self.compliance_refusals),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            members_created: l(&self.members_created),
            members_updated: l(&self.members_updated),
            items: l(&self.items),
            in_flight_micros: l(&self.in_flight_micros),
        }
    }

    pub fn reset(&self) {
        self.by_endpoint.lock().clear();
        self.by_status.lock().clear();
        for a in [
            &self.requests,
            &self.writes,
            &self.too_many_requests,
            &self.injected_5xx,
            &self.injected_429,
            &self.dropped,
            &self.slowed,
            &self.abandoned,
            &self.compliance_refusals,
            &self.members_created,
            &self.members_updated,
            &self.items,
            &self.in_flight_micros,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        self.max_in_flight.store(0, Ordering::Relaxed);
    }
}

/// An authorization code waiting to be exchanged.
pub struct PendingCode {
    pub account_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub issued: std::time::Instant,
}

/// A `response_body_url` token: which batch, until when.
pub struct ResultLink {
    pub account_id: String,
    pub batch_id: String,
    pub expires: std::time::Instant,
}

#[derive(Default)]
pub struct OAuthState {
    pub clients: Vec<OAuthClient>,
    pub codes: HashMap<String, PendingCode>,
}

/// "has signed up to a lot of lists very recently": when each address drawn by
/// `variants.recent_signups_rate` was first refused. Mailchimp's refusal is about the address
/// across lists and accounts, so this is kept for the whole simulator.
#[derive(Default)]
pub struct RecentSignups {
    /// Per address refused so far: when it was first refused, or `None` once [`Self::lapse`]
    /// ended its window.
    first_refused: Mutex<HashMap<Key, Option<std::time::Instant>>>,
}

impl RecentSignups {
    /// Whether a new member with address `email` is refused now. Addresses listed in
    /// `variants.recent_signups` always are; of the others, those whose hash with `seed`
    /// falls in the share `recent_signups_rate` are refused from their first attempt until
    /// `recent_signups_ms` has passed since it (or [`Self::lapse`] was called).
    pub fn refuses(&self, email: &str, variants: &Variants, seed: u64) -> bool {
        self.check(email, variants, seed, true)
    }

    /// Whether a new member with address `email` would be refused now, as [`Self::refuses`]
    /// tells, without counting this as its first attempt.
    pub fn would_refuse(&self, email: &str, variants: &Variants, seed: u64) -> bool {
        self.check(email, variants, seed, false)
    }

    fn check(&self, email: &str, variants: &Variants, seed: u64, attempt: bool) -> bool {
        let email = email.trim();
        if variants
            .recent_signups
            .iter()
            .any(|a| a.trim().eq_ignore_ascii_case(email))
        {
            return true;
        }
        if variants.recent_signups_rate <= 0.0 || !drawn(email, seed, variants.recent_signups_rate)
        {
            return false;
        }
        let window = std::time::Duration::from_millis(variants.recent_signups_ms);
        let now = std::time::Instant::now();
        let mut first_refused = self.first_refused.lock();
        match first_refused.get(&crate::rules::hash_key(email)) {
            Some(Some(first)) => now.duration_since(*first) < window,
            Some(None) => false,
            None => {
                if attempt {
                    first_refused.insert(crate::rules::hash_key(email), Some(now));
                }
                true
            }
        }
    }

    /// Ends the window of every address refused so far, as the wait before a user's next
    /// run would: from now on they are taken. Addresses not refused yet are drawn as before.
    pub fn lapse(&self) {
        for first in self.first_refused.lock().values_mut() {
            *first = None;
        }
    }

    /// How many addresses drawn by `recent_signups_rate` were refused so far.
    pub fn refused(&self) -> usize {
        self.first_refused.lock().len()
    }

    pub fn clear(&self) {
        self.first_refused.lock().clear();
    }
}

/// Whether `email` is in the share `rate` of addresses, by a hash of it and `seed`: the same
/// addresses are drawn on every run with the same seed, whatever order they come in.
fn drawn(email: &str, seed: u64, rate: f64) -> bool {
    use md5::{Digest, Md5};
    let digest = Md5::digest(format!("{seed}:{}", email.to_lowercase()).as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n as f64 / u64::MAX as f64) < rate
}

/// The whole simulator state, shared by every request.
pub struct Sim {
    pub settings: RwLock<Settings>,
    accounts: RwLock<IndexMap<String, Arc<Account>>>,
    /// API keys and OAuth tokens, each to its account id.
    credentials: RwLock<HashMap<String, String>>,
    pub oauth: Mutex<OAuthState>,
    pub result_links: Mutex<HashMap<String, ResultLink>>,
    pub counters: Counters,
    pub rng: Mutex<StdRng>,
    pub recent_signups: RecentSignups,
    initial: SimConfig,
}

impl Sim {
    pub fn new(config: SimConfig) -> Result<Arc<Sim>, String> {
        let sim = Sim {
            rng: Mutex::new(StdRng::seed_from_u64(config.settings.faults.seed)),
            settings: RwLock::new(config.settings.clone()),
            accounts: RwLock::new(IndexMap::new()),
            credentials: RwLock::new(HashMap::new()),
            oauth: Mutex::new(OAuthState {
                clients: config.oauth_clients.clone(),
                codes: HashMap::new(),
            }),
            result_links: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            recent_signups: RecentSignups::default(),
            initial: config,
        };
        for key in sim.initial.api_keys.clone() {
            sim.add_account(Some(key))?;
        }
        Ok(Arc::new(sim))
    }

    /// Creates an account; with no key given, one is made up in data center `us1`.
    /// Returns the account and its key.
    pub fn add_account(&self, api_key: Option<String>) -> Result<(Arc<Account>, String), String> {
        let key = api_key.unwrap_or_else(|| new_api_key("us1"));
        if !valid_api_key(&key) {
            return Err("an API key is 32 lower-case hex characters, a dash and a data center, such as 0123456789abcdef0123456789abcdef-us6".into());
        }
        if self.credentials.read().contains_key(&key) {
            return Err("that API key belongs to an account already".into());
        }
        let dc = key.rsplit_once('-').map(|(_, dc)| dc).unwrap_or("us1");
        let mut accounts = self.accounts.write();
        let account = Arc::new(Account::new(accounts.len() + 1, dc));
        accounts.insert(account.id.clone(), account.clone());
        self.credentials
            .write()
            .insert(key.clone(), account.id.clone());
        Ok((account, key))
    }

    /// Another API key for the existing account `account_id` (one is made up when none is
    /// given), as a second user key of the same Mailchimp account: it shares the account's
    /// audiences and its in-flight cap. Returns the key.
    pub fn add_key(&self, account_id: &str, api_key: Option<String>) -> Result<String, String> {
        let account = self
            .account(account_id)
            .ok_or_else(|| format!("no account {account_id}"))?;
        let key = api_key.unwrap_or_else(|| new_api_key(&account.dc));
        if !valid_api_key(&key) {
            return Err("an API key is 32 lower-case hex characters, a dash and a data center, such as 0123456789abcdef0123456789abcdef-us6".into());
        }
        if key.rsplit_once('-').map(|(_, dc)| dc) != Some(account.dc.as_str()) {
            return Err(format!(
                "the account is in data center {}: its keys end in -{}",
                account.dc, account.dc
            ));
        }
        let mut creds = self.credentials.write();
        if creds.contains_key(&key) {
            return Err("that API key belongs to an account already".into());
        }
        creds.insert(key.clone(), account.id.clone());
        Ok(key)
    }

    /// Another credential (a second API key, or an OAuth token) for an existing account.
    pub fn add_credential(&self, credential: String, account_id: &str) {
        self.credentials
            .write()
            .insert(credential, account_id.to_string());
    }

    /// Revokes a key or token; true when it existed.
    pub fn revoke(&self, credential: &str) -> bool {
        self.credentials.write().remove(credential).is_some()
    }

    /// Every API key (not OAuth tokens) with its account id, sorted by account creation.
    pub fn credentials_snapshot(&self) -> Vec<(String, String)> {
        let creds = self.credentials.read();
        let order: Vec<String> = self.accounts.read().keys().cloned().collect();
        let mut out: Vec<(String, String)> = creds
            .iter()
            .filter(|(k, _)| valid_api_key(k))
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect();
        out.sort_by_key(|(_, a)| order.iter().position(|o| o == a));
        out
    }

    pub fn account_for(&self, credential: &str) -> Option<Arc<Account>> {
        let id = self.credentials.read().get(credential)?.clone();
        self.accounts.read().get(&id).cloned()
    }

    pub fn account(&self, id: &str) -> Option<Arc<Account>> {
        self.accounts.read().get(id).cloned()
    }

    pub fn accounts(&self) -> Vec<Arc<Account>> {
        self.accounts.read().values().cloned().collect()
    }

    pub fn account_by_login(&self, login: &str) -> Option<Arc<Account>> {
        self.accounts
            .read()
            .values()
            .find(|a| a.login == login)
            .cloned()
    }

    /// The account that owns audience `list_id`.
    pub fn account_of_list(&self, list_id: &str) -> Option<Arc<Account>> {
        self.accounts
            .read()
            .values()
            .find(|a| a.data.lock().lists.contains_key(list_id))
            .cloned()
    }

    /// Wipes every account's audiences and batches, the counters, and the settings back to
    /// how the simulator started. Accounts and credentials stay.
    pub fn reset(&self) {
        for a in self.accounts() {
            let mut d = a.data.lock();
            d.lists.clear();
            d.batches.clear();
        }
        *self.settings.write() = self.initial.settings.clone();
        *self.rng.lock() = StdRng::seed_from_u64(self.initial.settings.faults.seed);
        self.counters.reset();
        self.result_links.lock().clear();
        self.recent_signups.clear();
    }

    /// Draws a number in 0..1 from the seeded fault generator.
    pub fn roll(&self) -> f64 {
        self.rng.lock().gen::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_format() {
        assert!(valid_api_key("0123456789abcdef0123456789abcdef-us6"));
        assert!(valid_api_key(&new_api_key("us21")));
        assert!(!valid_api_key("0123456789abcdef0123456789abcde-us6"));
        assert!(!valid_api_key("0123456789ABCDEF0123456789abcdef-us6"));
        assert!(!valid_api_key("0123456789abcdef0123456789abcdef"));
        assert!(!valid_api_key("0123456789abcdef0123456789abcdef-6"));
        assert!(!valid_api_key("0123456789abcdef0123456789abcdef-us"));
    }

    #[test]
    fn a_lapsed_recent_signup_is_taken_and_a_new_one_still_refused() {
        let v = Variants {
            recent_signups_rate: 1.0,
            recent_signups_ms: 3_600_000,
            ..Variants::default()
        };
        let r = RecentSignups::default();
        assert!(r.would_refuse("a@example.org", &v, 1));
        assert_eq!(r.refused(), 0, "asking is no attempt");
        assert!(r.refuses("a@example.org", &v, 1));
        assert!(r.refuses("A@example.org", &v, 1), "still within its window");
        assert_eq!(r.refused(), 1);
        r.lapse();
        assert!(!r.would_refuse("a@example.org", &v, 1));
        assert!(!r.refuses("a@example.org", &v, 1), "its window ended");
        assert!(
            r.refuses("b@example.org", &v, 1),
            "a new address is drawn as before"
        );
        assert!(r.refuses("b@example.org", &v, 1));
        assert_eq!(r.refused(), 2);
    }
}
