//! Anonymous tokens that pay for sealed sends, so abuse control reaches sealed sending too.
//!
//! A sealed send names no sender, so the server cannot refuse a banned or throttled account's
//! sealed messages by name, and a per-IP limit alone let a throttled account queue hundreds of
//! large messages in seconds. Now every sealed copy (one per recipient account) costs a token
//! ([`sirr_proto::SealedToken`]):
//!
//! - **Issuance** (`IssueSealedTokens`, on an authenticated device session) is where standing
//!   applies: a banned account is refused (`Banned`), a challenged one must solve its
//!   challenge first, a throttled one gets none (it sends identified, under its throttle), and
//!   every account gets at most `sealed_tokens.issue_per_account` per hour (and every IP
//!   `issue_per_ip`). What the server keeps about it is that budget's bucket, a counter per
//!   account in memory: no nonce, no blinded element, no output.
//! - **Redemption** (`SendSealed`): each token must verify under a live key and must never
//!   have been spent. The blinded issuance means the server cannot tell which issuance a token
//!   came from (`sirr_crypto::tokens`).
//!
//! **Keys and replay.** Keys are random, made in memory at start-up, and replaced every
//! `sealed_tokens.key_secs`; the previous key still verifies, so a token lives at most two
//! key periods and a freshly banned account can spend only what it already holds, for at most
//! that long. The spent nonces of each live key are kept in memory and dropped with the key.
//! They need not survive a restart: the keys do not either, so every token issued before a
//! restart is refused after it (clients fetch new ones), and no spent token can come back.
//! The spent set is bounded by construction: a key issues at most `sealed_tokens.max_per_key`
//! tokens (then issuance waits for the next key), and only issued tokens can be spent.
//! (A cluster of servers would need one shared key and spent set; a single node holds both.)

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use sirr_crypto::tokens::TokenIssuer;
use sirr_proto::{AccountId, Bytes, ErrorBody, ErrorCode, Response, SealedToken, TokenKey};

use crate::config::SealedTokensConfig;
use crate::limits::{Bucket, IpKey};
use crate::service::{Answer, Authed, Service, err};

/// One live key with the nonces spent under it and the count it issued.
struct Epoch {
    issuer: Arc<TokenIssuer>,
    made: Instant,
    issued: u64,
    spent: HashSet<[u8; 32]>,
}

impl Epoch {
    fn new() -> Result<Self, sirr_crypto::tokens::TokenError> {
        let mut rng = rand::rng();
        let id: u64 = rng.random();
        Ok(Self {
            issuer: Arc::new(TokenIssuer::generate(id, &mut rng)?),
            made: Instant::now(),
            issued: 0,
            spent: HashSet::new(),
        })
    }
}

/// The live keys: the current one issues, both verify.
struct Keys {
    current: Epoch,
    previous: Option<Epoch>,
}

/// The token keys, spent sets and issuance budgets of this node.
pub struct SealedTokens {
    config: SealedTokensConfig,
    /// Held briefly: lookups and inserts only; token verification runs outside it.
    keys: Mutex<Keys>,
    per_account: Bucket<AccountId>,
    per_ip: Bucket<IpKey>,
}

/// Tokens checked for a sealed send, to be spent once the rest of the send is checked.
pub struct Checked {
    nonces: Vec<(u64, [u8; 32])>,
}

impl SealedTokens {
    pub fn new(config: &SealedTokensConfig) -> Result<Self, sirr_crypto::tokens::TokenError> {
        Ok(Self {
            keys: Mutex::new(Keys {
                current: Epoch::new()?,
                previous: None,
            }),
            per_account: Bucket::new(config.issue_per_account),
            per_ip: Bucket::new(config.issue_per_ip),
            config: config.clone(),
        })
    }

    fn key_period(&self) -> Duration {
        Duration::from_secs(self.config.key_secs.max(1))
    }

