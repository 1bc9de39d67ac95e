//! The traffic simulator: a population of ordinary people, hard ordinary cases and abusers of
//! several kinds, as an event log in the engine's schema plus the true label of every account.
//!
//! Deterministic per seed (a seeded `StdRng`, no clocks, no hash-map iteration order). The
//! parameters of every behaviour are drawn per seed from ranges, and [`Variant::Shifted`] moves
//! those ranges (other country, slower and stealthier abusers, fewer reports, more new users), as
//! a stand-in for logs the engine was not trained on. Pure: it returns events, it writes nothing.

use std::collections::{BTreeMap, HashSet};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::features::{DAY, HOUR, MINUTE};

/// The true kind of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Ordinary,
    HardNewGreeter,
    HardOrganiser,
    HardPopular,
    HardShop,
    Blaster,
    SlowDrip,
    Warmup,
    Farm,
    GroupSpammer,
    Enumerator,
    TimerBot,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Ordinary,
        Kind::HardNewGreeter,
        Kind::HardOrganiser,
        Kind::HardPopular,
        Kind::HardShop,
        Kind::Blaster,
        Kind::SlowDrip,
        Kind::Warmup,
        Kind::Farm,
        Kind::GroupSpammer,
        Kind::Enumerator,
        Kind::TimerBot,
    ];

    pub fn is_abuser(self) -> bool {
        self >= Kind::Blaster
    }

    pub fn is_hard(self) -> bool {
        matches!(
            self,
            Kind::HardNewGreeter | Kind::HardOrganiser | Kind::HardPopular | Kind::HardShop
        )
    }

    /// The name used in `labels.json`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ordinary => "ordinary",
            Kind::HardNewGreeter => "hard_new_greeter",
            Kind::HardOrganiser => "hard_organiser",
            Kind::HardPopular => "hard_popular",
            Kind::HardShop => "hard_shop",
            Kind::Blaster => "blaster",
            Kind::SlowDrip => "slow_drip",
            Kind::Warmup => "warmup",
            Kind::Farm => "farm",
            Kind::GroupSpammer => "group_spammer",
            Kind::Enumerator => "enumerator",
            Kind::TimerBot => "timer_bot",
        }
    }
}

/// One entry of `labels.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub kind: Kind,
}

/// Account → label, as in `labels.json`.
pub type Labels = BTreeMap<String, Label>;

/// Which parameter ranges the simulator draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    #[default]
    Standard,
    /// Different ranges throughout, never used for training.
    Shifted,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Ordinary accounts (abusers and hard cases come on top, scaled to it).
    pub accounts: usize,
    pub days: u32,
    pub variant: Variant,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            accounts: 3000,
            days: 3,
            variant: Variant::Standard,
        }
    }
}

/// A simulated log, sorted by `t`, and the truth about every account in it.
pub struct Population {
    pub events: Vec<Event>,
    pub labels: Labels,
}

/// Simulates a population.
pub fn simulate(cfg: &SimConfig) -> Population {
    let mut sim = Sim::new(cfg);
    sim.run();
    sim.finish()
}

const START: u64 = 1_780_000_000_000;
const ORDINARY_CLIENTS: [&str; 6] = [
    "Sirr/1.4.2 android",
    "Sirr/1.4.2 android",
    "Sirr/1.4.1 android",
    "Sirr/1.4.2 ios",
    "Sirr/1.4.0 ios",
    "sirr-cli/0.1",
];

struct Sim {
    rng: StdRng,
    shifted: bool,
    scale: f64,
    days: u32,
    start: u64,
    end: u64,
    out: Vec<(u64, u64, Event)>,
    n: u64,
    ids: Vec<String>,
    taken: HashSet<String>,
    kinds: Vec<Kind>,
    friends: Vec<Vec<u32>>,
    /// When each account can act (registration time, or the start for existing accounts).
    born: Vec<u64>,
    /// Existing ordinary accounts: the targets of abuse and the public of the hard cases.
    public: Vec<u32>,
    cgnat: Vec<String>,
    bad_blocks: Vec<String>,
    reacted: HashSet<(u32, u32)>,
    groups: u32,
    // Per-seed parameters.
    p_block: f64,
    p_report: f64,
    p_reply_stranger: f64,
    p_bad_ip: f64,
    p_custom_client: f64,
}

