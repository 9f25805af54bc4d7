//! The gateway's HTTPS API as a clinician's login uses it (`[gateway] admin_url`, the
//! gateway CA only): a bearer token from `POST /api/v1/login`, the facility's changes
//! feed (`GET /api/v1/changes`), series thumbnails from the gateway's DICOMweb
//! (`.../series/{uid}/thumbnail`, the server-made reduced image), the expiry notices
//! (`GET /api/v1/lifecycle`) and the facility's answers
//! (`POST /api/v1/studies/{uid}/lifecycle`). Shared by thumbnail sync and the
//! lifecycle commands. Everything here is pseudonymous.

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::credentials::Login;

/// Changes asked for per page.
const PAGE: u32 = 500;

/// Why the gateway did not answer as needed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Not reached.
    #[error("cannot reach the gateway's API at {url}: {message}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why (the whole chain).
        message: String,
    },
    /// The login was refused.
    #[error(
        "the gateway refused the login of {0} (wrong user name or password, disabled or locked account)"
    )]
    Refused(String),
    /// The token ran out (serve logs in again).
    #[error("the gateway's session ended")]
    SessionEnded,
    /// Any other answer.
    #[error("the gateway answered {status} to {what}: {message}")]
    Status {
        /// What was asked.
        what: String,
        /// HTTP status.
        status: u16,
        /// The gateway's message.
        message: String,
    },
}

/// One event of the changes feed (pseudonymous).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Change {
    /// Its place in the feed.
    pub seq: i64,
    /// `stored`, `series-added`, `updated`, `deleted`, ...
    pub kind: String,
    /// The study, as stored.
    pub study_uid: String,
}

/// A page of the feed.
#[derive(Debug, Deserialize)]
pub(crate) struct ChangesPage {
    /// The events.
    pub changes: Vec<Change>,
    /// The seq to ask after next.
    pub last: i64,
    /// Whether more follow at once.
    pub more: bool,
}

#[derive(Deserialize)]
struct LoginAnswer {
    token: String,
}

/// A thumbnail, or why the gateway made none.
#[derive(Debug)]
pub(crate) enum Thumbnail {
    /// The image and its file extension.
    Image(Vec<u8>, &'static str),
    /// Refused or not renderable: the status and the gateway's reason.
    None(u16, String),
}

/// A logged-in session with the gateway's API.
pub(crate) struct GatewayApi {
    http: reqwest::Client,
    base: String,
    token: Zeroizing<String>,
}

fn unreachable(url: &str, e: &reqwest::Error) -> FeedError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    FeedError::Unreachable {
        url: url.into(),
        message,
    }
}

/// The gateway's error message in a JSON error body, or the body's start.
async fn message(answer: reqwest::Response) -> String {
    let text = answer.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(200).collect())
}

impl GatewayApi {
    /// Logs in as `login`.
    pub(crate) async fn login(config: &Config, login: &Login) -> anyhow::Result<GatewayApi> {
        let http = crate::gateway::https(config)?;
        let base = config.gateway.admin_url().trim_end_matches('/').to_string();
        let url = format!("{base}/api/v1/login");
        let credentials = login.credentials();
        let dimse::scu::Credentials::UsernamePassword { username, password } = &credentials else {
            anyhow::bail!("the sync needs a user name and password");
        };
        let body = serde_json::json!({"username": username, "password": password});
        let answer = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        match answer.status().as_u16() {
            200 => {}
            401 | 403 => return Err(FeedError::Refused(username.clone()).into()),
            status => {
                return Err(FeedError::Status {
                    what: "the login".into(),
                    status,
                    message: message(answer).await,
                }
                .into());
            }
        }
        let token = answer
            .json::<LoginAnswer>()
            .await
            .map_err(|e| unreachable(&url, &e))?
            .token;
        Ok(GatewayApi {
            http,
            base,
            token: Zeroizing::new(token),
        })
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.http.get(url).bearer_auth(self.token.as_str())
    }