    /// Lock the keys, replacing the current one first if its period is over (the previous
    /// one, and its spent set, are dropped then).
    fn keys(&self) -> Result<std::sync::MutexGuard<'_, Keys>, ErrorBody> {
        let mut keys = self.keys.lock().map_err(|_| poisoned())?;
        if keys.current.made.elapsed() >= self.key_period() {
            let fresh = Epoch::new().map_err(|_| poisoned())?;
            let old = std::mem::replace(&mut keys.current, fresh);
            // A previous key older than two periods (the server was idle) verifies nothing.
            keys.previous = (old.made.elapsed() < 2 * self.key_period()).then_some(old);
        }
        Ok(keys)
    }

    /// The keys that verify now, newest first.
    pub fn live_keys(&self) -> Result<Vec<TokenKey>, ErrorBody> {
        let keys = self.keys()?;
        Ok(std::iter::once(&keys.current)
            .chain(keys.previous.as_ref())
            .map(|e| e.issuer.key())
            .collect())
    }

    /// Check that `tokens` pay for `copies` sealed copies: as many tokens, each under a live
    /// key, valid, unspent, and no nonce twice. Spends nothing (see [`SealedTokens::spend`]).
    pub fn check(&self, tokens: &[SealedToken], copies: usize) -> Result<Checked, ErrorBody> {
        if tokens.len() != copies {
            return Err(bad_token(format!(
                "a sealed send carries one token per recipient account: {copies} needed, {} given",
                tokens.len()
            )));
        }
        let issuers: Vec<(u64, Arc<TokenIssuer>, bool)> = {
            let keys = self.keys()?;
            let mut out = Vec::with_capacity(tokens.len());
            for t in tokens {
                let epoch = [Some(&keys.current), keys.previous.as_ref()]
                    .into_iter()
                    .flatten()
                    .find(|e| e.issuer.key().id == t.key_id);
                let Some(epoch) = epoch else {
                    return Err(bad_token("a token's key has expired; get new tokens"));
                };
                out.push((t.key_id, epoch.issuer.clone(), epoch.spent.contains(&t.nonce)));
            }
            out
        };
        let mut seen = HashSet::with_capacity(tokens.len());
        for (t, (_, issuer, spent)) in tokens.iter().zip(&issuers) {
            if *spent || !seen.insert(t.nonce) {
                return Err(bad_token("a token was already spent"));
            }
            // Outside the lock: the VOPRF evaluation is the costly part.
            if !issuer.verify(t) {
                return Err(bad_token("a token does not verify"));
            }
        }
        Ok(Checked {
            nonces: tokens.iter().map(|t| (t.key_id, t.nonce)).collect(),
        })
    }

    /// Spend checked tokens, all or none, atomically: of two sends racing with one token only
    /// the first spends it; the other is refused. A key that expired since the check makes
    /// the send fail too (its token could otherwise outlive its spent set).
    pub fn spend(&self, checked: Checked) -> Result<(), ErrorBody> {
        let mut keys = self.keys()?;
        let keys = &mut *keys;
        for (key_id, nonce) in &checked.nonces {
            let epoch = [Some(&keys.current), keys.previous.as_ref()]
                .into_iter()
                .flatten()
                .find(|e| e.issuer.key().id == *key_id);
            match epoch {
                None => return Err(bad_token("a token's key has expired; get new tokens")),
                Some(e) if e.spent.contains(nonce) => return Err(bad_token("a token was already spent")),
                Some(_) => {}
            }
        }
        for (key_id, nonce) in checked.nonces {
            for e in [Some(&mut keys.current), keys.previous.as_mut()]
                .into_iter()
                .flatten()
            {
                if e.issuer.key().id == key_id {
                    e.spent.insert(nonce);
                }
            }
        }
        Ok(())
    }

    /// Take `n` tokens from the current key's allowance; `None` once it issued its maximum.
    fn reserve(&self, n: u64) -> Result<Option<Arc<TokenIssuer>>, ErrorBody> {
        let mut keys = self.keys()?;
        if keys.current.issued + n > self.config.max_per_key {
            return Ok(None);
        }
        keys.current.issued += n;
        Ok(Some(keys.current.issuer.clone()))
    }

    /// Forget the budgets of accounts and addresses whose buckets are full again.
    pub fn forget_idle(&self) {
        self.per_account.forget_idle();
        self.per_ip.forget_idle();
    }
}

