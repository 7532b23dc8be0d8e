//! A client connection's own upstream connection, driven by the client connection's task.
//!
//! HTTP/1.1 carries one request at a time on a connection. The gateway therefore gives each
//! HTTP/1.1 client connection one upstream connection of its own ([`UpstreamLink`]), opened at
//! the first forwarded request and reused until either side closes it. The task that serves the
//! client connection also drives the upstream connection ([`Driven`]), so a request and its
//! response never pass between tasks and no shared pool is locked. HTTP/2 clients, whose
//! streams run at the same time in tasks of their own, use the shared pool of
//! [`crate::upstream::Upstream`].
//!
//! An upstream connection lives no longer than its client connection: it is closed when the
//! client connection ends, and a client connection that stays idle past the gateway's
//! header-read timeout is closed by the server.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

/// The future that carries an upstream connection's traffic until the connection closes.
pub type ConnectionDriver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The upstream connection of one client connection, if one is open.
#[derive(Default)]
pub struct UpstreamLink {
    state: Mutex<LinkState>,
    /// True from [`UpstreamLink::install`] until the new connection's first poll.
    fresh: AtomicBool,
}

#[derive(Default)]
struct LinkState {
    /// The request half; `None` while a request is being handed over, or before the first one.
    sender: Option<SendRequest<Incoming>>,
    /// The connection half, polled by [`Driven`]; `None` once the connection has closed.
    driver: Option<ConnectionDriver>,
}

impl std::fmt::Debug for UpstreamLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("UpstreamLink")
            .field("open", &state.driver.is_some())
            .finish()
    }
}

impl UpstreamLink {
    /// Takes the request half of the open connection, or `None` when there is none or it has
    /// closed.
    pub fn take_sender(&self) -> Option<SendRequest<Incoming>> {
        let mut state = self.lock();
        let sender = state.sender.take()?;
        if sender.is_closed() || state.driver.is_none() {
            return None;
        }
        Some(sender)
    }

    /// Returns the request half after a request was handed to the connection.
    pub fn put_back(&self, sender: SendRequest<Incoming>) {
        self.lock().sender = Some(sender);
    }

    /// Replaces the connection with a new one; the old one, if any, is closed.
    pub fn install(&self, driver: ConnectionDriver) {
        let mut state = self.lock();
        state.sender = None;
        state.driver = Some(driver);
        self.fresh.store(true, Ordering::SeqCst);
    }

    /// True when a connection was installed and has not been polled yet.
    fn is_fresh(&self) -> bool {
        self.fresh.load(Ordering::SeqCst)
    }

    /// Returns [`UpstreamLink::is_fresh`] and clears it.
    fn take_fresh(&self) -> bool {
        self.fresh.swap(false, Ordering::SeqCst)
    }

    /// Polls the upstream connection, if one is open, and forgets it once it has closed.
    pub(crate) fn poll_connection(&self, cx: &mut Context<'_>) {
        let mut state = self.lock();
        if let Some(driver) = state.driver.as_mut()
            && driver.as_mut().poll(cx).is_ready()
        {
            state.driver = None;
            state.sender = None;
        }
    }

    /// Locks the state. Nothing panics while holding the lock, so a poisoned lock still holds
    /// consistent state.
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A client connection's future together with its upstream connection: polling one polls both.
///
/// Each half is polled only when something woke it, and both are polled in the same pass: a
/// response that arrives from the upstream reaches the client connection, and a request the
/// client connection hands over reaches the upstream socket, without waking the task again.
pub struct Driven<F> {
    server: Pin<Box<F>>,
    link: Arc<UpstreamLink>,
    wakes: Arc<Wakes>,
    server_waker: Waker,
    upstream_waker: Waker,
}

impl<F: Future> Driven<F> {
    /// Serves `server` and drives `link`'s upstream connection in the same task.
    pub fn new(server: F, link: Arc<UpstreamLink>) -> Self {
        let wakes = Arc::new(Wakes::default());
        Self {
            server: Box::pin(server),
            link,
            server_waker: Waker::from(Arc::new(HalfWaker {
                wakes: wakes.clone(),
                half: Half::Server,
            })),
            upstream_waker: Waker::from(Arc::new(HalfWaker {
                wakes: wakes.clone(),
                half: Half::Upstream,
            })),
            wakes,
        }
    }
}

/// How many times one poll goes round both halves before it yields to the runtime. A bound is
/// needed because a half that wakes itself at once (tokio does this when a task has used its
/// budget) would otherwise keep the loop going.
const PASSES_PER_POLL: usize = 4;

impl<F: Future> Future for Driven<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.wakes.set_task(cx.waker());

