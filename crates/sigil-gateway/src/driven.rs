//! The task of one HTTP/1.1 client connection: the connection itself, its upstream link and its
//! idle deadline, each polled only when something woke it.
//!
//! Every wake-up of one part used to send the whole task through the scheduler again, and every
//! request armed and cancelled a timer for its header section. [`Driven`] gives each part its own
//! waker, which records the wake-up, and goes round the woken parts in one poll. A response that
//! arrives from the upstream is thus written to the client without another trip through the
//! scheduler, and so is a request that the client connection hands to the upstream.
//!
//! The idle deadline replaces a timer per request with one per connection, re-armed only when it
//! fires: a connection that has served no request for the idle timeout, whether it is silent or
//! sending a header section slowly, is closed. A request in progress, including a long response
//! stream, keeps the connection open ([`Activity`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::link::UpstreamLink;

/// How many times one poll goes round the parts before it yields to the runtime. A bound is
/// needed because a part that wakes itself at once (tokio does this when a task has used its
/// budget) would otherwise keep the loop going.
const PASSES_PER_POLL: usize = 4;

/// A client connection's future with its upstream link and idle deadline.
///
/// It resolves to the connection's output, or to `None` when the connection was closed because
/// it stayed idle past the deadline.
pub struct Driven<F> {
    server: Pin<Box<F>>,
    link: Arc<UpstreamLink>,
    idle: Option<IdleDeadline>,
    wakes: Arc<Wakes>,
    wakers: [Waker; PARTS],
}

/// The parts of a [`Driven`], as indexes into its wake flags and wakers.
const SERVER: usize = 0;
const UPSTREAM: usize = 1;
const DEADLINE: usize = 2;
const PARTS: usize = 3;

impl<F: Future> Driven<F> {
    /// Serves `server`, drives `link`'s upstream connection in the same task, and closes the
    /// connection once it has been idle for the timeout of `idle`.
    pub fn new(server: F, link: Arc<UpstreamLink>, idle: Option<IdleDeadline>) -> Self {
        let wakes = Arc::new(Wakes::default());
        let wakers = [SERVER, UPSTREAM, DEADLINE].map(|part| {
            Waker::from(Arc::new(PartWaker {
                wakes: wakes.clone(),
                part,
            }))
        });
        Self {
            server: Box::pin(server),
            link,
            idle,
            wakes,
            wakers,
        }
    }
}

impl<F: Future> Future for Driven<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.get_mut();
        this.wakes.set_task(cx.waker());

        for _ in 0..PASSES_PER_POLL {
            this.wakes.polling.store(true, Ordering::SeqCst);
            // Upstream first, so that a response that has arrived reaches the client in this
            // pass. The client connection may then hand the upstream a request, which the next
            // pass writes.
            if this.wakes.take(UPSTREAM) | this.link.take_fresh() {
                this.link
                    .poll_connection(&mut Context::from_waker(&this.wakers[UPSTREAM]));
            }
            if this.wakes.take(SERVER)
                && let Poll::Ready(output) = this
                    .server
                    .as_mut()
                    .poll(&mut Context::from_waker(&this.wakers[SERVER]))
            {
                return Poll::Ready(Some(output));
            }
            if this.wakes.take(DEADLINE)
                && let Some(idle) = this.idle.as_mut()
                && idle
                    .poll_expired(&mut Context::from_waker(&this.wakers[DEADLINE]))
                    .is_ready()
            {
                tracing::debug!(timeout = ?idle.timeout, "closing a connection that stayed idle");
                return Poll::Ready(None);
            }
            // A wake after this store wakes the task; one before it is seen below.
            this.wakes.polling.store(false, Ordering::SeqCst);
            if !this.wakes.any() && !this.link.is_fresh() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The wake-ups of a [`Driven`]'s parts since their last poll.
#[derive(Debug)]
struct Wakes {
    woken: [AtomicBool; PARTS],
    /// True while [`Driven::poll`] runs; a part woken then is polled in the same call.
    polling: AtomicBool,
    /// The waker of the task that polls the [`Driven`].
    task: Mutex<Option<Waker>>,
}

impl Default for Wakes {
    fn default() -> Self {
        // Every part is polled on the first poll.
        Self {
            woken: [const { AtomicBool::new(true) }; PARTS],
            polling: AtomicBool::new(false),
            task: Mutex::new(None),
        }
    }
}

impl Wakes {
    fn set_task(&self, waker: &Waker) {
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if !task
            .as_ref()
            .is_some_and(|current| current.will_wake(waker))
        {
            *task = Some(waker.clone());
        }
    }

    /// Returns whether `part` was woken, and clears it.
    fn take(&self, part: usize) -> bool {
        self.woken[part].swap(false, Ordering::SeqCst)
    }

    fn any(&self) -> bool {
        self.woken.iter().any(|woken| woken.load(Ordering::SeqCst))
    }
}

/// The waker handed to one part: it marks the part as woken, and wakes the task unless the task
/// is polling already.
struct PartWaker {
    wakes: Arc<Wakes>,
    part: usize,
}

impl Wake for PartWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.woken[self.part].store(true, Ordering::SeqCst);
        if self.wakes.polling.load(Ordering::SeqCst) {
            return;
        }
        let task = self
            .wakes
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

/// How many requests a connection is serving, and since when it has served none.
///
/// Times come from tokio's clock, which tests can pause.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    serving: AtomicUsize,
    /// Milliseconds after `epoch` at which the last request ended; 0 for the connection's start.
    idle_since_ms: AtomicU64,
}

