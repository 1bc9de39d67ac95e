//! Every rate-limit bucket the docs name holds, through the real binaries: codes per number
//! prefix, registration requests per client address, lookups and KeyPackage claims per
//! account. Each test lowers one bucket to a burst of 2 and checks that the third request is
//! refused with a retry-after, while a request outside the bucket still goes through.

mod common;

use std::path::Path;

use common::*;

/// Two at once, then practically none: the third request within a test is over the limit.
fn tight(bucket: &str) -> Vec<(String, String)> {
    vec![
        (format!("SIRR_LIMITS__{bucket}__BURST"), "2".into()),
        (format!("SIRR_LIMITS__{bucket}__PER_SECOND"), "0.0001".into()),
    ]
}

fn start(env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(&["--dev"], &env)
}

/// Ask for a verification code (no `--code`): what a sign-up does first.
fn request_code(server: &Server, home: &Path, phone: &str) -> std::process::Output {
    sirr(home, &["register", "--server", &server.url, "--phone", phone])
}

/// Refused by the bucket whose refusal says `reason`, with a retry-after.
fn assert_rate_limited(out: &std::process::Output, what: &str, reason: &str) {
    assert!(!out.status.success(), "{what} went through");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RateLimited") && err.contains("retry after") && err.contains(reason),
        "{what}: {err}"
    );
}

#[test]
fn codes_are_limited_per_number_prefix() {
    let mut env = tight("CODE_PER_PREFIX");
    env.push(("SIRR_LIMITS__PREFIX_DIGITS".into(), "8".into()));
    let server = start(&env);
    let dir = tempfile::tempdir().unwrap();
    // +1 555 0000 9xx: one block of the first 8 digits.
    for (i, phone) in ["+15550000901", "+15550000902"].iter().enumerate() {
        let out = request_code(&server, &dir.path().join(format!("h{i}")), phone);
        assert!(out.status.success(), "{out:?}");
    }
    let out = request_code(&server, &dir.path().join("h3"), "+15550000903");
    assert_rate_limited(&out, "a third code in one prefix", "numbers like this one");
    // Another block is not affected.
    let out = request_code(&server, &dir.path().join("h4"), "+15559990901");
    assert!(out.status.success(), "another prefix: {out:?}");
}

#[test]
fn registration_requests_are_limited_per_address() {
    let server = start(&tight("REGISTRATION_PER_IP"));
    let dir = tempfile::tempdir().unwrap();
    // Numbers in different blocks, so only the address is common to them.
    let phones = ["+15551110001", "+15552220002", "+15553330003"];
    for (i, phone) in phones[..2].iter().enumerate() {
        let out = request_code(&server, &dir.path().join(format!("h{i}")), phone);
        assert!(out.status.success(), "{out:?}");
    }
    let out = request_code(&server, &dir.path().join("h3"), phones[2]);
    assert_rate_limited(
        &out,
        "a third registration request from one address",
        "from this address",
    );
}

/// Alice and four people she may write to.
fn five(server: &Server, dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    (1..=5)
        .map(|i| {
            let home = dir.join(format!("p{i}"));
            let phone = format!("+1555080000{i}");
            register(server, &home, &phone);
            (home, phone)
        })
        .collect()
}

/// Alice writes to new contacts until the third one is refused by `bucket`, with `reason`;
/// what lies outside the bucket (another account writing; with `existing_is_free`, alice writing
/// in a conversation she has) still goes through.
fn new_contacts_are_limited(bucket: &str, what: &str, reason: &str, existing_is_free: bool) {
    let server = start(&tight(bucket));
    let dir = tempfile::tempdir().unwrap();
    let people = five(&server, dir.path());
    let (alice, others) = (&people[0].0, &people[1..]);
    for (_, phone) in &others[..2] {
        sirr_ok(alice, &["send", phone, "hello"]);
    }
    let out = sirr(alice, &["send", &others[2].1, "hello"]);
    assert_rate_limited(&out, what, reason);
    if existing_is_free {
        sirr_ok(alice, &["send", &others[0].1, "again"]);
    }
    // The bucket is hers: someone else still writes to someone new.
    sirr_ok(&others[3].0, &["send", &others[2].1, "hello"]);
}

/// Each first message to a new number looks it up.
#[test]
fn lookups_are_limited_per_account() {
    new_contacts_are_limited("LOOKUP", "a third lookup", "too many lookups", false);
}

/// Each new one-device contact costs one claim; writing in a conversation that exists claims
/// nothing.
#[test]
fn keypackage_claims_are_limited_per_account() {
    new_contacts_are_limited("CLAIM", "a third claim", "too many key claims", true);
}
