//! Reopening a file store: the data, versions, history, TTL deadlines and
//! locks as the last process left them; a file in use, damaged or foreign.

use std::time::Duration;

use futures::StreamExt;
use kvmesh::{Bytes, Error, KvEvent, PutOptions, Store, WatchOptions};

use super::{file_url, scratch_file};
use crate::support::{spawn_child_test, wait_for_line};

fn describe(event: &KvEvent) -> String {
    match event {
        KvEvent::Put(pair) => format!("put {} {}", pair.key, String::from_utf8_lossy(&pair.value)),
        KvEvent::Delete { key, .. } => format!("delete {key}"),
    }
}

#[tokio::test]
async fn a_watch_after_a_restart_replays_what_happened_after_its_version() {
    let path = scratch_file("reopen-replay");
    let url = file_url(&path);
    let path_text = path.display().to_string();
    let mut child = spawn_child_test(
        "file::reopen::history_writer_child",
        &[("KV_FILE_CHILD_PATH", &path_text)],
    );
    let held = read_line_starting(&mut child, "HELD ");
    let mut numbers = held
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse::<u64>().unwrap());
    let (from, token) = (numbers.next().unwrap(), numbers.next().unwrap());
    // The process dies with the lock held and the TTL running.
    child.kill().unwrap();
    child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let store = kvmesh::connect(&url).await.unwrap();
    let after = WatchOptions::after(from);
    let mut watch = store.watch_range("app/", after).await.unwrap();
    let mut seen = Vec::new();
    let mut last = from;
    while seen.len() < 6 {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("the replay comes")
            .expect("the watch goes on")
            .unwrap();
        assert!(event.version() > last, "in version order");
        last = event.version();
        seen.push(describe(&event));
    }
    assert_eq!(
        seen,
        [
            "put app/a 1",
            "put app/b 2",
            "delete app/a",
            "put app/ttl 3",
            "put app/lock held",
            // What happened while it was closed, in the order reopening found it.
            "delete app/ttl",
        ][..]
    );
    let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        describe(&next),
        "delete app/lock",
        "the dead holder's lock ends"
    );
    assert_eq!(store.get("app/ttl").await.unwrap(), None);
    assert_eq!(store.get("app/b").await.unwrap().unwrap().value, "2");
    let lock = store
        .acquire("app/lock", Bytes::from("again"))
        .await
        .unwrap();
    assert!(lock.fencing_token() > token, "fencing tokens keep growing");
    lock.release().await.unwrap();
}

/// The first line of the child's output that starts with `start` (after
/// libtest's own text), read on this thread; the rest is left unread.
fn read_line_starting(child: &mut std::process::Child, start: &str) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("piped stdout");
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("the child's output");
        if let Some(at) = line.find(start) {
            return line[at..].to_owned();
        }
    }
    panic!("the child ended without printing {start:?}");
}

/// Run as a child by the test above: writes a history, takes a lock and a
/// TTL key, says `HELD <version before> <fencing token>`, waits to be killed.
#[tokio::test]
async fn history_writer_child() {
    let Ok(path) = std::env::var("KV_FILE_CHILD_PATH") else {
        return; // not a child: nothing to do
    };
    let store = kvmesh::connect(&format!("file://{path}")).await.unwrap();
    store.put("before", Bytes::from("0")).await.unwrap();
    let from = store.get("before").await.unwrap().unwrap().version;
    store.put("app/a", Bytes::from("1")).await.unwrap();
    store.put("app/b", Bytes::from("2")).await.unwrap();
    store.delete("app/a").await.unwrap();
    let ttl = PutOptions::ttl(Duration::from_millis(300));
    store
        .put_with("app/ttl", Bytes::from("3"), ttl)
        .await
        .unwrap();
    let lock = store
        .acquire("app/lock", Bytes::from("held"))
        .await
        .unwrap();
    println!("HELD {from} {}", lock.fencing_token());
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop(lock);
}