impl Sim {
    fn new(cfg: &SimConfig) -> Sim {
        let shifted = cfg.variant == Variant::Shifted;
        let mut rng = StdRng::seed_from_u64(cfg.seed ^ if shifted { 0x5eed_0ff5 } else { 0 });
        let days = cfg.days.max(1);
        let cgnat = (0..if shifted { 12 } else { 30 })
            .map(|_| format!("100.{}.{}", rng.random_range(64..128), rng.random_range(0..256)))
            .collect();
        let bad_blocks = (0..6)
            .map(|_| {
                format!(
                    "{}.{}.{}",
                    rng.random_range(140..200),
                    rng.random_range(0..256),
                    rng.random_range(0..256)
                )
            })
            .collect();
        let (pb, pr) = if shifted {
            ((0.05, 0.15), (0.01, 0.05))
        } else {
            ((0.1, 0.3), (0.03, 0.1))
        };
        Sim {
            p_block: rng.random_range(pb.0..pb.1),
            p_report: rng.random_range(pr.0..pr.1),
            p_reply_stranger: rng.random_range(0.01..0.05),
            p_bad_ip: rng.random_range(0.3..0.7),
            p_custom_client: rng.random_range(0.2..0.5),
            rng,
            shifted,
            scale: (cfg.accounts as f64 / 3000.0).max(0.25),
            days,
            start: START,
            end: START + u64::from(days) * DAY,
            out: Vec::new(),
            n: 0,
            ids: Vec::new(),
            taken: HashSet::new(),
            kinds: Vec::new(),
            friends: Vec::new(),
            born: Vec::new(),
            public: Vec::new(),
            cgnat,
            bad_blocks,
            reacted: HashSet::new(),
            groups: 0,
        }
    }

    fn finish(mut self) -> Population {
        let end = self.end;
        self.out.retain(|(t, _, _)| *t < end);
        self.out.sort_by_key(|(t, n, _)| (*t, *n));
        let labels = self
            .ids
            .iter()
            .zip(&self.kinds)
            .map(|(id, &kind)| (id.clone(), Label { kind }))
            .collect();
        Population {
            events: self.out.into_iter().map(|(_, _, e)| e).collect(),
            labels,
        }
    }

    // ---- randomness helpers ----

    fn uni(&mut self, a: f64, b: f64) -> f64 {
        if a >= b { a } else { self.rng.random_range(a..b) }
    }

    fn int(&mut self, a: f64, b: f64) -> usize {
        self.uni(a, b).round().max(0.0) as usize
    }

