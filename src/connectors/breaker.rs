//! The circuit breaker of a host-state system, as a tower [`Layer`].
//!
//! Closed, it counts consecutive failed calls; at `threshold` it opens: calls fail at once with
//! `CONNECTOR_CIRCUIT_OPEN` and nothing is sent. After `open_for` it is half-open: one call (the
//! probe) goes through, and closes the circuit if it succeeds or opens it again if it fails;
//! other calls meanwhile are refused as if it were open. A probe whose future is dropped before
//! it ends (its request timed out, its client went away) gives its place back, so the next call
//! probes: the circuit can never stay half-open with no probe under way.
//!
//! The state is decided in `call`, never in `poll_ready`, so an open circuit answers at once
//! even when the services below it are busy. Times are tokio's (testable with a paused clock).

use super::error::{ConnectorError, ConnectorErrorKind};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Shared {
    id: String,
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Transitions are single assignments: a panic cannot leave a half-made state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go through now; `Some(true)` when it is the probe.
    fn admit(&self) -> Option<bool> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Some(false),
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen { probing: true };
                tracing::info!(connector = %self.id, "Circuit half-open: sending one probe call");
                Some(true)
            }
            State::Open { .. } | State::HalfOpen { probing: true } => None,
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Some(true)
            }
        }
    }

    fn succeeded(&self) {
        let mut state = self.lock();
        if matches!(*state, State::HalfOpen { .. }) {
            tracing::info!(connector = %self.id, "Circuit closed: the probe call succeeded");
        }
        *state = State::Closed { failures: 0 };
    }

    fn failed(&self) {
        let mut state = self.lock();
        let open = State::Open {
            until: Instant::now() + self.open_for,
        };
        *state = match *state {
            State::Closed { failures } if failures + 1 >= self.threshold => {
                tracing::warn!(connector = %self.id, failures = failures + 1, "Circuit opened after repeated failures");
                open
            }
            State::Closed { failures } => State::Closed {
                failures: failures + 1,
            },
            State::HalfOpen { .. } => {
                tracing::warn!(connector = %self.id, "Circuit re-opened: the probe call failed");
                open
            }
            State::Open { until } => State::Open { until },
        };
    }

    /// A probe ended without an outcome: the next call may probe.
    fn abandoned(&self) {
        let mut state = self.lock();
        if *state == (State::HalfOpen { probing: true }) {
            tracing::info!(connector = %self.id, "The probe call was abandoned; the next call probes");
            *state = State::HalfOpen { probing: false };
        }
    }
}

/// The outcome a call owes the breaker; reported as abandoned if dropped unreported.
struct Outcome {
    shared: Arc<Shared>,
    probe: bool,
    reported: bool,
}

impl Outcome {
    fn report(mut self, ok: bool) {
        self.reported = true;
        if ok {
            self.shared.succeeded();
        } else {
            self.shared.failed();
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.shared.abandoned();
        }
    }
}

/// A circuit breaker shared by every clone of the services it wraps.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    shared: Arc<Shared>,
}

