//! The online engine: events in, decisions out.
//!
//! [`Engine::observe`] takes one event, updates the state of the accounts it touches and
//! re-scores the account whose behaviour it describes (the sender, the registrant, the account
//! looking up, the account reported or blocked, and registrations it clusters with). A
//! [`Decision`] is emitted only when an account's action *changes*. Decisions for an event use
//! that event and earlier ones only, so replaying a log gives exactly what the server decided.
//!
//! The decision at an event already counts that event: the server should call `observe` before
//! it carries the request out and refuse it when the action is `ban` (or `challenge`, until the
//! client has solved the challenge).

use std::collections::VecDeque;
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::features::{Account, DAY, HOUR, N_FEATURES, TAU_1D, TAU_1H, peer};
use crate::fxhash::{FxMap, hash_str};
use crate::model::{Model, ModelError};
use crate::rules::{self, RulesConfig};

/// What the server does with an account, in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Allow,
    /// Slow the account's sends to strangers.
    Throttle,
    /// The client must solve a challenge (proof of work or captcha-style) before sending more.
    Challenge,
    /// Sticky until an operator calls [`Engine::unban`].
    Ban,
}

/// A change of an account's action, with the signals that fired (stable identifiers from
/// [`crate::FEATURE_NAMES`] and the rule names in [`crate::rules`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub t: u64,
    pub account: String,
    pub action: Action,
    pub reasons: Vec<String>,
}

/// Operator settings. Every field has a default (documented on it), so a config file may name
/// only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Model probability from which an account is throttled (default 0.6). A value above 1
    /// turns the step off.
    pub throttle_at: f64,
    /// Model probability from which an account must pass a challenge (default 0.93).
    pub challenge_at: f64,
    /// Model probability from which an account is banned (default 0.98).
    pub ban_at: f64,
    /// Leading digits of the E.164 number (country code included) that form its prefix for
    /// registration velocity (default 7).
    pub prefix_digits: usize,
    /// Peers remembered per account (default 4096). Beyond it new peers are still counted,
    /// but a later reply from them is not credited.
    pub max_peers: usize,
    /// An account idle this long (ms) loses its contact and window state (default 30 days).
    pub idle_forget_ms: u64,
    /// Accounts the engine keeps state for at most (default 1,000,000: about 0.5 KB each
    /// without peers, so about 500 MB at the cap; lower it on a small machine). When an event
    /// finds the engine full, the eighth of the accounts idle the longest are forgotten first;
    /// one event can add at most its own accounts (up to 1,025) beyond the cap meanwhile.
    pub max_accounts: usize,
    /// Apply the hard rules on top of the model (default true).
    pub rules_enabled: bool,
    pub rules: RulesConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            throttle_at: 0.6,
            challenge_at: 0.93,
            ban_at: 0.98,
            prefix_digits: 7,
            max_peers: 4096,
            idle_forget_ms: 30 * DAY,
            max_accounts: 1_000_000,
            rules_enabled: true,
            rules: RulesConfig::default(),
        }
    }
}

/// Why an engine cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error(
        "thresholds must satisfy 0 < throttle_at <= challenge_at <= ban_at (got {throttle_at}, {challenge_at}, {ban_at})"
    )]
    Thresholds {
        throttle_at: f64,
        challenge_at: f64,
        ban_at: f64,
    },
    #[error("prefix_digits must be between 1 and 15, got {0}")]
    PrefixDigits(usize),
    #[error("max_accounts must be between 1 and {max}, got {got}", max = u32::MAX / 2)]
    MaxAccounts { got: usize },
    #[error("the model cannot be used: {0}")]
    Model(#[from] ModelError),
}

/// Recipients or members of one event taken into account (the server caps groups at 1,024).
const MAX_FANOUT: usize = 1024;
/// A group at most this big, created by someone else, makes its members contacts.
const SMALL_GROUP: usize = 32;
const MAX_GROUPS_PER_ACCOUNT: usize = 64;
/// Numbers at most this far apart count as sequential.
const SEQ_DISTANCE: u64 = 10;
/// Numbers are kept for the sequential check by blocks of this many (see `Engine::seq`).
const SEQ_BLOCK: u64 = 16;
const PRUNE_EVERY: u64 = HOUR;
const NO_CREATOR: u32 = u32::MAX;
/// A model feature is named as a reason when it adds at least this much to the logit.
const REASON_MIN: f64 = 0.5;
const MAX_MODEL_REASONS: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Member {
    added_by: u32,
    wrote: bool,
}

#[derive(Debug)]
struct Group {
    creator: u32,
    members: FxMap<u32, Member>,
    last_active: u64,
}

/// The abuse engine. One per server process; not shared between threads (wrap it in a mutex or
/// give it its own task and channel).
pub struct Engine {
    config: EngineConfig,
    model: Model,
    ids: FxMap<String, u32>,
    names: Vec<String>,
    accounts: Vec<Account>,
    /// Slots of forgotten accounts that other state may still name; [`Engine::prune`] removes
    /// every such reference, then the slots go to `free`.
    dead: Vec<u32>,
    /// Slots ready for new accounts.
    free: Vec<u32>,
    group_ids: FxMap<String, u32>,
    groups: FxMap<u32, Group>,
    next_group: u32,
    /// Registrations of the last hour per prefix, IP /24 and client (hashed keys).
    clusters: FxMap<u64, VecDeque<(u64, u32)>>,
    /// Registrations of the last day, for sequential numbers, without the numbers: under a
    /// keyed hash of the number's block of [`SEQ_BLOCK`] (`number / 16`), the number's place in
    /// its block, the time and the account. Exact for distances up to [`SEQ_DISTANCE`].
    seq: FxMap<u64, Vec<(u8, u64, u32)>>,
    /// (time, block hash, place) in registration order, to forget them after a day.
    seq_order: VecDeque<(u64, u64, u8)>,
    /// Random per process: a memory image does not list the numbers in the clear.
    seq_key: std::hash::RandomState,
    now: u64,
    last_prune: u64,
    out: Vec<Decision>,
    reasons: Vec<&'static str>,
    touched: Vec<u32>,
    tap: Option<Vec<(u32, u64, [f32; N_FEATURES])>>,
}

