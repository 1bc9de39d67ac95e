//! Regression tests for the smaller findings of a security review: each failed on the code
//! before its fix.

mod common;

use common::*;

/// `sirr --help` describes each command against its own name.
#[test]
fn help_describes_timer_and_block_each_by_its_own_text() {
    let dir = tempfile::tempdir().unwrap();
    let help = sirr_ok(dir.path(), &["--help"]);
    let line = |cmd: &str| {
        help.lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_else(|| panic!("help lists {cmd}:\n{help}"))
            .to_owned()
    };
    let (timer, block) = (line("timer"), line("block"));
    assert!(timer.contains("Disappearing messages"), "{timer}");
    assert!(block.contains("Stop seeing someone's messages"), "{block}");
    assert!(!block.contains("Disappearing"), "{block}");
}

/// Registering, linking, removing a device and deleting the account are logged at info, but
/// without the account id: after the deletion the log holds nothing that names the account.
#[test]
fn the_log_never_names_an_account_id() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550001001");
    link_ok(&server, &b, &a);
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(&a, &["whoami", "--json"])).unwrap();
    let account = who["account"].as_str().unwrap().to_owned();
    assert!(account.len() >= 16, "{account}");
    sirr_ok(&a, &["device", "remove", "2"]);
    sirr_ok(&a, &["account", "delete", "--yes"]);
    let log = server.log();
    for line in ["device registered", "device linked", "device removed", "account deleted"] {
        assert!(log.contains(line), "the log still records `{line}`:\n{log}");
    }
    assert!(!log.contains(&account), "the log names account {account}:\n{log}");
}
