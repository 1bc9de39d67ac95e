//! Rate limits at the edge: keyed token buckets, held in memory only.
//!
//! IP addresses and phone prefixes used as keys here are never written to disk; idle keys are
//! forgotten by [`Limits::forget_idle`], which the server runs periodically.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sirr_proto::AccountId;

use crate::config::{LimitsConfig, Rate};

/// A rate limit was hit; try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    pub fn millis(self) -> u32 {
        self.0.as_millis().clamp(1, u32::MAX as u128) as u32
    }
}

/// One keyed token bucket.
pub struct Bucket<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Bucket<K> {
    pub fn new(rate: Rate) -> Self {
        let period = Duration::from_secs_f64(1.0 / rate.per_second);
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Self {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// Take one token for `key`.
    pub fn check(&self, key: &K) -> Result<(), RetryAfter> {
        self.check_n(key, 1)
    }

    /// Take `n` tokens for `key` at once (all or none).
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), RetryAfter> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(());
        };
        match self.limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(RetryAfter(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            // More than the burst can ever allow.
            Err(_) => Err(RetryAfter(Duration::from_secs(3600))),
        }
    }

    /// Take as many of `n` tokens for `key` as it has now, one at a time (for budgets that
    /// may be partly spent: the caller hands out what it got). `Err` only if it got none.
    pub fn take_up_to(&self, key: &K, n: u32) -> Result<u32, RetryAfter> {
        let mut got = 0;
        while got < n {
            match self.check(key) {
                Ok(()) => got += 1,
                Err(r) if got == 0 => return Err(r),
                Err(_) => break,
            }
        }
        Ok(got)
    }

    pub(crate) fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The key for per-IP limits: the address for IPv4, the /64 network for IPv6 (one subscriber
/// usually holds a whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpKey(u128);

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; key them by the IPv4.
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey(u32::from(v4) as u128),
            IpAddr::V6(v6) => IpKey(u128::from(v6) & !0u128 >> 64 << 64 | (1 << 127)),
        }
    }
}

/// Every edge limit the server applies.
pub struct Limits {
    pub code_per_phone: Bucket<String>,
    pub code_per_prefix: Bucket<String>,
    /// One bucket for the whole server (the key is `()`).
    pub code_global: Bucket<()>,
    pub registration_per_ip: Bucket<IpKey>,
    pub send: Bucket<AccountId>,
    pub sealed_send: Bucket<IpKey>,
    pub lookup: Bucket<AccountId>,
    pub claim: Bucket<AccountId>,
    pub block: Bucket<AccountId>,
    pub consent: Bucket<AccountId>,
    pub export: Bucket<AccountId>,
    pub appeal: Bucket<AccountId>,
    pub report: Bucket<AccountId>,
    pub report_per_ip: Bucket<IpKey>,
    pub prefix_digits: usize,
    /// Open connections per client address.
    pub connections: ConnectionsPerIp,
}

impl Limits {
    pub fn new(c: &LimitsConfig) -> Self {
        Self {
            code_per_phone: Bucket::new(c.code_per_phone),
            code_per_prefix: Bucket::new(c.code_per_prefix),
            code_global: Bucket::new(c.code_global),
            registration_per_ip: Bucket::new(c.registration_per_ip),
            send: Bucket::new(c.send),
            sealed_send: Bucket::new(c.sealed_send),
            lookup: Bucket::new(c.lookup),
            claim: Bucket::new(c.claim),
            block: Bucket::new(c.block),
            consent: Bucket::new(c.consent),
            export: Bucket::new(c.export),
            appeal: Bucket::new(c.appeal),
            report: Bucket::new(c.report),
            report_per_ip: Bucket::new(c.report_per_ip),
            prefix_digits: c.prefix_digits,
            connections: ConnectionsPerIp::new(c.connections_per_ip),
        }
    }

    /// Drop the state of keys whose buckets are full again (they carry no information).
    pub fn forget_idle(&self) {
        self.code_per_phone.forget_idle();
        self.code_per_prefix.forget_idle();
        self.registration_per_ip.forget_idle();
        self.send.forget_idle();
        self.sealed_send.forget_idle();
        self.lookup.forget_idle();
        self.claim.forget_idle();
        self.block.forget_idle();
        self.consent.forget_idle();
        self.export.forget_idle();
        self.appeal.forget_idle();
        self.report.forget_idle();
        self.report_per_ip.forget_idle();
    }
}

/// Connections open at once per client address ([`IpKey`]), counted from the upgrade to the
/// end of the session; an address without connections has no entry.
pub struct ConnectionsPerIp {
    open: Arc<DashMap<IpKey, usize>>,
    max: usize,
}

/// One open connection of an address; dropping it (when the session ends, however it ends)
/// gives the slot back.
#[must_use = "the slot is given back when this is dropped"]
pub struct ConnectionSlot {
    open: Arc<DashMap<IpKey, usize>>,
    key: IpKey,
}

impl ConnectionsPerIp {
    pub fn new(max: usize) -> Self {
        Self {
            open: Arc::new(DashMap::new()),
            max,
        }
    }

    /// A slot for one more connection from `ip`, or `None` when it already has `max` open.
    pub fn open(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let key = IpKey::from(ip);
        let mut n = self.open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        drop(n);
        Some(ConnectionSlot {
            open: self.open.clone(),
            key,
        })
    }

    /// Connections open from `ip` now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.open.get(&IpKey::from(ip)).map_or(0, |n| *n)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(mut n) = self.open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
        self.open.remove_if(&self.key, |_, n| *n == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_says_when() {
        let b = Bucket::new(Rate::new(3, 1.0));
        for _ in 0..3 {
            assert!(b.check(&"k").is_ok());
        }
        let wait = b.check(&"k").unwrap_err();
        assert!(
            wait.0 > Duration::from_millis(500) && wait.0 <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(b.check(&"other").is_ok(), "keys are independent");
        assert!(
            b.check_n(&"x", 4).is_err(),
            "more than the burst is never allowed"
        );
    }

    #[test]
    fn connections_per_ip_are_capped_and_given_back() {
        let c = ConnectionsPerIp::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = c.open(ip).expect("first");
        let b = c.open(ip).expect("second");
        assert!(c.open(ip).is_none(), "a third from one address is refused");
        assert!(c.open("192.0.2.2".parse().unwrap()).is_some(), "others are not");
        drop(a);
        let again = c.open(ip).expect("a closed connection gives its slot back");
        drop((b, again));
        assert_eq!(c.count(ip), 0);
        assert!(
            c.open.is_empty(),
            "an address without connections leaves no entry"
        );
    }

    #[test]
    fn ipv6_keys_group_a_64() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let c: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(IpKey::from(a), IpKey::from(b));
        assert_ne!(IpKey::from(a), IpKey::from(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let plain: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            IpKey::from(mapped),
            IpKey::from(plain),
            "IPv4-mapped addresses are IPv4"
        );
        assert_ne!(
            IpKey::from(mapped),
            IpKey::from("::ffff:192.0.2.2".parse::<IpAddr>().unwrap())
        );
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        assert_ne!(
            IpKey::from(v4),
            IpKey::from("127.0.0.2".parse::<IpAddr>().unwrap())
        );
    }
}
