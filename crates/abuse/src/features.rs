//! Per-account causal state and the feature vector the model scores.
//!
//! Everything here is updated only by events up to the current one, so a decision at time `t`
//! depends on nothing after `t`. Windows are exponentially decaying counters (one `f32` and a
//! timestamp each) rather than event lists, so an account's state is a fixed size plus its
//! peer map; see [`Account`] for the memory figure.

use std::collections::VecDeque;

use crate::engine::Action;
use crate::fxhash::FxMap;

pub(crate) const MINUTE: u64 = 60_000;
pub(crate) const HOUR: u64 = 60 * MINUTE;
pub(crate) const DAY: u64 = 24 * HOUR;

/// Number of features.
pub const N_FEATURES: usize = 24;

/// Stable feature identifiers, in vector order. Each is named for the direction that makes an
/// account *more* suspicious, because these names are what decisions give as reasons.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "new_account",
    "registration_burst_prefix",
    "registration_burst_ip24",
    "registration_burst_client",
    "sequential_numbers",
    "lookup_volume",
    "lookup_low_hit_ratio",
    "fanout_to_strangers",
    "stranger_share",
    "unanswered_strangers",
    "low_reply_ratio",
    "fanout_rate_10m",
    "fanout_rate_1h",
    "timing_regularity",
    "group_adds_strangers",
    "reports_received",
    "blocks_received",
    "block_rate",
    "message_rate_1h",
    "few_inbound_contacts",
    "unanswered_strangers_5m",
    "low_reply_ratio_5m",
    "regular_fanout",
    "sudden_fanout",
];

/// A stranger send counts as unanswered once it is this old without a reply.
pub(crate) const REPLY_WINDOW: u64 = 30 * MINUTE;
/// The quick-reply window: people who know the sender mostly answer within minutes.
pub(crate) const QUICK_WINDOW: u64 = 5 * MINUTE;
/// Age given to accounts whose registration the engine never saw (they predate its state).
const UNKNOWN_AGE_HOURS: f32 = 24.0 * 90.0;
/// Gaps kept for the timing-regularity signal, and how many are needed before it speaks.
const GAPS: usize = 16;
const MIN_GAPS: usize = 8;
/// Stranger sends awaiting their reply window; beyond this the oldest is aged early.
const MAX_PENDING: usize = 512;

/// Peer relation flags, from the point of view of the account holding the map.
pub(crate) mod peer {
    /// The peer has messaged this account (or written in a group this account added it to).
    pub const THEY_SENT: u8 = 1;
    /// This account has messaged (or group-added) the peer.
    pub const I_SENT: u8 = 2;
    /// When this account first reached the peer, the peer was not a contact.
    pub const STRANGER: u8 = 4;
    /// The stranger wrote back afterwards.
    pub const REPLIED: u8 = 8;
    /// The stranger send has passed the reply window.
    pub const AGED: u8 = 16;
    pub const BLOCKED_ME: u8 = 32;
    pub const REPORTED_ME: u8 = 64;
}

/// An exponentially decaying counter: `value` is the sum of past additions, each weighted by
/// `exp(-age / tau)`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Decay {
    value: f32,
    at: u64,
}

impl Decay {
    pub(crate) fn value(&self, now: u64, tau: u64) -> f32 {
        if now <= self.at {
            return self.value;
        }
        self.value * (-((now - self.at) as f32) / tau as f32).exp()
    }

    pub(crate) fn add(&mut self, now: u64, tau: u64, x: f32) {
        self.value = self.value(now, tau) + x;
        self.at = self.at.max(now);
    }
}

/// The last [`GAPS`] gaps between this account's sends, for the coefficient of variation. The
/// sum and sum of squares are kept exactly (integers), so the CV costs O(1) per scoring.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gaps {
    ring: [u32; GAPS],
    len: u8,
    next: u8,
    sum: u64,
    sum_sq: u128,
    last_send: Option<u64>,
}

impl Gaps {
    pub(crate) fn record(&mut self, t: u64) {
        if let Some(last) = self.last_send {
            let gap = t.saturating_sub(last).min(u64::from(u32::MAX)) as u32;
            let slot = &mut self.ring[self.next as usize];
            if (self.len as usize) == GAPS {
                self.sum -= u64::from(*slot);
                self.sum_sq -= u128::from(*slot) * u128::from(*slot);
            }
            *slot = gap;
            self.sum += u64::from(gap);
            self.sum_sq += u128::from(gap) * u128::from(gap);
            self.next = ((self.next as usize + 1) % GAPS) as u8;
            self.len = (self.len + 1).min(GAPS as u8);
        }
        self.last_send = Some(t);
    }

    /// Coefficient of variation (std / mean) of the kept gaps, if there are enough of them.
    pub(crate) fn cv(&self) -> Option<f32> {
        let n = self.len as u128;
        if (n as usize) < MIN_GAPS {
            return None;
        }
        if self.sum == 0 {
            return Some(0.0);
        }
        // n² var = n Σx² − (Σx)², exact in integers.
        let s = u128::from(self.sum);
        let n2_var = (n * self.sum_sq).saturating_sub(s * s) as f64;
        Some((n2_var.sqrt() / s as f64) as f32)
    }
}

