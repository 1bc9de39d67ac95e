//! The client's end-to-end decoders of bytes another party chose: MLS messages, Welcomes,
//! KeyPackages, signed device lists, device-link bundles, sealed state and sealed device names
//! (as the server hands them back). None may panic, and
//! a conversation must stay usable after any input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sirr_crypto::seal::{LinkKey, open_at_rest};
use sirr_crypto::{AccountKey, Conversation, DeviceIdentity, KeyPackages, MlsStore, verify_device_list};
use sirr_proto::content::LinkBundle;
use sirr_proto::{AccountId, DeviceAddress, DeviceId};

/// A two-member conversation as seen by its second member, built once.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn fixture() -> &'static Vec<u8> {
    static STATE: OnceLock<Vec<u8>> = OnceLock::new();
    STATE.get_or_init(|| {
        let (sa, sb) = (MlsStore::new(), MlsStore::new());
        let a = DeviceIdentity::generate(AccountId([1; 16]), DeviceId(1), &mut rand::rng());
        let b = DeviceIdentity::generate(AccountId([2; 16]), DeviceId(1), &mut rand::rng());
        let kps = KeyPackages::generate(&sb, &b, 1, now(), 86_400).unwrap();
        let kp = KeyPackages::validate(&sa, &kps.one_time[0], b.address(), now()).unwrap();
        let mut conv = Conversation::create(&sa, &a, [9; 16]).unwrap();
        let out = conv.add_members(&sa, &a, &[kp]).unwrap();
        conv.merge_pending_commit(&sa).unwrap();
        Conversation::join(&sb, &out.welcome).unwrap();
        sb.export().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let store = MlsStore::import(fixture()).unwrap();
    let mut conv = Conversation::load(&store, [9; 16]).unwrap().unwrap();
    let _ = conv.process_incoming(&store, data);
    assert!(conv.is_active());
    let _ = Conversation::join(&store, data);
    let address = DeviceAddress {
        account: AccountId([3; 16]),
        device: DeviceId(1),
    };
    let _ = KeyPackages::validate(&store, data, address, now());
    let _ = verify_device_list(data, AccountId([3; 16]), None);
    let _ = MlsStore::import(data);
    let _ = open_at_rest(&[7; 32], b"mls", data);
    let _ = sirr_proto::codec::decode_exact::<LinkBundle>(data);
    if let Ok(link) = LinkKey::generate() {
        let _ = link.open(data);
    }
    let _ = account_key().open_device_name(address, data);
});

fn account_key() -> &'static AccountKey {
    static KEY: OnceLock<AccountKey> = OnceLock::new();
    KEY.get_or_init(|| AccountKey::from_bytes(&[5; 32]))
}
