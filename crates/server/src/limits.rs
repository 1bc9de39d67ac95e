//! Rate limits at the edge: keyed token buckets, held in memory only.
//!
//! IP addresses and phone prefixes used as keys here are never written to disk; idle keys are
//! forgotten by [`Limits::forget_idle`], which the server runs periodically.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

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
    pub registration_per_ip: Bucket<IpKey>,
    pub send: Bucket<AccountId>,
    pub sealed_send: Bucket<IpKey>,
    pub lookup: Bucket<AccountId>,
    pub claim: Bucket<AccountId>,
    pub prefix_digits: usize,
}

impl Limits {
    pub fn new(c: &LimitsConfig) -> Self {
        Self {
            code_per_phone: Bucket::new(c.code_per_phone),
            code_per_prefix: Bucket::new(c.code_per_prefix),
            registration_per_ip: Bucket::new(c.registration_per_ip),
            send: Bucket::new(c.send),
            sealed_send: Bucket::new(c.sealed_send),
            lookup: Bucket::new(c.lookup),
            claim: Bucket::new(c.claim),
            prefix_digits: c.prefix_digits,
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