/// Everything the engine keeps about one account.
///
/// Memory: about 350 bytes fixed, plus about 16 bytes per peer (bounded by
/// `EngineConfig::max_peers`), 32 bytes per stranger send younger than the reply window (at most
/// 512) and 4 bytes per group (at most 64). Idle accounts are pruned to the fixed part.
#[derive(Debug, Clone, Default)]
pub(crate) struct Account {
    pub registered_at: Option<u64>,
    pub last_active: u64,
    pub action: Action,
    pub decided_at: u64,
    pub reasons: Vec<&'static str>,
    /// The model's last probability for this account (used to weigh its own reports).
    pub score: f32,
    /// Registrations sharing this account's number prefix, IP /24 and client within an hour,
    /// and near-sequential numbers within a day (others, not counting itself; maxima seen).
    pub reg_prefix: u16,
    pub reg_ip24: u16,
    pub reg_client: u16,
    pub reg_seq: u16,
    pub lookup_asked: Decay,
    pub lookup_found: Decay,
    pub sent: u32,
    pub recipients: u32,
    pub strangers: u32,
    pub stranger_replied: u32,
    pub aged: u32,
    pub aged_replied: u32,
    pub group_stranger_adds: u32,
    pub inbound: u32,
    pub fanout_10m: Decay,
    pub fanout_1h: Decay,
    pub msg_1h: Decay,
    pub gaps: Gaps,
    pub blocks_w: f32,
    pub reports_w: f32,
    pub peers: FxMap<u32, u8>,
    pub pending: VecDeque<(u64, u32)>,
    /// Stranger sends younger than the quick-reply window, and how many of the older ones were
    /// answered within it.
    pub pending_quick: VecDeque<(u64, u32)>,
    pub aged_quick: u32,
    pub aged_quick_replied: u32,
    pub groups: Vec<u32>,
}

pub(crate) const TAU_10M: u64 = 10 * MINUTE;
pub(crate) const TAU_1H: u64 = HOUR;
pub(crate) const TAU_1D: u64 = DAY;

impl Account {
    /// Moves stranger sends older than the reply window from pending to aged.
    pub(crate) fn age_pending(&mut self, now: u64) {
        while let Some(&(t, p)) = self.pending_quick.front() {
            if t.saturating_add(QUICK_WINDOW) > now && self.pending_quick.len() <= MAX_PENDING {
                break;
            }
            self.pending_quick.pop_front();
            self.aged_quick += 1;
            if self.peers.get(&p).is_some_and(|f| f & peer::REPLIED != 0) {
                self.aged_quick_replied += 1;
            }
        }
        while let Some(&(t, p)) = self.pending.front() {
            if t.saturating_add(REPLY_WINDOW) > now && self.pending.len() <= MAX_PENDING {
                break;
            }
            self.pending.pop_front();
            self.aged += 1;
            if let Some(f) = self.peers.get_mut(&p) {
                *f |= peer::AGED;
                if *f & peer::REPLIED != 0 {
                    self.aged_replied += 1;
                }
            }
        }
    }

    /// Records that this account reached a stranger `p` at `t` (a message or a group add).
    pub(crate) fn reached_stranger(&mut self, t: u64, p: u32, group_add: bool) {
        self.strangers += 1;
        if group_add {
            self.group_stranger_adds += 1;
        }
        self.fanout_10m.add(t, TAU_10M, 1.0);
        self.fanout_1h.add(t, TAU_1H, 1.0);
        self.pending.push_back((t, p));
        self.pending_quick.push_back((t, p));
    }

    pub(crate) fn lookup_miss_ratio(&self, now: u64) -> f32 {
        let asked = self.lookup_asked.value(now, TAU_1D);
        let found = self.lookup_found.value(now, TAU_1D);
        ((asked - found) / (asked + 20.0)).max(0.0)
    }

    pub(crate) fn unanswered(&self) -> u32 {
        self.aged.saturating_sub(self.aged_replied)
    }

