//! The export's calls to the gateway's HTTPS API, in pseudonymous UIDs, over the
//! clinician side's one API client ([`GatewayApi`]): the series thumbnails printed on
//! the index and label ([`Session::thumbnail`]) and the acknowledgement that a study
//! went to a medium ([`Session::acknowledge`]).

use crate::clinician::gateway_api::{self, FeedError, GatewayApi};
use crate::config::Config;
use crate::credentials::Login;

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
    /// The gateway has no lifecycle route (an older gateway, 404): nothing recorded.
    NoRoute,
    /// Refused or unreachable, with the reason.
    Failed(String),
}

/// A logged-in session with the gateway's API.
pub(super) struct Session(GatewayApi);

impl Session {
    /// Logs in as `login` at the configured admin URL.
    pub(super) async fn login(config: &Config, login: &Login) -> anyhow::Result<Session> {
        Ok(Session(GatewayApi::login(config, login).await?))
    }

    /// The gateway's thumbnail of one series (pseudonymous UIDs), or why there is none.
    pub(super) async fn thumbnail(&self, study: &str, series: &str) -> Result<Thumbnail, String> {
        match self.0.thumbnail(study, series).await {
            Ok(gateway_api::Thumbnail::Image(bytes, ext)) => Ok(Thumbnail {
                bytes,
                png: ext == "png",
            }),
            Ok(gateway_api::Thumbnail::None(status, why)) => {
                Err(format!("the gateway answered {status}: {why}"))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Tells the gateway that the study `study` (pseudonymous UID) was exported to
    /// `medium`: the facility's answer `exported` to an expiry notice, after which the
    /// gateway's policy may hide the study until its purge.
    pub(super) async fn acknowledge(&self, study: &str, medium: &str) -> Acknowledged {
        let body = serde_json::json!({"answer": "exported", "medium": medium});
        match self.0.answer(study, &body).await {
            Ok(_) => Acknowledged::Yes,
            Err(FeedError::Status { status: 404, .. }) => Acknowledged::NoRoute,
            Err(e) => Acknowledged::Failed(e.to_string()),
        }
    }

    /// Ends the session (the token is revoked at the gateway).
    pub(super) async fn logout(self) {
        self.0.logout().await;
    }
}
