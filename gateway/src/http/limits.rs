//! Request bodies that must keep moving: [`PacedBody`] wraps a request body and fails
//! it when no data arrived for the idle timeout, or when, after a grace period, the
//! average rate fell below the minimum. Either way it also trips the connection's
//! kill switch, so the connection is closed at once instead of waiting for a peer that
//! sends one byte every few seconds (slow-body / slowloris).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// How fast a request body must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    /// Longest wait for the next piece of a body (and the grace period before the
    /// minimum rate applies).
    pub idle_timeout: Duration,
    /// Bytes per second a body must average once the grace period is over.
    pub min_bytes_per_sec: u64,
}

/// Why a body was cut off.
#[derive(Debug, thiserror::Error)]
pub enum PaceError {
    /// The body did not keep the pace.
    #[error("request body too slow")]
    TooSlow,
    /// The wrapped body failed.
    #[error("request body: {0}")]
    Inner(Box<dyn std::error::Error + Send + Sync>),
}

/// A request body held to a [`BodyPace`]; see the module documentation.
pub struct PacedBody<B> {
    inner: B,
    pace: BodyPace,
    started: Instant,
    last_data: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    kill: CancellationToken,
    on_trip: Option<Box<dyn FnOnce() + Send>>,
}

impl<B> PacedBody<B> {
    /// Wraps `inner`; when the pace is not kept, `kill` is cancelled and `on_trip`
    /// runs (once).
    pub fn new(
        inner: B,
        pace: BodyPace,
        kill: CancellationToken,
        on_trip: Box<dyn FnOnce() + Send>,
    ) -> PacedBody<B> {
        let now = Instant::now();
        PacedBody {
            inner,
            pace,
            started: now,
            last_data: now,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(now + pace.idle_timeout)),
            kill,
            on_trip: Some(on_trip),
        }
    }

    /// When the body is late if nothing more arrives: the idle timeout after the
    /// last data, or the moment its average rate drops below the minimum.
    fn deadline(&self) -> Instant {
        let idle = self.last_data + self.pace.idle_timeout;
        let rate = self.pace.min_bytes_per_sec.max(1);
        let earned = Duration::from_secs_f64(self.received as f64 / rate as f64);
        let by_rate = self.started + self.pace.idle_timeout + earned;
        idle.min(by_rate)
    }

    fn trip(&mut self) {
        self.kill.cancel();
        if let Some(on_trip) = self.on_trip.take() {
            on_trip();
        }
    }
}

impl<B> HttpBody for PacedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = PaceError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, PaceError>>> {
        let this = &mut *self;
        if this.on_trip.is_none() {
            return Poll::Ready(Some(Err(PaceError::TooSlow)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.last_data = Instant::now();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(PaceError::Inner(e.into())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline();
                this.timer.as_mut().reset(deadline);
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.trip();
                        Poll::Ready(Some(Err(PaceError::TooSlow)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::body::Body;

    fn pace() -> BodyPace {
        BodyPace {
            idle_timeout: Duration::from_secs(1),
            min_bytes_per_sec: 100,
        }
    }

    #[tokio::test]
    async fn a_body_trickling_in_is_cut_off_and_its_connection_killed() {
        let (tx, rx) = channel_body();
        let kill = CancellationToken::new();
        let tripped = Arc::new(AtomicBool::new(false));
        let flag = tripped.clone();
        let body = PacedBody::new(
            rx,
            pace(),
            kill.clone(),
            Box::new(move || flag.store(true, Ordering::SeqCst)),
        );
        let feeder = tokio::spawn(async move {
            // One byte every 400 ms: never idle for 1 s, but far below 100 B/s.
            for _ in 0..25 {
                if tx.send(Bytes::from_static(b"x")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        });
        let started = Instant::now();
        let result = axum::body::to_bytes(Body::new(body), usize::MAX).await;
        assert!(result.is_err(), "a trickling body must fail");
        assert!(kill.is_cancelled() && tripped.load(Ordering::SeqCst));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{took:?}"
        );
        feeder.abort();
    }

    #[tokio::test]
    async fn a_body_keeping_the_pace_passes() {
        let (tx, rx) = channel_body();
        let kill = CancellationToken::new();
        let body = PacedBody::new(rx, pace(), kill.clone(), Box::new(|| {}));
        tokio::spawn(async move {
            // 2,000 B/s for 1 s after a 500 ms pause.
            tokio::time::sleep(Duration::from_millis(500)).await;
            for _ in 0..10 {
                let _ = tx.send(Bytes::from(vec![b'x'; 200])).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let collected = axum::body::to_bytes(Body::new(body), usize::MAX)
            .await
            .expect("body");
        assert_eq!(collected.len(), 2000);
        assert!(!kill.is_cancelled());
    }

    /// A body fed through a channel.
    struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

    impl HttpBody for ChannelBody {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
        }
    }

    fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        (tx, ChannelBody(rx))
    }
}
