//! Admission of connections before they are worth anything: a flood of silent or
//! slow connections must not keep legitimate peers out.
//!
//! Every accepted connection gets a [`Ticket`] from an [`Admission`] registry until it
//! has proved itself (for the DICOM acceptor: until its association is established or
//! refused). The registry bounds these connections per source address (IPv4 address,
//! or IPv6 /64, see [`PeerKey`]) and globally. A newcomer is never refused for lack of
//! room: when a bound is hit, the registry *sheds* an older connection instead, from
//! the busiest address (the newcomer's own when its address is at its bound): first
//! the ones that never sent a byte, then the ones still in their handshake, and only
//! then the ones that completed it, oldest first. Connections younger than
//! [`SHED_GRACE`] go only when no older one is left, and then the oldest first
//! whatever their stage (every connection is silent for a moment after it arrives):
//! a legitimate peer's handshake takes milliseconds, so a flood from its own address
//! would have to open a whole address's worth of connections within that time to
//! push it out. An attacker holding a thousand connections thus only pushes out its
//! own; a facility connecting from elsewhere finds room at once.
//!
//! Every refusal, shedding and timeout is counted in a [`RefusalLog`], which writes one
//! summary line per interval (counts per reason and per peer address) instead of a
//! line per connection: a flood must not flood the log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::warn;

/// The key under which connections from `ip` are counted: the IPv4 address, or the
/// /64 prefix of an IPv6 address (one host usually owns a whole /64). IPv4-mapped
/// IPv6 addresses count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(IpAddr);

impl PeerKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> PeerKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => PeerKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !(u128::from(u64::MAX));
                PeerKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Connections younger than this are shed only when no older one of the address is
/// left.
pub const SHED_GRACE: Duration = Duration::from_secs(2);

/// Bounds on connections that have not proved themselves yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionOptions {
    /// Such connections held at once, from all addresses together.
    pub max_pending: usize,
    /// Such connections held at once from one address (IPv4) or /64 (IPv6).
    pub max_pending_per_address: usize,
    /// Time a new connection has to send its first byte.
    pub first_byte_timeout: Duration,
    /// Interval of the summary line of refused and shed connections.
    pub log_interval: Duration,
    /// Addresses of known peers: when the global bound is hit, connections from
    /// these are shed only if no other address holds any. (Their own per-address
    /// bound still applies.)
    pub preferred: BTreeSet<PeerKey>,
}

impl Default for AdmissionOptions {
    fn default() -> Self {
        AdmissionOptions {
            max_pending: 1024,
            max_pending_per_address: 32,
            first_byte_timeout: Duration::from_secs(5),
            log_interval: Duration::from_secs(10),
            preferred: BTreeSet::new(),
        }
    }
}

/// How far a held connection got; shedding takes the least advanced first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stage {
    /// Nothing received yet.
    Silent = 0,
    /// Bytes received; the handshake (TLS, association request, HTTP head) runs.
    Started = 1,
    /// The TLS handshake completed (a verified client certificate, where asked for).
    Verified = 2,
}

impl Stage {
    fn from_u8(v: u8) -> Stage {
        match v {
            0 => Stage::Silent,
            1 => Stage::Started,
            _ => Stage::Verified,
        }
    }
}

/// Why a connection was closed (or its request refused) before it was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Closed to make room for a newer connection (a bound was hit).
    Shed,
    /// Sent nothing within the first-byte timeout.
    FirstByteTimeout,
    /// Did not complete its handshake (TLS and association request, or HTTP request
    /// head) within the handshake timeout.
    HandshakeTimeout,
    /// Sent a request body too slowly.
    SlowBody,
    /// The TLS handshake or the first PDU failed (bad certificate, garbage).
    HandshakeFailed,
    /// Closed by the peer before it sent anything.
    ClosedEarly,
    /// Association request refused: every association slot is taken.
    Busy,
    /// Association request refused by the admission policy.
    Rejected,
    /// Refused outright (HTTPS: the connection limit is reached).
    OverLimit,
}