#[tokio::test]
async fn a_ttl_deadline_survives_a_restart() {
    let path = scratch_file("reopen-ttl");
    let url = file_url(&path);
    let store = kvmesh::connect(&url).await.unwrap();
    let ttl = PutOptions::ttl(Duration::from_millis(800));
    store.put_with("k", Bytes::from("v"), ttl).await.unwrap();
    drop(store);
    let store = kvmesh::connect(&url).await.unwrap();
    assert!(store.get("k").await.unwrap().is_some(), "not yet expired");
    let mut watch = store.watch("k", WatchOptions::default()).await.unwrap();
    let put = watch.next().await.unwrap().unwrap();
    assert!(matches!(put, KvEvent::Put(_)));
    let expired = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the reopened store still expires the key")
        .unwrap()
        .unwrap();
    assert!(matches!(expired, KvEvent::Delete { .. }));
}

/// Within one process, every `connect` of a file (by any spelling of its
/// path) hands out the same store; the file closes with the last handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connects_in_one_process_share_the_store() {
    let path = scratch_file("shared");
    let url = file_url(&path);
    // Many components opening the URL at once, as tests in one binary do.
    let opens = (0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { kvmesh::connect(&url).await })
    });
    let stores: Vec<_> = futures::future::join_all(opens)
        .await
        .into_iter()
        .map(|opened| opened.unwrap().expect("every connect of the file works"))
        .collect();
    let dotted = format!(
        "file://{}",
        path.parent()
            .unwrap()
            .join(".")
            .join(path.file_name().unwrap())
            .display()
    );
    let other_spelling = kvmesh::connect(&dotted).await.unwrap();
    let mut watch = other_spelling
        .watch("k", WatchOptions::default())
        .await
        .unwrap();
    stores[0].put("k", Bytes::from("v")).await.unwrap();
    for store in &stores {
        assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
    }
    let lock = stores[1].acquire("lock", Bytes::from("a")).await.unwrap();
    assert!(
        stores[2]
            .try_acquire("lock", Bytes::from("b"))
            .await
            .unwrap()
            .is_none()
    );
    match tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
        Ok(Some(Ok(KvEvent::Put(pair)))) => assert_eq!(pair.value, "v"),
        other => panic!("the write through one handle reaches a watch of another: {other:?}"),
    }
    drop((lock, watch, stores, other_spelling));
    // Closed with the last handle: opened again, from disk.
    let again = kvmesh::connect(&url).await.expect("opens again");
    assert_eq!(again.get("k").await.unwrap().unwrap().value, "v");
}

#[tokio::test]
async fn one_store_at_a_time_owns_a_file() {
    let path = scratch_file("in-use");
    let url = file_url(&path);

    let path_text = path.display().to_string();
    let mut child = spawn_child_test(
        "file::reopen::holding_child",
        &[("KV_FILE_CHILD_PATH", &path_text)],
    );
    wait_for_line(&mut child, "OPEN").await;
    let refused = kvmesh::connect(&url).await;
    let child_pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    match refused {
        Err(error @ Error::StoreInUse { .. }) => {
            // The message names the process that holds the file.
            let message = error.to_string();
            assert!(
                message.contains(&format!("process {child_pid}")),
                "{message}"
            );
        }
        other => panic!("another process's store: {other:?}"),
    }
    kvmesh::connect(&url)
        .await
        .expect("free once that process is gone");
}

/// Run as a child by the test above: opens the store and waits to be killed.
#[tokio::test]
async fn holding_child() {
    let Ok(path) = std::env::var("KV_FILE_CHILD_PATH") else {
        return; // not a child: nothing to do
    };
    let _store = kvmesh::connect(&format!("file://{path}")).await.unwrap();
    println!("OPEN");
    tokio::time::sleep(Duration::from_secs(600)).await;
}

fn assert_storage_error(result: kvmesh::Result<std::sync::Arc<dyn Store>>, what: &str) {
    match result {
        Err(Error::Storage { message, .. }) => println!("{what}: {message}"),
        other => panic!("{what}: expected Error::Storage, got {other:?}"),
    }
}

