//! The proof of work a challenged account solves before it may send more: find `solution`
//! such that SHA-256(tag ‖ nonce ‖ account ‖ solution) starts with `bits` zero bits. Costly for
//! a bot sending thousands of messages, a moment for a person; the server checks it with one
//! hash. The nonce is the server's and single-use, so a solution cannot be reused or shared;
//! the server hands one per device (again on each refused send until it is solved), so two
//! devices of one account never invalidate each other's work.

use sha2::{Digest, Sha256};

use crate::AccountId;

fn leading_zero_bits(h: &[u8]) -> u32 {
    let mut n = 0;
    for b in h {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

fn digest(nonce: &[u8; 16], account: AccountId, solution: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sirr challenge v1");
    h.update(nonce);
    h.update(account.0);
    h.update(solution.to_be_bytes());
    h.finalize().into()
}

/// Whether `solution` solves the challenge for `account`.
pub fn check(nonce: &[u8; 16], bits: u8, account: AccountId, solution: u64) -> bool {
    leading_zero_bits(&digest(nonce, account, solution)) >= u32::from(bits)
}

/// Search for a solution (about 2^bits hashes).
pub fn solve(nonce: &[u8; 16], bits: u8, account: AccountId) -> u64 {
    (0u64..)
        .find(|s| check(nonce, bits, account, *s))
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solution_checks_for_its_account_and_nonce_only() {
        let (nonce, a) = ([7u8; 16], AccountId([1; 16]));
        let s = solve(&nonce, 12, a);
        assert!(check(&nonce, 12, a, s));
        // A fixed solution works elsewhere with odds 2^-12; these inputs are fixed, so the
        // outcome is too.
        assert!(!check(&nonce, 12, AccountId([2; 16]), s), "another account");
        assert!(!check(&[8; 16], 12, a, s), "another nonce");
        assert_eq!(leading_zero_bits(&[0, 0b0001_0000]), 11);
    }
}
