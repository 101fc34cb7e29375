//! Timeouts that cost nothing when the operation does not wait.
//!
//! Most reads and writes on a busy connection complete on their first poll (the bytes
//! are already there, the socket buffer has room). [`lazy_timeout`] polls the operation
//! once before it arms a timer, so those pay no timer registration, no clock read, no
//! timer-wheel removal — and an operation that does wait is bounded as usual.

use std::future::{Future, poll_fn};
use std::task::Poll;
use std::time::Duration;

use tokio::time::error::Elapsed;
use tokio::time::{Instant, timeout, timeout_at};

/// `fut` bounded by `dur`, with the timer armed only if `fut` does not finish at once.
pub async fn lazy_timeout<F: Future>(dur: Duration, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    if let Poll::Ready(v) = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return Ok(v);
    }
    timeout(dur, fut).await
}

/// `fut` bounded by the deadline `at`, with the timer armed only if `fut` waits.
pub async fn lazy_timeout_at<F: Future>(at: Instant, fut: F) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    if let Poll::Ready(v) = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        return Ok(v);
    }
    timeout_at(at, fut).await
}

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
