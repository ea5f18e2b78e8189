//! `mailchimp-sim`: serves the simulated Mailchimp Marketing API until interrupted.
//! The first line of output is `mailchimp-sim listening on http://ADDR`, then one line per
//! account: `account ACCOUNT_ID api key KEY`.

use std::io::Write;

use clap::Parser;

// Answers are built from many small JSON values; glibc's allocator spent most of the time
// in the profile (malloc_consolidate), mimalloc does not.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use mailchimp_sim::config::{
    BatchCompliance, Faults, Latency, OAuthClient, Profile, Settings, SimConfig, Variants,
};

/// A faithful, offline simulator of the Mailchimp Marketing API v3 (under /3.0), its OAuth2
/// login server (/oauth2/authorize, /oauth2/token, /oauth2/metadata) and an admin API (/_sim).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on the first line).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// An API key (32 hex, dash, data center, e.g. 0123456789abcdef0123456789abcdef-us6); one
    /// account per key. Repeat for several accounts. Without any, one account with a made-up
    /// key is created and its key printed.
    #[arg(
        long = "api-key",
        env = "MAILCHIMP_SIM_API_KEYS",
        value_delimiter = ','
    )]
    api_keys: Vec<String>,
    /// A registered OAuth2 app as CLIENT_ID:CLIENT_SECRET[:REDIRECT_URI_PREFIX]. Repeatable.
    #[arg(
        long = "oauth-client",
        env = "MAILCHIMP_SIM_OAUTH_CLIENTS",
        value_delimiter = ','
    )]
    oauth_clients: Vec<String>,
    /// Requests one account may have in flight; the next gets 429 (Mailchimp: 10).
    #[arg(long, default_value_t = 10)]
    max_in_flight: usize,
    /// Contacts an account may hold over all audiences (archived ones not counted).
    #[arg(long)]
    contact_limit: Option<u64>,
    /// Comma-separated domains refused as fake-looking; replaces the default list
    /// (example.com, example.net, example.org, test.com, mailinator.com, yopmail.com, ...).
    #[arg(long, value_delimiter = ',')]
    refused_domains: Option<Vec<String>>,
    /// A batch-upsert item that would resubscribe an unsubscribed or cleaned member: `error`
    /// reports it in errors[], `ignore` keeps the status silently.
    #[arg(long, default_value = "error", value_parser = ["error", "ignore"])]
    batch_compliance: String,
    /// Latency of every request, in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    latency_base_ms: f64,
    /// Extra latency per item (members in a batch upsert or segment batch), in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    latency_per_item_ms: f64,
    /// Share (0..1) of requests answered with 500 before they are applied.
    #[arg(long, default_value_t = 0.0)]
    error_5xx_rate: f64,
    /// Share (0..1) of requests that start a burst of 429 answers.
    #[arg(long, default_value_t = 0.0)]
    burst_429_rate: f64,
    /// Length of a 429 burst, in requests.
    #[arg(long, default_value_t = 5)]
    burst_429_len: u32,
    /// Send burst 429s with no body, as Mailchimp sometimes does under heavy load.
    #[arg(long)]
    bodyless_429: bool,
    /// Share (0..1) of requests answered late by --slow-ms.
    #[arg(long, default_value_t = 0.0)]
    slow_rate: f64,
    #[arg(long, default_value_t = 0)]
    slow_ms: u64,
    /// Share (0..1) of requests whose connection is dropped after they were applied.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Seed of the fault generator.
    #[arg(long, default_value_t = 1)]
    fault_seed: u64,
    /// Time a /batches job spends in each of pending, preprocessing and finalizing (ms).
    #[arg(long, default_value_t = 0)]
    batch_state_ms: u64,
    /// Time a /batches job spends per operation (ms).
    #[arg(long, default_value_t = 0.0)]
    batch_op_ms: f64,

    /// The readings of Mailchimp's behaviour to start from: `default` (the simulator as it
    /// always was) or `pessimistic` (every reading that is harder on a sync). The flags below
    /// override it one by one, wherever they stand on the command line.
    #[arg(long, env = "MAILCHIMP_SIM_PROFILE", default_value = "default", value_parser = ["default", "pessimistic"])]
    profile: String,
    /// Archived contacts in member lists without a status filter: `included`, or `excluded`
    /// unless status=archived is asked for [default profile: included; pessimistic: excluded].
    #[arg(long, value_parser = ["included", "excluded"])]
    archived_members: Option<String>,
    /// A batch-upsert item that fails the schema: `per_item` (an entry of errors[] in a 200)
    /// or `whole_request` (400 Invalid Resource, nothing applied) [per_item; whole_request].
    #[arg(long, value_parser = ["per_item", "whole_request"])]
    batch_schema_errors: Option<String>,
    /// Members a batch upsert lists as updated: `all` it was sent, or `changed_only`
    /// [all; changed_only].
    #[arg(long, value_parser = ["all", "changed_only"])]
    updated_members: Option<String>,
    /// Date and birthday merge values: `display_format` (any documented form, read by the
    /// field's format) or `documented_only` (YYYY-MM-DD, MM/DD) [display_format; documented_only].
    #[arg(long, value_parser = ["display_format", "documented_only"])]
    date_merge_values: Option<String>,
    /// The answer over the in-flight cap: 429 with Mailchimp's body, or 403 with no body
    /// [429; 403].
    #[arg(long, value_parser = ["429", "403"])]
    throttle_status: Option<String>,
    /// A request its client gave up on keeps its in-flight slot until its handling would have
    /// ended plus this many ms; 0 frees it at once [0; 2000].
    #[arg(long)]
    abandoned_slot_ms: Option<u64>,
    /// Refuse addresses with non-ASCII characters before the @ (`--ascii-local-parts=false`
    /// turns it off) [false; true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    ascii_local_parts: Option<bool>,
    /// Comma-separated addresses refused as new members: "has signed up to a lot of lists
    /// very recently" [none; none].
    #[arg(long, value_delimiter = ',')]
    recent_signups: Option<Vec<String>>,
    /// Share (0..1) of new addresses, drawn by --fault-seed, refused that way on their first
    /// attempt [0; 0.01].
    #[arg(long)]
    recent_signups_rate: Option<f64>,
    /// How long (ms) after its first refusal such an address is refused [0; 60000].
    #[arg(long)]
    recent_signups_ms: Option<u64>,
    /// The longest name (characters) of a new tag (static segment); 0 for no cap
    /// [no cap; 50].
    #[arg(long)]
    tag_name_max: Option<usize>,
    /// How an OAuth2 redirect_uri must match the app's registered one: `prefix` or `exact`
    /// [prefix; exact].
    #[arg(long, value_parser = ["prefix", "exact"])]
    oauth_redirect: Option<String>,
    /// A malformed since_last_changed / before_last_changed: `reject` (400) or `ignore` (the
    /// filter is dropped; fractional seconds count as malformed) [reject; ignore].
    #[arg(long, value_parser = ["reject", "ignore"])]
    malformed_since: Option<String>,
    /// `tags` of batch-upsert items: `applied`, `ignored`, or `new_members_only` (applied
    /// to created members, ignored on updated ones) [applied; ignored].
    #[arg(long, value_parser = ["applied", "ignored", "new_members_only"])]
    batch_item_tags: Option<String>,
}

