//! The abuse engine at the edge of `sirrd`: metadata events in (registrations, identified
//! messages, group changes, lookups, blocks, reports), decisions out, enforced on the spot.
//!
//! The engine (`sirr-abuse`) never sees content; it could not, content is end-to-end
//! encrypted. Sealed-sender messages carry no sender, so they are not events: they only reach
//! people who gave the sender their profile key, and a first message to a stranger is always
//! identified.
//!
//! The engine is called synchronously, *before* the request it describes is carried out, so a
//! decision counts the event that caused it and a ban stops the very message that tipped it.
//! Its state is in memory; the decisions (with their reasons) are stored, so a ban outlives a
//! restart and the account and the operator can see why.

use std::sync::Mutex;

use dashmap::DashMap;
use sirr_abuse::{Action, Decision, Engine, Event};
use sirr_proto::AccountId;

use crate::config::AbuseConfig;

/// An account's standing when it is not `allow`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    pub action: Action,
    pub reasons: Vec<String>,
}

pub struct Abuse {
    engine: Option<Mutex<Engine>>,
    /// Accounts whose standing is not `allow`: the fast path of every request reads only this.
    standing: DashMap<AccountId, Standing>,
    /// Challenged accounts that solved their challenge, until when (ms).
    passed: DashMap<AccountId, u64>,
}

impl Abuse {
    /// `None` engine when `abuse.enabled` is off: nothing is observed, stored bans still hold.
    pub fn new(config: &AbuseConfig) -> Result<Self, sirr_abuse::ConfigError> {
        let engine = if config.enabled {
            Some(Mutex::new(Engine::new(config.engine.clone())?))
        } else {
            None
        };
        Ok(Self {
            engine,
            standing: DashMap::new(),
            passed: DashMap::new(),
        })
    }

    /// No engine, no standing yet (used only if the configuration could not build one).
    pub fn disabled() -> Self {
        Self {
            engine: None,
            standing: DashMap::new(),
            passed: DashMap::new(),
        }
    }

    /// Whether events are observed at all.
    pub fn enabled(&self) -> bool {
        self.engine.is_some()
    }