        for _ in 0..PASSES_PER_POLL {
            this.wakes.polling.store(true, Ordering::SeqCst);
            // Upstream first, so that a response that has arrived reaches the client in this
            // pass; the client connection may then hand the upstream a request, which the next
            // pass writes.
            let upstream_woken = this.wakes.upstream.swap(false, Ordering::SeqCst);
            if upstream_woken | this.link.take_fresh() {
                this.link
                    .poll_connection(&mut Context::from_waker(&this.upstream_waker));
            }
            if this.wakes.server.swap(false, Ordering::SeqCst)
                && let Poll::Ready(output) = this
                    .server
                    .as_mut()
                    .poll(&mut Context::from_waker(&this.server_waker))
            {
                return Poll::Ready(output);
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

/// Which half of a [`Driven`] a waker belongs to.
#[derive(Debug, Clone, Copy)]
enum Half {
    Server,
    Upstream,
}

/// The wake-ups of a [`Driven`]'s two halves since their last poll.
#[derive(Debug)]
struct Wakes {
    server: AtomicBool,
    upstream: AtomicBool,
    /// True while [`Driven::poll`] runs; a half woken then is polled in the same call.
    polling: AtomicBool,
    /// The waker of the task that polls the [`Driven`].
    task: Mutex<Option<Waker>>,
}

impl Default for Wakes {
    fn default() -> Self {
        // Both halves are polled on the first poll.
        Self {
            server: AtomicBool::new(true),
            upstream: AtomicBool::new(true),
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

    fn any(&self) -> bool {
        self.server.load(Ordering::SeqCst) || self.upstream.load(Ordering::SeqCst)
    }
}

/// The waker handed to one half: it marks the half as woken, and wakes the task unless the task
/// is polling already.
struct HalfWaker {
    wakes: Arc<Wakes>,
    half: Half,
}

impl Wake for HalfWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let flag = match self.half {
            Half::Server => &self.wakes.server,
            Half::Upstream => &self.wakes.upstream,
        };
        flag.store(true, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A connection future that counts its polls and ends after `polls` of them.
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
    async fn driven_polls_the_upstream_connection_until_it_closes() {
        let link = Arc::new(UpstreamLink::default());
        let polls = Arc::new(AtomicUsize::new(0));
        link.install(counting_driver(3, polls.clone()));

        // The client connection waits long enough for the upstream connection to close.
        let server = tokio::time::sleep(std::time::Duration::from_millis(50));
        Driven::new(server, link.clone()).await;

        assert_eq!(polls.load(Ordering::SeqCst), 3);
        assert!(
            link.lock().driver.is_none(),
            "a closed connection is forgotten"
        );
        assert!(link.take_sender().is_none());
    }

    #[tokio::test]
    async fn driven_ends_with_the_client_connection() {
        let link = Arc::new(UpstreamLink::default());
        let polls = Arc::new(AtomicUsize::new(0));
        link.install(counting_driver(usize::MAX, polls.clone()));

        let output = Driven::new(async { 7 }, link.clone()).await;

        assert_eq!(output, 7);
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

    fn poll_once<F: Future>(driven: &mut Driven<F>, task: &Arc<CountingWaker>) -> Poll<F::Output> {
        let waker = Waker::from(task.clone());
        Pin::new(driven).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn half_woken_during_a_poll_is_polled_again_without_waking_the_task() {
        let waker = Arc::new(Mutex::new(None));
        let server = Scripted {
            script: vec![true, false],
            polls: 0,
            waker: waker.clone(),
        };
        let mut driven = Driven::new(server, Arc::new(UpstreamLink::default()));
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
    fn unwoken_half_is_not_polled() {
        let waker = Arc::new(Mutex::new(None));
        let server = Scripted {
            script: vec![false, false],
            polls: 0,
            waker,
        };
        let mut driven = Driven::new(server, Arc::new(UpstreamLink::default()));
        let task = Arc::new(CountingWaker::default());

        assert!(poll_once(&mut driven, &task).is_pending());
        assert!(poll_once(&mut driven, &task).is_pending());
        assert_eq!(
            driven.server.polls, 1,
            "a spurious poll of the task skips the server"
        );
    }

    #[test]
    fn half_that_always_wakes_itself_yields_to_the_runtime() {
        let server = Scripted {
            script: vec![true; 100],
            polls: 0,
            waker: Arc::new(Mutex::new(None)),
        };
        let mut driven = Driven::new(server, Arc::new(UpstreamLink::default()));
        let task = Arc::new(CountingWaker::default());

        assert!(poll_once(&mut driven, &task).is_pending());
        assert_eq!(driven.server.polls, PASSES_PER_POLL);
        assert_eq!(
            task.0.load(Ordering::SeqCst),
            1,
            "the task is woken to run again later"
        );
    }
}