impl Engine {
    /// An engine scoring with the model shipped in the repository.
    pub fn new(config: EngineConfig) -> Result<Engine, ConfigError> {
        Engine::with_model(config, Model::shipped()?)
    }

    /// An engine scoring with `model` (training, threshold sweeps, experiments).
    pub fn with_model(config: EngineConfig, model: Model) -> Result<Engine, ConfigError> {
        let (a, b, c) = (config.throttle_at, config.challenge_at, config.ban_at);
        if !(a > 0.0 && a <= b && b <= c) {
            return Err(ConfigError::Thresholds {
                throttle_at: a,
                challenge_at: b,
                ban_at: c,
            });
        }
        if !(1..=15).contains(&config.prefix_digits) {
            return Err(ConfigError::PrefixDigits(config.prefix_digits));
        }
        if config.max_accounts == 0 || config.max_accounts > (u32::MAX / 2) as usize {
            return Err(ConfigError::MaxAccounts {
                got: config.max_accounts,
            });
        }
        Ok(Engine {
            config,
            model,
            ids: FxMap::default(),
            names: Vec::new(),
            accounts: Vec::new(),
            dead: Vec::new(),
            free: Vec::new(),
            group_ids: FxMap::default(),
            groups: FxMap::default(),
            next_group: 0,
            clusters: FxMap::default(),
            seq: FxMap::default(),
            seq_order: VecDeque::new(),
            seq_key: std::hash::RandomState::new(),
            now: 0,
            last_prune: 0,
            out: Vec::new(),
            reasons: Vec::new(),
            touched: Vec::new(),
            tap: None,
        })
    }