    /// Feed one event; returns the decisions that changed (already applied to the standing).
    pub fn observe(&self, event: Event) -> Vec<(AccountId, Decision)> {
        let Some(engine) = &self.engine else {
            return Vec::new();
        };
        let decisions: Vec<Decision> = match engine.lock() {
            Ok(mut e) => e.observe(&event).collect(),
            // A panic inside the engine poisoned it: keep serving, log once per event.
            Err(_) => {
                tracing::error!("abuse engine unavailable (poisoned); event skipped");
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(decisions.len());
        for d in decisions {
            let Ok(account) = d.account.parse::<AccountId>() else {
                continue;
            };
            // A ban ends only by an operator's review. The engine may have forgotten a banned
            // account (it keeps at most `max_accounts`) and judge it afresh: that must not
            // lift the ban.
            if d.action != Action::Ban
                && self
                    .standing
                    .get(&account)
                    .is_some_and(|s| s.action == Action::Ban)
            {
                continue;
            }
            self.apply(account, d.action, d.reasons.clone());
            out.push((account, d));
        }
        out
    }

    /// Set an account's standing (from a decision, or from storage at start-up).
    pub fn apply(&self, account: AccountId, action: Action, reasons: Vec<String>) {
        if action == Action::Allow {
            self.standing.remove(&account);
        } else {
            self.standing.insert(account, Standing { action, reasons });
        }
    }

    /// An operator lifted the ban: the engine forgets the signals behind it.
    pub fn unban(&self, account: AccountId) {
        self.standing.remove(&account);
        self.passed.remove(&account);
        if let Some(engine) = &self.engine
            && let Ok(mut e) = engine.lock()
        {
            e.unban(&account.to_string());
        }
    }

    /// The account was deleted: nothing about it is kept, in the engine or here.
    pub fn forget(&self, account: AccountId) {
        self.standing.remove(&account);
        self.passed.remove(&account);
        if let Some(engine) = &self.engine
            && let Ok(mut e) = engine.lock()
        {
            e.forget(&name(account));
        }
    }

    pub fn standing(&self, account: AccountId) -> Option<Standing> {
        self.standing.get(&account).map(|s| s.clone())
    }

    /// A challenged account solved its challenge: it may send until `until_ms`.
    pub fn pass(&self, account: AccountId, until_ms: u64) {
        self.passed.insert(account, until_ms);
    }

    pub fn has_passed(&self, account: AccountId, now_ms: u64) -> bool {
        self.passed.get(&account).is_some_and(|u| *u > now_ms)
    }
}

/// The account as the engine names it: its id in hex (already pseudonymous).
pub fn name(account: AccountId) -> String {
    account.to_string()
}

/// A registrant's address as the engine is told it: its /24 for IPv4, its /48 for IPv6, host
/// bits zeroed. The engine clusters registrations by that block and is given nothing finer.
pub fn network(ip: std::net::IpAddr) -> String {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match ip.to_canonical() {
        IpAddr::V4(v4) => Ipv4Addr::from(u32::from(v4) & 0xffff_ff00).to_string(),
        IpAddr::V6(v6) => Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 48)).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_farm_is_stopped_and_an_operator_can_lift_it() {
        let abuse = Abuse::new(&AbuseConfig::default()).unwrap();
        // Forty numbers in sequence from one address within a minute: a farm.
        let mut banned = Vec::new();
        for i in 0..40u64 {
            let account = AccountId([i as u8 + 1; 16]);
            let ev = Event::Register {
                t: 1_800_000_000_000 + i * 1_000,
                account: name(account),
                phone: format!("+1555010{:04}", i),
                ip: "203.0.113.7".into(),
                client: "bot".into(),
            };
            for (a, d) in abuse.observe(ev) {
                if d.action == Action::Ban {
                    banned.push(a);
                }
            }
        }
        assert!(!banned.is_empty(), "the farm is banned");
        let a = banned[0];
        assert_eq!(abuse.standing(a).unwrap().action, Action::Ban);
        assert!(!abuse.standing(a).unwrap().reasons.is_empty(), "with its reasons");
        abuse.unban(a);
        assert_eq!(abuse.standing(a), None);
    }

    #[test]
    fn the_engine_is_told_the_network_not_the_address() {
        assert_eq!(network("203.0.113.77".parse().unwrap()), "203.0.113.0");
        assert_eq!(network("::ffff:203.0.113.77".parse().unwrap()), "203.0.113.0");
        assert_eq!(network("2001:db8:42:7::1".parse().unwrap()), "2001:db8:42::");
    }

    #[test]
    fn an_engine_decision_below_ban_does_not_lift_a_ban() {
        // An engine that throttles whatever it sees, and never bans.
        let config = AbuseConfig {
            engine: sirr_abuse::EngineConfig {
                throttle_at: 1e-9,
                challenge_at: 2.0,
                ban_at: 2.0,
                rules_enabled: false,
                ..sirr_abuse::EngineConfig::default()
            },
            ..AbuseConfig::default()
        };
        let abuse = Abuse::new(&config).unwrap();
        let lookup = |account| Event::Lookup {
            t: 1_800_000_000_000,
            account: name(account),
            count: 1,
            found: 1,
        };
        let other = AccountId([8; 16]);
        let d = abuse.observe(lookup(other));
        assert_eq!(d.len(), 1, "the engine does throttle");
        assert_eq!(abuse.standing(other).unwrap().action, Action::Throttle);
        // A banned account the engine has no state for (as after an eviction) is throttled by
        // it: the ban holds.
        let a = AccountId([7; 16]);
        abuse.apply(a, Action::Ban, vec!["operator".into()]);
        assert!(abuse.observe(lookup(a)).is_empty());
        assert_eq!(abuse.standing(a).unwrap().action, Action::Ban);
    }

    #[test]
    fn a_disabled_engine_observes_nothing_but_keeps_stored_standing() {
        let config = AbuseConfig {
            enabled: false,
            ..AbuseConfig::default()
        };
        let abuse = Abuse::new(&config).unwrap();
        let a = AccountId([9; 16]);
        let ev = Event::Lookup {
            t: 1,
            account: name(a),
            count: 100_000,
            found: 0,
        };
        assert!(abuse.observe(ev).is_empty());
        abuse.apply(a, Action::Ban, vec!["operator".into()]);
        assert_eq!(abuse.standing(a).unwrap().action, Action::Ban);
    }
}
