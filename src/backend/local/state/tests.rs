//! A local store's history and tombstones, without a runtime.

use super::*;

#[test]
fn history_replays_and_falls_back_to_tombstones() {
    let mut state = State::new(2);
    let target = WatchTarget::Prefix("a/".into());
    state.set("a/1", Bytes::from("x"), None); // 1
    state.set("a/2", Bytes::from("y"), None); // 2
    state.remove("a/1"); // 3
    state.set("b", Bytes::from("z"), None); // 4
    // History holds revisions 3 and 4 only; after 0 needs the rebuild.
    let changes = state.changes_after(&target, 0).unwrap();
    let versions: Vec<u64> = changes.iter().map(KvEvent::version).collect();
    assert_eq!(versions, [2, 3]);
    assert!(matches!(changes[1], KvEvent::Delete { ref key, .. } if key == "a/1"));
    // After 2 is still in the history.
    let changes = state.changes_after(&target, 2).unwrap();
    assert_eq!(changes.len(), 1);
}

#[test]
fn forgotten_tombstones_are_reported_not_skipped() {
    let mut state = State::new(0);
    for i in 0..(MIN_TOMBSTONES + 5) {
        let key = format!("k{i}");
        state.set(&key, Bytes::new(), None);
        state.remove(&key);
    }
    let target = WatchTarget::Prefix("k".into());
    assert!(matches!(
        state.changes_after(&target, 1),
        Err(Error::Compacted { requested: 1, .. })
    ));
    assert!(state.changes_after(&target, state.revision() - 1).is_ok());
}
