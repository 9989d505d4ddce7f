//! A linearizability checker for one register (a key), after Wing & Gong
//! with Lowe's memoisation: find a sequential order of the recorded
//! operations, each taking effect between its call and its return, that a
//! single register explains. An operation whose outcome is unknown (it
//! failed after it may have reached the server) returns "never": it may
//! take effect at any time after its call, or not at all.

use std::collections::HashSet;

/// What one operation did, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A read that returned this value (`None`: no key).
    Get(Option<u32>),
    /// A plain write of a unique value.
    Put(u32),
    /// A compare-and-set: `new` if the register held `expected`; `swapped`
    /// is what the client was told (`None`: unknown).
    Cas {
        expected: Option<u32>,
        new: u32,
        swapped: Option<bool>,
    },
    /// A plain write whose outcome is unknown.
    PutUnknown(u32),
}

/// One recorded operation: its call and return times (ns since the
/// history began; `u64::MAX` when the outcome is unknown).
#[derive(Debug, Clone)]
pub struct Entry {
    pub call: u64,
    pub ret: u64,
    pub op: Op,
}

type State = Option<u32>;

/// The states the register may be in after `op` from `state`; none when
/// `op`'s outcome cannot happen there.
fn step(state: State, op: &Op) -> Vec<State> {
    match *op {
        Op::Get(seen) => {
            if seen == state {
                vec![state]
            } else {
                vec![]
            }
        }
        Op::Put(v) => vec![Some(v)],
        Op::PutUnknown(v) => vec![Some(v), state],
        Op::Cas {
            expected,
            new,
            swapped,
        } => match (state == expected, swapped) {
            (true, Some(true)) => vec![Some(new)],
            (false, Some(false)) => vec![state],
            (true, None) => vec![Some(new), state],
            (false, None) => vec![state],
            (_, Some(_)) => vec![],
        },
    }
}

/// One event of the history: a call or a return, linked in time order.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return event.
    partner: usize,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

/// True when some sequential order explains `history` on a register that
/// starts as `initial`.
pub fn is_linearizable(history: &[Entry], initial: State) -> bool {
    let n = history.len();
    // Events sorted by time; a return at the same instant as a call comes
    // after it, so an operation never precedes one that began with it.
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in history.iter().enumerate() {
        order.push((e.call, false, i));
        order.push((e.ret, true, i));
    }
    order.sort();
    let mut events: Vec<Event> = Vec::with_capacity(2 * n + 1);
    // Event 0 is a sentinel head.
    events.push(Event {
        op: NIL,
        is_call: false,
        partner: NIL,
        prev: NIL,
        next: 1,
    });
    let mut call_at = vec![NIL; n];
    for (position, &(_, is_return, op)) in order.iter().enumerate() {
        let index = position + 1;
        events.push(Event {
            op,
            is_call: !is_return,
            partner: NIL,
            prev: index - 1,
            next: if position + 1 < order.len() {
                index + 1
            } else {
                NIL
            },
        });
        if is_return {
            events[call_at[op]].partner = index;
        } else {
            call_at[op] = index;
        }
    }
    if order.is_empty() {
        events[0].next = NIL;
    }

    let unlink = |events: &mut Vec<Event>, i: usize| {
        let (prev, next) = (events[i].prev, events[i].next);
        events[prev].next = next;
        if next != NIL {
            events[next].prev = prev;
        }
    };
    let relink = |events: &mut Vec<Event>, i: usize| {
        let (prev, next) = (events[i].prev, events[i].next);
        events[prev].next = i;
        if next != NIL {
            events[next].prev = i;
        }
    };

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, State)> = HashSet::new();
    // (call event, state before it, the alternative taken)
    let mut stack: Vec<(usize, State, usize)> = Vec::new();
    let mut state = initial;
    let mut entry = events[0].next;
    let mut first_alternative = 0;
    while events[0].next != NIL {
        if entry == NIL {
            // Only returns of linearized... cannot happen: a list that is
            // not empty ends in a return, handled below.
            return false;
        }
        let event = events[entry];
        if event.is_call {
            let op = event.op;
            let next_states = step(state, &history[op].op);
            let mut taken = None;
            for (alternative, next) in next_states.iter().enumerate().skip(first_alternative) {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone(), *next)) {
                    taken = Some((alternative, *next));
                    break;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            first_alternative = 0;
            match taken {
                Some((alternative, next)) => {
                    stack.push((entry, state, alternative));
                    state = next;
                    unlink(&mut events, entry);
                    unlink(&mut events, event.partner);
                    entry = events[0].next;
                }
                None => entry = event.next,
            }
        } else {
            // A return whose call could not be placed: undo the last choice.
            let Some((call, previous, alternative)) = stack.pop() else {
                return false;
            };
            let op = events[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            state = previous;
            let partner = events[call].partner;
            relink(&mut events, partner);
            relink(&mut events, call);
            entry = call;
            first_alternative = alternative + 1;
        }
    }
    true
}
