//! Discovery and election, on every backend.

use std::time::Duration;

use futures::StreamExt;
use kvmesh::Bytes;
use kvmesh::discovery::{Discovery, MemberEvent, Node};
use kvmesh::election::Election;

use super::Ctx;

async fn next_member(members: &mut kvmesh::discovery::MemberStream) -> MemberEvent {
    match tokio::time::timeout(super::EVENT_DEADLINE, members.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("expected a membership event, got {other:?}"),
    }
}

pub async fn discovery_registers_refreshes_and_leaves(ctx: Ctx) {
    let discovery = Discovery::with_root(ctx.store.clone(), ctx.key("discovery/"));
    let ttl = ctx.traits.min_ttl;
    let node = Node::new("node-1", "10.0.0.1:7000").with_meta("zone", "a");
    let registration = discovery.register("web", node.clone(), ttl).await.unwrap();
    assert_eq!(registration.node(), &node);
    // Another handle on the same store sees it.
    let elsewhere = Discovery::with_root(ctx.other.clone(), ctx.key("discovery/"));
    assert_eq!(
        elsewhere.members("web").await.unwrap(),
        std::slice::from_ref(&node)
    );
    assert_eq!(
        discovery.members("web").await.unwrap(),
        std::slice::from_ref(&node)
    );
    // The refresh keeps it alive well past its TTL.
    tokio::time::sleep(ttl * 3 + ctx.traits.ttl_slack).await;
    assert_eq!(
        discovery.members("web").await.unwrap(),
        std::slice::from_ref(&node),
        "refreshed past its TTL"
    );
    // Dropping the handle removes the node within the TTL.
    drop(registration);
    let deadline = tokio::time::Instant::now() + ttl + ctx.traits.ttl_slack;
    while !discovery.members("web").await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped node is still registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(matches!(
        discovery.register("a/b", node.clone(), ttl).await,
        Err(kvmesh::Error::InvalidArgument(_))
    ));
    // One live registration per node id; a new one right after a drop
    // stays (the old one's removal comes first).
    let first = discovery.register("web", node.clone(), ttl).await.unwrap();
    assert!(matches!(
        discovery.clone().register("web", node.clone(), ttl).await,
        Err(kvmesh::Error::InvalidArgument(_))
    ));
    drop(first);
    let again = discovery.register("web", node.clone(), ttl).await.unwrap();
    tokio::time::sleep(ctx.traits.release_lag + Duration::from_millis(100)).await;
    assert_eq!(
        elsewhere.members("web").await.unwrap(),
        std::slice::from_ref(&node),
        "the new registration outlives the old one's removal"
    );
    assert!(again.is_registered());
    again.deregister().await.unwrap();
}

pub async fn discovery_membership_stream(ctx: Ctx) {
    let discovery = Discovery::with_root(ctx.store.clone(), ctx.key("discovery/"));
    let ttl = Duration::from_secs(30);
    let a = Node::new("a", "10.0.0.1:1");
    let _a = discovery.register("svc", a.clone(), ttl).await.unwrap();
    let mut members = discovery.watch_members("svc").await.unwrap();
    assert_eq!(
        next_member(&mut members).await,
        MemberEvent::Joined(a.clone()),
        "starts with current members"
    );
    let b = Node::new("b", "10.0.0.2:1");
    let registration_b = discovery.register("svc", b.clone(), ttl).await.unwrap();
    assert_eq!(
        next_member(&mut members).await,
        MemberEvent::Joined(b.clone())
    );
    // The same node id from another process (its own `Discovery`) takes
    // the entry over.
    let moved = Node::new("b", "10.0.0.3:1");
    let restarted = Discovery::with_root(ctx.store.clone(), ctx.key("discovery/"));
    let registration_moved = restarted.register("svc", moved.clone(), ttl).await.unwrap();
    assert_eq!(
        next_member(&mut members).await,
        MemberEvent::Updated(moved.clone())
    );
    drop(registration_b); // stops the old refresher, which deletes the key
    registration_moved.deregister().await.unwrap();
    assert_eq!(next_member(&mut members).await, MemberEvent::Left(moved));
}

pub async fn election_has_one_leader_at_a_time(ctx: Ctx) {
    let election = Election::with_root(ctx.store.clone(), ctx.key("election/"));
    let mut observer = election.observe("boss").await.unwrap();
    let mut candidates = Vec::new();
    for name in ["a", "b", "c"] {
        let election = election.clone();
        candidates.push(tokio::spawn(async move {
            election.campaign("boss", Bytes::from(name)).await.unwrap()
        }));
    }
    let mut previous_token = 0;
    let mut leaders = Vec::new();
    for _ in 0..3 {
        // Exactly one candidate wins; the others keep waiting.
        let deadline = tokio::time::Instant::now() + super::EVENT_DEADLINE;
        let index = loop {
            if let Some(i) = candidates.iter().position(|c| c.is_finished()) {
                break i;
            }
            assert!(tokio::time::Instant::now() < deadline, "nobody won");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let leadership = candidates.swap_remove(index).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            candidates.iter().all(|c| !c.is_finished()),
            "two leaders at once"
        );
        assert!(leadership.fencing_token() > previous_token);
        previous_token = leadership.fencing_token();
        assert_eq!(
            election.leader("boss").await.unwrap().as_ref(),
            Some(leadership.value())
        );
        // The observer reports this leader (Consul may coalesce the vacancy).
        loop {
            match tokio::time::timeout(super::EVENT_DEADLINE, observer.next()).await {
                Ok(Some(Ok(Some(value)))) if value == *leadership.value() => break,
                Ok(Some(Ok(_))) => {}
                other => panic!("observe ended or failed: {other:?}"),
            }
        }
        leaders.push(leadership.value().clone());
        if leaders.len() == 2 {
            drop(leadership); // a leader that dies: its lock goes with it
        } else {
            leadership.resign().await.unwrap();
        }
    }
    leaders.sort();
    assert_eq!(leaders, ["a", "b", "c"]);
    assert_eq!(election.leader("boss").await.unwrap(), None);
}
