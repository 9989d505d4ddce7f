//! Paired measurement: kvmesh and a baseline timed batch by batch, in
//! turns, over the same seconds.
//!
//! criterion times each side in its own window, seconds apart. On a shared
//! 2-core machine whatever slows the machine down meanwhile (another VM, the
//! server's background work, its garbage collector, an fsync) lands on one
//! side only, and moves a ratio by ±10–20% from run to run. Here the sides
//! take turns, one batch each (`ours` first, then `theirs` first, and so
//! on), so a slow moment slows both alike. The batches are summed into
//! rounds of about 20 ms, and the median of the rounds' ratios shrugs off
//! the rounds that a pause hit anyway.
//!
//! Prints one line per comparison, read by `scripts/bench`:
//! `paired <id>/<side>/<concurrency>: ratio <median> q1 <..> q3 <..> totals <..> rounds <n> p50 <ours> <theirs>`,
//! where a round's ratio is kvmesh's throughput over the side's (above 1:
//! kvmesh is faster), q1/q3 the quartiles of the rounds, totals the ratio
//! of the whole time each side took, and p50 each side's median batch in
//! µs: a latency where a batch is one call at a time, or (the watch rows)
//! one change of all the keys.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long the rounds of one comparison run, after the warm-up.
const ROUNDS_TIME: Duration = Duration::from_secs(5);
/// How long one round (its batches of both sides) lasts, about.
const ROUND_TIME: Duration = Duration::from_millis(20);
/// The least a batch lasts: reading the clock twice must not weigh.
const BATCH_TIME: Duration = Duration::from_micros(50);
/// Warm-up, which also sizes the batches and the rounds.
const WARM_UP_TIME: Duration = Duration::from_millis(300);

/// Runs `ours` and `theirs` in turns and prints the ratio of their
/// throughputs as `<id>/<name>/<concurrency>`. Each is called with a
/// request index, like `wire_limit::bench_concurrent`'s operation,
/// `concurrency` calls at a time.
pub fn compare<A, FA, B, FB>(
    rt: &tokio::runtime::Runtime,
    id: &str,
    concurrency: usize,
    ours: &A,
    name: &str,
    theirs: &B,
) where
    A: Fn(usize) -> FA,
    FA: Future<Output = ()>,
    B: Fn(usize) -> FB,
    FB: Future<Output = ()>,
{
    let row = format!("{id}/{name}/{concurrency}");
    compare_as(rt, &row, concurrency, ours, theirs);
}

/// [`compare`], printed as `row` (`<id>/<side>/<parameter>`, when the
/// row's parameter is not the calls at once).
pub fn compare_as<A, FA, B, FB>(
    rt: &tokio::runtime::Runtime,
    row: &str,
    concurrency: usize,
    ours: &A,
    theirs: &B,
) where
    A: Fn(usize) -> FA,
    FA: Future<Output = ()>,
    B: Fn(usize) -> FB,
    FB: Future<Output = ()>,
{
    let mut turns = Turns {
        concurrency,
        repeats: 1,
        next: 0,
        turn: 0,
        batches: (Vec::new(), Vec::new()),
    };
    if !measuring() {
        // A test run: one batch of each side shows that both work.
        rt.block_on(turns.pair(ours, theirs));
        return;
    }
    let (ratios, totals, mut batches) = rt.block_on(async {
        // A batch of one group of calls each, until the warm-up is over;
        // then as many groups per batch as make it last BATCH_TIME, and as
        // many batches per round as make it last ROUND_TIME.
        let mut warm_up = Duration::ZERO;
        let mut pairs = 0u32;
        while warm_up < WARM_UP_TIME {
            let (a, b) = turns.pair(ours, theirs).await;
            warm_up += a + b;
            pairs += 1;
        }
        let per_group = warm_up / (2 * pairs);
        turns.batches = (Vec::new(), Vec::new());
        turns.repeats = times(BATCH_TIME, per_group);
        let pairs_per_round = times(ROUND_TIME, per_group * 2 * turns.repeats as u32);

        let (mut ratios, mut totals) = (Vec::new(), (Duration::ZERO, Duration::ZERO));
        let end = Instant::now() + ROUNDS_TIME;
        while Instant::now() < end {
            let mut round = (Duration::ZERO, Duration::ZERO);
            for _ in 0..pairs_per_round {
                let (a, b) = turns.pair(ours, theirs).await;
                round.0 += a;
                round.1 += b;
            }
            ratios.push(round.1.as_secs_f64() / round.0.as_secs_f64());
            totals.0 += round.0;
            totals.1 += round.1;
        }
        (ratios, totals, std::mem::take(&mut turns.batches))
    });
    let mut ratios = ratios;
    ratios.sort_by(f64::total_cmp);
    let at = |q: usize| ratios[(ratios.len() - 1) * q / 100];
    let p50 = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64() * 1e6
    };
    println!(
        "paired {row}: ratio {:.3} q1 {:.3} q3 {:.3} totals {:.3} rounds {} p50 {:.1} {:.1}",
        at(50),
        at(25),
        at(75),
        totals.1.as_secs_f64() / totals.0.as_secs_f64(),
        ratios.len(),
        p50(&mut batches.0),
        p50(&mut batches.1),
    );
}

/// Whether criterion measures: `cargo bench` passes `--bench`, while under
/// `cargo test` (or `-- --test`, or `--list`) the benches run once each, as
/// tests.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list")
}

/// How many `each` fit in `total`; at least one.
fn times(total: Duration, each: Duration) -> usize {
    (total.as_nanos() / each.as_nanos().max(1)).max(1) as usize
}

/// The batches of a comparison: `repeats` groups of `concurrency` calls at
/// once, one group after another.
struct Turns {
    concurrency: usize,
    repeats: usize,
    /// The next request index.
    next: usize,
    /// Which side goes first in the next pair of batches.
    turn: u32,
    /// How long each batch took, ours and theirs.
    batches: (Vec<Duration>, Vec<Duration>),
}

impl Turns {
    /// One batch of each side, `ours` first every other time: whatever the
    /// first batch pays, or leaves behind for the second, is shared out
    /// evenly. How long each side's batch took.
    async fn pair<A, FA, B, FB>(&mut self, ours: &A, theirs: &B) -> (Duration, Duration)
    where
        A: Fn(usize) -> FA,
        FA: Future<Output = ()>,
        B: Fn(usize) -> FB,
        FB: Future<Output = ()>,
    {
        self.turn += 1;
        let (a, b) = if self.turn.is_multiple_of(2) {
            let a = self.batch(ours).await;
            (a, self.batch(theirs).await)
        } else {
            let b = self.batch(theirs).await;
            (self.batch(ours).await, b)
        };
        self.batches.0.push(a);
        self.batches.1.push(b);
        (a, b)
    }

    async fn batch<F, Fut>(&mut self, op: &F) -> Duration
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = ()>,
    {
        let start = Instant::now();
        for _ in 0..self.repeats {
            if self.concurrency == 1 {
                op(self.next).await;
            } else {
                let next = self.next;
                futures::future::join_all((0..self.concurrency).map(|c| op(next + c))).await;
            }
            self.next += self.concurrency;
        }
        start.elapsed()
    }
}
