//! The tower parts under a connector's circuit breaker: the retry policy (tower's `Retry` with
//! a `TpsBudget`), a bound on the wait for a concurrency slot, and the measure of each call.
//!
//! The whole stack, outermost first (built in `runtime`):
//! [`CircuitBreakerLayer`](super::breaker::CircuitBreakerLayer) → `Retry<`[`RetryPolicy`]`>` →
//! [`SlotWait`] → `ConcurrencyLimit` → [`Measure`] → `Timeout` → the call (fetch and map).
//! Each attempt waits for a slot at most the call timeout, then is timed alone: latency
//! figures never include the wait for a slot.

use super::error::ConnectorError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service};

/// Retries of an idempotent call that failed in a retryable way (timeout, unavailable), with
/// exponential backoff, within a budget shared by all calls of the system: besides one retry a
/// second, at most `retry_budget_ratio` of the calls may be retries, so a failing system is
/// not hammered.
#[derive(Clone)]
pub struct RetryPolicy {
    left: u32,
    done: u32,
    backoff: Duration,
    idempotent: bool,
    budget: Arc<TpsBudget>,
}

impl RetryPolicy {
    /// `retries` per call, the first after `backoff` (doubled for each further one).
    pub fn new(retries: u32, backoff: Duration, ratio: f64, idempotent: bool) -> Self {
        Self {
            left: retries,
            done: 0,
            backoff,
            idempotent,
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 1, ratio as f32)),
        }
    }
}

impl<Req: Clone, Res> tower::retry::Policy<Req, Res, ConnectorError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Req,
        result: &mut Result<Res, ConnectorError>,
    ) -> Option<Self::Future> {
        let retry = match result {
            Ok(_) => false,
            Err(e) => {
                e.kind.retryable() && self.idempotent && self.left > 0 && self.budget.withdraw()
            }
        };
        if !retry {
            // One deposit per call, whatever its attempts: retries are a share of calls.
            self.budget.deposit();
            return None;
        }
        self.left -= 1;
        self.done += 1;
        let backoff = self.backoff.saturating_mul(1 << (self.done - 1).min(10));
        tracing::debug!(
            attempt = self.done,
            backoff_ms = backoff.as_millis() as u64,
            "Retrying a failed call"
        );
        Some(tokio::time::sleep(backoff))
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// Bounds the wait for readiness of the service below (the concurrency limit): after `wait`,
/// the attempt fails as unavailable ("all connections busy") instead of queueing on.
#[derive(Clone)]
pub struct SlotWaitLayer {
    wait: Duration,
    message: Arc<str>,
}

impl SlotWaitLayer {
    /// Fails an attempt not ready within `wait` with `message`.
    pub fn new(wait: Duration, message: String) -> Self {
        Self {
            wait,
            message: message.into(),
        }
    }
}

impl<S> Layer<S> for SlotWaitLayer {
    type Service = SlotWait<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SlotWait {
            inner,
            wait: self.wait,
            message: Arc::clone(&self.message),
            sleep: None,
        }
    }
}

/// The service of [`SlotWaitLayer`].
pub struct SlotWait<S> {
    inner: S,
    wait: Duration,
    message: Arc<str>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: Clone> Clone for SlotWait<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            wait: self.wait,
            message: Arc::clone(&self.message),
            sleep: None,
        }
    }
}

impl<S, R> Service<R> for SlotWait<S>
where
    S: Service<R, Error = ConnectorError>,
{
    type Response = S::Response;
    type Error = ConnectorError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Poll::Ready(ready) = self.inner.poll_ready(cx) {
            self.sleep = None;
            return Poll::Ready(ready);
        }
        let wait = self.wait;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
        if sleep.as_mut().poll(cx).is_ready() {
            self.sleep = None;
            return Poll::Ready(Err(ConnectorError::unavailable(self.message.to_string())));
        }
        Poll::Pending
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.inner.call(request)
    }
}

/// What [`Measure`] reports each attempt to: its duration, from the call (the slot already
/// held) to its outcome.
pub trait Recorder: Send + Sync + 'static {
    /// One upstream call took `elapsed`.
    fn call_took(&self, elapsed: Duration);
}