/// A snake_case value of one of the settings' enums, as the flag's value parser allowed it.
fn variant<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .expect("the flag's value parser admits only the enum's values")
}

/// The variants of `--profile`, each overridden by its own flag when given.
fn variants(args: &Args) -> Result<(Profile, Variants), String> {
    let profile = Profile::parse(&args.profile).ok_or("--profile is default or pessimistic")?;
    let mut v = Variants::for_profile(profile);
    if let Some(s) = &args.archived_members {
        v.archived_members = variant(s);
    }
    if let Some(s) = &args.batch_schema_errors {
        v.batch_schema_errors = variant(s);
    }
    if let Some(s) = &args.updated_members {
        v.updated_members = variant(s);
    }
    if let Some(s) = &args.date_merge_values {
        v.date_merge_values = variant(s);
    }
    if let Some(s) = &args.throttle_status {
        v.throttle_status = s.parse().expect("429 or 403");
    }
    if let Some(ms) = args.abandoned_slot_ms {
        v.abandoned_slot_ms = ms;
    }
    if let Some(b) = args.ascii_local_parts {
        v.ascii_local_parts = b;
    }
    if let Some(a) = &args.recent_signups {
        v.recent_signups = a.clone();
    }
    if let Some(r) = args.recent_signups_rate {
        if !(0.0..=1.0).contains(&r) {
            return Err(format!(
                "--recent-signups-rate must be between 0 and 1, got {r}"
            ));
        }
        v.recent_signups_rate = r;
    }
    if let Some(ms) = args.recent_signups_ms {
        v.recent_signups_ms = ms;
    }
    if let Some(n) = args.tag_name_max {
        v.tag_name_max = (n > 0).then_some(n);
    }
    if let Some(s) = &args.oauth_redirect {
        v.oauth_redirect = variant(s);
    }
    if let Some(s) = &args.malformed_since {
        v.malformed_since = variant(s);
    }
    if let Some(s) = &args.batch_item_tags {
        v.batch_item_tags = variant(s);
    }
    Ok((profile, v))
}

