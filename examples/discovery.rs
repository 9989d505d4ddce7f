//! Three nodes register in a service on the embedded store; one is dropped;
//! a watcher prints the joins and the leave.
//!
//! Run with `cargo run --example discovery`.

use std::time::Duration;

use futures::StreamExt;
use kvmesh::discovery::{Discovery, MemberEvent, Node};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let discovery = Discovery::new(kvmesh::connect("memory://").await?);
    let mut members = discovery.watch_members("web").await?;
    let watcher = tokio::spawn(async move {
        for _ in 0..4 {
            match members.next().await {
                Some(Ok(MemberEvent::Joined(node))) => {
                    println!("joined  {} at {}", node.id, node.address)
                }
                Some(Ok(MemberEvent::Updated(node))) => {
                    println!("updated {} at {}", node.id, node.address)
                }
                Some(Ok(MemberEvent::Left(node))) => println!("left    {}", node.id),
                Some(Err(error)) => println!("error   {error}"),
                None => break,
            }
        }
    });

    let ttl = Duration::from_secs(10);
    let mut nodes = Vec::new();
    for (i, zone) in ["a", "b", "c"].iter().enumerate() {
        let node = Node::new(format!("web-{}", i + 1), format!("10.0.0.{}:8080", i + 1))
            .with_meta("zone", *zone);
        nodes.push(discovery.register("web", node, ttl).await?);
    }
    println!(
        "members: {:?}",
        discovery
            .members("web")
            .await?
            .iter()
            .map(|n| &n.id)
            .collect::<Vec<_>>()
    );

    // A node goes away: dropping its registration removes it.
    drop(nodes.remove(1));
    watcher.await?;
    println!(
        "members: {:?}",
        discovery
            .members("web")
            .await?
            .iter()
            .map(|n| &n.id)
            .collect::<Vec<_>>()
    );
    Ok(())
}
