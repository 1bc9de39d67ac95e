//! Hard rules for the obvious cases, applied on top of the model: each rule that fires sets a
//! floor on the action and names itself in the reasons.
//!
//! They exist so that blatant abuse is stopped even if the model is retrained badly, and so that
//! the reason an operator reads for those cases is one plain sentence.

use serde::{Deserialize, Serialize};

use crate::engine::Action;
use crate::features::{Account, TAU_1D};

/// Thresholds of the hard rules. Defaults are documented on each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Ban for `enumeration` when the numbers asked in the last day (decayed) reach this ... (default 1000)
    pub enumeration_numbers: f32,
    /// ... and at most this share of them were found (default 0.05).
    pub enumeration_max_hit_ratio: f32,
    /// Ban for `registration_farm` when at least this many other near-sequential numbers
    /// registered within a day (default 4) ...
    pub farm_sequential: u16,
    /// ... and at least this many others registered within an hour from the same IP /24, or with
    /// the same client string, or the same number prefix (default 4).
    pub farm_cluster: u16,
    /// Ban for `unanswered_strangers` when at least this many stranger sends passed the reply
    /// window (default 25) ...
    pub unanswered_min: u32,
    /// ... and at most this share of them were answered (default 0.05).
    pub unanswered_max_reply_ratio: f32,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            enumeration_numbers: 1000.0,
            enumeration_max_hit_ratio: 0.05,
            farm_sequential: 4,
            farm_cluster: 4,
            unanswered_min: 25,
            unanswered_max_reply_ratio: 0.05,
        }
    }
}

/// Applies the rules to `account` at `now`; pushes the name of each rule that fired onto
/// `reasons` and returns the highest action they require.
pub(crate) fn check(
    cfg: &RulesConfig,
    account: &Account,
    now: u64,
    reasons: &mut Vec<&'static str>,
) -> Action {
    let mut action = Action::Allow;
    let asked = account.lookup_asked.value(now, TAU_1D);
    let found = account.lookup_found.value(now, TAU_1D);
    if asked >= cfg.enumeration_numbers && found <= cfg.enumeration_max_hit_ratio * asked {
        reasons.push("enumeration");
        action = Action::Ban;
    }
    let cluster = account.reg_ip24.max(account.reg_client).max(account.reg_prefix);
    if account.reg_seq >= cfg.farm_sequential && cluster >= cfg.farm_cluster {
        reasons.push("registration_farm");
        action = Action::Ban;
    }
    if account.aged >= cfg.unanswered_min
        && (account.aged_replied as f32) <= cfg.unanswered_max_reply_ratio * account.aged as f32
    {
        reasons.push("unanswered_strangers");
        action = Action::Ban;
    }
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(a: &Account) -> (Action, Vec<&'static str>) {
        let mut r = Vec::new();
        (check(&RulesConfig::default(), a, 0, &mut r), r)
    }

    #[test]
    fn enumeration_needs_volume_and_a_low_hit_ratio() {
        let mut a = Account::default();
        a.lookup_asked.add(0, TAU_1D, 5000.0);
        a.lookup_found.add(0, TAU_1D, 60.0);
        assert_eq!(run(&a), (Action::Ban, vec!["enumeration"]));
        let mut book = Account::default();
        book.lookup_asked.add(0, TAU_1D, 5000.0);
        book.lookup_found.add(0, TAU_1D, 2000.0);
        assert_eq!(run(&book).0, Action::Allow, "a big address book with many hits");
    }

    #[test]
    fn a_family_is_not_a_farm() {
        let family = Account {
            reg_seq: 2,
            reg_ip24: 2,
            ..Account::default()
        };
        assert_eq!(run(&family).0, Action::Allow);
        let farm = Account {
            reg_seq: 6,
            reg_ip24: 9,
            ..Account::default()
        };
        assert_eq!(run(&farm), (Action::Ban, vec!["registration_farm"]));
    }

    #[test]
    fn unanswered_strangers_spare_those_who_get_replies() {
        let drip = Account {
            aged: 30,
            aged_replied: 1,
            ..Account::default()
        };
        assert_eq!(run(&drip), (Action::Ban, vec!["unanswered_strangers"]));
        let greeter = Account {
            aged: 60,
            aged_replied: 40,
            ..Account::default()
        };
        assert_eq!(run(&greeter).0, Action::Allow);
    }
}