    fn count(&mut self, a: f64, b: f64) -> usize {
        let s = self.scale;
        (self.uni(a, b) * s).round().max(1.0) as usize
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.rng.random::<f64>()).ln()
    }

    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let (u1, u2): (f64, f64) = (self.rng.random::<f64>().max(1e-12), self.rng.random());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (sigma * z).exp()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn poisson(&mut self, lambda: f64) -> usize {
        let l = (-lambda.min(60.0)).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.rng.random::<f64>();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }

    /// A time on `day` at a waking hour (07:00–23:00), optionally within [from, to) hours.
    fn waking(&mut self, day: u32, from: f64, to: f64) -> u64 {
        let h = self.uni(from, to);
        self.start + u64::from(day) * DAY + (h * HOUR as f64) as u64
    }

    /// A waking time on a random day of the log.
    fn any_day(&mut self, from: f64, to: f64) -> u64 {
        let day = self.rng.random_range(0..self.days);
        self.waking(day, from, to)
    }

    fn ms(x: f64) -> u64 {
        x.max(0.0) as u64
    }

    // ---- accounts ----

    fn account(&mut self, kind: Kind, born: u64) -> u32 {
        let id = loop {
            let id = format!("{:012x}", self.rng.random::<u64>() & 0xffff_ffff_ffff);
            if self.taken.insert(id.clone()) {
                break id;
            }
        };
        self.ids.push(id);
        self.kinds.push(kind);
        self.friends.push(Vec::new());
        self.born.push(born);
        (self.ids.len() - 1) as u32
    }

    fn befriend(&mut self, a: u32, b: u32) {
        if a != b && !self.friends[a as usize].contains(&b) {
            self.friends[a as usize].push(b);
            self.friends[b as usize].push(a);
        }
    }

    fn phone_number(&mut self) -> u64 {
        let (cc, op): (u64, u64) = if self.shifted {
            (33, self.rng.random_range(600..780))
        } else {
            (49, self.rng.random_range(150..180))
        };
        (cc * 1000 + op) * 10_000_000 + self.rng.random_range(0..10_000_000)
    }

    fn ordinary_ip(&mut self) -> String {
        if self.chance(0.6) {
            let b = self.cgnat.choose(&mut self.rng).cloned().unwrap_or_default();
            format!("{b}.{}", self.rng.random_range(1..255))
        } else {
            format!(
                "{}.{}.{}.{}",
                self.rng.random_range(2..100),
                self.rng.random_range(0..256),
                self.rng.random_range(0..256),
                self.rng.random_range(1..255)
            )
        }
    }

    fn ordinary_client(&mut self) -> String {
        ORDINARY_CLIENTS
            .choose(&mut self.rng)
            .copied()
            .unwrap_or("Sirr")
            .to_owned()
    }

    fn abuser_ip(&mut self) -> String {
        if self.chance(self.p_bad_ip) {
            let b = self.bad_blocks.choose(&mut self.rng).cloned().unwrap_or_default();
            format!("{b}.{}", self.rng.random_range(1..255))
        } else {
            self.ordinary_ip()
        }
    }

    fn abuser_client(&mut self) -> String {
        if self.chance(self.p_custom_client) {
            format!("SirrMod/2.{}", self.rng.random_range(0..4))
        } else {
            self.ordinary_client()
        }
    }

    // ---- events ----

    fn push(&mut self, event: Event) {
        self.n += 1;
        self.out.push((event.t(), self.n, event));
    }

    fn register(&mut self, t: u64, a: u32, phone: u64, ip: String, client: String) {
        let account = self.ids[a as usize].clone();
        self.push(Event::Register {
            t,
            account,
            phone: format!("+{phone}"),
            ip,
            client,
        });
    }

    fn lookup(&mut self, t: u64, a: u32, count: usize, found: usize) {
        let account = self.ids[a as usize].clone();
        self.push(Event::Lookup {
            t,
            account,
            count: count as u64,
            found: found.min(count) as u64,
        });
    }

    fn message(&mut self, t: u64, from: u32, to: &[u32], conversation: String) {
        let media = self.chance(0.05);
        let bytes = if media {
            16_384
        } else {
            *[256u64, 256, 256, 512, 1024]
                .choose(&mut self.rng)
                .unwrap_or(&256)
        };
        let to = to.iter().map(|&r| self.ids[r as usize].clone()).collect();
        let from = self.ids[from as usize].clone();
        self.push(Event::Message {
            t,
            from,
            to,
            conversation,
            bytes,
            media,
        });
    }

    fn direct(&mut self, t: u64, from: u32, to: u32) {
        let (x, y) = (from.min(to), from.max(to));
        let conversation = format!("dm:{}:{}", self.ids[x as usize], self.ids[y as usize]);
        self.message(t, from, &[to], conversation);
    }

    fn group_event(&mut self, t: u64, create: bool, by: u32, group: &str, members: &[u32]) {
        let account = self.ids[by as usize].clone();
        let members = members.iter().map(|&m| self.ids[m as usize].clone()).collect();
        self.push(Event::group(create, t, account, group.to_owned(), members));
    }

    fn new_group_id(&mut self) -> String {
        self.groups += 1;
        format!("grp:{:08x}", self.rng.random::<u32>())
    }

    fn feedback(&mut self, t: u64, by: u32, peer: u32, report: bool, verified: bool) {
        let account = self.ids[by as usize].clone();
        let peer = self.ids[peer as usize].clone();
        self.push(if report {
            Event::Report {
                t,
                account,
                peer,
                verified,
            }
        } else {
            Event::Block { t, account, peer }
        });
    }

    /// A back-and-forth started by `a`; `b` answers with probability `p_answer`, and the exchange
    /// goes on for a few rounds with human delays.
    fn conversation(&mut self, mut t: u64, a: u32, b: u32, p_answer: f64, answer_median_min: f64) {
        let (mut x, mut y) = (a, b);
        for round in 0..6 {
            let k = self.rng.random_range(1..=3);
            for _ in 0..k {
                self.direct(t, x, y);
                t += Sim::ms((self.exp(15.0) + 1.0) * 1000.0);
            }
            let p = if round == 0 { p_answer } else { 0.55 };
            if !self.chance(p) {
                break;
            }
            let delay = self.lognormal(answer_median_min, 1.2).min(12.0 * 60.0);
            t += Sim::ms(delay * MINUTE as f64);
            std::mem::swap(&mut x, &mut y);
        }
    }

    /// How a stranger reacts to an abuser's contact: sometimes a reply, a block, a report.
    fn react(&mut self, t: u64, abuser: u32, target: u32) {
        if !self.reacted.insert((target, abuser)) {
            return;
        }
        if self.chance(self.p_reply_stranger) {
            let d = Sim::ms(self.lognormal(10.0, 1.0) * MINUTE as f64);
            self.direct(t + d, target, abuser);
        }
        if self.chance(self.p_block) {
            let d = Sim::ms(self.lognormal(15.0, 1.0) * MINUTE as f64);
            self.feedback(t + d, target, abuser, false, false);
        }
        if self.chance(self.p_report) {
            let d = Sim::ms(self.lognormal(60.0, 1.0) * MINUTE as f64);
            let verified = self.chance(0.8);
            self.feedback(t + d, target, abuser, true, verified);
        }
    }

    fn stranger(&mut self) -> u32 {
        self.public.choose(&mut self.rng).copied().unwrap_or(0)
    }

    // ---- the population ----

    fn run(&mut self) {
        let n_ordinary = self.public_capacity();
        self.ordinary(n_ordinary);
        for _ in 0..self.count(4.0, 10.0) {
            self.greeter();
        }
        for _ in 0..self.count(2.0, 5.0) {
            self.organiser();
        }
        for _ in 0..self.count(2.0, 5.0) {
            self.popular();
        }
        for _ in 0..self.count(2.0, 5.0) {
            self.shop();
        }
        for _ in 0..self.count(8.0, 16.0) {
            self.blaster();
        }
        let drips: Vec<u32> = (0..self.count(8.0, 16.0)).map(|_| self.slow_drip()).collect();
        self.accomplices(&drips);
        self.warmups();
        for _ in 0..self.count(2.0, 4.0) {
            self.farm();
        }
        for _ in 0..self.count(4.0, 10.0) {
            self.group_spammer();
        }
        for _ in 0..self.count(4.0, 10.0) {
            self.enumerator();
        }
        for _ in 0..self.count(4.0, 10.0) {
            self.timer_bot();
        }
    }

    fn public_capacity(&self) -> usize {
        (self.scale * 3000.0).round() as usize
    }

    fn ordinary(&mut self, n: usize) {
        let start = self.start;
        let new_share = if self.shifted { 0.05 } else { 0.03 };
        let mut people = Vec::new();
        for _ in 0..n {
            let a = self.account(Kind::Ordinary, start);
            people.push(a);
        }
        // Communities, friendships within them, a few across.
        let mut order = people.clone();
        order.shuffle(&mut self.rng);
        let mut communities: Vec<Vec<u32>> = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let size = (self.lognormal(12.0, 0.6).round() as usize).clamp(3, 60);
            communities.push(order[i..(i + size).min(order.len())].to_vec());
            i += size;
        }
        for _ in 0..n / 2 {
            let p = people.choose(&mut self.rng).copied();
            let c = self.rng.random_range(0..communities.len().max(1));
            if let Some(p) = p
                && let Some(community) = communities.get_mut(c)
                && !community.contains(&p)
            {
                community.push(p);
            }
        }
        for community in &communities {
            let p = (6.0 / community.len() as f64).min(1.0);
            for (x, &a) in community.iter().enumerate() {
                for &b in &community[x + 1..] {
                    if self.chance(p) {
                        self.befriend(a, b);
                    }
                }
            }
        }
        for &a in &people {
            if let Some(&b) = people.choose(&mut self.rng) {
                self.befriend(a, b);
            }
        }
        // Some are new during the log: they register, look up their address book and greet a few.
        let days = f64::from(self.days);
        for &a in &people {
            if !self.chance(new_share) {
                self.public.push(a);
                continue;
            }
            let day = self.rng.random_range(0..self.days);
            let r = self
                .waking(day, 8.0, 21.0)
                .min(self.start + Sim::ms((days - 0.2) * DAY as f64));
            self.born[a as usize] = r;
            let ip = self.ordinary_ip();
            let number = self.phone_number();
            let client = self.ordinary_client();
            self.register(r, a, number, ip.clone(), client.clone());
            self.new_user_greets(r, a);
            // A family registering together: consecutive numbers, same network, minutes apart.
            if self.chance(0.25) {
                for k in 1..=self.rng.random_range(1..=2u64) {
                    let m = self.account(Kind::Ordinary, r);
                    let t = r + Sim::ms(self.uni(2.0, 15.0) * MINUTE as f64) * k;
                    self.born[m as usize] = t;
                    self.befriend(a, m);
                    self.register(t, m, number + k, ip.clone(), client.clone());
                    self.conversation(t + MINUTE, m, a, 0.9, 3.0);
                }
            }
        }
        // Everyday life: sessions with friends, pre-existing community group chats, a few new
        // groups, and the odd block or report between people who know each other.
        let session_median = if self.shifted { 6.0 } else { 4.0 };
        let everyone: Vec<u32> = (0..self.ids.len() as u32).collect();
        for &a in &everyone {
            let rate = self.lognormal(session_median, 0.7);
            let p_answer = self.uni(0.75, 0.95);
            for day in 0..self.days {
                for _ in 0..self.poisson(rate) {
                    let t = self.waking(day, 7.0, 23.0);
                    if t < self.born[a as usize] {
                        continue;
                    }
                    let Some(&b) = self.friends[a as usize].choose(&mut self.rng) else {
                        continue;
                    };
                    if t < self.born[b as usize] {
                        continue;
                    }
                    self.conversation(t, a, b, p_answer, 4.0);
                }
            }
            if self.chance(0.02) {
                self.ordinary_group(a);
            }
            if self.chance(0.004)
                && let Some(&b) = self.friends[a as usize].choose(&mut self.rng)
            {
                let t = self.any_day(8.0, 23.0);
                let report = self.chance(0.25);
                self.feedback(t.max(self.born[a as usize]), a, b, report, false);
            }
        }
        for (c, community) in communities.iter().enumerate() {
            if community.len() > 40 {
                continue;
            }
            let existing: Vec<u32> = community
                .iter()
                .copied()
                .filter(|&m| self.born[m as usize] == start)
                .collect();
            if existing.len() < 3 {
                continue;
            }
            let conversation = format!("grp:community-{c}");
            for day in 0..self.days {
                let k = self.int(existing.len() as f64 * 0.2, existing.len() as f64 * 0.8);
                for _ in 0..k {
                    let t = self.waking(day, 7.0, 23.0);
                    let Some(&from) = existing.choose(&mut self.rng) else {
                        continue;
                    };
                    let to: Vec<u32> = existing.iter().copied().filter(|&m| m != from).collect();
                    self.message(t, from, &to, conversation.clone());
                }
            }
        }
    }

    /// A new user looks up their address book (mostly found: friends use the same app) and
    /// greets a few friends, who answer.
    fn new_user_greets(&mut self, r: u64, a: u32) {
        let t = r + Sim::ms(self.uni(30.0, 300.0) * 1000.0);
        let count = self.int(30.0, 400.0).max(1);
        let found = (count as f64 * self.uni(0.3, 0.7)) as usize;
        self.lookup(t, a, count, found);
        let mut friends = self.friends[a as usize].clone();
        friends.shuffle(&mut self.rng);
        let mut t = t + MINUTE;
        for b in friends.into_iter().take(self.rng.random_range(1..=6)) {
            t += Sim::ms(self.exp(60.0) * 1000.0);
            self.conversation(t, a, b, 0.85, 5.0);
        }
    }

    /// An ordinary person creates a group with a few friends, who then write in it.
    fn ordinary_group(&mut self, a: u32) {
        let mut friends = self.friends[a as usize].clone();
        if friends.len() < 2 {
            return;
        }
        friends.shuffle(&mut self.rng);
        friends.truncate(self.rng.random_range(2..=6));
        let t = self.any_day(8.0, 22.0);
        if friends.iter().chain([&a]).any(|&m| self.born[m as usize] > t) {
            return;
        }
        let group = self.new_group_id();
        self.group_event(t, true, a, &group, &friends);
        let mut all = friends.clone();
        all.push(a);
        let mut tm = t;
        for _ in 0..self.rng.random_range(3..=12) {
            tm += Sim::ms(self.lognormal(10.0, 1.3) * MINUTE as f64);
            let Some(&from) = all.choose(&mut self.rng) else {
                continue;
            };
            let to: Vec<u32> = all.iter().copied().filter(|&m| m != from).collect();
            self.message(tm, from, &to, group.clone());
        }
    }

    fn greeter(&mut self) {
        let day = self.rng.random_range(0..self.days);
        let r = self.waking(day, 8.0, 20.0);
        let a = self.account(Kind::HardNewGreeter, r);
        let (number, ip, client) = (self.phone_number(), self.ordinary_ip(), self.ordinary_client());
        self.register(r, a, number, ip, client);
        let t = r + Sim::ms(self.uni(30.0, 300.0) * 1000.0);
        let count = self.int(150.0, 800.0);
        let found = (count as f64 * self.uni(0.25, 0.7)) as usize;
        self.lookup(t, a, count, found);
        let n = self.int(20.0, 80.0).min(found.max(1));
        let mut contacts = Vec::new();
        while contacts.len() < n && !self.public.is_empty() {
            let b = self.stranger();
            if !contacts.contains(&b) {
                contacts.push(b);
            }
        }
        let p_answer = self.uni(0.6, 0.95);
        let gap = self.uni(10.0, 40.0);
        let mut t = t + Sim::ms(self.uni(20.0, 180.0) * 1000.0);
        for &b in &contacts {
            self.befriend(a, b);
            t += Sim::ms((self.exp(gap) + 2.0) * 1000.0);
            let median = self.uni(2.0, 15.0);
            self.conversation(t, a, b, p_answer, median);
        }
        // Then everyday life with those contacts.
        for d in day + 1..self.days {
            for _ in 0..self.poisson(4.0) {
                let t = self.waking(d, 7.0, 23.0);
                if let Some(&b) = contacts.choose(&mut self.rng) {
                    self.conversation(t, a, b, 0.85, 4.0);
                }
            }
        }
    }

    fn organiser(&mut self) {
        let a = self.account(Kind::HardOrganiser, self.start);
        let mut core: Vec<u32> = (0..self.rng.random_range(3..=6))
            .map(|_| self.stranger())
            .collect();
        core.sort_unstable();
        core.dedup();
        for &b in &core {
            self.befriend(a, b);
        }
        let t0 = self.waking(0, 8.0, 14.0);
        let group = self.new_group_id();
        self.group_event(t0, true, a, &group, &core);
        let spread = self.uni(0.1, 1.5) * DAY as f64;
        let n = self.int(80.0, 400.0).min(self.public.len() / 2);
        let mut joined: Vec<(u64, u32)> = core.iter().map(|&m| (t0, m)).collect();
        let mut seen: HashSet<u32> = core.iter().copied().collect();
        while joined.len() < n + core.len() && seen.len() < self.public.len() {
            let j = self.stranger();
            if !seen.insert(j) {
                continue;
            }
            let tj = t0 + Sim::ms(self.uni(0.0, spread));
            self.group_event(tj, false, j, &group, &[j]);
            joined.push((tj, j));
        }
        let members_at = |joined: &[(u64, u32)], t: u64, except: u32| -> Vec<u32> {
            joined
                .iter()
                .filter(|(tj, m)| *tj <= t && *m != except)
                .map(|(_, m)| *m)
                .collect()
        };
        for day in 0..self.days {
            for _ in 0..self.rng.random_range(2..=6) {
                let t = self.waking(day, 8.0, 22.0).max(t0 + MINUTE);
                let mut to = members_at(&joined, t, a);
                if to.is_empty() {
                    continue;
                }
                to.sort_unstable();
                self.message(t, a, &to, group.clone());
            }
        }
        for &(tj, j) in &joined.clone() {
            if self.chance(0.3) {
                for _ in 0..self.rng.random_range(1..=3) {
                    let t = tj + Sim::ms(self.uni(0.0, self.end.saturating_sub(tj) as f64));
                    let mut to = members_at(&joined, t, j);
                    to.push(a);
                    to.sort_unstable();
                    self.message(t, j, &to, group.clone());
                }
            }
            if self.chance(0.1) {
                let t = tj + Sim::ms(self.uni(0.0, self.end.saturating_sub(tj) as f64));
                self.conversation(t, j, a, 0.8, 20.0);
            }
        }
    }

    fn popular(&mut self) {
        let a = self.account(Kind::HardPopular, self.start);
        let p_answer = self.uni(0.4, 0.7);
        let n = self.int(100.0, 300.0);
        for _ in 0..n {
            let f = self.stranger();
            let t = self.any_day(7.0, 23.0);
            let median = self.uni(5.0, 90.0);
            self.conversation(t, f, a, p_answer, median);
        }
    }

    fn shop(&mut self) {
        let new = self.chance(0.3);
        let r = if new { self.waking(0, 7.0, 9.0) } else { self.start };
        let a = self.account(Kind::HardShop, r);
        if new {
            let (number, ip, client) = (self.phone_number(), self.ordinary_ip(), self.ordinary_client());
            self.register(r, a, number, ip, client);
        }
        let n = self.int(50.0, 200.0);
        for _ in 0..n {
            let c = self.stranger();
            let t = self.any_day(9.0, 19.0).max(r + MINUTE);
            let median = self.uni(1.0, 20.0);
            self.conversation(t, c, a, 0.95, median);
            if self.chance(0.3) {
                let later = t + Sim::ms(self.uni(1.0, 6.0) * HOUR as f64);
                self.direct(later, a, c);
            }
            if self.chance(0.02) {
                self.feedback(t + HOUR, c, a, false, false);
            }
            if self.chance(0.01) {
                self.feedback(t + 2 * HOUR, c, a, true, true);
            }
        }
    }

    /// Registers an abuser at a random time within the first `within` of the log.
    fn abuser(&mut self, kind: Kind, within: f64) -> (u32, u64) {
        let r = self.start + Sim::ms(self.uni(0.0, within) * f64::from(self.days) * DAY as f64);
        let a = self.account(kind, r);
        let (number, ip, client) = (self.phone_number(), self.abuser_ip(), self.abuser_client());
        self.register(r, a, number, ip, client);
        (a, r)
    }

    /// A purchased list: many numbers, few of them registered.
    fn list_lookup(&mut self, t: u64, a: u32) -> u64 {
        let (lo, hi) = if self.shifted { (0.1, 0.45) } else { (0.05, 0.35) };
        let mut t = t;
        for _ in 0..self.rng.random_range(1..=3) {
            let count = self.int(300.0, 2000.0);
            let found = (count as f64 * self.uni(lo, hi)) as usize;
            self.lookup(t, a, count, found);
            t += Sim::ms(self.uni(10.0, 120.0) * 1000.0);
        }
        t
    }

    /// Sends `n` messages from `t`, mostly each to a new stranger, gaps uniform in [lo, hi] s.
    fn blast(&mut self, mut t: u64, a: u32, n: usize, lo: f64, hi: f64) {
        let mut previous = Vec::new();
        for _ in 0..n {
            if t >= self.end {
                break;
            }
            let b = match previous.choose(&mut self.rng) {
                Some(&b) if self.chance(0.1) => b,
                _ => self.stranger(),
            };
            previous.push(b);
            self.direct(t, a, b);
            self.react(t, a, b);
            t += Sim::ms(self.uni(lo, hi) * 1000.0);
        }
    }

    fn blaster(&mut self) {
        let (a, r) = self.abuser(Kind::Blaster, 0.9);
        let t = r + Sim::ms(self.uni(1.0, 20.0) * MINUTE as f64);
        let t = self.list_lookup(t, a) + Sim::ms(self.uni(1.0, 15.0) * MINUTE as f64);
        let lo = if self.shifted {
            self.uni(3.0, 20.0)
        } else {
            self.uni(1.5, 8.0)
        };
        let hi = lo * self.uni(1.5, 4.0);
        let n = self.int(100.0, 800.0);
        self.blast(t, a, n, lo, hi);
    }

    fn slow_drip(&mut self) -> u32 {
        let (a, r) = self.abuser(Kind::SlowDrip, 0.6);
        let count = self.int(20.0, 200.0);
        let found = (count as f64 * self.uni(0.2, 0.6)) as usize;
        let mut t = r + Sim::ms(self.uni(1.0, 30.0) * MINUTE as f64);
        self.lookup(t, a, count, found);
        let mean = if self.shifted {
            self.uni(15.0, 90.0)
        } else {
            self.uni(8.0, 45.0)
        };
        for _ in 0..300 {
            t += Sim::ms(self.exp(mean * MINUTE as f64));
            if t >= self.end {
                break;
            }
            let b = self.stranger();
            self.direct(t, a, b);
            self.react(t, a, b);
        }
        a
    }

    /// Half the slow drips keep up conversations with each other, to look answered.
    fn accomplices(&mut self, drips: &[u32]) {
        for &a in drips {
            if !self.chance(0.5) {
                continue;
            }
            let Some(&b) = drips.choose(&mut self.rng) else {
                continue;
            };
            if a == b {
                continue;
            }
            let from = self.born[a as usize].max(self.born[b as usize]);
            let mut t = from + HOUR;
            while t < self.end {
                self.conversation(t, a, b, 1.0, 3.0);
                t += Sim::ms(self.uni(1.0, 6.0) * HOUR as f64);
            }
        }
    }

    fn warmups(&mut self) {
        let n = self.count(5.0, 12.0);
        let ring: Vec<(u32, u64)> = (0..n).map(|_| self.abuser(Kind::Warmup, 0.3)).collect();
        for &(a, r) in &ring {
            let days = f64::from(self.days);
            let warm = self.uni(0.5, 1.5).min((days - 0.3) * 0.8) * DAY as f64;
            let blast_at = r + Sim::ms(warm);
            let mut t = r + HOUR;
            while t < blast_at {
                if let Some(&(b, rb)) = ring.choose(&mut self.rng)
                    && b != a
                    && rb <= t
                {
                    self.conversation(t, a, b, 0.9, 5.0);
                }
                t += Sim::ms(self.uni(1.0, 5.0) * HOUR as f64);
            }
            let lo = self.uni(3.0, 15.0);
            let n = self.int(100.0, 500.0);
            let hi = lo * self.uni(1.5, 3.0);
            self.blast(blast_at, a, n, lo, hi);
        }
    }

    fn farm(&mut self) {
        let size = self.int(8.0, 30.0);
        let r0 = self.start + Sim::ms(self.uni(0.0, 0.8) * f64::from(self.days) * DAY as f64);
        let window = self.uni(10.0, 90.0) * MINUTE as f64;
        let sequential = self.chance(0.75);
        let base = self.phone_number();
        let step = self.rng.random_range(1..=3u64);
        let one_block = self.chance(0.8);
        let block = self.bad_blocks.choose(&mut self.rng).cloned().unwrap_or_default();
        let client = if self.chance(0.6) {
            format!("SirrMod/2.{}", self.rng.random_range(0..4))
        } else {
            self.ordinary_client()
        };
        let mut times: Vec<u64> = (0..size).map(|_| r0 + Sim::ms(self.uni(0.0, window))).collect();
        times.sort_unstable();
        for (k, &r) in times.iter().enumerate() {
            let a = self.account(Kind::Farm, r);
            let number = if sequential {
                base + k as u64 * step
            } else {
                base - base % 100_000 + self.rng.random_range(0..100_000)
            };
            let ip = if one_block {
                format!("{block}.{}", self.rng.random_range(1..255))
            } else {
                let b = self.bad_blocks.choose(&mut self.rng).cloned().unwrap_or_default();
                format!("{b}.{}", self.rng.random_range(1..255))
            };
            self.register(r, a, number, ip, client.clone());
            if self.chance(0.3) {
                let t = r + Sim::ms(self.uni(0.5, 12.0) * HOUR as f64);
                let victim = self.stranger();
                self.feedback(t, a, victim, true, false);
            }
            if self.chance(0.3) {
                continue;
            }
            let t = r + Sim::ms(self.uni(10.0, 360.0) * MINUTE as f64);
            let n = self.int(10.0, 60.0);
            self.blast(t, a, n, 5.0, 60.0);
        }
    }

    fn group_spammer(&mut self) {
        let (a, r) = self.abuser(Kind::GroupSpammer, 0.85);
        let mut t = r + Sim::ms(self.uni(2.0, 20.0) * MINUTE as f64);
        if self.chance(0.6) {
            t = self.list_lookup(t, a);
        }
        t += Sim::ms(self.uni(5.0, 60.0) * MINUTE as f64);
        for _ in 0..self.rng.random_range(2..=6) {
            if t >= self.end {
                break;
            }
            let size = self.int(20.0, 150.0);
            let mut members: Vec<u32> = (0..size).map(|_| self.stranger()).collect();
            members.sort_unstable();
            members.dedup();
            let group = self.new_group_id();
            self.group_event(t, true, a, &group, &members);
            let mut tm = t;
            for _ in 0..self.rng.random_range(1..=4) {
                tm += Sim::ms(self.uni(10.0, 600.0) * 1000.0);
                self.message(tm, a, &members, group.clone());
            }
            for &m in &members {
                self.react(tm, a, m);
            }
            t = tm + Sim::ms(self.uni(10.0, 60.0) * MINUTE as f64);
        }
    }

    fn enumerator(&mut self) {
        let (a, r) = self.abuser(Kind::Enumerator, 0.85);
        let mut t = r + Sim::ms(self.uni(1.0, 20.0) * MINUTE as f64);
        let (count, hit) = if self.shifted {
            ((300.0, 3000.0), (0.01, 0.08))
        } else {
            ((500.0, 8000.0), (0.005, 0.04))
        };
        for _ in 0..self.rng.random_range(3..=20) {
            let c = self.int(count.0, count.1);
            let found = (c as f64 * self.uni(hit.0, hit.1)) as usize;
            self.lookup(t, a, c, found);
            t += Sim::ms(self.uni(1.0, 30.0) * MINUTE as f64);
        }
        let n = self.rng.random_range(0..=5);
        self.blast(t, a, n, 30.0, 300.0);
    }

    fn timer_bot(&mut self) {
        let (a, r) = self.abuser(Kind::TimerBot, 0.8);
        let period = self.uni(20.0, 600.0) * 1000.0;
        let jitter = self.uni(0.005, 0.03);
        let start = r + Sim::ms(self.uni(5.0, 60.0) * MINUTE as f64);
        let regulars: Vec<u32> = (0..self.rng.random_range(5..=20))
            .map(|_| self.stranger())
            .collect();
        for k in 0..self.int(100.0, 400.0) {
            let t = start + Sim::ms(k as f64 * period + jitter * period * self.uni(-1.0, 1.0));
            if t >= self.end {
                break;
            }
            let b = if self.chance(0.6) {
                self.stranger()
            } else {
                regulars.choose(&mut self.rng).copied().unwrap_or(0)
            };
            self.direct(t, a, b);
            self.react(t, a, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_appears_and_the_log_is_sorted() {
        let pop = simulate(&SimConfig {
            seed: 7,
            accounts: 400,
            days: 2,
            variant: Variant::Standard,
        });
        assert!(pop.events.windows(2).all(|w| w[0].t() <= w[1].t()));
        for kind in Kind::ALL {
            assert!(pop.labels.values().any(|l| l.kind == kind), "{kind:?} missing");
        }
    }
}
