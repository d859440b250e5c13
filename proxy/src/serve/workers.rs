//! The threads that serve connections: one single-threaded tokio runtime per worker, each
//! accepting on its own handle of every listening socket, as nginx's worker processes do.
//!
//! A connection, its requests, its upstream connections and its timers stay on the thread
//! that accepted it: no work moves between threads, and no thread is woken to steal it
//! (which tokio's multi-thread runtime does, at a measured cost per request). The main
//! runtime keeps the admin API, signals and reloads.

use std::cell::Cell;
use std::io;
use std::thread::JoinHandle;

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
}
