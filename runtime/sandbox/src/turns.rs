//! Fair turns at the worker threads: every agent call (one batch) takes a
//! turn, at most one per core run at once, and waiting tenants are served
//! round robin, so a tenant with many busy or hostile runs gets one turn
//! in each round like every other tenant instead of all of them. With the
//! per-call deadline, no turn lasts longer than that deadline.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

#[derive(Debug, Default)]
struct Queue {
    free: usize,
    /// Tenants with waiting calls, in the order their next turn comes.
    rotation: VecDeque<Arc<str>>,
    /// Each waiting tenant's tickets, oldest first.
    waiting: HashMap<Arc<str>, VecDeque<u64>>,
    granted: HashSet<u64>,
    next_ticket: u64,
}

impl Queue {
    /// Hands free turns out round robin over the waiting tenants.
    fn dispatch(&mut self) {
        while self.free > 0 {
            let Some(tenant) = self.rotation.pop_front() else { return };
            let Some(tickets) = self.waiting.get_mut(&tenant) else { continue };
            let Some(ticket) = tickets.pop_front() else { continue };
            self.granted.insert(ticket);
            self.free -= 1;
            if tickets.is_empty() {
                self.waiting.remove(&tenant);
            } else {
                self.rotation.push_back(tenant);
            }
        }
    }
}

/// The process's turns.
#[derive(Debug, Clone)]
pub struct Turns {
    shared: Arc<(Mutex<Queue>, Condvar)>,
}

impl Turns {
    /// `workers` turns at once (the number of cores).
    pub fn new(workers: usize) -> Self {
        let queue = Queue { free: workers.max(1), ..Queue::default() };
        Turns { shared: Arc::new((Mutex::new(queue), Condvar::new())) }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.shared.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `tenant`'s next turn.
    pub fn take(&self, tenant: &str) -> Turn {
        let tenant: Arc<str> = tenant.into();
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        let tickets = queue.waiting.entry(tenant.clone()).or_default();
        tickets.push_back(ticket);
        if tickets.len() == 1 {
            queue.rotation.push_back(tenant);
        }
        queue.dispatch();
        while !queue.granted.remove(&ticket) {
            queue = self.shared.1.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
        // Another waiter may have been granted by the same dispatch.
        self.shared.1.notify_all();
        Turn { turns: self.clone() }
    }
}

/// A turn held; dropping it hands the worker to the next tenant in line.
#[derive(Debug)]
pub struct Turn {
    turns: Turns,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut queue = self.turns.lock();
        queue.free += 1;
        queue.dispatch();
        drop(queue);
        self.turns.shared.1.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn waiting_tenants_are_served_round_robin_not_first_come() {
        let turns = Turns::new(1);
        let held = turns.take("busy");
        let (sender, order) = mpsc::channel();
        let mut threads = Vec::new();
        // Five calls of the busy tenant queue first, then one of the quiet one.
        for (i, tenant) in ["busy", "busy", "busy", "busy", "busy", "quiet"].into_iter().enumerate() {
            let (shared, sender) = (turns.clone(), sender.clone());
            threads.push(std::thread::spawn(move || {
                let turn = shared.take(tenant);
                let _ = sender.send(tenant);
                std::thread::sleep(Duration::from_millis(5));
                drop(turn);
            }));
            // Queue them in this order.
            while turns.lock().next_ticket < i as u64 + 2 {
                std::thread::yield_now();
            }
        }
        drop(held);
        for thread in threads {
            let _ = thread.join();
        }
        let served: Vec<&str> = order.try_iter().collect();
        let quiet_at = served.iter().position(|t| *t == "quiet");
        assert_eq!(quiet_at, Some(1), "the quiet tenant's call is second, not sixth: {served:?}");
    }
}
