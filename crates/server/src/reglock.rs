//! The registration lock, and what registering a number that already has an account does.
//!
//! A verification code proves control of a phone number, not ownership of the account behind
//! it (a SIM swap or a recycled number passes the code check). So a code alone never joins an
//! existing account: the number's old account identity is *retired* (its devices signed out,
//! their queues, keys and the signed device list dropped; see `NewDevice::retire`) and the new
//! device starts the identity anew, with a new account key. Contacts' clients see that key
//! change as a safety-number change. A retired identity cannot be reached by the newcomer.
//!
//! An account can opt into a **registration lock** (a PIN): while it is on, registering the
//! number anew also needs the PIN. The server keeps only an Argon2id hash of it ([`hash_pin`])
//! and counts wrong guesses in storage (so the budget survives restarts): after
//! [`MAX_PIN_GUESSES`] wrong ones, no guess is taken at all until the account has been
//! inactive for [`LOCK_LAPSES_AFTER_DAYS`] days, when the lock lapses (as Signal's does), so a
//! user who lost every device and the PIN can still get the number back, a week later. Guesses
//! need a valid verification code first and count against the registration budget per IP.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sirr_proto::{AccountId, ErrorBody, ErrorCode, Pin, Response};
use sirr_store::RegistrationLock;

use crate::service::{Answer, Authed, Service, err, today};

/// Wrong PIN guesses an account's lock takes before it refuses every guess.
pub const MAX_PIN_GUESSES: u32 = 10;
/// Days without a connection after which a lock lapses (and with it the guess budget).
pub const LOCK_LAPSES_AFTER_DAYS: u32 = 7;
/// Shortest and longest PIN, in characters.
pub const PIN_CHARS: std::ops::RangeInclusive<usize> = 4..=64;

/// Argon2id with 19 MiB, 2 passes, 1 lane (the OWASP baseline, RFC 9106's second
/// recommendation scaled down): about 40 ms per hash on this project's 2-core test machine.
/// The parameters are in every stored PHC string, so raising them later keeps old hashes valid.
fn argon2() -> Argon2<'static> {
    // 19 MiB in KiB blocks; the parameters are constants within Argon2's bounds.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PIN is 4 to 64 printable characters.
pub fn check_pin(pin: &Pin) -> Result<(), ErrorBody> {
    let n = pin.0.chars().count();
    if !PIN_CHARS.contains(&n) || pin.0.chars().any(char::is_control) {
        return Err(err(
            ErrorCode::BadRequest,
            format!(
                "a registration-lock PIN is {} to {} printable characters",
                PIN_CHARS.start(),
                PIN_CHARS.end()
            ),
        ));
    }
    Ok(())
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) of `pin` under a fresh salt.
/// Slow on purpose: call it off the async workers.
pub fn hash_pin(pin: &Pin) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(argon2().hash_password(pin.0.as_bytes(), &salt)?.to_string())
}

/// Whether `pin` matches `phc`: the crate recomputes the hash with the stored parameters and
/// compares in constant time. A malformed stored hash matches nothing.
pub fn pin_matches(pin: &Pin, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2().verify_password(pin.0.as_bytes(), &h).is_ok())
}

/// Whether `lock` still guards its number on `today`: it lapses once the account has been
/// inactive for [`LOCK_LAPSES_AFTER_DAYS`] days.
pub fn in_force(lock: &RegistrationLock, today: u32) -> bool {
    today.saturating_sub(lock.active_day) < LOCK_LAPSES_AFTER_DAYS
}

fn locked(message: impl Into<String>) -> ErrorBody {
    err(ErrorCode::RegistrationLocked, message)
}