fn parse_client(s: &str) -> Result<OAuthClient, String> {
    let mut parts = s.splitn(3, ':');
    let id = parts.next().unwrap_or("");
    let secret = parts.next().unwrap_or("");
    if id.is_empty() || secret.is_empty() {
        return Err("--oauth-client takes CLIENT_ID:CLIENT_SECRET[:REDIRECT_URI_PREFIX]".into());
    }
    Ok(OAuthClient {
        client_id: id.into(),
        client_secret: secret.into(),
        redirect_uri: parts.next().map(String::from),
    })
}

fn config(args: &Args) -> Result<SimConfig, String> {
    let (profile, variants) = variants(args)?;
    let defaults = Settings::for_profile(profile);
    let settings = Settings {
        max_in_flight: args.max_in_flight,
        contact_limit: args.contact_limit,
        refused_domains: args
            .refused_domains
            .clone()
            .unwrap_or(defaults.refused_domains),
        batch_compliance: if args.batch_compliance == "ignore" {
            BatchCompliance::Ignore
        } else {
            BatchCompliance::Error
        },
        latency: Latency {
            base_ms: args.latency_base_ms,
            per_item_ms: args.latency_per_item_ms,
        },
        faults: Faults {
            error_5xx_rate: args.error_5xx_rate,
            burst_429_rate: args.burst_429_rate,
            burst_429_len: args.burst_429_len,
            bodyless_429: args.bodyless_429,
            slow_rate: args.slow_rate,
            slow_ms: args.slow_ms,
            drop_rate: args.drop_rate,
            seed: args.fault_seed,
        },
        batches: mailchimp_sim::config::BatchTiming {
            state_ms: args.batch_state_ms,
            op_ms: args.batch_op_ms,
            ..defaults.batches
        },
        profile,
        variants,
    };
    Ok(SimConfig {
        api_keys: args.api_keys.clone(),
        oauth_clients: args
            .oauth_clients
            .iter()
            .map(|c| parse_client(c))
            .collect::<Result<_, _>>()?,
        settings,
    })
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("MAILCHIMP_SIM_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mailchimp-sim: {e}");
            std::process::exit(2);
        }
    };
    let generate = config.api_keys.is_empty();
    let sim = match mailchimp_sim::Sim::new(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mailchimp-sim: --api-key: {e}");
            std::process::exit(2);
        }
    };
    if generate {
        sim.add_account(None).expect("a generated key is valid");
    }
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mailchimp-sim: cannot listen on {}: {e}", args.listen);
            std::process::exit(2);
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "mailchimp-sim listening on http://{addr}");
    for (key, account) in sim.credentials_snapshot() {
        let _ = writeln!(out, "account {account} api key {key}");
    }
    let _ = out.flush();
    drop(out);
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    };
    if let Err(e) = mailchimp_sim::serve(listener, sim, shutdown).await {
        eprintln!("mailchimp-sim: {e}");
        std::process::exit(1);
    }
}
