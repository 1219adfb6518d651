//! Load shedding: at most `server.max_in_flight` GraphQL requests run at once; a few more
//! (`server.max_queued`) may wait a moment (`server.queue_timeout_ms`) for a free slot; every
//! other one is refused at once with 503 OVERLOADED and `Retry-After`, rather than queued
//! without bound (Envoy's overload manager, tower's `ConcurrencyLimit` + `LoadShed`).
//!
//! A request takes its slot after its body has been read, its token verified and its
//! principal's own limits passed (`super::rate`): a slow client holds a connection, never a
//! slot, and one principal's burst is refused before it can fill the slots and the queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The concurrency limit of GraphQL requests.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queued: usize,
    queue_timeout: Duration,
}

/// A running request's slot; the slot is free again when it is dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Admission {
    /// `max_in_flight` slots, and a queue of `max_queued` waiting at most `queue_timeout`.
    pub fn new(max_in_flight: usize, max_queued: usize, queue_timeout: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
            waiting: AtomicUsize::new(0),
            max_queued,
            queue_timeout,
        }
    }

    /// A slot, at once or after a short wait in the queue; `None` when the request is shed.
    pub async fn admit(&self) -> Option<Slot> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(Slot(permit));
        }
        let queued = Queued::join(&self.waiting);
        if queued.ahead >= self.max_queued {
            return None;
        }
        match tokio::time::timeout(self.queue_timeout, Arc::clone(&self.slots).acquire_owned())
            .await
        {
            Ok(Ok(permit)) => Some(Slot(permit)),
            _ => None,
        }
    }

    /// Requests running now.
    pub fn in_flight(&self, max_in_flight: usize) -> usize {
        max_in_flight.saturating_sub(self.slots.available_permits())
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// A place in the queue, given back when dropped (slot obtained, timed out or cancelled).
struct Queued<'a> {
    waiting: &'a AtomicUsize,
    ahead: usize,
}

impl<'a> Queued<'a> {
    fn join(waiting: &'a AtomicUsize) -> Self {
        let ahead = waiting.fetch_add(1, Ordering::AcqRel);
        Self { waiting, ahead }
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_over_the_slots_and_the_queue_are_shed_at_once() {
        let admission = Arc::new(Admission::new(2, 1, Duration::from_secs(5)));
        let a = admission.admit().await.expect("first slot");
        let _b = admission.admit().await.expect("second slot");
        // The third waits in the queue…
        let waiting = tokio::spawn({
            let admission = Arc::clone(&admission);
            async move { admission.admit().await.is_some() }
        });
        tokio::task::yield_now().await;
        assert_eq!(admission.queued(), 1);
        // …so the fourth finds the queue full and is shed without waiting.
        let started = tokio::time::Instant::now();
        assert!(admission.admit().await.is_none());
        assert_eq!(started.elapsed(), Duration::ZERO);
        // A slot freed goes to the one waiting.
        drop(a);
        assert!(
            waiting.await.expect("task"),
            "the queued request got the slot"
        );
        assert_eq!(admission.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_is_shed_after_the_queue_timeout() {
        let admission = Admission::new(1, 4, Duration::from_millis(300));
        let _held = admission.admit().await.expect("the only slot");
        let started = tokio::time::Instant::now();
        assert!(admission.admit().await.is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(300));
        assert_eq!(
            admission.queued(),
            0,
            "the place in the queue is given back"
        );
    }
}
