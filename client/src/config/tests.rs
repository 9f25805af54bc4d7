use super::*;

#[test]
fn example_config_parses() {
    let text = include_str!("../../../schemas/client.toml");
    let config: Config = toml::from_str(text).expect("schemas/client.toml must parse");
    assert_eq!(config.facility().unwrap(), "st-mary");
    assert_eq!(config.sharing.rules.len(), 1);
    assert_eq!(config.sharing.rules[0].action, Destination::Local);
    assert!(config.deidentification.retain_longitudinal_full_dates);
}

#[test]
fn admission_bounds_are_checked() {
    let parse = |text: &str| Config::parse(text, Path::new("client.toml"));
    // A per-address bound above the total is allowed (the total applies).
    parse("[edge]\nmax_pending = 8\nmax_pending_per_address = 9").unwrap();
    for nonsense in [
        "[edge]\nmax_pending_per_address = 0",
        "[edge]\nmax_pending = 0",
        "[edge]\nfirst_byte_timeout_secs = 0",
        "[edge]\nhandshake_timeout_secs = 301",
    ] {
        assert!(parse(nonsense).is_err(), "{nonsense}");
    }
}

#[test]
fn admin_url_defaults_to_the_gateway_host_on_8443() {
    let mut gateway = GatewayConfig {
        address: "pacs.example.org:2762".into(),
        ..GatewayConfig::default()
    };
    assert_eq!(gateway.admin_url(), "https://pacs.example.org:8443");
    gateway.address = "[::1]:2762".into();
    assert_eq!(gateway.admin_url(), "https://[::1]:8443");
    gateway.admin_url = Some("https://admin.example.org:9443/".into());
    assert_eq!(gateway.admin_url(), "https://admin.example.org:9443");
}

#[test]
fn typos_are_refused() {
    assert!(toml::from_str::<Config>("[forwarder]\nassociation = 3").is_err());
    assert!(Config::default().facility().is_err());
}

#[test]
fn a_move_destination_viewer_needs_a_host() {
    let viewer = |extra: &str| {
        let text = format!("[[edge.viewers]]\nae_title = \"V\"\nuser = \"u\"\n{extra}");
        toml::from_str::<Config>(&text).unwrap()
    };
    let no_port = viewer("");
    assert!(no_port.check_viewers().is_ok());
    assert_eq!(no_port.edge.viewers[0].move_address(), None);
    assert!(viewer("port = 104").check_viewers().is_err());
    let both = viewer("host = \"10.0.0.9\"\nport = 104");
    assert!(both.check_viewers().is_ok());
    assert_eq!(
        both.edge.viewers[0].move_address().as_deref(),
        Some("10.0.0.9:104")
    );
}

#[test]
fn a_viewer_character_set_must_be_a_defined_term() {
    let viewer = |set: &str| {
        let text =
            format!("[[edge.viewers]]\nae_title = \"V\"\nuser = \"u\"\ncharacter_set = '{set}'");
        toml::from_str::<Config>(&text).unwrap()
    };
    let japanese = viewer("\\ISO 2022 IR 87");
    assert!(japanese.check_viewers().is_ok());
    let set = japanese.edge.viewers[0].character_set().unwrap();
    assert_eq!(set.name(), "\\ISO 2022 IR 87");
    assert!(
        viewer("ISO_IR 192").edge.viewers[0]
            .character_set()
            .is_none()
    );
    let error = viewer("ISO_IR 999")
        .check_viewers()
        .unwrap_err()
        .to_string();
    assert!(error.contains("ISO_IR 999"), "{error}");
}