    /// The feature vector at `now` (call [`Account::age_pending`] first).
    pub(crate) fn features(&self, now: u64) -> [f32; N_FEATURES] {
        let ln1p = |x: f32| x.max(0.0).ln_1p();
        let age_h = match self.registered_at {
            Some(r) => now.saturating_sub(r) as f32 / HOUR as f32,
            None => UNKNOWN_AGE_HOURS,
        };
        let unanswered = self.unanswered() as f32;
        let fanout_10m = ln1p(self.fanout_10m.value(now, TAU_10M));
        let regularity = self.gaps.cv().map_or(0.0, |cv| (1.0 - cv).max(0.0));
        let quick_unanswered = self.aged_quick.saturating_sub(self.aged_quick_replied) as f32;
        [
            ln1p(age_h),
            ln1p(self.reg_prefix as f32),
            ln1p(self.reg_ip24 as f32),
            ln1p(self.reg_client as f32),
            ln1p(self.reg_seq as f32),
            ln1p(self.lookup_asked.value(now, TAU_1D)),
            self.lookup_miss_ratio(now),
            ln1p(self.strangers as f32),
            if self.recipients == 0 {
                0.0
            } else {
                self.strangers as f32 / self.recipients as f32
            },
            ln1p(unanswered),
            unanswered / (self.aged as f32 + 3.0),
            fanout_10m,
            ln1p(self.fanout_1h.value(now, TAU_1H)),
            regularity,
            ln1p(self.group_stranger_adds as f32),
            ln1p(self.reports_w),
            ln1p(self.blocks_w),
            (self.blocks_w + self.reports_w) / (1.0 + self.recipients as f32),
            ln1p(self.msg_1h.value(now, TAU_1H)),
            ln1p(self.inbound as f32),
            ln1p(quick_unanswered),
            quick_unanswered / (self.aged_quick as f32 + 3.0),
            regularity * fanout_10m,
            // Fan-out to strangers from an account older than a day: the warm-up pattern.
            (age_h / 24.0).min(1.0) * fanout_10m,
        ]
    }

    /// Drops the windows of an account idle since long: contacts, pending sends, gaps, groups.
    /// Its decision (sticky if banned), registration facts and counts stay.
    pub(crate) fn forget_windows(&mut self) {
        self.peers = FxMap::default();
        self.pending = VecDeque::new();
        self.pending_quick = VecDeque::new();
        self.groups = Vec::new();
        self.gaps = Gaps::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_halves_after_tau_ln2() {
        let mut d = Decay::default();
        d.add(0, HOUR, 10.0);
        let half = (HOUR as f64 * std::f64::consts::LN_2) as u64;
        assert!((d.value(half, HOUR) - 5.0).abs() < 0.01);
        d.add(half, HOUR, 1.0);
        assert!((d.value(half, HOUR) - 6.0).abs() < 0.01);
    }

    #[test]
    fn timing_regularity_separates_a_timer_from_a_person() {
        let mut timer = Gaps::default();
        let mut person = Gaps::default();
        let human = [
            3_000u64, 40_000, 2_000, 900_000, 5_000, 7_000, 60_000, 1_000, 300_000, 4_000,
        ];
        let (mut t1, mut t2) = (0, 0);
        for (i, h) in human.iter().enumerate() {
            t1 += 60_000 + (i as u64 % 3) * 500;
            timer.record(t1);
            t2 += h;
            person.record(t2);
        }
        assert!(timer.cv().unwrap() < 0.05);
        assert!(person.cv().unwrap() > 1.0);
        // The running sums agree with a direct computation once the ring has wrapped.
        let mut wrapped = Gaps::default();
        let gaps: Vec<u64> = (0..40u64).map(|i| 1000 + (i * 7919) % 5000).collect();
        let mut t = 0;
        for g in &gaps {
            t += g;
            wrapped.record(t);
        }
        let last: Vec<f64> = gaps[gaps.len() - GAPS..].iter().map(|&g| g as f64).collect();
        let mean = last.iter().sum::<f64>() / GAPS as f64;
        let sd = (last.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / GAPS as f64).sqrt();
        assert!((wrapped.cv().unwrap() as f64 - sd / mean).abs() < 1e-6);
        let mut few = Gaps::default();
        for t in 0..5 {
            few.record(t * 1000);
        }
        assert_eq!(few.cv(), None, "too few gaps to judge");
    }

    #[test]
    fn unanswered_strangers_age_and_late_replies_count() {
        let mut a = Account::default();
        for p in 0..3 {
            a.peers.insert(p, peer::I_SENT | peer::STRANGER);
            a.reached_stranger(0, p, false);
        }
        a.age_pending(REPLY_WINDOW - 1);
        assert_eq!(a.aged, 0, "still inside the reply window");
        a.age_pending(REPLY_WINDOW);
        assert_eq!((a.aged, a.unanswered()), (3, 3));
        let x = a.features(REPLY_WINDOW);
        assert!(x[9] > 1.3 && x[10] > 0.49, "{x:?}");
    }

    #[test]
    fn lookup_miss_ratio_tells_an_address_book_from_enumeration() {
        let mut book = Account::default();
        book.lookup_asked.add(0, TAU_1D, 300.0);
        book.lookup_found.add(0, TAU_1D, 150.0);
        let mut enumerator = Account::default();
        enumerator.lookup_asked.add(0, TAU_1D, 5000.0);
        enumerator.lookup_found.add(0, TAU_1D, 50.0);
        assert!(book.lookup_miss_ratio(0) < 0.5);
        assert!(enumerator.lookup_miss_ratio(0) > 0.98);
        assert_eq!(
            Account::default().lookup_miss_ratio(0),
            0.0,
            "no lookups, no signal"
        );
    }
}
