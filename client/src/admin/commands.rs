//! What each `pacs-client admin` command does: one or a few API calls, then a table
//! (or JSON) on standard output.

use std::io::{IsTerminal, Write};

use reqwest::Method;
use serde_json::json;
use time::OffsetDateTime;

use super::api::{AdminClient, LoginResponse, Me, Usage};
use super::args::AdminCommand;
use super::format::{short_time, usage_report};
use super::token::{self, Token};
use super::{AdminError, PASSWORD_ENV, manage, password, records};
use crate::config::Config;

/// The admin client for the configured URL and CA.
fn client(config: &Config) -> Result<AdminClient, AdminError> {
    let ca = config.gateway.ca.as_deref().ok_or_else(|| {
        AdminError::Config(
            "`[gateway] ca` is not set: the admin API is trusted through the gateway CA (the ca.crt from enrollment)".into(),
        )
    })?;
    let pem = std::fs::read(ca).map_err(|source| AdminError::Io {
        path: ca.into(),
        source,
    })?;
    AdminClient::new(&config.gateway.admin_url(), &pem)
}

/// A logged-in session: the client and a token that is still good.
pub(super) struct Session {
    pub(super) api: AdminClient,
    pub(super) token: Token,
}

impl Session {
    fn open(config: &Config) -> Result<Session, AdminError> {
        let api = client(config)?;
        let token = token::read(&token::path(&config.data_dir))?;
        token.check(api.base(), OffsetDateTime::now_utc())?;
        Ok(Session { api, token })
    }

    /// The facility named, or the logged-in user's.
    pub(super) fn facility(&self, given: Option<String>) -> String {
        given.unwrap_or_else(|| self.token.user.facility.clone())
    }

    pub(super) fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        self.api.request(method, segments, Some(&self.token))
    }

    pub(super) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<T, AdminError> {
        self.api
            .json(self.request(Method::GET, segments), true)
            .await
    }

    /// A call whose answer has no body we need.
    pub(super) async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<serde_json::Value>,
    ) -> Result<(), AdminError> {
        let mut request = self.request(method, segments);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.api.send(request, true).await.map(drop)
    }
}

/// Runs one admin command.
pub(super) async fn execute(config: &Config, command: AdminCommand) -> Result<(), AdminError> {
    match command {
        AdminCommand::Login {
            user,
            password_stdin,
        } => login(config, user, password_stdin).await,
        AdminCommand::Logout => logout(config).await,
        AdminCommand::Whoami => {
            let session = Session::open(config)?;
            let me: Me = session.get(&["me"]).await?;
            println!(
                "{} ({}) of facility {} at {}; token valid until {}",
                me.username,
                me.role,
                me.facility,
                session.api.base(),
                short_time(&session.token.expires_at)
            );
            Ok(())
        }
        AdminCommand::Password { password_stdin } => {
            let session = Session::open(config)?;
            let current = password(password_stdin, PASSWORD_ENV, "current password: ", false)?;
            let new = manage::new_password(password_stdin)?;
            let body = json!({"current_password": current.as_str(), "new_password": new.as_str()});
            let request = session
                .request(Method::PUT, &["me", "password"])
                .json(&body);
            // A wrong current password is a 401 too: show the API's message, not "log in".
            session.api.send(request, false).await?;
            println!("password changed for {}", session.token.user.username);
            Ok(())
        }
        AdminCommand::Users(scoped) => manage::users(&Session::open(config)?, scoped).await,
        AdminCommand::Devices(scoped) => manage::devices(&Session::open(config)?, scoped).await,
        AdminCommand::Certs(scoped) => manage::certs(&Session::open(config)?, scoped).await,
        AdminCommand::Usage { facility, json } => {
            let session = Session::open(config)?;
            let facility = session.facility(facility);
            let usage: Usage = session.get(&["facilities", &facility, "usage"]).await?;
            if json {
                print_json(&usage)
            } else {
                print!("{}", usage_report(&facility, &usage));
                Ok(())
            }
        }
        AdminCommand::Audit(args) => records::audit(&Session::open(config)?, args).await,
        AdminCommand::Studies(scoped) => {
            records::studies(config, &Session::open(config)?, scoped).await
        }
        AdminCommand::Retention(scoped) => {
            records::retention(&Session::open(config)?, scoped).await
        }
    }
}

pub(super) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), AdminError> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| AdminError::Protocol(e.to_string()))?;
    println!("{text}");
    Ok(())
}

async fn login(config: &Config, user: Option<String>, from_stdin: bool) -> Result<(), AdminError> {
    let api = client(config)?;
    let username = match user {
        Some(user) => user,
        None if std::io::stdin().is_terminal() && !from_stdin => {
            eprint!("user: ");
            let _ = std::io::stderr().flush();
            super::stdin_line()?.trim().to_string()
        }
        None => {
            return Err(AdminError::Usage(
                "give the user name with --user NAME".into(),
            ));
        }
    };
    if username.is_empty() {
        return Err(AdminError::Usage("the user name is empty".into()));
    }
    let password = password(from_stdin, PASSWORD_ENV, "password: ", false)?;
    let request = api
        .request(Method::POST, &["login"], None)
        .json(&json!({ "username": username, "password": password.as_str() }));
    let answer: LoginResponse = api.json(request, false).await.map_err(|e| match e {
        AdminError::Api { message, .. } => AdminError::Refused(format!("login failed: {message}")),
        other => other,
    })?;
    let token = Token::new(api.base(), answer.token, answer.expires_at, answer.user);
    let path = token::path(&config.data_dir);
    token::save(&path, &token)?;
    println!(
        "logged in to {} as {} ({}, facility {}) until {}; token kept in {}",
        api.base(),
        token.user.username,
        token.user.role,
        token.user.facility,
        short_time(&token.expires_at),
        path.display()
    );
    Ok(())
}

async fn logout(config: &Config) -> Result<(), AdminError> {
    let path = token::path(&config.data_dir);
    let api = client(config)?;
    let token = match token::read(&path) {
        Ok(token) => token,
        Err(AdminError::NotLoggedIn(why)) => {
            token::remove(&path)?;
            println!("not logged in ({why})");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let revoked = match token.check(api.base(), OffsetDateTime::now_utc()) {
        Ok(()) => {
            let request = api.request(Method::POST, &["logout"], Some(&token));
            match api.send(request, true).await {
                Ok(_) => true,
                Err(AdminError::NotLoggedIn(_)) => false,
                Err(e) => return Err(e),
            }
        }
        Err(_) => false,
    };
    token::remove(&path)?;
    if revoked {
        println!("logged out: the token is revoked at the gateway and deleted here");
    } else {
        println!("logged out: the token had already expired or been revoked; deleted it here");
    }
    Ok(())
}