impl Service {
    /// May the number of `account` be registered anew with `pin`? Spends a guess when the lock
    /// is in force; returns the PIN hash the new identity keeps (`None`: no lock, or lapsed).
    pub(crate) async fn pass_registration_lock(
        &self,
        account: AccountId,
        pin: Option<&Pin>,
    ) -> Result<Option<String>, ErrorBody> {
        let lock = self
            .store
            .registration_lock(account)
            .await
            .map_err(|e| self.store_error(e))?;
        let Some(lock) = lock.filter(|l| in_force(l, today())) else {
            return Ok(None);
        };
        let Some(pin) = pin else {
            return Err(locked(
                "this number's account has a registration lock: give its PIN to register it anew",
            ));
        };
        let exhausted = || {
            locked(format!(
                "too many wrong PINs: this number cannot be registered anew until its account has been inactive for {LOCK_LAPSES_AFTER_DAYS} days"
            ))
        };
        if lock.failures >= MAX_PIN_GUESSES {
            return Err(exhausted());
        }
        let guess = self
            .store
            .take_lock_guess(account, MAX_PIN_GUESSES)
            .await
            .map_err(|e| self.store_error(e))?
            .ok_or_else(exhausted)?;
        let (pin, phc) = (pin.clone(), guess.pin_hash.clone());
        let right = tokio::task::spawn_blocking(move || pin_matches(&pin, &phc))
            .await
            .map_err(|_| err(ErrorCode::Internal, "internal error; try again"))?;
        if !right {
            let left = MAX_PIN_GUESSES.saturating_sub(guess.failures);
            tracing::info!(account = %self.key.log_tag(&account), left, "wrong registration-lock PIN");
            return Err(locked(format!("wrong PIN; {left} guesses left")));
        }
        Ok(Some(guess.pin_hash))
    }

    /// `SetRegistrationLock`: on with a PIN (stored as its Argon2id hash), or off.
    pub async fn set_registration_lock(&self, me: Authed, pin: Option<Pin>) -> Answer {
        self.require_approved(me, "change the registration lock").await?;
        let hash = match pin {
            Some(pin) => {
                check_pin(&pin)?;
                let hash = tokio::task::spawn_blocking(move || hash_pin(&pin))
                    .await
                    .map_err(|_| err(ErrorCode::Internal, "internal error; try again"))?
                    .map_err(|e| {
                        tracing::error!(error = %e, "could not hash a PIN");
                        err(ErrorCode::Internal, "internal error; try again")
                    })?;
                Some(hash)
            }
            None => None,
        };
        let enabled = hash.is_some();
        self.store
            .set_registration_lock(me.address.account, hash)
            .await
            .map_err(|e| self.store_error(e))?;
        tracing::info!(account = %self.key.log_tag(&me.address.account), enabled, "registration lock changed");
        Ok(Response::RegistrationLock { enabled })
    }

    /// `RegistrationLockStatus`.
    pub async fn registration_lock_status(&self, me: Authed) -> Answer {
        let lock = self
            .store
            .registration_lock(me.address.account)
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(Response::RegistrationLock {
            enabled: lock.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_hash_slowly_and_verify_only_themselves() {
        let pin = Pin("4921".into());
        let started = std::time::Instant::now();
        let phc = hash_pin(&pin).unwrap();
        let took = started.elapsed();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("4921"));
        assert_ne!(phc, hash_pin(&pin).unwrap(), "salted");
        assert!(pin_matches(&pin, &phc));
        assert!(!pin_matches(&Pin("4922".into()), &phc));
        assert!(!pin_matches(&pin, "not a hash"));
        eprintln!("argon2id hash took {took:?}");
    }

    #[test]
    fn locks_lapse_after_a_week_of_inactivity() {
        let lock = RegistrationLock {
            pin_hash: String::new(),
            failures: MAX_PIN_GUESSES,
            active_day: 100,
        };
        assert!(in_force(&lock, 100));
        assert!(in_force(&lock, 106));
        assert!(!in_force(&lock, 107));
        assert!(
            in_force(&lock, 90),
            "a clock behind the last activity keeps it on"
        );
    }

    #[test]
    fn pins_are_4_to_64_printable_characters() {
        assert!(check_pin(&Pin("123".into())).is_err());
        assert!(check_pin(&Pin("1234".into())).is_ok());
        assert!(check_pin(&Pin("x".repeat(65))).is_err());
        assert!(check_pin(&Pin("12\n34".into())).is_err());
    }
}
