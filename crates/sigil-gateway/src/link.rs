//! A client connection's own upstream connection, driven by the client connection's task.
//!
//! HTTP/1.1 carries one request at a time on a connection. The gateway therefore gives each
//! HTTP/1.1 client connection one upstream connection of its own ([`UpstreamLink`]), opened at
//! the first forwarded request and reused until either side closes it. The task that serves the
//! client connection also drives the upstream connection ([`crate::driven::Driven`]), so a
//! request and its response never pass between tasks and no shared pool is locked. HTTP/2 clients, whose
//! streams run at the same time in tasks of their own, use the shared pool of
//! [`crate::upstream::Upstream`].
//!
//! An upstream connection lives no longer than its client connection: it is closed when the
//! client connection ends, and a client connection that stays idle past the gateway's
//! header-read timeout is closed by the server.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Context;

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
pub(crate) struct LinkState {
    /// The request half; `None` while a request is being handed over, or before the first one.
    pub(crate) sender: Option<SendRequest<Incoming>>,
    /// The connection half, polled by [`crate::driven::Driven`]; `None` once the connection
    /// has closed.
    pub(crate) driver: Option<ConnectionDriver>,
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
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh.load(Ordering::SeqCst)
    }

    /// Returns [`UpstreamLink::is_fresh`] and clears it.
    pub(crate) fn take_fresh(&self) -> bool {
        self.fresh.swap(false, Ordering::SeqCst)
    }

    /// Polls the upstream connection, if one is open, and drops it once it has closed.
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
