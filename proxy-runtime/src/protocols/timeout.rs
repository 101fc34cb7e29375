//! Timeouts that cost nothing when the operation does not wait.
//!
//! Most reads and writes on a busy connection complete on their first poll (the bytes
//! are already there, the socket buffer has room). [`lazy_timeout`] polls the operation
//! once before it arms a timer, so those pay no timer registration, no clock read, no
//! timer-wheel removal — and an operation that does wait is bounded as usual.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

/// `fut` bounded by `dur`, with the timer armed only if `fut` does not finish at once.
pub fn lazy_timeout<F: Future>(dur: Duration, fut: F) -> LazyTimeout<F> {
    LazyTimeout {
        fut,
        limit: Limit::After(dur),
        timer: None,
    }
}

/// `fut` bounded by the deadline `at`, with the timer armed only if `fut` waits.
pub fn lazy_timeout_at<F: Future>(at: Instant, fut: F) -> LazyTimeout<F> {
    LazyTimeout {
        fut,
        limit: Limit::At(at),
        timer: None,
    }
}

/// When a [`LazyTimeout`] expires, fixed when its timer is armed.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// This long after the first poll that finds the operation waiting.
    After(Duration),
    /// At this instant.
    At(Instant),
}

pin_project_lite::pin_project! {
    /// The future of [`lazy_timeout`] and [`lazy_timeout_at`]: the operation and, once
    /// it has waited, its timer. A plain struct rather than an `async fn`, so the
    /// operation is stored once (an `async fn` would keep the argument and its pinned
    /// copy) — these are held by every idle connection.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct LazyTimeout<F> {
        #[pin]
        fut: F,
        limit: Limit,
        #[pin]
        timer: Option<Sleep>,
    }
}

impl<F: Future> Future for LazyTimeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if this.timer.is_none() {
            let at = match *this.limit {
                Limit::After(d) => Instant::now() + d,
                Limit::At(at) => at,
            };
            this.timer.set(Some(sleep_until(at)));
        }
        match this.timer.as_pin_mut().map(|t| t.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(Elapsed)),
            _ => Poll::Pending,
        }
    }
}

/// A [`LazyTimeout`] expired before its operation finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_futures_need_no_timer_and_waiting_ones_time_out() {
        assert_eq!(
            lazy_timeout(Duration::from_millis(1), async { 7 }).await,
            Ok(7)
        );
        let never = std::future::pending::<()>();
        assert!(
            lazy_timeout(Duration::from_millis(10), never)
                .await
                .is_err()
        );
        let soon = tokio::time::sleep(Duration::from_millis(1));
        assert!(lazy_timeout(Duration::from_secs(10), soon).await.is_ok());
    }
}
