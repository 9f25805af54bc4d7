//! `pacs-client admin ...` parsed as a user types it, through the whole command line
//! ([`Cli`]): where `--facility` may go, which values are usage errors, that every
//! admin command has help. (Here rather than in `admin::args`, which must not reach
//! up to the command line.)

use clap::Parser;

use super::{Cli, Command};
use crate::admin::args::*;

fn parse(args: &[&str]) -> Result<AdminCommand, clap::Error> {
    let cli = Cli::try_parse_from(["pacs-client", "admin"].iter().chain(args))?;
    match cli.command {
        Command::Admin(cmd) => Ok(cmd),
        other => panic!("not an admin command: {other:?}"),
    }
}

#[test]
fn facility_goes_anywhere_in_a_group() {
    let cmd = parse(&[
        "users",
        "--facility",
        "other",
        "add",
        "bob",
        "--role",
        "clinician",
    ])
    .unwrap();
    let AdminCommand::Users(Scoped {
        facility,
        command:
            UsersCommand::Add {
                username,
                role,
                password_stdin,
            },
    }) = cmd
    else {
        panic!("{cmd:?}")
    };
    assert_eq!(
        (facility.as_deref(), username.as_str(), role, password_stdin),
        (Some("other"), "bob", UserRole::Clinician, false)
    );
    let cmd = parse(&[
        "devices",
        "add",
        "VIEWER",
        "10.0.0.5:104",
        "--tls",
        "--facility",
        "x",
    ])
    .unwrap();
    let AdminCommand::Devices(Scoped {
        facility,
        command:
            DevicesCommand::Add {
                ae_title,
                address,
                tls,
            },
    }) = cmd
    else {
        panic!("{cmd:?}")
    };
    assert_eq!(
        (facility.as_deref(), ae_title.as_str(), address, tls),
        (Some("x"), "VIEWER", ("10.0.0.5".to_string(), 104), true)
    );
    assert!(matches!(
        parse(&["users", "list"]).unwrap(),
        AdminCommand::Users(Scoped {
            facility: None,
            command: UsersCommand::List
        })
    ));
}

#[test]
fn bad_values_are_usage_errors() {
    use clap::error::ErrorKind;
    for args in [
        &["users", "add", "bob", "--role", "operator"][..],
        &["users", "add", "bob"],
        &["devices", "add", "X", "host-without-port"],
        &["audit", "--since", "yesterday"],
        &["audit", "--limit", "0"],
        &["studies", "list", "--date", "2024-03-15"],
        &["studies", "list", "--date", "20240230"],
        &["login", "--password", "secret"],
        &["whoami", "--facility", "x"],
    ] {
        let err = parse(args).expect_err(&format!("{args:?} must be refused"));
        assert_ne!(err.kind(), ErrorKind::DisplayHelp);
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn every_admin_command_has_help() {
    use clap::error::ErrorKind;
    let groups: [(&str, &[&str]); 4] = [
        (
            "users",
            &["list", "add", "disable", "enable", "reset-password"],
        ),
        ("devices", &["list", "add", "remove"]),
        ("certs", &["list", "issue", "revoke"]),
        ("studies", &["list", "delete"]),
    ];
    let mut paths: Vec<Vec<&str>> = ["login", "logout", "whoami", "password", "usage", "audit"]
        .iter()
        .map(|c| vec![*c])
        .collect();
    for (group, commands) in groups {
        paths.push(vec![group]);
        paths.extend(commands.iter().map(|c| vec![group, *c]));
    }
    for mut path in paths {
        path.push("--help");
        let err = parse(&path).expect_err("--help stops parsing");
        assert_eq!(err.kind(), ErrorKind::DisplayHelp, "{path:?}");
        assert_eq!(err.exit_code(), 0);
    }
}
