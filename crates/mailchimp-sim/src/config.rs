//! Settings of the simulator: accounts at start, limits, the latency model, fault injection,
//! and the readings of Mailchimp's behaviour where the sources are silent or disagree
//! ([`Variants`], gathered into a [`Profile`]).
//!
//! Everything here can be given on the command line (`mailchimp-sim --help`), built in Rust for
//! in-process tests, and changed at run time through `PUT /_sim/settings`.
//!
//! The environment variable `MAILCHIMP_SIM_PROFILE` (`default` or `pessimistic`) chooses the
//! profile that [`Settings::default`] and so [`SimConfig::default`] start from, so that a test
//! suite that starts the simulator in-process can be run again under the pessimistic readings
//! without a change to its code.

use serde::{Deserialize, Serialize};

/// The settings that can change while the simulator runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Requests one account may have in flight; the next one gets 429 (Mailchimp: 10).
    pub max_in_flight: usize,
    /// Contacts (members that are not archived, over all audiences) an account may hold;
    /// `None` is no limit.
    pub contact_limit: Option<u64>,
    /// Domains whose addresses Mailchimp refuses as fake-looking ("looks fake or invalid").
    pub refused_domains: Vec<String>,
    /// What a batch upsert does with an item that would resubscribe an unsubscribed or
    /// cleaned member: `error` reports "Member In Compliance State" in `errors[]` (strict,
    /// the default); `ignore` keeps the status and updates the rest, as some reports say the
    /// live API does silently.
    pub batch_compliance: BatchCompliance,
    /// How long each request takes.
    pub latency: Latency,
    /// Faults injected into answers.
    pub faults: Faults,
    /// How `/batches` jobs progress.
    pub batches: BatchTiming,
    /// The profile `variants` started from. Through `PUT`/`PATCH /_sim/settings`, giving it
    /// resets `variants` to that profile's values before the rest of the body is applied.
    pub profile: Profile,
    /// Readings of Mailchimp's behaviour that the sources leave open, one switch each.
    pub variants: Variants,
}

/// A set of [`Variants`]: `default` is the simulator as it always was; `pessimistic` takes,
/// at every switch, the reading that is harder on a sync.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    #[default]
    Default,
    Pessimistic,
}

/// The environment variable that chooses the profile of [`Settings::default`].
pub const PROFILE_ENV: &str = "MAILCHIMP_SIM_PROFILE";

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s.trim() {
            "default" => Some(Profile::Default),
            "pessimistic" => Some(Profile::Pessimistic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Pessimistic => "pessimistic",
        }
    }

    /// The profile `MAILCHIMP_SIM_PROFILE` names; `default` when it is unset or empty.
    ///
    /// # Panics
    /// When it names no profile: a suite meant to run pessimistic must not silently run with
    /// the default readings because of a typo.
    pub fn from_env() -> Profile {
        Profile::from_env_value(std::env::var(PROFILE_ENV).ok().as_deref()).unwrap_or_else(|bad| {
            panic!("{PROFILE_ENV} must be `default` or `pessimistic`, not {bad:?}")
        })
    }

    /// The profile a value of `MAILCHIMP_SIM_PROFILE` names (unset or empty: `default`);
    /// `Err` holds a value that names none.
    pub fn from_env_value(value: Option<&str>) -> Result<Profile, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(Profile::Default),
            Some(v) => Profile::parse(v).ok_or_else(|| v.to_string()),
        }
    }
}