    /// Takes one event and returns the decisions that changed because of it (usually none).
    /// Events should come in time order; an event older than the newest seen is taken as
    /// happening at the newest time.
    pub fn observe(&mut self, event: &Event) -> std::vec::Drain<'_, Decision> {
        self.out.clear();
        let t = event.t().max(self.now);
        self.now = t;
        if t >= self.last_prune.saturating_add(PRUNE_EVERY) {
            self.prune(t);
        }
        if self.accounts() >= self.config.max_accounts {
            self.evict_idlest(
                self.accounts() - self.config.max_accounts + (self.config.max_accounts / 8).max(1),
            );
        }
        match event {
            Event::Register {
                account,
                phone,
                ip,
                client,
                ..
            } => self.on_register(t, account, phone, ip, client),
            Event::Message {
                from,
                to,
                conversation,
                ..
            } => self.on_message(t, from, to, conversation),
            Event::GroupCreate {
                account,
                group,
                members,
                ..
            }
            | Event::GroupAdd {
                account,
                group,
                members,
                ..
            } => self.on_group(t, account, group, members),
            Event::Lookup {
                account,
                count,
                found,
                ..
            } => {
                let a = self.intern(account);
                let acc = &mut self.accounts[a as usize];
                acc.last_active = t;
                acc.lookup_asked.add(t, TAU_1D, *count as f32);
                acc.lookup_found.add(t, TAU_1D, (*found).min(*count) as f32);
                self.evaluate(a, t);
            }
            Event::Block { account, peer, .. } => self.on_feedback(t, account, peer, false, false),
            Event::Report {
                account,
                peer,
                verified,
                ..
            } => self.on_feedback(t, account, peer, true, *verified),
        }
        self.out.drain(..)
    }

    /// The current decision about `account` (`allow` with no reasons for one never seen).
    pub fn decision(&self, account: &str) -> Decision {
        let found = self.ids.get(account).map(|&a| &self.accounts[a as usize]);
        Decision {
            t: found.map_or(0, |a| a.decided_at),
            account: account.to_owned(),
            action: found.map_or(Action::Allow, |a| a.action),
            reasons: found.map_or_else(Vec::new, |a| a.reasons.iter().map(|r| r.to_string()).collect()),
        }
    }

    /// Lifts a ban (operator decision after review). The account starts afresh: the signals
    /// that led to the ban are cleared, its contacts are kept, and it is judged on what it does
    /// next. Returns whether the account was banned.
    pub fn unban(&mut self, account: &str) -> bool {
        let Some(&a) = self.ids.get(account) else {
            return false;
        };
        let acc = &mut self.accounts[a as usize];
        if acc.action != Action::Ban {
            return false;
        }
        let peers = std::mem::take(&mut acc.peers);
        let groups = std::mem::take(&mut acc.groups);
        *acc = Account {
            registered_at: acc.registered_at,
            last_active: self.now,
            decided_at: self.now,
            peers,
            groups,
            ..Account::default()
        };
        true
    }

    /// Forgets everything about `account` (it was deleted): its state goes at once, and the
    /// references other accounts, groups and registration clusters hold to it at the next
    /// [`Engine::prune`]. Returns whether the engine knew it.
    pub fn forget(&mut self, account: &str) -> bool {
        let Some(a) = self.ids.remove(account) else {
            return false;
        };
        self.accounts[a as usize] = Account::default();
        self.names[a as usize] = String::new();
        self.dead.push(a);
        true
    }

    /// Forgets the `n` accounts idle the longest, and every reference to them.
    fn evict_idlest(&mut self, n: usize) {
        let mut live: Vec<(u64, u32)> = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, name)| !name.is_empty())
            .map(|(i, _)| (self.accounts[i].last_active, i as u32))
            .collect();
        let n = n.min(live.len());
        if n == 0 {
            return;
        }
        if n < live.len() {
            live.select_nth_unstable(n - 1);
        }
        for &(_, a) in &live[..n] {
            let name = std::mem::take(&mut self.names[a as usize]);
            self.ids.remove(&name);
            self.accounts[a as usize] = Account::default();
            self.dead.push(a);
        }
        self.release_dead();
    }

    /// Removes every reference to forgotten accounts, then frees their slots for reuse.
    fn release_dead(&mut self) {
        if self.dead.is_empty() {
            return;
        }
        let mut gone = vec![false; self.accounts.len()];
        for &d in &self.dead {
            gone[d as usize] = true;
        }
        let is_gone = |i: u32| gone.get(i as usize).copied().unwrap_or(false);
        for acc in &mut self.accounts {
            acc.peers.retain(|p, _| !is_gone(*p));
            acc.pending.retain(|&(_, p)| !is_gone(p));
            acc.pending_quick.retain(|&(_, p)| !is_gone(p));
        }
        for g in self.groups.values_mut() {
            if is_gone(g.creator) {
                g.creator = NO_CREATOR;
            }
            g.members.retain(|m, _| !is_gone(*m));
            for m in g.members.values_mut() {
                if is_gone(m.added_by) {
                    m.added_by = NO_CREATOR;
                }
            }
        }
        self.clusters.retain(|_, q| {
            q.retain(|&(_, a)| !is_gone(a));
            !q.is_empty()
        });
        self.seq.retain(|_, v| {
            v.retain(|e| !is_gone(e.2));
            !v.is_empty()
        });
        self.free.append(&mut self.dead);
    }

    /// Forgets the windows of accounts idle for `idle_forget_ms`, registration clusters older
    /// than their window, idle groups, and every reference to forgotten accounts. Runs by
    /// itself every hour of event time.
    pub fn prune(&mut self, now: u64) {
        self.last_prune = now;
        self.release_dead();
        let idle = self.config.idle_forget_ms;
        for acc in &mut self.accounts {
            if acc.last_active.saturating_add(idle) < now && !(acc.peers.is_empty() && acc.pending.is_empty())
            {
                acc.age_pending(u64::MAX);
                acc.forget_windows();
            }
        }
        self.clusters.retain(|_, q| {
            while q.front().is_some_and(|&(t, _)| t.saturating_add(HOUR) < now) {
                q.pop_front();
            }
            !q.is_empty()
        });
        let groups = &mut self.groups;
        groups.retain(|_, g| g.last_active.saturating_add(idle) >= now);
        self.group_ids.retain(|_, g| groups.contains_key(g));
    }

    /// Accounts the engine has state for.
    pub fn accounts(&self) -> usize {
        self.ids.len()
    }

    /// Starts recording every feature vector scored (for training).
    #[doc(hidden)]
    pub fn record_features(&mut self) {
        self.tap = Some(Vec::new());
    }

    /// The recorded feature vectors as (account, t, features), emptied.
    #[doc(hidden)]
    pub fn take_features(&mut self) -> Vec<(String, u64, [f32; N_FEATURES])> {
        let tap = self.tap.as_mut().map(std::mem::take).unwrap_or_default();
        tap.into_iter()
            .map(|(a, t, x)| (self.names[a as usize].clone(), t, x))
            .collect()
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        if let Some(i) = self.free.pop() {
            self.ids.insert(name.to_owned(), i);
            self.names[i as usize] = name.to_owned();
            self.accounts[i as usize] = Account::default();
            return i;
        }
        let i = self.accounts.len() as u32;
        self.ids.insert(name.to_owned(), i);
        self.names.push(name.to_owned());
        self.accounts.push(Account::default());
        i
    }

    fn on_register(&mut self, t: u64, account: &str, phone: &str, ip: &str, client: &str) {
        let a = self.intern(account);
        {
            let acc = &mut self.accounts[a as usize];
            acc.registered_at = Some(t);
            acc.last_active = t;
        }
        self.touched.clear();
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        let prefix = &digits[..digits.len().min(self.config.prefix_digits)];
        let keys = [
            hash_str(0, prefix),
            hash_str(1, &ip_block(ip)),
            hash_str(2, client),
        ];
        for (kind, key) in keys.into_iter().enumerate() {
            let q = self.clusters.entry(key).or_default();
            while q.front().is_some_and(|&(t0, _)| t0.saturating_add(HOUR) < t) {
                q.pop_front();
            }
            q.push_back((t, a));
            let others = (q.len() - 1).min(u16::MAX as usize) as u16;
            for &(_, m) in q.iter() {
                let acc = &mut self.accounts[m as usize];
                let field = match kind {
                    0 => &mut acc.reg_prefix,
                    1 => &mut acc.reg_ip24,
                    _ => &mut acc.reg_client,
                };
                if *field < others {
                    *field = others;
                    if m != a && others >= 2 {
                        self.touched.push(m);
                    }
                }
            }
        }
        if (6..=18).contains(&digits.len())
            && let Ok(number) = digits.parse::<u64>()
        {
            while let Some(&(t0, k0, p0)) = self.seq_order.front() {
                if t0.saturating_add(DAY) >= t {
                    break;
                }
                self.seq_order.pop_front();
                if let Some(v) = self.seq.get_mut(&k0) {
                    v.retain(|e| !(e.0 == p0 && e.1 == t0));
                    if v.is_empty() {
                        self.seq.remove(&k0);
                    }
                }
            }
            let (lo, hi) = (
                number.saturating_sub(SEQ_DISTANCE),
                number.saturating_add(SEQ_DISTANCE),
            );
            let mut neighbours: Vec<u32> = Vec::new();
            for block in lo / SEQ_BLOCK..=hi / SEQ_BLOCK {
                let Some(v) = self.seq.get(&self.seq_key.hash_one(block)) else {
                    continue;
                };
                neighbours.extend(v.iter().filter_map(|&(place, _, m)| {
                    let n = block * SEQ_BLOCK + u64::from(place);
                    (n != number && (lo..=hi).contains(&n)).then_some(m)
                }));
            }
            let c = neighbours.len().min(u16::MAX as usize) as u16;
            self.accounts[a as usize].reg_seq = self.accounts[a as usize].reg_seq.max(c);
            for m in neighbours {
                let acc = &mut self.accounts[m as usize];
                if acc.reg_seq < c {
                    acc.reg_seq = c;
                    if c >= 2 {
                        self.touched.push(m);
                    }
                }
            }
            let key = self.seq_key.hash_one(number / SEQ_BLOCK);
            let place = (number % SEQ_BLOCK) as u8;
            let v = self.seq.entry(key).or_default();
            v.retain(|e| e.0 != place);
            v.push((place, t, a));
            self.seq_order.push_back((t, key, place));
        }
        self.evaluate(a, t);
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for &m in &touched {
            self.evaluate(m, t);
        }
        self.touched = touched;
    }

    fn on_message(&mut self, t: u64, from: &str, to: &[String], conversation: &str) {
        let s = self.intern(from);
        {
            let acc = &mut self.accounts[s as usize];
            acc.sent += 1;
            acc.last_active = t;
            acc.msg_1h.add(t, TAU_1H, 1.0);
            acc.gaps.record(t);
        }
        let known = self
            .group_ids
            .get(conversation)
            .copied()
            .filter(|g| self.groups.contains_key(g));
        let group = match known {
            Some(g) => Some(g),
            // A group conversation the engine never saw created predates its state: take it as
            // an existing group whose members chose to be there.
            None if to.len() > 1 => Some(self.implicit_group(t, conversation, s, to)),
            None => None,
        };
        match group {
            Some(g) => self.group_message(t, g, s),
            None => {
                for r in to.iter().take(MAX_FANOUT) {
                    let r = self.intern(r);
                    self.reach(t, s, r, false);
                    self.received(t, r, s);
                }
            }
        }
        self.evaluate(s, t);
    }

    fn new_group(&mut self, t: u64, name: &str, creator: u32) -> u32 {
        let g = self.next_group;
        self.next_group = self.next_group.wrapping_add(1);
        self.group_ids.insert(name.to_owned(), g);
        self.groups.insert(
            g,
            Group {
                creator,
                members: FxMap::default(),
                last_active: t,
            },
        );
        g
    }

    fn join(&mut self, g: u32, m: u32, added_by: u32) {
        if let Some(grp) = self.groups.get_mut(&g) {
            grp.members.insert(
                m,
                Member {
                    added_by,
                    wrote: false,
                },
            );
            let groups = &mut self.accounts[m as usize].groups;
            if groups.len() >= MAX_GROUPS_PER_ACCOUNT {
                groups.remove(0);
            }
            groups.push(g);
        }
    }

    fn implicit_group(&mut self, t: u64, name: &str, s: u32, to: &[String]) -> u32 {
        let g = self.new_group(t, name, NO_CREATOR);
        self.join(g, s, s);
        for r in to.iter().take(MAX_FANOUT) {
            let r = self.intern(r);
            self.join(g, r, r);
        }
        g
    }

    fn group_message(&mut self, t: u64, g: u32, s: u32) {
        let Some(grp) = self.groups.get_mut(&g) else {
            return;
        };
        grp.last_active = t;
        let member = match grp.members.get_mut(&s) {
            Some(m) => m,
            None => {
                self.join(g, s, s);
                match self.groups.get_mut(&g).and_then(|grp| grp.members.get_mut(&s)) {
                    Some(m) => m,
                    None => return,
                }
            }
        };
        if !member.wrote {
            member.wrote = true;
            let adder = member.added_by;
            if adder != s && adder != NO_CREATOR {
                self.received(t, adder, s);
            }
        }
    }

    fn on_group(&mut self, t: u64, account: &str, group: &str, members: &[String]) {
        let a = self.intern(account);
        self.accounts[a as usize].last_active = t;
        let g = match self
            .group_ids
            .get(group)
            .copied()
            .filter(|g| self.groups.contains_key(g))
        {
            Some(g) => g,
            None => {
                let g = self.new_group(t, group, a);
                self.join(g, a, a);
                g
            }
        };
        if let Some(grp) = self.groups.get_mut(&g) {
            grp.last_active = t;
            if !grp.members.contains_key(&a) {
                self.join(g, a, a);
            }
        }
        for m in members.iter().take(MAX_FANOUT) {
            let m = self.intern(m);
            if self.groups.get(&g).is_none_or(|grp| grp.members.contains_key(&m)) {
                continue;
            }
            if m != a {
                self.reach(t, a, m, true);
            }
            self.join(g, m, a);
        }
        self.evaluate(a, t);
    }

    /// Is `r` a contact of `s` through a group: `r` wrote in a group `s` is in, `r` added `s` to a
    /// group, or both are in a small group someone else created.
    fn group_contact(&self, s: u32, r: u32) -> bool {
        self.accounts[s as usize].groups.iter().any(|g| {
            let Some(grp) = self.groups.get(g) else {
                return false;
            };
            let Some(mr) = grp.members.get(&r) else {
                return false;
            };
            mr.wrote
                || grp.members.get(&s).is_some_and(|ms| ms.added_by == r)
                || (grp.creator != s && grp.members.len() <= SMALL_GROUP)
        })
    }

    /// `s` reaches `r` (a message or a group add); counts `r` as a stranger if it is not a contact.
    fn reach(&mut self, t: u64, s: u32, r: u32, group_add: bool) {
        if s == r {
            return;
        }
        let known = self.accounts[s as usize].peers.get(&r).copied();
        let flags = known.unwrap_or(0);
        if flags & peer::I_SENT != 0 {
            return;
        }
        let contact = flags & peer::THEY_SENT != 0 || self.group_contact(s, r);
        let max_peers = self.config.max_peers;
        let acc = &mut self.accounts[s as usize];
        acc.recipients += 1;
        let mut flags = flags | peer::I_SENT;
        if !contact {
            flags |= peer::STRANGER;
            acc.reached_stranger(t, r, group_add);
        }
        if known.is_some() || acc.peers.len() < max_peers {
            acc.peers.insert(r, flags);
        }
    }

    /// `s` has written to `r`: `s` becomes a contact of `r`, and answers `r`'s stranger send.
    fn received(&mut self, t: u64, r: u32, s: u32) {
        if s == r {
            return;
        }
        let max_peers = self.config.max_peers;
        let acc = &mut self.accounts[r as usize];
        acc.last_active = acc.last_active.max(t);
        let known = acc.peers.get(&s).copied();
        let flags = known.unwrap_or(0);
        if flags & peer::THEY_SENT != 0 || (known.is_none() && acc.peers.len() >= max_peers) {
            return;
        }
        let mut flags = flags | peer::THEY_SENT;
        acc.inbound += 1;
        if flags & peer::STRANGER != 0 && flags & peer::REPLIED == 0 {
            flags |= peer::REPLIED;
            acc.stranger_replied += 1;
            if flags & peer::AGED != 0 {
                acc.aged_replied += 1;
            }
        }
        acc.peers.insert(s, flags);
    }

    /// How much a report or block by `a` weighs: less from young accounts and from accounts the
    /// model itself finds suspicious.
    fn standing(&self, a: u32, t: u64) -> f32 {
        let acc = &self.accounts[a as usize];
        let age = match acc.registered_at {
            None => 1.0,
            Some(r) => (t.saturating_sub(r) as f32 / (3 * DAY) as f32).clamp(0.1, 1.0),
        };
        let own = if acc.action == Action::Ban {
            0.05
        } else {
            (1.0 - acc.score).max(0.05)
        };
        age * own
    }

    fn on_feedback(&mut self, t: u64, reporter: &str, target: &str, report: bool, verified: bool) {
        let a = self.intern(reporter);
        let p = self.intern(target);
        if a == p {
            return;
        }
        // Activity, for pruning and eviction only (no feature reads it).
        self.accounts[a as usize].last_active = t;
        let flag = if report {
            peer::REPORTED_ME
        } else {
            peer::BLOCKED_ME
        };
        let known = self.accounts[p as usize].peers.get(&a).copied();
        let flags = known.unwrap_or(0);
        if flags & flag != 0 {
            return;
        }
        // A report from someone the target never wrote to is weak evidence (brigading).
        let contacted = if flags & peer::I_SENT != 0 { 1.0 } else { 0.25 };
        let weight = self.standing(a, t) * contacted * if verified { 2.0 } else { 1.0 };
        let max_peers = self.config.max_peers;
        let acc = &mut self.accounts[p as usize];
        if known.is_some() || acc.peers.len() < max_peers {
            acc.peers.insert(a, flags | flag);
        }
        if report {
            acc.reports_w += weight;
        } else {
            acc.blocks_w += weight;
        }
        self.evaluate(p, t);
    }

    fn threshold(c: &EngineConfig, p: f64) -> Action {
        if p >= c.ban_at {
            Action::Ban
        } else if p >= c.challenge_at {
            Action::Challenge
        } else if p >= c.throttle_at {
            Action::Throttle
        } else {
            Action::Allow
        }
    }

    fn evaluate(&mut self, a: u32, t: u64) {
        let acc = &mut self.accounts[a as usize];
        if acc.action == Action::Ban {
            return;
        }
        acc.age_pending(t);
        let x = acc.features(t);
        let p = self.model.score(&x);
        acc.score = p as f32;
        if let Some(tap) = &mut self.tap {
            tap.push((a, t, x));
        }
        self.reasons.clear();
        let by_model = Engine::threshold(&self.config, p);
        let mut action = by_model;
        if self.config.rules_enabled {
            action = action.max(rules::check(&self.config.rules, acc, t, &mut self.reasons));
        }
        if action == acc.action {
            return;
        }
        if by_model > Action::Allow {
            let c = self.model.contributions(&x);
            let mut order: Vec<usize> = (0..N_FEATURES).filter(|&i| c[i] >= REASON_MIN).collect();
            order.sort_by(|&i, &j| c[j].total_cmp(&c[i]));
            self.reasons.extend(
                order
                    .iter()
                    .take(MAX_MODEL_REASONS)
                    .map(|&i| crate::FEATURE_NAMES[i]),
            );
        }
        acc.action = action;
        acc.decided_at = t;
        acc.reasons.clear();
        acc.reasons.extend_from_slice(&self.reasons);
        self.out.push(Decision {
            t,
            account: self.names[a as usize].clone(),
            action,
            reasons: self.reasons.iter().map(|r| r.to_string()).collect(),
        });
    }
}

