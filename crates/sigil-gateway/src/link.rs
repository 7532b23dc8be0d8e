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
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

/// The future that carries an upstream connection's traffic until the connection closes.
pub type ConnectionDriver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The upstream connection of one client connection, if one is open.
#[derive(Default)]
pub struct UpstreamLink {
    state: Mutex<LinkState>,
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
pub struct Driven<F> {
    server: Pin<Box<F>>,
    link: Arc<UpstreamLink>,
}

impl<F: Future> Driven<F> {
    /// Serves `server` and drives `link`'s upstream connection in the same task.
    pub fn new(server: F, link: Arc<UpstreamLink>) -> Self {
        Self {
            server: Box::pin(server),
            link,
        }
    }
}

impl<F: Future> Future for Driven<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Upstream first, so that a response that has arrived reaches the client in this pass;
        // then the client connection, which may hand the upstream a request; then the upstream
        // again, so that the request is written in this pass too.
        this.link.poll_connection(cx);
        if let Poll::Ready(output) = this.server.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        this.link.poll_connection(cx);
        Poll::Pending
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
}
