//! The goal figures: how many abusers an engine bans, how far they got first, and how many
//! ordinary people it bans by mistake. Pure: events and labels in, figures out.
//!
//! "Strangers reached" is measured here independently of the engine's own bookkeeping: a
//! recipient (of a message, or of a group add) counts once per sender if it had never written to
//! that sender before. The engine's decision at an event already counts that event (the server
//! refuses the request that triggers a ban), so reach *before* the ban excludes the banning
//! event; the figure including it is given too.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::engine::{Action, Engine};
use crate::event::Event;
use crate::sim::{Kind, Labels};

/// Figures for one account kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindFigures {
    pub kind: &'static str,
    pub accounts: usize,
    pub banned: usize,
    pub banned_pct: f64,
    /// Challenged or worse at some point (bans included).
    pub challenged: usize,
    /// Throttled or worse at some point (challenges and bans included).
    pub throttled: usize,
    pub reach_median: f64,
    pub reach_p90: f64,
    pub banned_before_first_message: usize,
}

/// One goal of the issue, with the value measured.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub goal: &'static str,
    pub target: String,
    pub value: f64,
    pub met: bool,
}

/// Everything `sirr-abuse eval` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub events: usize,
    pub abusers: usize,
    pub abusers_banned_pct: f64,
    /// Distinct strangers reached before the ban (all reached, for an abuser never banned).
    pub reach_median: f64,
    pub reach_p90: f64,
    /// The same, counting the banning event as delivered.
    pub reach_incl_median: f64,
    pub reach_incl_p90: f64,
    pub banned_before_first_message_pct: f64,
    /// Of all bans, the share decided before any report against the account.
    pub bans_before_report_pct: f64,
    pub ordinary: usize,
    pub ordinary_banned: usize,
    pub ordinary_banned_pct: f64,
    pub hard_banned: usize,
    pub per_kind: Vec<KindFigures>,
    /// Set by the caller that timed the replay.
    pub events_per_s: Option<f64>,
    pub goals: Vec<Goal>,
}

#[derive(Default, Clone, Copy)]
struct Outcome {
    ban: Option<usize>,
    worst: Action,
    reach_at_ban: u32,
    reach_incl: u32,
    first_message: Option<usize>,
    first_report: Option<usize>,
}

/// Replays `events` through `engine` and measures it against `labels`. Accounts without a
/// label are ignored.
pub fn evaluate(events: &[Event], labels: &Labels, mut engine: Engine) -> Figures {
    let mut t = Tracker::default();
    let mut wrote: HashSet<(u32, u32)> = HashSet::new();
    let mut reached: HashSet<(u32, u32)> = HashSet::new();
    let mut banned_now: Vec<u32> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        banned_now.clear();
        for d in engine.observe(event) {
            let a = t.id(&d.account);
            let o = &mut t.out[a as usize];
            o.worst = o.worst.max(d.action);
            if d.action == Action::Ban && o.ban.is_none() {
                o.ban = Some(i);
                o.reach_at_ban = t.reach[a as usize];
                banned_now.push(a);
            }
        }
        let mut reach_pair = |s: u32, r: u32, reach: &mut Vec<u32>, wrote: &HashSet<(u32, u32)>| {
            if s != r && !wrote.contains(&(r, s)) && reached.insert((s, r)) {
                reach[s as usize] += 1;
            }
        };
        match event {
            Event::Message { from, to, .. } => {
                let s = t.id(from);
                t.out[s as usize].first_message.get_or_insert(i);
                for r in to {
                    let r = t.id(r);
                    reach_pair(s, r, &mut t.reach, &wrote);
                    wrote.insert((s, r));
                }
            }
            Event::GroupCreate { account, members, .. } | Event::GroupAdd { account, members, .. } => {
                let s = t.id(account);
                for m in members {
                    let m = t.id(m);
                    reach_pair(s, m, &mut t.reach, &wrote);
                }
            }
            Event::Report { peer, .. } => {
                let p = t.id(peer);
                t.out[p as usize].first_report.get_or_insert(i);
            }
            _ => {}
        }
        for &a in &banned_now {
            t.out[a as usize].reach_incl = t.reach[a as usize];
        }
    }
    figures(events.len(), labels, &t)
}

#[derive(Default)]
struct Tracker {
    ids: HashMap<String, u32>,
    out: Vec<Outcome>,
    reach: Vec<u32>,
}