impl Refusal {
    /// A stable name, for log lines and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Shed => "shed",
            Refusal::FirstByteTimeout => "first-byte-timeout",
            Refusal::HandshakeTimeout => "handshake-timeout",
            Refusal::SlowBody => "slow-body",
            Refusal::HandshakeFailed => "handshake-failed",
            Refusal::ClosedEarly => "closed-early",
            Refusal::Busy => "busy",
            Refusal::Rejected => "rejected",
            Refusal::OverLimit => "over-limit",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Called once per counted refusal (e.g. to increment a metric).
pub type RefusalHook = Arc<dyn Fn(Refusal) + Send + Sync>;

/// Counts refusals and writes them as one summary line per interval.
pub struct RefusalLog {
    listener: &'static str,
    counts: Mutex<BTreeMap<(Refusal, PeerKey), u64>>,
    hook: Option<RefusalHook>,
}

impl fmt::Debug for RefusalLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefusalLog")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// Peers named per reason in a summary line; the rest are summed up.
const PEERS_SHOWN: usize = 5;

impl RefusalLog {
    /// A log for `listener` (named in the summary line), calling `hook` per refusal.
    pub fn new(listener: &'static str, hook: Option<RefusalHook>) -> RefusalLog {
        RefusalLog {
            listener,
            counts: Mutex::new(BTreeMap::new()),
            hook,
        }
    }

    /// Counts one refusal of a connection from `peer`.
    pub fn record(&self, reason: Refusal, peer: PeerKey) {
        *lock(&self.counts).entry((reason, peer)).or_insert(0) += 1;
        if let Some(hook) = &self.hook {
            hook(reason);
        }
    }

    /// The summary of what was counted since the last call, and resets the counts;
    /// `None` when nothing was. Example: `shed 950 (127.0.0.2: 950); handshake-timeout
    /// 200 (127.0.0.3: 150, 127.0.0.4: 50)`.
    pub fn take_summary(&self) -> Option<String> {
        let counts = std::mem::take(&mut *lock(&self.counts));
        if counts.is_empty() {
            return None;
        }
        let mut by_reason: BTreeMap<Refusal, Vec<(PeerKey, u64)>> = BTreeMap::new();
        for ((reason, peer), n) in counts {
            by_reason.entry(reason).or_default().push((peer, n));
        }
        let parts: Vec<String> = by_reason
            .into_iter()
            .map(|(reason, mut peers)| {
                peers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let total: u64 = peers.iter().map(|p| p.1).sum();
                let mut shown: Vec<String> = peers
                    .iter()
                    .take(PEERS_SHOWN)
                    .map(|(peer, n)| format!("{peer}: {n}"))
                    .collect();
                if peers.len() > PEERS_SHOWN {
                    let rest: u64 = peers[PEERS_SHOWN..].iter().map(|p| p.1).sum();
                    shown.push(format!("{} more: {rest}", peers.len() - PEERS_SHOWN));
                }
                format!("{reason} {total} ({})", shown.join(", "))
            })
            .collect();
        Some(parts.join("; "))
    }

    /// Writes the summary line, if anything was counted.
    pub fn flush(&self, interval: Duration) {
        if let Some(summary) = self.take_summary() {
            warn!(
                listener = self.listener,
                interval_secs = interval.as_secs(),
                refused = %summary,
                "connections refused, shed or timed out before being served"
            );
        }
    }

    /// Writes a summary every `interval` until `stop`, then a last one.
    pub async fn run(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.flush(interval),
                () = stop.cancelled() => break,
            }
        }
        self.flush(interval);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Entry {
    stage: Arc<AtomicU8>,
    shed: CancellationToken,
    since: Instant,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    total: usize,
    /// Per address: held connections by id (ids grow, so oldest first).
    by_peer: HashMap<PeerKey, BTreeMap<u64, Entry>>,
}

impl Registry {
    /// Sheds one connection of `peer`: among those older than [`SHED_GRACE`], the
    /// oldest silent one, else the oldest still in its handshake, else the oldest;
    /// if none is that old, the oldest.
    fn shed_one(&mut self, peer: PeerKey, now: Instant) -> bool {
        let Some(entries) = self.by_peer.get_mut(&peer) else {
            return false;
        };
        let victim = entries
            .iter()
            .min_by_key(|(id, e)| {
                let young = now.saturating_duration_since(e.since) < SHED_GRACE;
                let stage = match young {
                    true => Stage::Silent,
                    false => Stage::from_u8(e.stage.load(Ordering::Relaxed)),
                };
                (young, stage, **id)
            })
            .map(|(id, _)| *id);
        let Some(id) = victim else {
            return false;
        };
        if let Some(entry) = entries.remove(&id) {
            entry.shed.cancel();
            self.total -= 1;
        }
        if entries.is_empty() {
            self.by_peer.remove(&peer);
        }
        true
    }

    /// The address holding the most connections, preferring any address not in
    /// `preferred`.
    fn busiest(&self, preferred: &BTreeSet<PeerKey>) -> Option<PeerKey> {
        self.by_peer
            .iter()
            .max_by_key(|(key, entries)| {
                (
                    !preferred.contains(*key),
                    entries.len(),
                    std::cmp::Reverse(**key),
                )
            })
            .map(|(key, _)| *key)
    }
}

/// The registry of connections not yet served (see the module documentation).
#[derive(Clone)]
pub struct Admission {
    options: AdmissionOptions,
    registry: Arc<Mutex<Registry>>,
    log: Arc<RefusalLog>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// An empty registry with `options`, counting refusals into `log`.
    pub fn new(options: AdmissionOptions, log: Arc<RefusalLog>) -> Admission {
        Admission {
            options,
            registry: Arc::new(Mutex::new(Registry::default())),
            log,
        }
    }

