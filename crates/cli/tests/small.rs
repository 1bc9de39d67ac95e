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
