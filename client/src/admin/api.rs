//! The gateway's admin HTTPS API as the client sees it (/work/plan/admin-api.md is
//! the contract): request and response bodies, and [`AdminClient`], which sends
//! them over HTTPS trusting only the gateway CA of `[gateway] ca`.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::AdminError;
use super::token::Token;

/// `{"username","facility","role"}`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Me {
    /// User name.
    pub username: String,
    /// Their facility.
    pub facility: String,
    /// clinician, facility-admin or operator.
    pub role: String,
}

/// `POST /api/v1/login` answer.
#[derive(Deserialize)]
pub struct LoginResponse {
    /// The bearer token.
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Who logged in.
    pub user: Me,
}

/// A user of a facility.
#[derive(Debug, Deserialize, Serialize)]
pub struct User {
    /// Name.
    pub username: String,
    /// Role.
    pub role: String,
    /// Disabled by an admin.
    pub disabled: bool,
    /// Locked after failed logins until then.
    pub locked_until: Option<String>,
    /// When created.
    pub created_at: String,
}

/// A C-MOVE destination.
#[derive(Debug, Deserialize, Serialize)]
pub struct Destination {
    /// AE title.
    pub ae_title: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// DICOM TLS.
    pub tls: bool,
}

/// A facility client certificate.
#[derive(Debug, Deserialize, Serialize)]
pub struct Certificate {
    /// Its id.
    pub id: i64,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Subject.
    pub subject: String,
    /// Issued at.
    pub created_at: String,
    /// Revoked at.
    pub revoked_at: Option<String>,
}

/// A newly issued certificate with its key.
#[derive(Deserialize)]
pub struct IssuedCertificate {
    /// Its id.
    pub id: i64,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Subject.
    pub subject: String,
    /// PEM certificate.
    pub certificate_pem: String,
    /// PEM private key.
    #[serde(deserialize_with = "de_secret")]
    pub private_key_pem: zeroize::Zeroizing<String>,
    /// PEM CA certificate.
    pub ca_pem: String,
}

/// Usage of one modality.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ModalityUsage {
    /// CT, MR, ... (absent when the instances carry none).
    pub modality: Option<String>,
    /// Studies.
    pub studies: u64,
    /// Instances.
    pub instances: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Usage of one month.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MonthUsage {
    /// `2026-11`.
    pub month: String,
    /// Instances received that month.
    pub instances: u64,
    /// Bytes.
    pub bytes: u64,
}

/// `GET .../usage`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Usage {
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Studies.
    pub studies: u64,
    /// Series.
    pub series: u64,
    /// Instances.
    pub instances: u64,
    /// Last instance received.
    pub last_ingest_at: Option<String>,
    /// Quota, if any.
    pub quota_bytes: Option<u64>,
    /// Warning threshold, percent of the quota.
    pub quota_warn_percent: u32,
    /// By modality.
    pub by_modality: Vec<ModalityUsage>,
    /// By month.
    pub by_month: Vec<MonthUsage>,
}

/// A study as the gateway stores it (pseudonymous values only).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Study {
    /// Study Instance UID (as stored).
    pub study_uid: String,
    /// Patient ID pseudonym.
    pub patient_id: Option<String>,
    /// YYYYMMDD.
    pub study_date: Option<String>,
    /// Accession Number (as stored).
    pub accession_number: Option<String>,
    /// Study Description (as stored).
    pub study_description: Option<String>,
    /// Modalities in the study.
    #[serde(default)]
    pub modalities: Vec<String>,
    /// Series.
    pub series: u64,
    /// Instances.
    pub instances: u64,
    /// Last change.
    pub updated_at: String,
}

/// A page of studies.
#[derive(Debug, Deserialize)]
pub struct StudyPage {
    /// The studies.
    pub studies: Vec<Study>,
    /// Offset of the next page.
    pub next_offset: Option<u64>,
}

/// An audit event.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AuditEvent {
    /// Id (newest first).
    pub id: i64,
    /// When.
    pub occurred_at: String,
    /// What kind.
    pub kind: String,
    /// success, failure, ...
    pub outcome: String,
    /// Who.
    pub username: Option<String>,
    /// Peer address.
    pub peer: Option<String>,
    /// dimse, https, ...
    pub protocol: Option<String>,
    /// Detail.
    pub detail: Option<String>,
    /// Objects involved.
    pub object_count: Option<i64>,
}

/// A page of audit events.
#[derive(Debug, Deserialize)]
pub struct AuditPage {
    /// Events, newest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `before_id` for the next page.
    pub next_before_id: Option<i64>,
}