/// Times each attempt (see [`Recorder`]).
#[derive(Clone)]
pub struct MeasureLayer {
    recorder: Arc<dyn Recorder>,
}

impl MeasureLayer {
    /// Reports to `recorder`.
    pub fn new(recorder: Arc<dyn Recorder>) -> Self {
        Self { recorder }
    }
}

impl<S> Layer<S> for MeasureLayer {
    type Service = Measure<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Measure {
            inner,
            recorder: Arc::clone(&self.recorder),
        }
    }
}

/// The service of [`MeasureLayer`].
#[derive(Clone)]
pub struct Measure<S> {
    inner: S,
    recorder: Arc<dyn Recorder>,
}

impl<S, R> Service<R> for Measure<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let started = Instant::now();
        let call = self.inner.call(request);
        let recorder = Arc::clone(&self.recorder);
        Box::pin(async move {
            let result = call.await;
            recorder.call_took(started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::ConnectorErrorKind;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn a_retryable_failure_is_retried_with_backoff_within_the_budget() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let svc = tower::service_fn(move |()| {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(ConnectorError::unavailable("503"))
                } else {
                    Ok(n)
                }
            }
        });
        let policy = RetryPolicy::new(3, Duration::from_millis(100), 0.2, true);
        let started = tokio::time::Instant::now();
        let result = tower::retry::Retry::new(policy, svc).oneshot(()).await;
        assert_eq!(result.expect("the third attempt succeeds"), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), Duration::from_millis(100 + 200));
    }

    #[tokio::test(start_paused = true)]
    async fn bad_answers_and_non_idempotent_calls_are_not_retried() {
        for (kind, idempotent) in [
            (ConnectorErrorKind::BadResponse, true),
            (ConnectorErrorKind::Unavailable, false),
        ] {
            let calls = Arc::new(AtomicUsize::new(0));
            let counted = Arc::clone(&calls);
            let svc = tower::service_fn(move |()| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { Err::<(), _>(ConnectorError::new(kind, "no")) }
            });
            let policy = RetryPolicy::new(3, Duration::from_millis(1), 1.0, idempotent);
            let _ = tower::retry::Retry::new(policy, svc).oneshot(()).await;
            assert_eq!(
                calls.load(Ordering::SeqCst),
                1,
                "{kind:?}, idempotent {idempotent}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_budget_stops_retries() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let svc = tower::service_fn(move |()| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(ConnectorError::unavailable("down")) }
        });
        // No share of calls may be retries: only the reserve of one a second (over 10 s).
        let policy = RetryPolicy::new(1, Duration::from_millis(1), 0.0, true);
        for _ in 0..50 {
            let _ = tower::retry::Retry::new(policy.clone(), svc.clone())
                .oneshot(())
                .await;
        }
        let total = calls.load(Ordering::SeqCst);
        assert!(
            total < 50 + 20,
            "{total} calls: retries stayed within the reserve"
        );
        assert!(total > 50, "some retries were allowed");
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_for_a_slot_is_bounded_and_not_measured() {
        struct Count(AtomicUsize);
        impl Recorder for Count {
            fn call_took(&self, _: Duration) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let recorder = Arc::new(Count(AtomicUsize::new(0)));
        let svc = tower::ServiceBuilder::new()
            .layer(SlotWaitLayer::new(
                Duration::from_millis(500),
                "all 1 connections busy".into(),
            ))
            .concurrency_limit(1)
            .layer(MeasureLayer::new(recorder.clone()))
            .service(tower::service_fn(|()| async {
                std::future::pending::<()>().await;
                Ok::<(), ConnectorError>(())
            }));
        let held = tokio::spawn(svc.clone().oneshot(()));
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let err = svc.oneshot(()).await.expect_err("no slot");
        assert_eq!(err.kind, ConnectorErrorKind::Unavailable);
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        assert_eq!(recorder.0.load(Ordering::SeqCst), 0, "no call was made");
        held.abort();
    }
}