impl Service {
    /// `IssueSealedTokens`: evaluate `blinded` under the current key for an account in good
    /// standing and within its budget. Decided in order: batch size, standing (a ban, a
    /// challenge or a throttle refuses), the per-account then per-IP budget (the first as
    /// many elements as both still allow are evaluated; none left is `RateLimited`), the key's
    /// allowance; only then is the (costly) evaluation done.
    pub async fn issue_sealed_tokens(&self, me: Authed, ip: IpAddr, blinded: Vec<Bytes>) -> Answer {
        let max = self.config.sealed_tokens.batch.max(1) as usize;
        if blinded.is_empty() || blinded.len() > max {
            return Err(err(
                ErrorCode::BadRequest,
                format!("ask for 1 to {max} sealed-send tokens at a time"),
            ));
        }
        let account = me.address.account;
        if let Some(st) = self.abuse.standing(account)
            && st.action == sirr_abuse::Action::Throttle
        {
            // A throttled account's sends all go through its throttle, identified.
            return Err(err(
                ErrorCode::RateLimited,
                format!(
                    "this account is throttled ({}): it gets no sealed-send tokens; its messages go identified and slowed down",
                    st.reasons.join(", ")
                ),
            )
            .retry_after(self.config.sealed_tokens.key_secs.saturating_mul(1000).min(u64::from(u32::MAX)) as u32));
        }
        // Bans and unsolved challenges refuse here as they refuse a send.
        self.gate(me.address)?;
        let mut blinded = blinded;
        let tokens = &self.sealed_tokens;
        // What is left of the budget is issued (the first `n` asked for): a client asks for a
        // comfortable batch and gets what its account may still have.
        let n = tokens
            .per_account
            .take_up_to(&account, blinded.len() as u32)
            .map_err(|r| self.rate_limited("sealed-send tokens for this account", r))?;
        let n = tokens
            .per_ip
            .take_up_to(&IpKey::from(ip), n)
            .map_err(|r| self.rate_limited("sealed-send tokens from this address", r))?;
        blinded.truncate(n as usize);
        let Some(issuer) = tokens.reserve(u64::from(n))? else {
            return Err(err(
                ErrorCode::Overloaded,
                "the server issued all the sealed-send tokens this key allows; send identified or retry later",
            )
            .retry_after(60_000));
        };
        let issued = tokio::task::spawn_blocking(move || {
            issuer
                .issue(&blinded, &mut rand::rng())
                .map(|i| (issuer.key(), i))
        })
        .await
        .map_err(|_| err(ErrorCode::Internal, "token issuance failed"))?;
        match issued {
            Ok((key, i)) => Ok(Response::SealedTokens {
                key,
                evaluated: i.evaluated,
                proof: i.proof,
            }),
            Err(e) => Err(err(ErrorCode::BadRequest, format!("cannot issue tokens: {e}"))),
        }
    }

    /// `SealedTokenKeys` (sealed-sender session): the keys that verify now.
    pub fn sealed_token_keys(&self) -> Answer {
        Ok(Response::SealedTokenKeys {
            keys: self.sealed_tokens.live_keys()?,
        })
    }
}

fn bad_token(msg: impl Into<String>) -> ErrorBody {
    err(ErrorCode::BadSealedToken, msg)
}

fn poisoned() -> ErrorBody {
    err(
        ErrorCode::Internal,
        "sealed-send tokens are unavailable; send identified",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sirr_crypto::tokens::TokenRequest;

    fn config() -> SealedTokensConfig {
        SealedTokensConfig::default()
    }

    fn fetch(t: &SealedTokens, n: usize) -> Vec<SealedToken> {
        let mut rng = rand::rng();
        let issuer = t.reserve(n as u64).unwrap().unwrap();
        let (req, blinded) = TokenRequest::new(n, &mut rng).unwrap();
        let i = issuer.issue(&blinded, &mut rng).unwrap();
        req.finalize(issuer.key(), &i.evaluated, &i.proof).unwrap()
    }

    #[test]
    fn a_token_is_spent_once() {
        let t = SealedTokens::new(&config()).unwrap();
        let ts = fetch(&t, 2);
        let a = t.check(&ts[..1], 1).unwrap();
        let b = t.check(&ts[..1], 1).unwrap();
        t.spend(a).unwrap();
        assert_eq!(
            t.spend(b).unwrap_err().code,
            ErrorCode::BadSealedToken,
            "the racing send loses"
        );
        assert_eq!(
            t.check(&ts[..1], 1).err().unwrap().code,
            ErrorCode::BadSealedToken
        );
        let twice = [ts[1].clone(), ts[1].clone()];
        assert!(
            t.check(&twice, 2).is_err(),
            "one token cannot pay twice in one send"
        );
        assert!(t.check(&ts[1..], 2).is_err(), "one token per recipient");
        t.spend(t.check(&ts[1..], 1).unwrap()).unwrap();
    }

    #[test]
    fn keys_rotate_keep_one_previous_and_forget_the_rest() {
        let t = SealedTokens::new(&SealedTokensConfig {
            key_secs: 1,
            ..config()
        })
        .unwrap();
        let old = fetch(&t, 1);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(t.live_keys().unwrap().len(), 2);
        assert!(t.check(&old, 1).is_ok(), "the previous key still verifies");
        std::thread::sleep(Duration::from_millis(2100));
        let live = t.live_keys().unwrap();
        assert!(!live.iter().any(|k| k.id == old[0].key_id));
        assert_eq!(t.check(&old, 1).err().unwrap().code, ErrorCode::BadSealedToken);
    }

    #[test]
    fn a_key_issues_at_most_its_allowance() {
        let t = SealedTokens::new(&SealedTokensConfig {
            max_per_key: 3,
            ..config()
        })
        .unwrap();
        assert!(t.reserve(2).unwrap().is_some());
        assert!(t.reserve(2).unwrap().is_none());
        assert!(t.reserve(1).unwrap().is_some());
    }
}
