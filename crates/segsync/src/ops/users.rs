//! Users, their passwords (argon2id) and their API tokens (only a hash is stored). Admins
//! manage users; everyone may change their own password and tokens.

use secrecy::SecretString;

use super::{audit, check_name, require, Actor, OpError, OpResult};
use crate::app::App;
use crate::state::{Role, UserRecord};

/// Hashes a password with argon2id (a PHC string with its own salt).
pub fn hash_password(password: &SecretString) -> OpResult<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    use secrecy::ExposeSecret;
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| OpError::Internal(anyhow::anyhow!("hashing the password: {e}")))
}

/// Whether `password` matches the stored PHC hash.
pub fn verify_password(hash: &str, password: &SecretString) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    use secrecy::ExposeSecret;
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn check_password(password: &SecretString) -> OpResult<()> {
    use secrecy::ExposeSecret;
    let n = password.expose_secret().chars().count();
    if n < 8 {
        return Err(OpError::Invalid(format!(
            "a password has at least 8 characters (this one has {n})"
        )));
    }
    Ok(())
}

/// Adds a user. The very first user of an installation must be an admin.
pub fn add_user(
    app: &App,
    actor: &Actor,
    name: &str,
    role: Role,
    password: &SecretString,
) -> OpResult<UserRecord> {
    require(actor, Role::Admin, "adding a user")?;
    check_name("user", name)?;
    if name.starts_with("cli:") {
        return Err(OpError::Invalid(
            "user names starting with \"cli:\" are kept for the command line".into(),
        ));
    }
    check_password(password)?;
    let state = app.state()?;
    if role != Role::Admin && state.count_admins()? == 0 {
        return Err(OpError::Invalid(
            "the first user must be an admin (--role admin): only admins can add the others".into(),
        ));
    }
    state.add_user(name, role, &hash_password(password)?)?;
    audit(
        &state,
        actor,
        "user.add",
        name,
        &format!("role {}", role.as_str()),
    )?;
    Ok(state.user(name)?)
}

pub fn set_role(app: &App, actor: &Actor, name: &str, role: Role) -> OpResult<UserRecord> {
    require(actor, Role::Admin, "changing a user's role")?;
    let state = app.state()?;
    let u = state.user(name)?;
    if u.role == Role::Admin && role != Role::Admin && state.count_admins()? == 1 {
        return Err(OpError::Conflict(format!(
            "{name} is the last admin: make another user admin first"
        )));
    }
    state.set_role(name, role)?;
    audit(
        &state,
        actor,
        "user.role",
        name,
        &format!("{} -> {}", u.role.as_str(), role.as_str()),
    )?;
    Ok(state.user(name)?)
}

/// Sets a password: admins for anyone, everyone for themselves (the server asks them for
/// their current one first). Whatever the old password let in goes with it: every session
/// of the user ends and every API token of theirs is revoked. The number of tokens revoked.
pub fn set_password(
    app: &App,
    actor: &Actor,
    name: &str,
    password: &SecretString,
) -> OpResult<usize> {
    if actor.name != name {
        require(actor, Role::Admin, "setting another user's password")?;
    }
    check_password(password)?;
    let state = app.state()?;
    state.set_password_hash(name, &hash_password(password)?)?;
    let tokens = state.tokens(Some(name))?;
    for t in &tokens {
        state.revoke_token(t.id)?;
    }
    audit(
        &state,
        actor,
        "user.password",
        name,
        &format!(
            "password changed; sessions ended, {} API token(s) revoked",
            tokens.len()
        ),
    )?;
    Ok(tokens.len())
}

pub fn remove_user(app: &App, actor: &Actor, name: &str) -> OpResult<()> {
    require(actor, Role::Admin, "removing a user")?;
    let state = app.state()?;
    let u = state.user(name)?;
    if u.role == Role::Admin && state.count_admins()? == 1 {
        return Err(OpError::Conflict(format!(
            "{name} is the last admin and cannot be removed"
        )));
    }
    state.remove_user(name)?;
    audit(
        &state,
        actor,
        "user.remove",
        name,
        "sessions and API tokens revoked",
    )?;
    Ok(())
}

/// SHA-256 of a token or session id: what the store keeps instead of the value.
pub fn token_hash(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// A new random token (`sst_` + 43 characters of base64url: 256 bits).
pub fn new_token_value(prefix: &str) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Creates an API token for `user` (admins for anyone, everyone for themselves). The value
/// is returned once; only its hash is stored.
pub fn create_token(
    app: &App,
    actor: &Actor,
    user: &str,
    label: &str,
) -> OpResult<(i64, SecretString)> {
    if actor.name != user {
        require(actor, Role::Admin, "creating a token for another user")?;
    }
    check_name("token label", label)?;
    let state = app.state()?;
    state.user(user)?;
    let value = new_token_value("sst_");
    let id = state.add_token(user, label, &token_hash(&value))?;
    audit(
        &state,
        actor,
        "token.create",
        user,
        &format!("token {id} \"{label}\""),
    )?;
    Ok((id, SecretString::from(value)))
}

pub fn revoke_token(app: &App, actor: &Actor, id: i64) -> OpResult<()> {
    let state = app.state()?;
    let t = state
        .tokens(None)?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| OpError::NotFound(format!("no API token {id}")))?;
    if t.user != actor.name {
        require(actor, Role::Admin, "revoking another user's token")?;
    }
    state.revoke_token(id)?;
    audit(
        &state,
        actor,
        "token.revoke",
        &t.user,
        &format!("token {id} \"{}\"", t.label),
    )?;
    Ok(())
}
