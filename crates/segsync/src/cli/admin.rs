//! `segsync serve` and `segsync user ...`: the server and its people.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use super::{op_failure, usage, Failure, EXIT_OK};
use crate::app::App;
use crate::engine::RunSettings;
use crate::ops::{self, Actor};
use crate::server::{self, OAuthApp, ServeConfig};
use crate::state::Role;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// The URL people reach the server at, if not http://LISTEN (behind a proxy, with TLS).
    #[arg(long)]
    pub public_url: Option<url::Url>,
    /// Mailchimp's OAuth2 login server ("Authenticate with Mailchimp").
    #[arg(long, default_value = "https://login.mailchimp.com/")]
    pub oauth_login_url: url::Url,
    /// The client id of this installation's Mailchimp OAuth2 app.
    #[arg(long, env = "SEGSYNC_OAUTH_CLIENT_ID")]
    pub oauth_client_id: Option<String>,
    /// The environment variable holding the app's client secret (never on the command line).
    #[arg(long, default_value = "SEGSYNC_OAUTH_CLIENT_SECRET")]
    pub oauth_client_secret_env: String,
    /// Mark the session cookie Secure (on by default when --public-url is https).
    #[arg(long)]
    pub secure_cookies: bool,
    /// Seconds before a Mailchimp request times out.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// How often the scheduler looks at the clock, in seconds.
    #[arg(long, default_value_t = 0.5)]
    pub scheduler_tick: f64,
    /// How many scheduled runs this server takes on at once (the others wait in the queue,
    /// for this server or another one sharing a PostgreSQL state store).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_runs: u16,
    /// How many segment predicates (previews, counts, checks) requests may run at once; more
    /// wait for a free slot, and get 503 after 10 s.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub predicate_slots: u16,
    /// Seconds a client has to send a request's headers; a connection that sends nothing or
    /// half a header is closed then (also the longest a kept-alive connection sits idle).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub header_read_timeout: f64,
    /// Seconds a request's body may pause between two parts before the request fails (an
    /// upload that keeps sending is not limited).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub body_read_timeout: f64,
    /// Connections served at once; further ones wait to be accepted until one closes.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Seconds the requests in progress have to finish after SIGTERM or Ctrl-C; connections
    /// still open then are closed (running exports then stop at their next checkpoint).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub shutdown_grace: f64,
    /// With a PostgreSQL state store: seconds a worker's hold on a connection slot of a
    /// Mailchimp account lasts unless renewed (it is renewed every third of that while the
    /// worker lives); a worker that dies gives its slots back within this time.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub slot_lease: f64,
    /// Seconds between the starts of scheduled runs of exports on one Mailchimp account that
    /// fall due together (0: start them all at once).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub stagger: f64,
}

