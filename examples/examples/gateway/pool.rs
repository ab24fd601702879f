//! Keep-alive connections to one upstream: a stack of idle HTTP/1.1 connections.
//!
//! Leaner than a general-purpose pooled client for the one thing a gateway does: send
//! to a fixed address. A connection goes back on the stack when its response body has
//! been read to the end; one that the upstream closed meanwhile is dropped, and a
//! request that never left on it is retried on a fresh connection.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What can go wrong on the way to an upstream.
#[derive(Debug)]
pub(crate) enum PoolError {
    Connect(std::io::Error),
    Http(hyper::Error),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Http(e) => write!(f, "http: {e}"),
        }
    }
}

/// The idle connections to one upstream address (`host:port`).
#[derive(Debug)]
pub(crate) struct Pool {
    addr: String,
    idle: Mutex<Vec<SendRequest<Incoming>>>,
}

/// Most idle connections kept per upstream.
const MAX_IDLE: usize = 1024;

impl Pool {
    pub(crate) fn new(addr: String) -> Arc<Self> {
        Arc::new(Self {
            addr,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn pop(&self) -> Option<SendRequest<Incoming>> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn push(&self, sender: SendRequest<Incoming>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    /// A new connection to the upstream: its sender and the connection to drive.
    async fn handshake(
        &self,
    ) -> Result<
        (
            SendRequest<Incoming>,
            http1::Connection<TokioIo<TcpStream>, Incoming>,
        ),
        PoolError,
    > {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(PoolError::Connect)?;
        let _ = stream.set_nodelay(true);
        http1::handshake(TokioIo::new(stream))
            .await
            .map_err(PoolError::Http)
    }

    async fn connect(&self) -> Result<SendRequest<Incoming>, PoolError> {
        let (sender, conn) = self.handshake().await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("upstream connection: {e}");
            }
        });
        Ok(sender)
    }

    /// Sends `req`, a request to switch protocols (`Upgrade`), on a connection of its
    /// own, never pooled: if the upstream switches, the connection becomes the tunnel
    /// (`hyper::upgrade::on` the response).
    pub(crate) async fn send_upgrade(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<PooledBody>, PoolError> {
        let (mut sender, conn) = self.handshake().await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("upstream connection: {e}");
            }
        });
        let res = sender.send_request(req).await.map_err(PoolError::Http)?;
        Ok(res.map(|body| PooledBody { body, home: None }))
    }

    /// Sends `req` on an idle connection (or a new one) and returns the response, whose
    /// body hands the connection back when it has been read to the end.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
    ) -> Result<Response<PooledBody>, PoolError> {
        loop {
            let (mut sender, fresh) = match self.pop() {
                Some(sender) => (sender, false),
                None => (self.connect().await?, true),
            };
            if sender.ready().await.is_err() {
                if fresh {
                    return Err(PoolError::Connect(std::io::Error::other("closed at once")));
                }
                continue; // closed by the upstream while idle
            }
            match sender.try_send_request(req).await {
                Ok(res) => {
                    let pool = Arc::downgrade(self);
                    return Ok(res.map(|body| PooledBody {
                        body,
                        home: Some((sender, pool)),
                    }));
                }
                Err(mut e) => match e.take_message() {
                    // Never sent: the connection died first. Try another.
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(PoolError::Http(e.into_error())),
                },
            }
        }
    }
}

/// An upstream response body that returns its connection to the pool once read.
#[derive(Debug)]
pub(crate) struct PooledBody {
    body: Incoming,
    home: Option<(SendRequest<Incoming>, Weak<Pool>)>,
}

impl PooledBody {
    fn go_home(&mut self) {
        if let Some((sender, pool)) = self.home.take()
            && let Some(pool) = pool.upgrade()
            && !sender.is_closed()
        {
            pool.push(sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.go_home();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Read to the end (or empty): the connection is clean. Otherwise it is dropped
        // with its unread body, and hyper closes it.
        if self.body.is_end_stream() {
            self.go_home();
        }
    }
}
