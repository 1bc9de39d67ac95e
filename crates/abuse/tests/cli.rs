//! The `sirr-abuse` binary: simulate, replay, and its errors.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sirr-abuse"))
}

#[test]
fn simulate_then_replay_prints_decisions_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let status = bin()
        .args([
            "simulate",
            "--seed",
            "9",
            "--accounts",
            "300",
            "--days",
            "1",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let labels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("labels.json")).unwrap()).unwrap();
    assert!(
        labels
            .as_object()
            .unwrap()
            .values()
            .any(|l| l["kind"] == "blaster")
    );
    let run = bin()
        .args(["replay", "--events"])
        .arg(out.join("events.jsonl"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let text = String::from_utf8(run.stdout).unwrap();
    let mut last = 0;
    let mut bans = 0;
    for line in text.lines() {
        let d: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = d["t"].as_u64().unwrap();
        assert!(t >= last);
        last = t;
        assert!(["allow", "throttle", "challenge", "ban"].contains(&d["action"].as_str().unwrap()));
        assert!(d["reasons"].is_array() && d["account"].is_string());
        bans += usize::from(d["action"] == "ban");
    }
    assert!(bans > 5, "some abusers are banned ({bans})");
}

#[test]
fn a_malformed_line_fails_the_replay_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"t\":1,\"type\":\"lookup\",\"account\":\"a\",\"count\":3,\"found\":1}\n{\"t\":2,\"type\":\"message\",\"from\":\"a\"}\n",
    )
    .unwrap();
    let run = bin().args(["replay", "--events"]).arg(&path).output().unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8(run.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("line 2: `message` event lacks field `to`"), "{err}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let run = bin()
        .args(["replay", "--events", "/nonexistent/events.jsonl"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("opening /nonexistent/events.jsonl"));
}