/// One switch per reading of Mailchimp's behaviour that is undocumented or reported
/// differently by users (the README's table "What it models, and what it does not" gives the
/// source of each). [`Variants::default`] is the simulator's behaviour before these switches
/// existed; [`Variants::pessimistic`] is the profile that is harder on a sync.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Variants {
    /// Archived contacts in `GET /lists/{id}/members` (and its `since_last_changed` reads)
    /// when no `status` filter is given.
    pub archived_members: ArchivedMembers,
    /// What a batch upsert item that fails the request schema does.
    pub batch_schema_errors: BatchSchemaErrors,
    /// Which updated members a batch upsert lists in `updated_members`.
    pub updated_members: UpdatedMembers,
    /// Which forms a `date` or `birthday` merge value may take.
    pub date_merge_values: DateMergeValues,
    /// The answer over the in-flight cap: 429 with Mailchimp's problem document, or 403 with
    /// no body.
    pub throttle_status: u16,
    /// A request whose client went away keeps its in-flight slot until its handling (the
    /// modelled latency included) would have ended, plus this many milliseconds. 0: the slot
    /// is freed when the client disconnects.
    pub abandoned_slot_ms: u64,
    /// Refuse addresses with non-ASCII characters before the `@`.
    pub ascii_local_parts: bool,
    /// Addresses refused as new members with "has signed up to a lot of lists very recently"
    /// for as long as they are listed here.
    pub recent_signups: Vec<String>,
    /// Share (0..1) of new addresses, chosen by a hash of the address and `faults.seed`,
    /// refused the same way on their first attempt and until `recent_signups_ms` has passed.
    pub recent_signups_rate: f64,
    /// How long after its first refusal an address drawn by `recent_signups_rate` is refused.
    pub recent_signups_ms: u64,
    /// The longest name (in characters) a new static segment (tag) may have; `None`: no cap.
    pub tag_name_max: Option<usize>,
    /// How the OAuth2 `redirect_uri` must match the app's registered one.
    pub oauth_redirect: OAuthRedirect,
    /// What a `since_last_changed` or `before_last_changed` that cannot be read does.
    pub malformed_since: MalformedSince,
    /// Whether `tags` of batch upsert items are applied.
    pub batch_item_tags: BatchItemTags,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ArchivedMembers {
    /// Listed with the others.
    #[default]
    Included,
    /// Listed only when `status=archived` is asked for.
    Excluded,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BatchSchemaErrors {
    /// The item is reported in `errors[]` of a 200; the others are applied.
    #[default]
    PerItem,
    /// 400 "Invalid Resource" with `errors[{field: "members.item:N.x"}]`; nothing applied.
    WholeRequest,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpdatedMembers {
    /// Every existing member the request named.
    #[default]
    All,
    /// Only the members the request changed.
    ChangedOnly,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DateMergeValues {
    /// Any of the guide's forms, read by the field's display format.
    #[default]
    DisplayFormat,
    /// Dates only as `YYYY-MM-DD`, birthdays only as `MM/DD`.
    DocumentedOnly,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OAuthRedirect {
    /// The `redirect_uri` must start with the registered one.
    #[default]
    Prefix,
    /// The `redirect_uri` must equal the registered one.
    Exact,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MalformedSince {
    /// 400 "Invalid Resource" naming the parameter.
    #[default]
    Reject,
    /// The filter is dropped silently; a value with fractional seconds counts as malformed.
    Ignore,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BatchItemTags {
    /// Item `tags` are added to the member (created when missing), replacing its tags with
    /// `sync_tags`.
    #[default]
    Applied,
    /// Item `tags` are silently ignored.
    Ignored,
    /// Item `tags` are applied to the members a request creates and silently ignored on
    /// those it updates (Mailchimp's changelog of 2022 speaks of adding contacts with tags;
    /// what an update does with them is reported nowhere).
    NewMembersOnly,
}

impl Default for Variants {
    fn default() -> Self {
        Variants {
            archived_members: ArchivedMembers::Included,
            batch_schema_errors: BatchSchemaErrors::PerItem,
            updated_members: UpdatedMembers::All,
            date_merge_values: DateMergeValues::DisplayFormat,
            throttle_status: 429,
            abandoned_slot_ms: 0,
            ascii_local_parts: false,
            recent_signups: Vec::new(),
            recent_signups_rate: 0.0,
            recent_signups_ms: 0,
            tag_name_max: None,
            oauth_redirect: OAuthRedirect::Prefix,
            malformed_since: MalformedSince::Reject,
            batch_item_tags: BatchItemTags::Applied,
        }
    }
}

impl Variants {
    /// Every reading that is harder on a sync. The numbers are choices, not measurements:
    /// a client that gave up holds its slot 2 s longer; 1 new address in 100 is refused for
    /// 60 s; tag names are capped at 50 characters (the one report's figure).
    pub fn pessimistic() -> Variants {
        Variants {
            archived_members: ArchivedMembers::Excluded,
            batch_schema_errors: BatchSchemaErrors::WholeRequest,
            updated_members: UpdatedMembers::ChangedOnly,
            date_merge_values: DateMergeValues::DocumentedOnly,
            throttle_status: 403,
            abandoned_slot_ms: 2000,
            ascii_local_parts: true,
            recent_signups: Vec::new(),
            recent_signups_rate: 0.01,
            recent_signups_ms: 60_000,
            tag_name_max: Some(50),
            oauth_redirect: OAuthRedirect::Exact,
            malformed_since: MalformedSince::Ignore,
            batch_item_tags: BatchItemTags::Ignored,
        }
    }

    pub fn for_profile(profile: Profile) -> Variants {
        match profile {
            Profile::Default => Variants::default(),
            Profile::Pessimistic => Variants::pessimistic(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BatchCompliance {
    #[default]
    Error,
    Ignore,
}

/// Latency model: every request costs `base_ms + per_item_ms x items`, where items are the
/// members of a batch upsert, the members added and removed in a segment batch, and 1 for any
/// other request. The time is spent while the request holds its in-flight slot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    pub base_ms: f64,
    pub per_item_ms: f64,
}

impl Latency {
    pub fn for_items(&self, items: usize) -> std::time::Duration {
        let ms = self.base_ms + self.per_item_ms * items as f64;
        if ms <= 0.0 || !ms.is_finite() {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs_f64(ms / 1000.0)
        }
    }
}

/// Fault injection, decided per request with a seeded random generator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Share of requests (0..1) answered 500 "Internal Server Error" before they are applied.
    pub error_5xx_rate: f64,
    /// Share of requests (0..1) that start a burst of 429 answers for their account.
    pub burst_429_rate: f64,
    /// How many consecutive requests of the account a 429 burst refuses.
    pub burst_429_len: u32,
    /// Burst 429s come with no body, as Mailchimp sometimes answers under heavy load.
    pub bodyless_429: bool,
    /// Share of requests (0..1) that are answered late, after `slow_ms` more milliseconds.
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// Share of requests (0..1) whose connection is dropped after the request was applied:
    /// the client never learns the outcome, as when a network path fails mid-answer.
    pub drop_rate: f64,
    /// Seed of the fault generator, so that a failing run can be replayed.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_5xx_rate: 0.0,
            burst_429_rate: 0.0,
            burst_429_len: 5,
            bodyless_429: false,
            slow_rate: 0.0,
            slow_ms: 0,
            drop_rate: 0.0,
            seed: 1,
        }
    }
}

/// How long a `/batches` job spends in each state, and per operation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BatchTiming {
    /// Time spent in each of `pending`, `preprocessing` and `finalizing`.
    pub state_ms: u64,
    /// Time spent per operation while `started` (Mailchimp was seen at about 16 ops/s).
    pub op_ms: f64,
    /// Batches an account may have that are not finished yet.
    pub max_pending: usize,
    /// How long a minted `response_body_url` stays valid (Mailchimp: 10 minutes).
    pub url_ttl_secs: u64,
}

impl Default for BatchTiming {
    fn default() -> Self {
        BatchTiming {
            state_ms: 0,
            op_ms: 0.0,
            max_pending: 500,
            url_ttl_secs: 600,
        }
    }
}

/// The domains Mailchimp refuses as fake-looking by default.
pub const DEFAULT_REFUSED_DOMAINS: &[&str] = &[
    "example.com",
    "example.net",
    "example.org",
    "test.com",
    "mailinator.com",
    "yopmail.com",
    "guerrillamail.com",
    "10minutemail.com",
];

/// The profile of `MAILCHIMP_SIM_PROFILE` (see [`Profile::from_env`]); without it, the
/// settings the simulator always had.
impl Default for Settings {
    fn default() -> Self {
        Settings::for_profile(Profile::from_env())
    }
}

impl Settings {
    /// The default settings with the variants of `profile`, whatever the environment says.
    pub fn for_profile(profile: Profile) -> Settings {
        Settings {
            max_in_flight: 10,
            contact_limit: None,
            refused_domains: DEFAULT_REFUSED_DOMAINS
                .iter()
                .map(|d| d.to_string())
                .collect(),
            batch_compliance: BatchCompliance::Error,
            latency: Latency::default(),
            faults: Faults::default(),
            batches: BatchTiming::default(),
            profile,
            variants: Variants::for_profile(profile),
        }
    }

    /// The default settings with every pessimistic reading.
    pub fn pessimistic() -> Settings {
        Settings::for_profile(Profile::Pessimistic)
    }
}

/// A registered OAuth2 application of the simulated login server.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    /// When set, `redirect_uri` must start with it (`variants.oauth_redirect` `prefix`) or
    /// equal it (`exact`), as Mailchimp checks the registered URI.
    #[serde(default)]
    pub redirect_uri: Option<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// Everything the simulator starts with. `SimConfig::default()` takes its settings from
/// [`Settings::default`], so `MAILCHIMP_SIM_PROFILE=pessimistic` applies to it.
#[derive(Clone, Debug, Default)]
pub struct SimConfig {
    /// One account per API key (Mailchimp's format: 32 hex characters, a dash, the data center).
    pub api_keys: Vec<String>,
    pub oauth_clients: Vec<OAuthClient>,
    pub settings: Settings,
}

impl SimConfig {
    /// No accounts yet, and the default settings with the variants of `profile`, whatever
    /// the environment says.
    pub fn for_profile(profile: Profile) -> SimConfig {
        SimConfig {
            api_keys: Vec::new(),
            oauth_clients: Vec::new(),
            settings: Settings::for_profile(profile),
        }
    }

    /// Every pessimistic reading, whatever the environment says.
    pub fn pessimistic() -> SimConfig {
        SimConfig::for_profile(Profile::Pessimistic)
    }
}