#[tokio::test]
async fn a_damaged_or_foreign_file_is_a_typed_error() {
    // A store cut in half.
    let path = scratch_file("truncated");
    let store = kvmesh::connect(&file_url(&path)).await.unwrap();
    for i in 0..200 {
        store
            .put(&format!("k{i}"), Bytes::from(vec![7u8; 1000]))
            .await
            .unwrap();
    }
    drop(store);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    assert_storage_error(kvmesh::connect(&file_url(&path)).await, "truncated");

    // Not a database at all.
    let path = scratch_file("foreign");
    std::fs::write(
        &path,
        b"name,value\nthis is a CSV file, not a store\n".repeat(100),
    )
    .unwrap();
    assert_storage_error(kvmesh::connect(&file_url(&path)).await, "foreign");

    // A redb database of another program.
    let path = scratch_file("other-redb");
    let other = redb::Database::create(&path).unwrap();
    let txn = other.begin_write().unwrap();
    let table: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("orders");
    txn.open_table(table).unwrap().insert("42", 7).unwrap();
    txn.commit().unwrap();
    drop(other);
    assert_storage_error(kvmesh::connect(&file_url(&path)).await, "another program's");
    let other = redb::Database::create(&path).unwrap();
    let read = redb::ReadableDatabase::begin_read(&other).unwrap();
    let tables: Vec<String> = read
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert_eq!(tables, ["orders"], "and it is left as it was");
    drop(read);
    drop(other);

    // A directory where the file should be.
    let path = scratch_file("directory");
    std::fs::create_dir_all(&path).unwrap();
    assert_storage_error(kvmesh::connect(&file_url(&path)).await, "directory");
}

/// Reopened with a smaller `history`, the store forgets the oldest
/// deletions it can no longer keep; a watch resuming from before one of
/// them must not miss it: it either yields it or says the history is gone.
#[tokio::test]
async fn a_smaller_history_on_reopen_never_hides_a_delete() {
    let path = scratch_file("smaller-history");
    let url = file_url(&path);
    let store = kvmesh::connect(&format!("{url}?history=500"))
        .await
        .unwrap();
    let keys: Vec<String> = (0..2_000).map(|i| format!("d/{i:05}")).collect();
    let mut all = kvmesh::Txn::new();
    for key in &keys {
        all = all.put(key, Bytes::from("x"));
    }
    store.txn(all).await.unwrap();
    // Deleted in reverse key order, ten at a time: the later the key, the
    // older its deletion (a reopen reads tombstones in key order).
    let mut deleted_at = Vec::new();
    for chunk in keys.rchunks(10) {
        let mut txn = kvmesh::Txn::new();
        for key in chunk {
            txn = txn.delete(key);
        }
        match store.txn(txn).await.unwrap() {
            kvmesh::TxnResult::Committed { version } => deleted_at.push((chunk.to_vec(), version)),
            other => panic!("{other:?}"),
        }
    }
    drop(store);

    // history=10 keeps 1,000 tombstones of the 2,000.
    let store = kvmesh::connect(&format!("{url}?history=10")).await.unwrap();
    let (_, from) = deleted_at[20]; // deletions after it: 179 txns, 1,790 keys
    let after = from;
    let expected: usize = deleted_at
        .iter()
        .filter(|(_, v)| *v > after)
        .map(|(k, _)| k.len())
        .sum();
    match store.watch_range("d/", WatchOptions::after(after)).await {
        Err(Error::Compacted { .. }) => {} // said so: fine
        Ok(mut watch) => {
            let mut seen = 0;
            while seen < expected {
                match tokio::time::timeout(Duration::from_secs(2), watch.next()).await {
                    Ok(Some(Ok(KvEvent::Delete { .. }))) => seen += 1,
                    Ok(Some(Err(Error::Compacted { .. }))) => return,
                    other => panic!("after {seen} of {expected} deletions: {other:?}"),
                }
            }
        }
        Err(other) => panic!("{other:?}"),
    }
}