/// Reads a string into memory that is wiped on drop.
pub(super) fn de_secret<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<zeroize::Zeroizing<String>, D::Error> {
    String::deserialize(d).map(zeroize::Zeroizing::new)
}

/// Writes a wiped-on-drop string.
pub(super) fn ser_secret<S: serde::Serializer>(
    value: &zeroize::Zeroizing<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// Talks to the admin API at one base URL.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: Url,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for `base_url` (https only) trusting only the PEM CA certificates in
    /// `ca_pem`.
    pub fn new(base_url: &str, ca_pem: &[u8]) -> Result<AdminClient, AdminError> {
        let base = Url::parse(base_url)
            .ok()
            .filter(|u| u.scheme() == "https" && u.host().is_some())
            .ok_or_else(|| {
                AdminError::Config(format!(
                    "`[gateway] admin_url` {base_url:?} is not an https:// URL"
                ))
            })?;
        let roots = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| AdminError::Config(format!("the gateway CA is not PEM: {e}")))?;
        if roots.is_empty() {
            return Err(AdminError::Config(
                "the gateway CA file holds no certificate".into(),
            ));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .https_only(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("pacs-client/", env!("CARGO_PKG_VERSION")));
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        let http = builder
            .build()
            .map_err(|e| AdminError::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(AdminClient { base, http })
    }

    /// The base URL, as stored with a token.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `base/api/v1/<segments>`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    /// A request to `segments`, with the token when given.
    pub fn request(
        &self,
        method: Method,
        segments: &[&str],
        token: Option<&Token>,
    ) -> RequestBuilder {
        let builder = self.http.request(method, self.url(segments));
        match token {
            Some(token) => builder.bearer_auth(token.secret()),
            None => builder,
        }
    }

    /// Sends `request`; a non-2xx answer becomes an error (401 means the token is
    /// no longer good when `authenticated`).
    pub async fn send(
        &self,
        request: RequestBuilder,
        authenticated: bool,
    ) -> Result<reqwest::Response, AdminError> {
        let response = request.send().await.map_err(|e| AdminError::Unreachable {
            url: self.base().to_string(),
            message: error_chain(&e),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => (error.code, one_line(&error.message)),
            Err(_) => (
                status.as_str().to_string(),
                status
                    .canonical_reason()
                    .unwrap_or("unexpected answer")
                    .to_string(),
            ),
        };
        if authenticated && status == StatusCode::UNAUTHORIZED {
            return Err(AdminError::NotLoggedIn(format!(
                "the gateway no longer accepts the stored token ({message})"
            )));
        }
        Err(AdminError::Api {
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// Sends `request` and decodes the JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        authenticated: bool,
    ) -> Result<T, AdminError> {
        let response = self.send(request, authenticated).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| AdminError::Unreachable {
                url: self.base().to_string(),
                message: error_chain(&e),
            })?;
        serde_json::from_slice(&body).map_err(|e| AdminError::Protocol(e.to_string()))
    }
}

/// An error with its causes, on one line (TLS failures hide in the sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    one_line(&out)
}

/// `text` on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA certificate made for the test (any self-signed certificate parses as one).
    fn ca() -> String {
        rcgen::generate_simple_self_signed(vec!["test-ca".to_string()])
            .expect("test certificate")
            .cert
            .pem()
    }

    #[test]
    fn urls_encode_each_segment() {
        let ca = ca();
        let client = AdminClient::new("https://gw.example.org:8443/", ca.as_bytes()).unwrap();
        assert_eq!(client.base(), "https://gw.example.org:8443");
        let url = client.url(&["facilities", "st mary", "users", "a/b", "disable"]);
        assert_eq!(
            url.as_str(),
            "https://gw.example.org:8443/api/v1/facilities/st%20mary/users/a%2Fb/disable"
        );
        let prefixed = AdminClient::new("https://gw.example.org/pacs", ca.as_bytes()).unwrap();
        assert_eq!(
            prefixed.url(&["me"]).as_str(),
            "https://gw.example.org/pacs/api/v1/me"
        );
    }

    #[test]
    fn plain_http_and_bad_cas_are_refused() {
        assert!(matches!(
            AdminClient::new("http://gw:8443", ca().as_bytes()),
            Err(AdminError::Config(_))
        ));
        assert!(matches!(
            AdminClient::new("https://gw:8443", b"not pem"),
            Err(AdminError::Config(_))
        ));
    }
}