    /// Sends `request` (to `url`) and decodes a 200's JSON body; 401 ends the session,
    /// any other status is `what` refused with the gateway's message.
    async fn json<T: serde::de::DeserializeOwned>(
        request: reqwest::RequestBuilder,
        url: &str,
        what: &str,
    ) -> Result<T, FeedError> {
        let answer = request.send().await.map_err(|e| unreachable(url, &e))?;
        match answer.status().as_u16() {
            200 => answer.json().await.map_err(|e| unreachable(url, &e)),
            401 => Err(FeedError::SessionEnded),
            status => Err(FeedError::Status {
                what: what.into(),
                status,
                message: message(answer).await,
            }),
        }
    }

    /// The page of the facility's feed after `after`.
    pub(crate) async fn changes(&self, after: i64) -> Result<ChangesPage, FeedError> {
        let url = format!("{}/api/v1/changes?after={after}&limit={PAGE}", self.base);
        Self::json(self.get(&url), &url, "the changes feed").await
    }

    /// The gateway's thumbnail of one series (pseudonymous UIDs).
    pub(crate) async fn thumbnail(
        &self,
        study: &str,
        series: &str,
    ) -> Result<Thumbnail, FeedError> {
        let url = format!(
            "{}/dicom-web/studies/{study}/series/{series}/thumbnail",
            self.base
        );
        let answer = self
            .get(&url)
            .header("Accept", "image/jpeg, image/png;q=0.9")
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let status = answer.status().as_u16();
        if status == 401 {
            return Err(FeedError::SessionEnded);
        }
        if status != 200 {
            return Ok(Thumbnail::None(status, message(answer).await));
        }
        let ext = match answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
        {
            Some(t) if t.starts_with("image/png") => "png",
            _ => "jpg",
        };
        let bytes = answer.bytes().await.map_err(|e| unreachable(&url, &e))?;
        Ok(Thumbnail::Image(bytes.to_vec(), ext))
    }

    /// Ends the session (the token is revoked at the gateway).
    pub(crate) async fn logout(self) {
        let url = format!("{}/api/v1/logout", self.base);
        let _ = self
            .http
            .post(&url)
            .bearer_auth(self.token.as_str())
            .send()
            .await;
    }
}

/// One expiring or hidden study, as the gateway lists it (pseudonymous).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub(crate) struct Notice {
    /// Study Instance UID as stored.
    pub study_uid: String,
    /// `expiring` or `hidden`.
    pub state: String,
    /// Its labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// When its storage period ends.
    pub ends_at: Option<String>,
    /// When it will be hidden without an answer.
    pub hide_at: Option<String>,
    /// When it will be purged.
    pub purge_at: Option<String>,
    /// What may be answered.
    #[serde(default)]
    pub answers: Vec<String>,
}

#[derive(Deserialize)]
struct NoticePage {
    studies: Vec<Notice>,
}

#[derive(Deserialize)]
struct AnswerReply {
    state: String,
}

impl GatewayApi {
    /// The facility's expiring and hidden studies.
    pub(crate) async fn notices(&self) -> Result<Vec<Notice>, FeedError> {
        let url = format!("{}/api/v1/lifecycle", self.base);
        let page: NoticePage = Self::json(self.get(&url), &url, "the expiry notices").await?;
        Ok(page.studies)
    }

    /// Answers about one study (stored UID): `keep`, `exported`, `expire` or
    /// `restore`; the study's state after it (`purged` after expire).
    pub(crate) async fn answer(
        &self,
        study: &str,
        body: &serde_json::Value,
    ) -> Result<String, FeedError> {
        let url = format!("{}/api/v1/studies/{study}/lifecycle", self.base);
        let request = self
            .http
            .post(&url)
            .bearer_auth(self.token.as_str())
            .json(body);
        let reply: AnswerReply = Self::json(request, &url, "the answer").await?;
        Ok(reply.state)
    }
}
