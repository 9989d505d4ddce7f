//! Crash safety: a child process writes and prints each write the store
//! acknowledged; it is SIGKILLed at a random moment, and every acknowledged
//! write must be in the reopened file, with its version.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;

use kvmesh::{Bytes, Store, Txn, TxnResult};

use super::{file_url, scratch_file};
use crate::support::spawn_child_test;

const ROUNDS: u32 = 100;
/// Writers in flight in the child, so that commits group several writes.
const WRITERS: u64 = 8;

/// A pseudo-random number from the clock and a counter (no rand crate).
fn random_below(n: u64, round: u32) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut x = u64::from(nanos) ^ (u64::from(round) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x % n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let mut acknowledged_in_all = 0;
    for round in 0..ROUNDS {
        let path = scratch_file("crash");
        let path_text = path.display().to_string();
        let mut child = spawn_child_test(
            "file::crash::acknowledging_writer_child",
            &[("KV_FILE_CHILD_PATH", &path_text)],
        );
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if lines_tx.send(line).is_err() {
                    return;
                }
            }
        });
        // Wait for the first acknowledgement, then kill at a random moment.
        let first = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the child writes");
            if parse_ack(&line).is_some() {
                break line;
            }
        };
        tokio::time::sleep(Duration::from_millis(random_below(150, round))).await;
        child.kill().expect("SIGKILL the child");
        child.wait().expect("the child ends");
        reader.join().expect("the reader ends at EOF");
        let acked: BTreeMap<String, u64> = std::iter::once(first)
            .chain(lines.try_iter())
            .filter_map(|line| parse_ack(&line))
            .collect();
        assert!(!acked.is_empty(), "round {round}: nothing acknowledged");
        acknowledged_in_all += acked.len();

        let store = kvmesh::connect(&file_url(&path))
            .await
            .unwrap_or_else(|e| panic!("round {round}: reopening after kill -9: {e}"));
        for (key, version) in &acked {
            let pair = store.get(key).await.unwrap();
            let pair = pair.unwrap_or_else(|| panic!("round {round}: acknowledged {key} lost"));
            assert_eq!(pair.version, *version, "round {round}: {key}");
            assert_eq!(pair.value, Bytes::from(key.clone()));
        }
        let newest = acked.values().max().copied().unwrap_or(0);
        let after = store
            .txn(Txn::new().put("after", Bytes::new()))
            .await
            .unwrap();
        assert!(
            matches!(after, TxnResult::Committed { version } if version > newest),
            "round {round}: versions keep growing after a crash"
        );
        drop(store);
        let _ = std::fs::remove_file(&path);
    }
    println!("{acknowledged_in_all} acknowledged writes over {ROUNDS} kills, none lost");
}

/// `ACK <key> <version>`.
fn parse_ack(line: &str) -> Option<(String, u64)> {
    let rest = line.trim_start_matches(|c| c != 'A').strip_prefix("ACK ")?;
    let (key, version) = rest.split_once(' ')?;
    Some((key.to_owned(), version.trim().parse().ok()?))
}

/// Run as a child by the test above: writes until killed, printing each
/// write the store acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_writer_child() {
    let Ok(path) = std::env::var("KV_FILE_CHILD_PATH") else {
        return; // not a child: nothing to do
    };
    let store = kvmesh::connect(&format!("file://{path}")).await.unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move { write_until_killed(store, writer).await })
        })
        .collect();
    for writer in writers {
        let _ = writer.await;
    }
}

async fn write_until_killed(store: std::sync::Arc<dyn Store>, writer: u64) {
    for i in 0u64.. {
        let key = format!("w{writer}/{i}");
        let txn = Txn::new().put(&key, Bytes::from(key.clone()));
        match store.txn(txn).await {
            Ok(TxnResult::Committed { version }) => println!("ACK {key} {version}"),
            other => panic!("{other:?}"),
        }
    }
}
