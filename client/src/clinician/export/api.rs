//! The export's calls to the gateway's HTTPS API, in pseudonymous UIDs: one logged-in
//! session (`POST /api/v1/login`, bearer token) for the series thumbnails printed on
//! the index and label ([`Session::thumbnail`]) and the acknowledgement that a study
//! went to a medium ([`Session::acknowledge`]).

use anyhow::{Context, bail};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::credentials::Login;

#[derive(Deserialize)]
struct LoginAnswer {
    token: String,
}

/// A thumbnail: the image bytes and whether it is a PNG (else JPEG).
pub(super) struct Thumbnail {
    pub bytes: Vec<u8>,
    pub png: bool,
}

/// What the gateway said to an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acknowledged {
    /// Recorded.
    Yes,
    /// The gateway has no lifecycle route yet (404): nothing recorded there.
    NoRoute,
    /// Refused or unreachable, with the reason.
    Failed(String),
}

/// A logged-in session with the gateway's API.
pub(super) struct Session {
    http: reqwest::Client,
    base: String,
    token: Zeroizing<String>,
}

/// The gateway's error message in a JSON error body, or the body's start.
async fn message(answer: reqwest::Response) -> String {
    let text = answer.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect())
}

impl Session {
    /// Logs in as `login` at the configured admin URL.
    pub(super) async fn login(config: &Config, login: &Login) -> anyhow::Result<Session> {
        let http = crate::gateway::https(config)?;
        let base = config.gateway.admin_url().trim_end_matches('/').to_string();
        let url = format!("{base}/api/v1/login");
        let dimse::scu::Credentials::UsernamePassword { username, password } = login.credentials()
        else {
            bail!("the gateway API needs a user name and password");
        };
        let body = serde_json::json!({"username": username, "password": password});
        let answer = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        if answer.status().as_u16() != 200 {
            let status = answer.status().as_u16();
            bail!(
                "the gateway refused the login ({status}): {}",
                message(answer).await
            );
        }
        let token = answer
            .json::<LoginAnswer>()
            .await
            .context("the gateway's login answer is not understood")?
            .token;
        Ok(Session {
            http,
            base,
            token: Zeroizing::new(token),
        })
    }

    /// The gateway's thumbnail of one series (pseudonymous UIDs), or why there is none.
    pub(super) async fn thumbnail(&self, study: &str, series: &str) -> Result<Thumbnail, String> {
        let url = format!(
            "{}/dicom-web/studies/{study}/series/{series}/thumbnail",
            self.base
        );
        let answer = self
            .http
            .get(&url)
            .bearer_auth(self.token.as_str())
            .header("Accept", "image/jpeg, image/png;q=0.9")
            .send()
            .await
            .map_err(|e| format!("cannot reach the gateway: {e}"))?;
        let status = answer.status().as_u16();
        if status != 200 {
            return Err(format!(
                "the gateway answered {status}: {}",
                message(answer).await
            ));
        }
        let png = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("image/png"));
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| format!("the thumbnail did not arrive: {e}"))?;
        Ok(Thumbnail {
            bytes: bytes.to_vec(),
            png,
        })
    }

    /// Tells the gateway that the study `study` (pseudonymous UID) was exported to
    /// `medium`: `POST /api/v1/studies/{study}/lifecycle` with
    /// `{"answer":"exported","medium":...}`, the facility's answer to an expiry
    /// notice, after which the gateway's policy may hide or purge the study.
    pub(super) async fn acknowledge(&self, study: &str, medium: &str) -> Acknowledged {
        let url = format!("{}/api/v1/studies/{study}/lifecycle", self.base);
        let body = serde_json::json!({"answer": "exported", "medium": medium});
        let answer = match self
            .http
            .post(&url)
            .bearer_auth(self.token.as_str())
            .json(&body)
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(e) => return Acknowledged::Failed(format!("cannot reach the gateway: {e}")),
        };
        match answer.status().as_u16() {
            200..=299 => Acknowledged::Yes,
            404 => Acknowledged::NoRoute,
            status => Acknowledged::Failed(format!(
                "the gateway answered {status}: {}",
                message(answer).await
            )),
        }
    }

    /// Ends the session (the token is revoked at the gateway).
    pub(super) async fn logout(self) {
        let url = format!("{}/api/v1/logout", self.base);
        let _ = self
            .http
            .post(&url)
            .bearer_auth(self.token.as_str())
            .send()
            .await;
    }
}