/// The HTTP limits of `serve`'s flags, checked.
fn http_limits(args: &ServeArgs) -> Result<server::http::HttpLimits, Failure> {
    let seconds = |flag: &str, v: f64, min: f64, max: f64| {
        if (min..=max).contains(&v) {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(usage(anyhow!(
                "--{flag} takes {min} to {max} seconds, not {v}"
            )))
        }
    };
    Ok(server::http::HttpLimits {
        header_read_timeout: seconds("header-read-timeout", args.header_read_timeout, 0.1, 3600.0)?,
        body_read_timeout: seconds("body-read-timeout", args.body_read_timeout, 0.1, 86_400.0)?,
        max_connections: args.max_connections as usize,
        shutdown_grace: seconds("shutdown-grace", args.shutdown_grace, 0.0, 3600.0)?,
    })
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Add a user of `segsync serve` (the first one must be an admin). The password comes
    /// from --password-env, --password-file or standard input, never the command line.
    Add {
        name: String,
        #[arg(long, value_parser = ["admin", "contributor", "viewer"])]
        role: String,
        #[arg(long, group = "password")]
        password_env: Option<String>,
        #[arg(long, group = "password")]
        password_file: Option<PathBuf>,
    },
    List,
    /// Change a user's role.
    Role {
        name: String,
        #[arg(value_parser = ["admin", "contributor", "viewer"])]
        role: String,
    },
    /// Set a user's password (same sources as `add`); their sessions end and their API
    /// tokens are revoked.
    Password {
        name: String,
        #[arg(long, group = "password")]
        password_env: Option<String>,
        #[arg(long, group = "password")]
        password_file: Option<PathBuf>,
    },
    Remove {
        name: String,
    },
    /// Create an API token for scripts; it is printed once and stored hashed.
    Token {
        name: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

fn read_password(env: Option<String>, file: Option<PathBuf>) -> Result<SecretString, Failure> {
    let text = if let Some(var) = env {
        std::env::var(&var)
            .map_err(|_| usage(anyhow!("--password-env {var}: the variable is not set")))?
    } else if let Some(path) = file {
        std::fs::read_to_string(&path)
            .map_err(|e| usage(anyhow!("--password-file {}: {e}", path.display())))?
    } else {
        eprintln!("password (one line on standard input):");
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| usage(anyhow!("reading the password: {e}")))?;
        s
    };
    let line = text.lines().next().unwrap_or("").to_string();
    Ok(SecretString::from(line))
}

fn role(s: &str) -> Role {
    Role::parse(s).expect("clap allows only known roles")
}

pub fn user(app: &App, cmd: UserCmd) -> Result<i32, Failure> {
    let actor = Actor::cli();
    match cmd {
        UserCmd::Add {
            name,
            role: r,
            password_env,
            password_file,
        } => {
            let password = read_password(password_env, password_file)?;
            let u = ops::add_user(app, &actor, &name, role(&r), &password).map_err(op_failure)?;
            println!("user \"{}\" added ({})", u.name, u.role.as_str());
        }
        UserCmd::List => {
            for u in app.state()?.users()? {
                println!(
                    "{:<24} {:<12} since {}",
                    u.name,
                    u.role.as_str(),
                    u.created_at
                );
            }
        }
        UserCmd::Role { name, role: r } => {
            let u = ops::set_role(app, &actor, &name, role(&r)).map_err(op_failure)?;
            println!("user \"{}\" is now {}", u.name, u.role.as_str());
        }
        UserCmd::Password {
            name,
            password_env,
            password_file,
        } => {
            let password = read_password(password_env, password_file)?;
            let revoked = ops::set_password(app, &actor, &name, &password).map_err(op_failure)?;
            println!(
                "password of \"{name}\" changed; their sessions ended and their {revoked} API token(s) were revoked"
            );
        }
        UserCmd::Remove { name } => {
            ops::remove_user(app, &actor, &name).map_err(op_failure)?;
            println!("user \"{name}\" removed, with their sessions and API tokens");
        }
        UserCmd::Token { name, label } => {
            let (id, token) = ops::create_token(app, &actor, &name, &label).map_err(op_failure)?;
            eprintln!(
                "API token {id} for \"{name}\" (shown once; send it as Authorization: Bearer ...):"
            );
            println!("{}", token.expose_secret());
        }
    }
    Ok(EXIT_OK)
}

pub async fn serve(app: &App, args: ServeArgs) -> Result<i32, Failure> {
    let http = http_limits(&args)?;
    let oauth = match args.oauth_client_id {
        Some(client_id) => {
            let secret = std::env::var(&args.oauth_client_secret_env).map_err(|_| {
                usage(anyhow!(
                    "--oauth-client-id is set but {} (the client secret) is not",
                    args.oauth_client_secret_env
                ))
            })?;
            Some(OAuthApp {
                login_url: args.oauth_login_url,
                client_id,
                client_secret: SecretString::from(secret),
            })
        }
        None => None,
    };
    if !(0.01..=60.0).contains(&args.scheduler_tick) {
        return Err(usage(anyhow!("--scheduler-tick takes 0.01 to 60 seconds")));
    }
    if !(0.001..=86_400.0).contains(&args.timeout) {
        return Err(usage(anyhow!("--timeout takes 0.001 to 86400 seconds")));
    }
    if !(1.0..=3_600.0).contains(&args.slot_lease) {
        return Err(usage(anyhow!(
            "--slot-lease takes 1 to 3600 seconds, not {}",
            args.slot_lease
        )));
    }
    if !(0.0..=600.0).contains(&args.stagger) {
        return Err(usage(anyhow!(
            "--stagger takes 0 to 600 seconds, not {}",
            args.stagger
        )));
    }
    crate::budget::share_across_processes(app, Duration::from_secs_f64(args.slot_lease))?;
    let secure = args.secure_cookies
        || args
            .public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https");
    let mut config = ServeConfig::new(args.listen);
    config.public_url = args.public_url;
    config.oauth = oauth;
    config.secure_cookies = secure;
    config.scheduler_tick = Duration::from_secs_f64(args.scheduler_tick);
    config.max_runs = usize::from(args.max_runs);
    config.stagger = Duration::from_secs_f64(args.stagger);
    config.predicate_slots = usize::from(args.predicate_slots);
    config.http = http;
    config.smtp_password = std::env::var(server::alerts::password::ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .map(SecretString::from);
    config.run_settings = RunSettings {
        timeout: Duration::from_secs_f64(args.timeout),
        ..Default::default()
    };
    let users = app.state()?.users()?;
    let server = server::Server::bind(app.clone(), config)
        .await
        .map_err(usage)?;
    // The first line on standard output: scripts and tests read the address from it.
    println!("segsync serve: listening on http://{}", server.local_addr);
    if users.is_empty() {
        println!("no users yet: add the first admin with `segsync user add NAME --role admin`");
    }
    if let Some(notice) = server::alerts::legacy_notice(app) {
        println!("{notice}");
    }
    server.run(server::shutdown_signal()).await?;
    println!("segsync serve: stopped");
    Ok(EXIT_OK)
}
