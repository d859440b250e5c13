//! The threads that serve connections: one single-threaded tokio runtime per worker, each
//! accepting on its own handle of every listening socket, as nginx's worker processes do.
//!
//! Every worker is woken by a new connection, and the first awake takes it: connections
//! opened together (a client's pool, clients reconnecting after a restart) would all land
//! on one worker while the others idle. So a worker that accepts a connection while
//! another has fewer open hands it to that one before its handshake ([`Spread`]), as
//! HAProxy's threads do. From then on the connection, its requests, its upstream
//! connections and its timers stay on that thread: no work moves between threads, and no
//! thread is woken to steal it (which tokio's multi-thread runtime does, at a measured cost
//! per request). The main runtime keeps the admin API, signals and reloads.

use std::cell::Cell;
use std::io;
use std::thread::JoinHandle;

use prometheus::IntGauge;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// This thread's worker index, `0..count`; 0 on threads that are not workers. Per-worker
/// state (the upstream pools' idle stacks) is indexed by it.
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// Running worker threads; stopped when dropped (after the connections were drained).
pub struct Workers {
    handles: Vec<Handle>,
    stop: CancellationToken,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` threads, each running its own event loop until [`Workers`] is dropped.
    pub fn start(count: usize) -> io::Result<Self> {
        let stop = CancellationToken::new();
        let mut workers = Self {
            handles: Vec::with_capacity(count),
            stop: stop.clone(),
            threads: Vec::with_capacity(count),
        };
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            workers.handles.push(runtime.handle().clone());
            let stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("gatehouse-worker-{i}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(i));
                    runtime.block_on(stop.cancelled())
                })?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Each worker's runtime, to spawn its share of the work on.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }
}

/// Where a new connection runs: each worker's open connections (the
/// `gatehouse_worker_connections` gauges) and its runtime.
pub struct Spread {
    handles: Box<[Handle]>,
    open: Box<[IntGauge]>,
}

/// A connection's place in its worker's count, given back when dropped.
pub struct Open(IntGauge);

impl Open {
    /// A place in no worker's count, for a connection served outside the workers (the
    /// fuzz targets').
    pub fn uncounted() -> Self {
        Self(IntGauge::new("uncounted", "-").expect("a valid metric name"))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Spread {
    /// `open` has one gauge per worker of `workers`.
    pub fn new(workers: &Workers, open: Vec<IntGauge>) -> Self {
        debug_assert_eq!(open.len(), workers.handles.len());
        Self {
            handles: workers.handles.clone().into(),
            open: open.into(),
        }
    }

    /// The worker for a connection `me` accepted: the one with the fewest open, `me` when
    /// none has fewer than it. Counted there at once, so that the next accept, on any
    /// worker, sees it.
    pub fn pick(&self, me: usize) -> (usize, Open) {
        let mut chosen = me.min(self.open.len() - 1);
        let mut fewest = self.open[chosen].get();
        for (i, open) in self.open.iter().enumerate() {
            if open.get() < fewest {
                (chosen, fewest) = (i, open.get());
            }
        }
        let open = self.open[chosen].clone();
        open.inc();
        (chosen, Open(open))
    }

    /// Worker `i`'s runtime.
    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i]
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
        for t in self.threads.drain(..) {
            // A worker's tasks are dropped with its runtime; nothing there can block long.
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_runs_tasks_on_its_own_thread_until_dropped() {
        let workers = Workers::start(2).unwrap();
        let names: Vec<String> = workers
            .handles()
            .iter()
            .map(|h| {
                let (tx, rx) = std::sync::mpsc::channel();
                h.spawn(async move {
                    let name = std::thread::current().name().map(str::to_owned);
                    let _ = tx.send(format!("{} {}", name.unwrap_or_default(), current()));
                });
                rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap()
            })
            .collect();
        assert_eq!(names, ["gatehouse-worker-0 0", "gatehouse-worker-1 1"]);
        drop(workers);
    }

    #[test]
    fn connections_go_to_the_worker_with_the_fewest_open() {
        let workers = Workers::start(3).unwrap();
        let gauges: Vec<IntGauge> = (0..3)
            .map(|i| IntGauge::new(format!("w{i}"), "test").unwrap())
            .collect();
        let spread = Spread::new(&workers, gauges.clone());
        let open = |g: &[IntGauge]| g.iter().map(IntGauge::get).collect::<Vec<_>>();
        // Worker 1 accepts everything, as the first awake does in a burst.
        let mut held: Vec<Open> = Vec::new();
        let mut chosen = Vec::new();
        for _ in 0..6 {
            let (worker, place) = spread.pick(1);
            chosen.push(worker);
            held.push(place);
        }
        assert_eq!(chosen, [1, 0, 2, 1, 0, 2], "ties stay where accepted");
        assert_eq!(open(&gauges), [2, 2, 2]);
        // Worker 0's two close: the next two go there, whoever accepts them.
        drop(held.remove(1));
        drop(held.remove(3));
        assert_eq!(open(&gauges), [0, 2, 2]);
        let (first, _first) = spread.pick(2);
        let (second, _second) = spread.pick(1);
        assert_eq!((first, second), (0, 0));
        assert_eq!(open(&gauges), [2, 2, 2]);
        drop(held);
        assert_eq!(
            open(&gauges),
            [2, 0, 0],
            "a closed connection gives its place back"
        );
        drop(workers);
    }
}