impl Tracker {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        let i = self.out.len() as u32;
        self.ids.insert(name.to_owned(), i);
        self.out.push(Outcome::default());
        self.reach.push(0);
        i
    }
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)])
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn figures(events: usize, labels: &Labels, t: &Tracker) -> Figures {
    let none = Outcome::default();
    let mut by_kind: BTreeMap<Kind, Vec<(Outcome, u32)>> = BTreeMap::new();
    for (name, label) in labels {
        let (o, r) = match t.ids.get(name.as_str()) {
            Some(&i) => (t.out[i as usize], t.reach[i as usize]),
            None => (none, 0),
        };
        by_kind.entry(label.kind).or_default().push((o, r));
    }
    let before_first = |o: &Outcome| o.ban.is_some_and(|b| o.first_message.is_none_or(|m| b < m));
    let reach_before = |o: &Outcome, r: u32| if o.ban.is_some() { o.reach_at_ban } else { r };
    let reach_incl = |o: &Outcome, r: u32| if o.ban.is_some() { o.reach_incl } else { r };
    let mut per_kind = Vec::new();
    let (mut all_reach, mut all_incl) = (Vec::new(), Vec::new());
    let (mut abusers, mut abusers_banned, mut abusers_first) = (0, 0, 0);
    for kind in Kind::ALL {
        let list = by_kind.get(&kind).map(Vec::as_slice).unwrap_or(&[]);
        let banned = list.iter().filter(|(o, _)| o.ban.is_some()).count();
        let mut r: Vec<u32> = list.iter().map(|(o, r)| reach_before(o, *r)).collect();
        r.sort_unstable();
        let first = list.iter().filter(|(o, _)| before_first(o)).count();
        if kind.is_abuser() {
            abusers += list.len();
            abusers_banned += banned;
            abusers_first += first;
            all_reach.extend_from_slice(&r);
            all_incl.extend(list.iter().map(|(o, r)| reach_incl(o, *r)));
        }
        per_kind.push(KindFigures {
            kind: kind.name(),
            accounts: list.len(),
            banned,
            banned_pct: pct(banned, list.len()),
            challenged: list.iter().filter(|(o, _)| o.worst >= Action::Challenge).count(),
            throttled: list.iter().filter(|(o, _)| o.worst >= Action::Throttle).count(),
            reach_median: percentile(&r, 0.5),
            reach_p90: percentile(&r, 0.9),
            banned_before_first_message: first,
        });
    }
    all_reach.sort_unstable();
    all_incl.sort_unstable();
    let bans: Vec<&Outcome> = by_kind
        .values()
        .flatten()
        .map(|(o, _)| o)
        .filter(|o| o.ban.is_some())
        .collect();
    let before_report = bans
        .iter()
        .filter(|o| o.first_report.is_none_or(|r| o.ban.is_some_and(|b| b < r)))
        .count();
    let ordinary = per_kind
        .iter()
        .find(|k| k.kind == "ordinary")
        .map_or((0, 0), |k| (k.accounts, k.banned));
    let hard_banned = per_kind
        .iter()
        .filter(|k| k.kind.starts_with("hard_"))
        .map(|k| k.banned)
        .sum();
    let mut f = Figures {
        events,
        abusers,
        abusers_banned_pct: pct(abusers_banned, abusers),
        reach_median: percentile(&all_reach, 0.5),
        reach_p90: percentile(&all_reach, 0.9),
        reach_incl_median: percentile(&all_incl, 0.5),
        reach_incl_p90: percentile(&all_incl, 0.9),
        banned_before_first_message_pct: pct(abusers_first, abusers),
        bans_before_report_pct: pct(before_report, bans.len()),
        ordinary: ordinary.0,
        ordinary_banned: ordinary.1,
        ordinary_banned_pct: pct(ordinary.1, ordinary.0),
        hard_banned,
        per_kind,
        events_per_s: None,
        goals: Vec::new(),
    };
    f.goals = goals(&f);
    f
}

fn goals(f: &Figures) -> Vec<Goal> {
    let g = |goal, target: &str, value: f64, met| Goal {
        goal,
        target: target.to_owned(),
        value,
        met,
    };
    let mut v = vec![
        g(
            "abusive accounts banned (%)",
            ">= 99",
            f.abusers_banned_pct,
            f.abusers_banned_pct >= 99.0,
        ),
        g(
            "median strangers reached before ban",
            "<= 20",
            f.reach_median,
            f.reach_median <= 20.0,
        ),
        g(
            "p90 strangers reached before ban",
            "<= 60",
            f.reach_p90,
            f.reach_p90 <= 60.0,
        ),
        g(
            "abusers banned before their first message (%)",
            ">= 20",
            f.banned_before_first_message_pct,
            f.banned_before_first_message_pct >= 20.0,
        ),
        g(
            "bans before any report (%)",
            ">= 90",
            f.bans_before_report_pct,
            f.bans_before_report_pct >= 90.0,
        ),
        g(
            "ordinary accounts banned (%)",
            "<= 0.05",
            f.ordinary_banned_pct,
            f.ordinary_banned_pct <= 0.05,
        ),
        g(
            "hard ordinary cases banned",
            "0",
            f.hard_banned as f64,
            f.hard_banned == 0,
        ),
    ];
    if let Some(eps) = f.events_per_s {
        v.push(g("replay events/s (one core)", ">= 1000000", eps, eps >= 1e6));
    }
    v
}

impl Figures {
    /// Sets the measured replay speed and re-checks the goals.
    pub fn with_speed(mut self, events_per_s: f64) -> Figures {
        self.events_per_s = Some(events_per_s);
        self.goals = goals(&self);
        self
    }

    /// Whether every goal is met.
    pub fn all_met(&self) -> bool {
        self.goals.iter().all(|g| g.met)
    }

    /// The figures as a plain-text report.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "events: {}, abusive accounts: {}, ordinary: {}\n\n",
            self.events, self.abusers, self.ordinary
        ));
        s.push_str("kind               accounts  banned  banned%  challenged  throttled  reach p50  reach p90  before 1st msg\n");
        for k in &self.per_kind {
            s.push_str(&format!(
                "{:<18} {:>8} {:>7} {:>8.1} {:>11} {:>10} {:>10.0} {:>10.0} {:>15}\n",
                k.kind,
                k.accounts,
                k.banned,
                k.banned_pct,
                k.challenged,
                k.throttled,
                k.reach_median,
                k.reach_p90,
                k.banned_before_first_message
            ));
        }
        s.push_str(&format!(
            "\nstrangers reached counting the banning event: median {:.0}, p90 {:.0}\n\n",
            self.reach_incl_median, self.reach_incl_p90
        ));
        for g in &self.goals {
            s.push_str(&format!(
                "{:<48} {:>12.3}  (goal {:>10})  {}\n",
                g.goal,
                g.value,
                g.target,
                if g.met { "met" } else { "NOT MET" }
            ));
        }
        s
    }
}