impl Activity {
    /// Creates the activity of a connection that starts idle now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            serving: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// Marks a request as started; the returned guard marks it as ended when dropped.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.serving.fetch_add(1, Ordering::SeqCst);
        RequestGuard(self.clone())
    }

    /// When the connection's idle time reaches `timeout`, or `None` while it serves a request.
    fn deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.serving.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let idle_since = Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        Some(self.epoch + idle_since + timeout)
    }
}

/// A request in progress; dropping it (with the response body) ends the request.
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        let elapsed = u64::try_from(activity.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        // The end time is stored before the count drops, so that a deadline computed from a
        // count of zero reads it.
        activity.idle_since_ms.store(elapsed, Ordering::SeqCst);
        activity.serving.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The deadline of a connection that serves no request, checked by one timer that is re-armed
/// only when it fires.
pub struct IdleDeadline {
    activity: Arc<Activity>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl IdleDeadline {
    /// Closes the connection of `activity` after `timeout` without a request. Needs a tokio
    /// runtime with the time driver.
    pub fn new(activity: Arc<Activity>, timeout: Duration) -> Self {
        let first = activity
            .deadline(timeout)
            .unwrap_or_else(|| Instant::now() + timeout);
        Self {
            activity,
            timeout,
            sleep: Box::pin(tokio::time::sleep_until(first)),
        }
    }

    /// Ready once the connection has been idle for the timeout; otherwise the timer is armed
    /// for the next possible expiry.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let next = match self.activity.deadline(self.timeout) {
                Some(deadline) if deadline <= now => return Poll::Ready(()),
                Some(deadline) => deadline,
                // A request is in progress; look again a timeout from now.
                None => now + self.timeout,
            };
            self.sleep.as_mut().reset(next);
        }
    }
}

