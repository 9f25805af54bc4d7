use super::*;

fn admission(global: usize, per_address: usize) -> Admission {
    let options = AdmissionOptions {
        max_pending: global,
        max_pending_per_address: per_address,
        ..AdmissionOptions::default()
    };
    Admission::new(options, Arc::new(RefusalLog::new("test", None)))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn peers_are_keyed_by_address_or_ipv6_prefix() {
    let key = |s: &str| PeerKey::of(ip(s)).to_string();
    assert_eq!(key("192.0.2.7"), "192.0.2.7");
    assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
    assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    assert_eq!(key("2001:db8:1:2::9"), key("2001:db8:1:2:ffff::1"));
}

#[test]
fn a_full_address_sheds_its_own_oldest_silent_connection() {
    let a = admission(100, 3);
    let first = a.admit(ip("10.0.0.1"));
    first.advance(Stage::Started);
    let second = a.admit(ip("10.0.0.1"));
    let third = a.admit(ip("10.0.0.1"));
    age(&a, Duration::from_secs(3));
    let other = a.admit(ip("10.0.0.2"));
    let fourth = a.admit(ip("10.0.0.1"));
    // The oldest *silent* one goes, not the older one that has started.
    assert!(!first.is_shed());
    assert!(second.is_shed());
    assert!(!third.is_shed() && !other.is_shed() && !fourth.is_shed());
    assert_eq!(a.held(PeerKey::of(ip("10.0.0.1"))), (4, 3));
    // The next old silent one goes before the young one.
    let fifth = a.admit(ip("10.0.0.1"));
    assert!(third.is_shed() && !fourth.is_shed() && !fifth.is_shed());
    let summary = a.log().take_summary().unwrap();
    assert_eq!(summary, "shed 2 (10.0.0.1: 2)");
}

/// Makes every held connection look `by` older.
fn age(a: &Admission, by: Duration) {
    let mut registry = lock(&a.registry);
    for entries in registry.by_peer.values_mut() {
        for entry in entries.values_mut() {
            entry.since -= by;
        }
    }
}

#[test]
fn a_young_handshake_outlives_older_connections_of_any_stage() {
    let a = admission(100, 3);
    let old = a.admit(ip("10.0.0.1"));
    old.advance(Stage::Verified);
    age(&a, Duration::from_secs(3));
    let flood = a.admit(ip("10.0.0.1"));
    let legit = a.admit(ip("10.0.0.1"));
    // The address is full: the old, verified one goes, not a young one.
    let newcomer = a.admit(ip("10.0.0.1"));
    assert!(old.is_shed());
    assert!(!flood.is_shed() && !legit.is_shed() && !newcomer.is_shed());
    // Among young ones only, the oldest goes, whatever its stage: a handshake
    // in progress outlives the flood connections that came before it.
    legit.advance(Stage::Started);
    let another = a.admit(ip("10.0.0.1"));
    assert!(flood.is_shed() && !legit.is_shed() && !another.is_shed());
}

#[test]
fn a_full_registry_sheds_from_the_busiest_address() {
    let a = admission(4, 10);
    let flood: Vec<Ticket> = (0..3).map(|_| a.admit(ip("10.0.0.9"))).collect();
    let quiet = a.admit(ip("10.0.0.1"));
    let newcomer = a.admit(ip("10.0.0.2"));
    assert!(flood[0].is_shed());
    assert!(!flood[1].is_shed() && !quiet.is_shed() && !newcomer.is_shed());
    drop(flood);
    assert_eq!(a.held(PeerKey::of(ip("10.0.0.1"))), (2, 1));
}

#[test]
fn preferred_addresses_are_shed_last() {
    let mut options = AdmissionOptions {
        max_pending: 4,
        max_pending_per_address: 4,
        ..AdmissionOptions::default()
    };
    options.preferred.insert(PeerKey::of(ip("10.0.0.1")));
    let a = Admission::new(options, Arc::new(RefusalLog::new("test", None)));
    // The modality holds the most connections; a flood from many addresses,
    // one connection each, sheds only flood connections.
    let mut modality: Vec<Ticket> = (0..3).map(|_| a.admit(ip("10.0.0.1"))).collect();
    let flood: Vec<Ticket> = (2..40)
        .map(|i| a.admit(ip(&format!("10.0.1.{i}"))))
        .collect();
    assert!(modality.iter().all(|t| !t.is_shed()));
    assert_eq!(flood.iter().filter(|t| !t.is_shed()).count(), 1);
    // A fourth modality connection pushes out the last flood connection.
    modality.push(a.admit(ip("10.0.0.1")));
    assert!(flood.iter().all(Ticket::is_shed));
    assert!(modality.iter().all(|t| !t.is_shed()));
    // With only preferred connections held, they go after all, oldest first.
    let stranger = a.admit(ip("10.0.2.1"));
    assert!(modality[0].is_shed() && !stranger.is_shed());
    // The next modality connection pushes out the stranger...
    let fifth = a.admit(ip("10.0.0.1"));
    assert!(stranger.is_shed() && !fifth.is_shed());
    // ... and their own per-address bound still holds.
    let sixth = a.admit(ip("10.0.0.1"));
    assert!(modality[1].is_shed() && !sixth.is_shed() && !fifth.is_shed());
    assert!(!modality[2].is_shed() && !modality[3].is_shed());
}

#[test]
fn dropped_tickets_free_their_place() {
    let a = admission(2, 2);
    for _ in 0..10 {
        let t = a.admit(ip("10.0.0.1"));
        assert!(!t.is_shed());
    }
    assert_eq!(a.held(PeerKey::of(ip("10.0.0.1"))), (0, 0));
    assert!(a.log().take_summary().is_none());
}

#[test]
fn summaries_name_the_busiest_peers_and_sum_the_rest() {
    let log = RefusalLog::new("test", None);
    for i in 0..8u8 {
        for _ in 0..=i {
            log.record(
                Refusal::FirstByteTimeout,
                PeerKey::of(ip(&format!("10.0.0.{i}"))),
            );
        }
    }
    log.record(Refusal::Busy, PeerKey::of(ip("10.0.0.1")));
    let summary = log.take_summary().unwrap();
    assert_eq!(
        summary,
        "first-byte-timeout 36 (10.0.0.7: 8, 10.0.0.6: 7, 10.0.0.5: 6, 10.0.0.4: 5, \
         10.0.0.3: 4, 3 more: 6); busy 1 (10.0.0.1: 1)"
    );
    assert!(log.take_summary().is_none());
}