    /// The bounds in effect.
    pub fn options(&self) -> &AdmissionOptions {
        &self.options
    }

    /// The refusal log.
    pub fn log(&self) -> &Arc<RefusalLog> {
        &self.log
    }

    /// Connections held now, in total and from `peer`.
    pub fn held(&self, peer: PeerKey) -> (usize, usize) {
        let registry = lock(&self.registry);
        let from_peer = registry.by_peer.get(&peer).map_or(0, BTreeMap::len);
        (registry.total, from_peer)
    }

    /// Admits a connection from `ip`, shedding an older one if a bound is hit.
    pub fn admit(&self, ip: IpAddr) -> Ticket {
        let peer = PeerKey::of(ip);
        let stage = Arc::new(AtomicU8::new(Stage::Silent as u8));
        let shed = CancellationToken::new();
        let now = Instant::now();
        let mut registry = lock(&self.registry);
        let per_peer = registry.by_peer.get(&peer).map_or(0, BTreeMap::len);
        let mut shed_from = None;
        if per_peer >= self.options.max_pending_per_address.max(1) {
            shed_from = Some(peer);
        } else if registry.total >= self.options.max_pending.max(1) {
            shed_from = registry.busiest(&self.options.preferred);
        }
        if let Some(victim) = shed_from
            && registry.shed_one(victim, now)
        {
            self.log.record(Refusal::Shed, victim);
        }
        let id = registry.next_id;
        registry.next_id += 1;
        registry.total += 1;
        registry.by_peer.entry(peer).or_default().insert(
            id,
            Entry {
                stage: stage.clone(),
                shed: shed.clone(),
                since: now,
            },
        );
        drop(registry);
        Ticket {
            id,
            peer,
            stage,
            shed,
            admitted: now,
            admission: self.clone(),
        }
    }

    fn release(&self, peer: PeerKey, id: u64) {
        let mut registry = lock(&self.registry);
        let Some(entries) = registry.by_peer.get_mut(&peer) else {
            return;
        };
        if entries.remove(&id).is_some() {
            if entries.is_empty() {
                registry.by_peer.remove(&peer);
            }
            registry.total -= 1;
        }
    }
}

/// A held connection's place in the [`Admission`] registry; dropping it frees the
/// place.
pub struct Ticket {
    id: u64,
    peer: PeerKey,
    stage: Arc<AtomicU8>,
    shed: CancellationToken,
    admitted: Instant,
    admission: Admission,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("peer", &self.peer)
            .field("stage", &Stage::from_u8(self.stage.load(Ordering::Relaxed)))
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// The address key of the connection.
    pub fn peer(&self) -> PeerKey {
        self.peer
    }

    /// When the connection was admitted.
    pub fn admitted(&self) -> Instant {
        self.admitted
    }

    /// Records how far the connection got (never goes back).
    pub fn advance(&self, stage: Stage) {
        self.stage.fetch_max(stage as u8, Ordering::Relaxed);
    }

    /// Completes when the connection was shed to make room for another.
    pub async fn shed(&self) {
        self.shed.cancelled().await;
    }

    /// Whether the connection was shed.
    pub fn is_shed(&self) -> bool {
        self.shed.is_cancelled()
    }

    /// Counts a refusal of this connection.
    pub fn refuse(&self, reason: Refusal) {
        self.admission.log.record(reason, self.peer);
    }

    /// Waits until `socket` has a byte to read, at most the first-byte timeout.
    /// Counts the refusal and returns `false` when it times out, the peer closes
    /// first, or the connection is shed.
    pub async fn first_byte(&self, socket: &tokio::net::TcpStream) -> bool {
        let limit = self.admission.options.first_byte_timeout;
        let mut byte = [0u8; 1];
        tokio::select! {
            peeked = tokio::time::timeout(limit, socket.peek(&mut byte)) => match peeked {
                Ok(Ok(n)) if n > 0 => {
                    self.advance(Stage::Started);
                    true
                }
                Ok(_) => {
                    self.refuse(Refusal::ClosedEarly);
                    false
                }
                Err(_) => {
                    self.refuse(Refusal::FirstByteTimeout);
                    false
                }
            },
            () = self.shed() => false,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.release(self.peer, self.id);
    }
}

#[cfg(test)]
mod tests;