/// A response body that keeps its request's [`RequestGuard`] until the body is dropped.
pub struct GuardedBody<B> {
    inner: B,
    _guard: RequestGuard,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, guard: RequestGuard) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for GuardedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
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
    use crate::link::ConnectionDriver;

    /// Builds a connection future that counts its polls and ends after `polls` of them.
    fn counting_driver(polls: usize, counter: Arc<AtomicUsize>) -> ConnectionDriver {
        Box::pin(std::future::poll_fn(move |cx| {
            let seen = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if seen >= polls {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }))
    }

    #[tokio::test]
    async fn upstream_polled_until_closed() {
        let link = Arc::new(UpstreamLink::default());
        let polls = Arc::new(AtomicUsize::new(0));
        link.install(counting_driver(3, polls.clone()));

        // The client connection waits long enough for the upstream connection to close.
        let server = tokio::time::sleep(std::time::Duration::from_millis(50));
        Driven::new(server, link.clone(), None).await;

        assert_eq!(polls.load(Ordering::SeqCst), 3);
        assert!(
            link.lock().driver.is_none(),
            "a closed connection is forgotten"
        );
        assert!(link.take_sender().is_none());
    }

    #[tokio::test]
    async fn ends_with_client_connection() {
        let link = Arc::new(UpstreamLink::default());
        let polls = Arc::new(AtomicUsize::new(0));
        link.install(counting_driver(usize::MAX, polls.clone()));

        let output = Driven::new(async { 7 }, link.clone(), None).await;

        assert_eq!(output, Some(7));
        assert!(polls.load(Ordering::SeqCst) >= 1);
    }

    /// A task waker that counts its wakes.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A server future that, on each poll, returns the next entry of `script`: `true` means
    /// "wake my own waker, then return pending". It keeps the last waker it was given.
    struct Scripted {
        script: Vec<bool>,
        polls: usize,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Scripted {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let step = self.script.get(self.polls).copied();
            self.polls += 1;
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            match step {
                Some(true) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Some(false) => Poll::Pending,
                None => Poll::Ready(()),
            }
        }
    }

    fn poll_once<F: Future>(
        driven: &mut Driven<F>,
        task: &Arc<CountingWaker>,
    ) -> Poll<Option<F::Output>> {
        let waker = Waker::from(task.clone());
        Pin::new(driven).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn woken_part_polled_in_same_call() {
        let waker = Arc::new(Mutex::new(None));
        let server = Scripted {
            script: vec![true, false],
            polls: 0,
            waker: waker.clone(),
        };
        let mut driven = Driven::new(server, Arc::new(UpstreamLink::default()), None);
        let task = Arc::new(CountingWaker::default());

        assert!(poll_once(&mut driven, &task).is_pending());
        assert_eq!(
            driven.server.polls, 2,
            "the woken server was polled again in the same call"
        );
        assert_eq!(task.0.load(Ordering::SeqCst), 0, "the task was not woken");

        // A wake after the poll returned wakes the task, and the next poll reaches the end.
        waker.lock().unwrap().take().unwrap().wake();
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert!(poll_once(&mut driven, &task).is_ready());
    }

    #[test]
    fn unwoken_part_not_polled() {
        let waker = Arc::new(Mutex::new(None));
        let server = Scripted {
            script: vec![false, false],
            polls: 0,
            waker,
        };
        let mut driven = Driven::new(server, Arc::new(UpstreamLink::default()), None);
        let task = Arc::new(CountingWaker::default());

        assert!(poll_once(&mut driven, &task).is_pending());
        assert!(poll_once(&mut driven, &task).is_pending());
        assert_eq!(
            driven.server.polls, 1,
            "a spurious poll of the task skips the server"
        );
    }

    #[test]
    fn self_waking_part_yields() {
        let server = Scripted {
            script: vec![true; 100],
            polls: 0,
            waker: Arc::new(Mutex::new(None)),
        };
        let mut driven = Driven::new(server, Arc::new(UpstreamLink::default()), None);
        let task = Arc::new(CountingWaker::default());

        assert!(poll_once(&mut driven, &task).is_pending());
        assert_eq!(driven.server.polls, PASSES_PER_POLL);
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "the task is woken to run again later"
        );
    }

    /// The idle timeout of the deadline tests.
    const TIMEOUT: Duration = Duration::from_secs(30);

    /// Drives a client connection that never ends with `activity`'s idle deadline, and returns
    /// how long it ran before the deadline closed it.
    async fn time_until_closed(activity: Arc<Activity>) -> Duration {
        let started = tokio::time::Instant::now();
        let output = Driven::new(
            std::future::pending::<()>(),
            Arc::new(UpstreamLink::default()),
            Some(IdleDeadline::new(activity, TIMEOUT)),
        )
        .await;
        assert_eq!(output, None, "closed by the idle deadline");
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_closed() {
        let elapsed = time_until_closed(Activity::new()).await;

        assert!(elapsed >= TIMEOUT);
        assert!(elapsed < TIMEOUT + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn request_in_progress_keeps_open() {
        let activity = Activity::new();

        // A request starts at once and ends after 100 s, as a long response stream would.
        let guard = activity.begin();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(100)).await;
            drop(guard);
        });
        let elapsed = time_until_closed(activity).await;

        assert!(
            elapsed >= Duration::from_secs(100) + TIMEOUT,
            "closed {elapsed:?} after the start, before the request's end plus the timeout"
        );
        assert!(
            elapsed < Duration::from_secs(161),
            "closed late: {elapsed:?}"
        );
    }

    #[test]
    fn guarded_body_drop_ends_request() {
        let activity = Activity::new();
        let body = GuardedBody::new(
            http_body_util::Full::new(Bytes::from_static(b"x")),
            activity.begin(),
        );
        assert!(activity.deadline(Duration::from_secs(1)).is_none());
        assert_eq!(body.size_hint().exact(), Some(1));
        drop(body);
        assert!(activity.deadline(Duration::from_secs(1)).is_some());
    }
}
