//! `admin users`, `admin devices`, `admin certs`: the facility's accounts, C-MOVE
//! destinations and client certificates.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use reqwest::Method;
use serde_json::json;

use super::api::{Certificate, Destination, IssuedCertificate, User};
use super::args::{CertsCommand, DevicesCommand, Scoped, UsersCommand};
use super::commands::Session;
use super::format::{maybe_time, short_time, table};
use super::{AdminError, NEW_PASSWORD_ENV, password};

pub(super) async fn users(
    session: &Session,
    scoped: Scoped<UsersCommand>,
) -> Result<(), AdminError> {
    let facility = session.facility(scoped.facility);
    let f = facility.as_str();
    match scoped.command {
        UsersCommand::List => {
            let users: Vec<User> = session.get(&["facilities", f, "users"]).await?;
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    let state = match (u.disabled, &u.locked_until) {
                        (true, _) => "disabled".to_string(),
                        (false, Some(until)) => format!("locked until {}", short_time(until)),
                        (false, None) => "active".to_string(),
                    };
                    vec![
                        u.username.clone(),
                        u.role.clone(),
                        state,
                        short_time(&u.created_at),
                    ]
                })
                .collect();
            print!("{}", table(&["user", "role", "state", "created"], &rows));
        }
        UsersCommand::Add {
            username,
            role,
            password_stdin,
        } => {
            let password = new_password(password_stdin)?;
            let body =
                json!({"username": username, "role": role.as_str(), "password": password.as_str()});
            let request = session
                .request(Method::POST, &["facilities", f, "users"])
                .json(&body);
            let user: User = session.api.json(request, true).await?;
            println!("added {} ({}) to facility {f}", user.username, user.role);
        }
        UsersCommand::Disable { username } => {
            let path = ["facilities", f, "users", &username, "disable"];
            session.call(Method::POST, &path, None).await?;
            println!("disabled {username} of facility {f}");
        }
        UsersCommand::Enable { username } => {
            let path = ["facilities", f, "users", &username, "enable"];
            session.call(Method::POST, &path, None).await?;
            println!("enabled {username} of facility {f} (any lockout is lifted)");
        }
        UsersCommand::ResetPassword {
            username,
            password_stdin,
        } => {
            let password = new_password(password_stdin)?;
            let path = ["facilities", f, "users", &username, "password"];
            let body = json!({ "password": password.as_str() });
            session.call(Method::PUT, &path, Some(body)).await?;
            println!("new password set for {username} of facility {f}");
        }
    }
    Ok(())
}

/// A new user's password, at least 12 characters.
pub(super) fn new_password(from_stdin: bool) -> Result<zeroize::Zeroizing<String>, AdminError> {
    let password = password(from_stdin, NEW_PASSWORD_ENV, "new user's password: ", true)?;
    if password.chars().count() < 12 {
        return Err(AdminError::Usage(
            "use a password of at least 12 characters".into(),
        ));
    }
    Ok(password)
}

pub(super) async fn devices(
    session: &Session,
    scoped: Scoped<DevicesCommand>,
) -> Result<(), AdminError> {
    let facility = session.facility(scoped.facility);
    let f = facility.as_str();
    match scoped.command {
        DevicesCommand::List => {
            let list: Vec<Destination> = session.get(&["facilities", f, "destinations"]).await?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    let tls = if d.tls { "yes" } else { "no" };
                    vec![
                        d.ae_title.clone(),
                        d.host.clone(),
                        d.port.to_string(),
                        tls.into(),
                    ]
                })
                .collect();
            print!("{}", table(&["AE title", "host", "port", "TLS"], &rows));
        }
        DevicesCommand::Add {
            ae_title,
            address: (host, port),
            tls,
        } => {
            let body = json!({"ae_title": ae_title, "host": host, "port": port, "tls": tls});
            let request = session
                .request(Method::POST, &["facilities", f, "destinations"])
                .json(&body);
            let added: Destination = session.api.json(request, true).await?;
            println!(
                "added C-MOVE destination {} at {}:{}{} for facility {f}",
                added.ae_title,
                added.host,
                added.port,
                if added.tls { " (TLS)" } else { "" }
            );
        }
        DevicesCommand::Remove { ae_title } => {
            let path = ["facilities", f, "destinations", &ae_title];
            session.call(Method::DELETE, &path, None).await?;
            println!("removed C-MOVE destination {ae_title} of facility {f}");
        }
    }
    Ok(())
}

pub(super) async fn certs(
    session: &Session,
    scoped: Scoped<CertsCommand>,
) -> Result<(), AdminError> {
    let facility = session.facility(scoped.facility);
    let f = facility.as_str();
    match scoped.command {
        CertsCommand::List => {
            let list: Vec<Certificate> = session.get(&["facilities", f, "certificates"]).await?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|c| {
                    vec![
                        c.id.to_string(),
                        short_time(&c.created_at),
                        maybe_time(c.revoked_at.as_deref()),
                        c.subject.clone(),
                        c.fingerprint.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["id", "issued", "revoked", "subject", "fingerprint"],
                    &rows
                )
            );
        }
        CertsCommand::Issue { out } => {
            let names = ["facility.crt", "facility.key", "ca.crt"];
            if let Some(existing) = names.iter().map(|n| out.join(n)).find(|p| p.exists()) {
                return Err(AdminError::Refused(format!(
                    "{} already exists; refusing to overwrite it (use an empty --out folder)",
                    existing.display()
                )));
            }
            let request = session
                .request(Method::POST, &["facilities", f, "certificates"])
                .json(&json!({}));
            let issued: IssuedCertificate = session.api.json(request, true).await?;
            std::fs::create_dir_all(&out).map_err(|source| AdminError::Io {
                path: out.clone(),
                source,
            })?;
            write_new(
                &out.join("facility.key"),
                issued.private_key_pem.as_bytes(),
                0o600,
            )?;
            write_new(
                &out.join("facility.crt"),
                issued.certificate_pem.as_bytes(),
                0o644,
            )?;
            write_new(&out.join("ca.crt"), issued.ca_pem.as_bytes(), 0o644)?;
            println!(
                "issued certificate {} ({}) for facility {f}, fingerprint {}",
                issued.id, issued.subject, issued.fingerprint
            );
            println!(
                "wrote {0}/facility.crt, {0}/facility.key (mode 0600) and {0}/ca.crt; point `[gateway] cert`, `key` and `ca` at them",
                out.display()
            );
        }
        CertsCommand::Revoke { id } => {
            let id = id.to_string();
            let path = ["facilities", f, "certificates", &id, "revoke"];
            session.call(Method::POST, &path, None).await?;
            println!(
                "revoked certificate {id} of facility {f}; it is refused at its next TLS handshake"
            );
        }
    }
    Ok(())
}

/// Creates `path` with `mode`, refusing to overwrite.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AdminError> {
    let io = |source| AdminError::Io {
        path: path.into(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(io)
}
