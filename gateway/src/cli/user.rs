//! `pacs-gateway user ...`: adding users, setting their passwords, disabling,
//! unlocking and listing them.
//!
//! Passwords are read from the terminal (asked twice, not echoed) or, when stdin is
//! not a terminal, as one line from stdin; never from the command line, where other
//! users and shell history could see them.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use zeroize::Zeroizing;

use super::lookup;
use crate::auth::{AuthSettings, Password, Role, Username, hash_password};
use crate::config::Config;
use crate::db::Index;
use crate::db::users::UserAccount;

/// `user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to a facility; the password is prompted for (or read as one line
    /// from stdin).
    Add {
        /// Facility name.
        facility: String,
        /// User name (letters, digits, '.', '_', '@', '-'; unique across facilities).
        username: String,
        /// What the user may do.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Set a user's password (prompted for, or one line from stdin); also lifts a
    /// lockout.
    Passwd {
        /// User name.
        username: String,
    },
    /// Refuse every login of a user.
    Disable {
        /// User name.
        username: String,
    },
    /// Allow a disabled user to log in again.
    Enable {
        /// User name.
        username: String,
    },
    /// Lift a user's lockout after repeated failed logins.
    Unlock {
        /// User name.
        username: String,
    },
    /// List users (never their password hashes).
    List {
        /// Only this facility's users.
        #[arg(long)]
        facility: Option<String>,
    },
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Queries and retrieves the facility's studies.
    Clinician,
    /// Manages the facility's users, devices and rules.
    FacilityAdmin,
    /// Runs the gateway.
    Operator,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Clinician => Role::Clinician,
            RoleArg::FacilityAdmin => Role::FacilityAdmin,
            RoleArg::Operator => Role::Operator,
        }
    }
}

/// Runs a `user` command.
pub(super) async fn run(config: Config, cmd: UserCommand) -> anyhow::Result<()> {
    let index = crate::app::open_index(&config).await?;
    let settings = &config.auth;
    match cmd {
        UserCommand::Add {
            facility,
            username,
            role,
        } => {
            let facility = lookup(&index, &facility).await?;
            let username = parse_username(&username)?;
            if index.user_by_name(&username).await?.is_some() {
                bail!("user {username} already exists");
            }
            let hash = new_password_hash(settings, &username).await?;
            let user = index
                .create_user(facility.id, &username, role.into(), &hash)
                .await?;
            println!(
                "user {} added to facility {} as {} (id {})",
                user.username, facility.name, user.role, user.id
            );
        }
        UserCommand::Passwd { username } => {
            let account = existing(&index, &username).await?;
            let hash = new_password_hash(settings, &account.user.username).await?;
            index.set_password(account.user.id, &hash, None).await?;
            println!("password of {} changed", account.user.username);
        }
        UserCommand::Disable { username } => {
            let account = existing(&index, &username).await?;
            index.set_disabled(account.user.id, true).await?;
            println!("user {} disabled", account.user.username);
        }
        UserCommand::Enable { username } => {
            let account = existing(&index, &username).await?;
            index.set_disabled(account.user.id, false).await?;
            println!("user {} enabled", account.user.username);
        }
        UserCommand::Unlock { username } => {
            let account = existing(&index, &username).await?;
            index.reset_user_failures(account.user.id).await?;
            println!("user {} unlocked", account.user.username);
        }
        UserCommand::List { facility } => {
            let facility = match facility {
                Some(name) => Some(lookup(&index, &name).await?.id),
                None => None,
            };
            print_users(&index.list_users(facility).await?);
        }
    }
    index.close().await;
    Ok(())
}

fn parse_username(name: &str) -> anyhow::Result<Username> {
    Username::parse(name).map_err(anyhow::Error::msg)
}

async fn existing(index: &Index, name: &str) -> anyhow::Result<UserAccount> {
    match index.user_by_name(&parse_username(name)?).await? {
        Some(account) => Ok(account),
        None => bail!("no user named {name}; list them with `pacs-gateway user list`"),
    }
}

/// Reads a new password for `username` and hashes it, both off the async workers.
async fn new_password_hash(settings: &AuthSettings, username: &Username) -> anyhow::Result<String> {
    let settings = settings.clone();
    let username = username.clone();
    tokio::task::spawn_blocking(move || {
        let password = read_new_password(&username)?;
        Ok(hash_password(&settings, &password)?)
    })
    .await
    .context("password hashing stopped")?
}

fn read_new_password(username: &Username) -> anyhow::Result<Password> {
    let password = if std::io::stdin().is_terminal() {
        let first = Password::new(
            rpassword::prompt_password(format!("New password for {username}: "))
                .context("cannot read the password from the terminal")?,
        );
        first.check_policy()?;
        let again = Password::new(
            rpassword::prompt_password("Repeat the password: ")
                .context("cannot read the password from the terminal")?,
        );
        if first.expose() != again.expose() {
            bail!("the two passwords differ; nothing changed");
        }
        first
    } else {
        let mut line = Zeroizing::new(String::new());
        let read = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        if read == 0 {
            bail!("no password on stdin: pipe one line, or run in a terminal to be prompted");
        }
        Password::new(line.trim_end_matches(['\n', '\r']))
    };
    password.check_policy()?;
    Ok(password)
}

fn print_users(users: &[UserAccount]) {
    let now = crate::db::now_millis();
    println!(
        "{:<6} {:<32} {:<24} {:<15} status",
        "id", "user", "facility", "role"
    );
    for account in users {
        let status = if account.disabled {
            "disabled".to_string()
        } else if let Some(until) = account.locked_until.filter(|&t| t > now) {
            format!("locked for {}s", (until - now + 999) / 1000)
        } else {
            "active".to_string()
        };
        println!(
            "{:<6} {:<32} {:<24} {:<15} {}",
            account.user.id,
            account.user.username.as_str(),
            account.facility_name.as_str(),
            account.user.role.as_str(),
            status
        );
    }
}