impl CircuitBreakerLayer {
    /// Opens after `threshold` consecutive failures, for `open_for`; `id` names the system in
    /// logs and errors.
    pub fn new(id: &str, threshold: u32, open_for: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                id: id.to_string(),
                threshold: threshold.max(1),
                open_for,
                state: Mutex::new(State::Closed { failures: 0 }),
            }),
        }
    }

    /// Whether the circuit is open (calls are refused until a probe may be sent).
    pub fn is_open(&self) -> bool {
        matches!(*self.shared.lock(), State::Open { .. })
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service of [`CircuitBreakerLayer`].
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, R> Service<R> for CircuitBreaker<S>
where
    S: Service<R, Error = ConnectorError> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = ConnectorError;
    type Future = BoxFuture<'static, Result<S::Response, ConnectorError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Decided per call: an open circuit must refuse at once, whatever the inner load.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: R) -> Self::Future {
        let Some(probe) = self.shared.admit() else {
            let err = ConnectorError::new(
                ConnectorErrorKind::CircuitOpen,
                format!(
                    "connector {}: circuit open after repeated failures; not called",
                    self.shared.id
                ),
            );
            return Box::pin(std::future::ready(Err(err)));
        };
        let outcome = Outcome {
            shared: Arc::clone(&self.shared),
            probe,
            reported: false,
        };
        let inner = self.inner.clone();
        Box::pin(async move {
            let result = inner.oneshot(request).await;
            outcome.report(result.is_ok());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// An upstream the test steers: fails or succeeds, may hang, counts the calls it got.
    #[derive(Clone, Default)]
    struct Upstream {
        calls: Arc<AtomicUsize>,
        failing: Arc<AtomicBool>,
        hanging: Arc<AtomicBool>,
    }

    impl Upstream {
        fn service(
            &self,
        ) -> impl Service<(), Response = (), Error = ConnectorError, Future: Send> + Clone + Send
        {
            let up = self.clone();
            tower::service_fn(move |()| {
                let up = up.clone();
                async move {
                    up.calls.fetch_add(1, Ordering::SeqCst);
                    if up.hanging.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    if up.failing.load(Ordering::SeqCst) {
                        Err(ConnectorError::unavailable("HTTP 500"))
                    } else {
                        Ok(())
                    }
                }
            })
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    fn breaker(
        up: &Upstream,
    ) -> (
        CircuitBreakerLayer,
        CircuitBreaker<
            impl Service<(), Response = (), Error = ConnectorError, Future: Send> + Clone + Send,
        >,
    ) {
        let layer = CircuitBreakerLayer::new("test", 3, Duration::from_secs(30));
        let service = layer.layer(up.service());
        (layer, service)
    }

    async fn kind(
        service: &mut (impl Service<(), Error = ConnectorError> + Send),
    ) -> Option<ConnectorErrorKind> {
        service
            .ready()
            .await
            .expect("ready")
            .call(())
            .await
            .err()
            .map(|e| e.kind)
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_the_threshold_and_then_calls_nothing() {
        let up = Upstream::default();
        let (layer, mut svc) = breaker(&up);
        up.failing.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            assert_eq!(kind(&mut svc).await, Some(ConnectorErrorKind::Unavailable));
        }
        assert!(layer.is_open());
        for _ in 0..5 {
            assert_eq!(kind(&mut svc).await, Some(ConnectorErrorKind::CircuitOpen));
        }
        assert_eq!(up.calls(), 3, "an open circuit sends nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_count_of_failures() {
        let up = Upstream::default();
        let (_, mut svc) = breaker(&up);
        for _ in 0..3 {
            up.failing.store(true, Ordering::SeqCst);
            kind(&mut svc).await;
            kind(&mut svc).await;
            up.failing.store(false, Ordering::SeqCst);
            assert_eq!(kind(&mut svc).await, None);
        }
        assert_eq!(up.calls(), 9, "never opened: no three failures in a row");
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_open_time_one_probe_closes_it_or_opens_it_again() {
        let up = Upstream::default();
        let (layer, mut svc) = breaker(&up);
        up.failing.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            kind(&mut svc).await;
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        // The probe fails: open again for another 30 s.
        assert_eq!(kind(&mut svc).await, Some(ConnectorErrorKind::Unavailable));
        assert_eq!(kind(&mut svc).await, Some(ConnectorErrorKind::CircuitOpen));
        assert_eq!(up.calls(), 4);
        tokio::time::advance(Duration::from_secs(30)).await;
        up.failing.store(false, Ordering::SeqCst);
        assert_eq!(kind(&mut svc).await, None, "the probe succeeds");
        assert!(!layer.is_open());
        assert_eq!(kind(&mut svc).await, None, "closed: calls go through");
        assert_eq!(up.calls(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_probe_is_under_way_other_calls_are_refused() {
        let up = Upstream::default();
        let (_, mut svc) = breaker(&up);
        up.failing.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            kind(&mut svc).await;
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        up.hanging.store(true, Ordering::SeqCst);
        let probe = tokio::spawn(svc.clone().oneshot(()));
        tokio::task::yield_now().await;
        assert_eq!(up.calls(), 4, "the probe was sent");
        assert_eq!(kind(&mut svc).await, Some(ConnectorErrorKind::CircuitOpen));
        assert_eq!(up.calls(), 4, "nothing else");
        probe.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_gives_its_place_to_the_next_call() {
        let up = Upstream::default();
        let (layer, mut svc) = breaker(&up);
        up.failing.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            kind(&mut svc).await;
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        up.hanging.store(true, Ordering::SeqCst);
        // The probe's request gives up (a timeout above the breaker): its future is dropped.
        let gave_up = tokio::time::timeout(Duration::from_secs(1), svc.clone().oneshot(())).await;
        assert!(gave_up.is_err());
        assert_eq!(up.calls(), 4);
        up.hanging.store(false, Ordering::SeqCst);
        up.failing.store(false, Ordering::SeqCst);
        assert_eq!(
            kind(&mut svc).await,
            None,
            "the next call is the probe, not refused"
        );
        assert!(!layer.is_open());
        assert_eq!(up.calls(), 5);
    }
}