/// The block an address belongs to: /24 for IPv4, /48 for IPv6 (the first three groups).
fn ip_block(ip: &str) -> String {
    if ip.contains(':') {
        ip.split(':').take(3).collect::<Vec<_>>().join(":")
    } else {
        ip.rsplit_once('.').map_or(ip, |(net, _)| net).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(t: u64, a: &str, phone: &str, ip: &str) -> Event {
        Event::Register {
            t,
            account: a.into(),
            phone: phone.into(),
            ip: ip.into(),
            client: "Sirr/1.4.2 android".into(),
        }
    }

    fn msg(t: u64, from: &str, to: &[&str], conv: &str) -> Event {
        let to = to.iter().map(|s| s.to_string()).collect();
        Event::Message {
            t,
            from: from.into(),
            to,
            conversation: conv.into(),
            bytes: 256,
            media: false,
        }
    }

    fn dm(t: u64, from: &str, to: &str) -> Event {
        msg(t, from, &[to], &format!("dm:{}", from.min(to)))
    }

    fn group(t: u64, create: bool, by: &str, g: &str, members: &[&str]) -> Event {
        let members = members.iter().map(|s| s.to_string()).collect();
        if create {
            Event::GroupCreate {
                t,
                account: by.into(),
                group: g.into(),
                members,
            }
        } else {
            Event::GroupAdd {
                t,
                account: by.into(),
                group: g.into(),
                members,
            }
        }
    }

    /// An engine that only observes (never acts), to look at the state.
    fn quiet() -> Engine {
        let cfg = EngineConfig {
            throttle_at: 2.0,
            challenge_at: 2.0,
            ban_at: 2.0,
            rules_enabled: false,
            ..EngineConfig::default()
        };
        Engine::new(cfg).unwrap()
    }

    fn feed(e: &mut Engine, events: &[Event]) -> Vec<Decision> {
        events
            .iter()
            .flat_map(|ev| e.observe(ev).collect::<Vec<_>>())
            .collect()
    }

    fn state<'a>(e: &'a Engine, a: &str) -> &'a Account {
        &e.accounts[e.ids[a] as usize]
    }

    #[test]
    fn registration_bursts_per_ip24_reach_earlier_registrants_too() {
        let mut e = quiet();
        let evs: Vec<Event> = (0..6)
            .map(|i| {
                reg(
                    i * MINUTE_MS,
                    &format!("f{i}"),
                    &format!("+4917{}", 1000000 + i * 997),
                    &format!("203.0.113.{}", i + 1),
                )
            })
            .collect();
        feed(&mut e, &evs);
        assert_eq!(
            state(&e, "f0").reg_ip24,
            5,
            "the first of the burst learns about the later ones"
        );
        assert_eq!(state(&e, "f5").reg_ip24, 5);
        // An hour later the window has moved on.
        feed(&mut e, &[reg(2 * HOUR, "late", "+4915511111111", "203.0.113.99")]);
        assert_eq!(state(&e, "late").reg_ip24, 0);
    }

    #[test]
    fn sequential_numbers_are_counted_within_a_distance() {
        let mut e = quiet();
        let evs: Vec<Event> = (0..5)
            .map(|i| {
                reg(
                    i * MINUTE_MS,
                    &format!("s{i}"),
                    &format!("+49176{}", 5550000 + i * 2),
                    &format!("10.{i}.0.1"),
                )
            })
            .collect();
        feed(&mut e, &evs);
        feed(&mut e, &[reg(10 * MINUTE_MS, "far", "+491765559999", "10.9.0.1")]);
        assert_eq!(state(&e, "s4").reg_seq, 4);
        assert_eq!(state(&e, "s0").reg_seq, 4);
        assert_eq!(
            state(&e, "far").reg_seq,
            0,
            "3,991 numbers away is not sequential"
        );
    }

    #[test]
    fn sequential_numbers_count_across_blocks_and_the_numbers_are_not_kept() {
        let mut e = quiet();
        // 4915000000015 and ...016 sit in different blocks of 16; ...026 is 11 from ...015.
        let numbers = [4915000000015u64, 4915000000016, 4915000000025, 4915000000026];
        let evs: Vec<Event> = numbers
            .iter()
            .enumerate()
            .map(|(i, n)| {
                reg(
                    i as u64 * MINUTE_MS,
                    &format!("n{i}"),
                    &format!("+{n}"),
                    &format!("10.{i}.0.1"),
                )
            })
            .collect();
        feed(&mut e, &evs);
        // n0 (…015) has …016 and …025 within 10, not …026.
        assert_eq!(state(&e, "n0").reg_seq, 2);
        assert_eq!(state(&e, "n3").reg_seq, 2, "…026 has …016 and …025, not …015");
        for n in numbers {
            assert!(!e.seq.contains_key(&n) && !e.seq.contains_key(&(n / SEQ_BLOCK)));
        }
        // A day later they are gone.
        feed(&mut e, &[reg(2 * DAY, "late", "+4915000000017", "10.9.0.1")]);
        assert_eq!(state(&e, "late").reg_seq, 0);
        assert_eq!(e.seq.len(), 1);
    }

    #[test]
    fn strangers_are_those_who_never_wrote_and_replies_are_credited() {
        let mut e = quiet();
        feed(
            &mut e,
            &[
                dm(0, "friend", "me"),
                dm(1000, "me", "friend"),
                dm(2000, "me", "x"),
                dm(3000, "me", "y"),
            ],
        );
        let me = state(&e, "me");
        assert_eq!((me.recipients, me.strangers), (3, 2), "the friend wrote first");
        feed(
            &mut e,
            &[dm(60_000, "x", "me"), dm(REPLY_WINDOW_MS + 5000, "me", "friend")],
        );
        let me = state(&e, "me");
        assert_eq!(me.stranger_replied, 1);
        assert_eq!((me.aged, me.aged_replied), (2, 1), "x answered, y did not");
        assert_eq!(me.inbound, 2);
    }

    #[test]
    fn a_small_group_someone_else_made_makes_contacts_a_big_self_joined_one_does_not_make_strangers() {
        let mut e = quiet();
        // Carol's small group: Alice and Bob are contacts through it.
        feed(
            &mut e,
            &[
                group(0, true, "carol", "g1", &["alice", "bob"]),
                dm(1000, "alice", "bob"),
            ],
        );
        assert_eq!(state(&e, "alice").strangers, 0);
        // Alice's own group does not make its members her contacts.
        feed(&mut e, &[group(2000, true, "alice", "g2", &["dave", "erin"])]);
        assert_eq!(state(&e, "alice").group_stranger_adds, 2);
        // An organiser's big group of people who joined by link: no stranger adds, and members
        // who write there become contacts.
        let mut evs = vec![group(3000, true, "org", "big", &[])];
        for i in 0..100 {
            evs.push(group(
                4000 + i,
                false,
                &format!("m{i}"),
                "big",
                &[&format!("m{i}")],
            ));
        }
        evs.push(msg(9000, "m7", &[], "big"));
        evs.push(dm(10_000, "org", "m7"));
        feed(&mut e, &evs);
        let org = state(&e, "org");
        assert_eq!((org.group_stranger_adds, org.strangers), (0, 0));
        // A stranger added by Alice who writes in her group answers her.
        feed(&mut e, &[msg(11_000, "dave", &["alice", "erin"], "g2")]);
        assert_eq!(state(&e, "alice").stranger_replied, 1);
    }

    #[test]
    fn reports_weigh_by_the_reporters_standing() {
        let mut e = quiet();
        let report = |t, by: &str, peer: &str, verified| Event::Report {
            t,
            account: by.into(),
            peer: peer.into(),
            verified,
        };
        feed(
            &mut e,
            &[dm(0, "target", "old"), report(1000, "old", "target", true)],
        );
        let established = state(&e, "target").reports_w;
        feed(
            &mut e,
            &[
                reg(2000, "fresh", "+4915000000001", "10.0.0.1"),
                report(3000, "fresh", "target2", false),
            ],
        );
        let fresh = state(&e, "target2").reports_w;
        assert!(
            (established - 2.0).abs() < 0.01,
            "verified, by an established contact: {established}"
        );
        assert!(
            fresh < 0.05,
            "unverified, by a fresh account never contacted: {fresh}"
        );
        // One reporter counts once.
        feed(&mut e, &[report(4000, "old", "target", true)]);
        assert_eq!(state(&e, "target").reports_w, established);
    }

    #[test]
    fn lookups_accumulate_and_enumeration_is_banned_with_its_reason() {
        let mut e = Engine::new(EngineConfig::default()).unwrap();
        let look = |t, count| Event::Lookup {
            t,
            account: "enum".into(),
            count,
            found: count / 100,
        };
        let d = feed(&mut e, &[look(0, 600), look(MINUTE_MS, 600)]);
        let ban = d.iter().find(|d| d.action == Action::Ban).expect("banned");
        assert!(ban.reasons.iter().any(|r| r == "enumeration"), "{ban:?}");
        assert_eq!(e.decision("enum").action, Action::Ban);
    }

    #[test]
    fn bans_are_sticky_until_an_operator_unbans() {
        let mut e = Engine::new(EngineConfig::default()).unwrap();
        let look = |t| Event::Lookup {
            t,
            account: "a".into(),
            count: 5000,
            found: 10,
        };
        assert_eq!(feed(&mut e, &[look(0)]).len(), 1);
        // Anything the account does now changes nothing; no new decisions are emitted.
        let mut later: Vec<Event> = (0..50).map(|i| dm(1000 + i, "a", "someone")).collect();
        later.push(Event::Lookup {
            t: 2000,
            account: "a".into(),
            count: 1,
            found: 1,
        });
        assert!(feed(&mut e, &later).is_empty());
        assert_eq!(e.decision("a").action, Action::Ban);
        assert!(e.unban("a"));
        assert_eq!(e.decision("a").action, Action::Allow);
        assert!(!e.unban("a"), "not banned any more");
        assert!(!e.unban("nobody"));
        assert_eq!(
            e.decision("nobody"),
            Decision {
                t: 0,
                account: "nobody".into(),
                action: Action::Allow,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn idle_accounts_are_pruned_to_their_fixed_state() {
        let mut e = quiet();
        feed(&mut e, &[dm(0, "a", "b"), dm(1, "b", "a")]);
        assert!(!state(&e, "a").peers.is_empty());
        feed(&mut e, &[dm(31 * DAY, "c", "d")]);
        assert!(state(&e, "a").peers.is_empty() && state(&e, "a").pending.is_empty());
        assert!(!state(&e, "c").peers.is_empty(), "the active one keeps its state");
    }

    #[test]
    fn a_forgotten_account_leaves_nothing_and_its_slot_inherits_nothing() {
        let mut e = quiet();
        feed(&mut e, &[dm(0, "b", "a"), dm(1000, "a", "b")]);
        let b = e.ids["b"];
        assert!(
            state(&e, "a").peers.contains_key(&b),
            "b wrote to a first: a contact"
        );
        assert!(e.forget("b"));
        assert!(!e.forget("b"), "already forgotten");
        assert_eq!(e.accounts(), 1);
        e.prune(2000);
        assert!(state(&e, "a").peers.is_empty(), "no reference to b is left");
        // A new account takes b's slot; it is a stranger to a, not b's heir.
        feed(&mut e, &[dm(3000, "a", "c")]);
        assert_eq!(e.ids["c"], b, "the slot is reused");
        assert_eq!(state(&e, "a").strangers, 1);
        assert_eq!(e.decision("b").action, Action::Allow);
    }

    #[test]
    fn the_engine_holds_at_most_max_accounts_however_many_it_hears_of() {
        let mut e = Engine::new(EngineConfig {
            max_accounts: 1_000,
            ..EngineConfig::default()
        })
        .unwrap();
        for i in 0..100_000u64 {
            e.observe(&Event::Block {
                t: i,
                account: "me".into(),
                peer: format!("made-up-{i}"),
            });
        }
        assert!(e.accounts() <= 1_000, "{} accounts", e.accounts());
        assert!(e.accounts.len() <= 1_001, "{} slots", e.accounts.len());
        assert_eq!(e.ids["me"], 0, "the active account keeps its state throughout");
        assert!(e.ids.contains_key("made-up-99999"), "so is the newest");
        assert!(!e.ids.contains_key("made-up-0"), "the idlest went first");
        assert!(matches!(
            Engine::new(EngineConfig {
                max_accounts: 0,
                ..EngineConfig::default()
            }),
            Err(ConfigError::MaxAccounts { got: 0 })
        ));
    }

    #[test]
    fn extreme_input_does_not_panic() {
        let mut e = Engine::new(EngineConfig::default()).unwrap();
        let evs = [
            reg(u64::MAX - 1, "a", "+999999999999999999999", "::"),
            reg(u64::MAX, "b", "", ""),
            Event::Lookup {
                t: u64::MAX,
                account: "a".into(),
                count: u64::MAX,
                found: u64::MAX,
            },
            dm(0, "a", "a"),
            msg(u64::MAX, "b", &[], "x"),
            group(u64::MAX, false, "b", "x", &["b", "b", "a"]),
            Event::Report {
                t: 0,
                account: "a".into(),
                peer: "a".into(),
                verified: true,
            },
            Event::Block {
                t: u64::MAX,
                account: "b".into(),
                peer: "a".into(),
            },
        ];
        feed(&mut e, &evs);
        e.prune(u64::MAX);
        e.prune(0);
    }

    const MINUTE_MS: u64 = 60_000;
    const REPLY_WINDOW_MS: u64 = crate::features::REPLY_WINDOW;

    #[test]
    fn ip_blocks() {
        assert_eq!(ip_block("192.0.2.17"), "192.0.2");
        assert_eq!(ip_block("2001:db8:42:1::7"), "2001:db8:42");
        assert_eq!(ip_block("junk"), "junk");
    }

    #[test]
    fn thresholds_must_be_ordered() {
        let c = EngineConfig {
            throttle_at: 0.9,
            ban_at: 0.5,
            ..EngineConfig::default()
        };
        assert!(matches!(Engine::new(c), Err(ConfigError::Thresholds { .. })));
        let c = EngineConfig {
            prefix_digits: 0,
            ..EngineConfig::default()
        };
        assert!(matches!(Engine::new(c), Err(ConfigError::PrefixDigits(0))));
    }

    #[test]
    fn config_reads_partial_toml_like_json_with_defaults() {
        let c: EngineConfig =
            serde_json::from_str(r#"{"ban_at": 0.99, "rules": {"unanswered_min": 40}}"#).unwrap();
        assert_eq!(c.ban_at, 0.99);
        assert_eq!(c.rules.unanswered_min, 40);
        assert_eq!(c.throttle_at, EngineConfig::default().throttle_at);
        assert!(
            serde_json::from_str::<EngineConfig>(r#"{"ban_treshold": 1}"#).is_err(),
            "typos are refused"
        );
    }
}
