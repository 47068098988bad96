//! Accepting connections within limits: how many at once, how many from one client address, and
//! how long a client may take to send a request head.
//!
//! ```text
//!   accept ──> total permit? ──(none free: stop accepting until one is)
//!      │
//!      └──> address under its share? ──(no: 503 overloaded, then close)
//!               │
//!               └──> HTTP/1.1: the head within the header timeout, also between keep-alive
//!                    requests, and every write making progress within the write timeout, or
//!                    the connection closes
//! ```
//!
//! Without these a client that opens connections and sends nothing, or a byte at a time, holds
//! file descriptors and memory as long as it likes. Bodies have their own time limit and memory
//! budget (`router`). This module must never let one address hold more than its share of the
//! connections, and never log a request's content.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_io_timeout::TimeoutStream;
use tower_service::Service;
use warp::Filter;
use warp::reply::Response;

use super::auth::client_key;
use super::problem::ApiError;

/// How many connections the server holds and for how long a request head may take.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; past it the server stops accepting until one closes.
    pub total: usize,
    /// Connections open at once from one client address (IPv6: one /64).
    pub per_address: usize,
    /// Time a client has to send a whole request head, and to start the next one on a
    /// keep-alive connection.
    pub header_timeout: Duration,
    /// Time a write to the client may make no progress before the connection is closed: a
    /// client that stops reading its answers cannot hold its connection.
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            total: 4096,
            per_address: 256,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// The address a connection came from, put on each of its requests for the handlers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// Open connections per client address. An address leaves the table with its last connection,
/// so the table never holds more entries than there are open connections.
#[derive(Default)]
struct OpenPerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One open connection counted against its address; uncounted on drop.
struct AddressSlot {
    table: Arc<OpenPerAddress>,
    address: IpAddr,
}

impl OpenPerAddress {
    /// Counts one more connection from `address`, unless it already has `max`.
    fn take(self: &Arc<Self>, address: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if open.get(&address).copied().unwrap_or(0) >= max {
            return None;
        }
        *open.entry(address).or_insert(0) += 1;
        Some(AddressSlot {
            table: Arc::clone(self),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Entry::Occupied(mut entry) = open.entry(self.address) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

/// Serves `filter` on `listener` within `limits` until `stop` completes, then lets the
/// connections in flight finish their requests. Dropping the future (aborting its task) ends
/// every connection it started.
pub(crate) async fn serve<F>(
    listener: TcpListener,
    filter: F,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let total = Arc::new(Semaphore::new(limits.total.max(1)));
    let per_address = Arc::new(OpenPerAddress::default());
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut stop = std::pin::pin!(stop);

    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = accept_within(&listener, &total) => accepted,
            () = &mut stop => break,
        };
        let Some((stream, peer, permit)) = accepted else {
            continue;
        };
        let Some(slot) = per_address.take(client_key(peer.ip()), limits.per_address) else {
            tracing::info!("connection.refused_per_address");
            connections.spawn(async move {
                refuse(stream).await;
                drop(permit);
            });
            continue;
        };

        let connection = serve_connection(stream, peer, filter.clone(), &limits);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                // Clients that hang up or send garbage are routine, not errors of the server.
                tracing::debug!(%error, "connection.ended_with_error");
            }
            drop((slot, permit));
        });
    }

    drop(listener);
    graceful.shutdown().await;
}

/// Answers a connection past its address's share with 503 `overloaded` and closes it, giving
/// the client a second to take the answer.
async fn refuse(mut stream: TcpStream) {
    let body = ApiError::Overloaded(Duration::from_secs(1)).body();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Waits for a free connection permit, then for a connection. `None` when accepting failed;
/// when the process is out of file descriptors it first waits a moment, so a flood does not
/// turn into a busy loop.
async fn accept_within(
    listener: &TcpListener,
    total: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let permit = Arc::clone(total).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, permit)),
        Err(error) => {
            tracing::warn!(%error, "connection.accept_failed");
            if error
                .raw_os_error()
                .is_some_and(|code| code == 24 || code == 23)
            {
                // EMFILE, ENFILE: wait for some connection to close.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }
    }
}

/// Largest read buffer of a connection: a request head must fit in it (proofs and tokens are a
/// few KiB), and it bounds what each connection holds while it reads.
const MAX_READ_BUFFER: usize = 64 * 1024;

/// One HTTP/1.1 connection: every request carries the peer's address; the head must arrive
/// within the header timeout, and a write must make progress within the write timeout.
fn serve_connection<F>(
    stream: TcpStream,
    peer: SocketAddr,
    filter: F,
    limits: &ConnectionLimits,
) -> impl GracefulConnection<Error = hyper::Error> + Send + 'static
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(PeerAddr(peer));
        warp::service(filter.clone()).call(request)
    });
    let mut stream = TimeoutStream::new(stream);
    stream.set_write_timeout(Some(limits.write_timeout));
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_READ_BUFFER)
        .serve_connection(TokioIo::new(Box::pin(stream)), service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_of_connections_and_leaves_the_table_with_its_last() {
        let table = Arc::new(OpenPerAddress::default());
        let address = IpAddr::from([192, 0, 2, 1]);

        let first = table.take(address, 2);
        let second = table.take(address, 2);
        assert!(first.is_some() && second.is_some());
        assert!(table.take(address, 2).is_none());
        assert!(table.take(IpAddr::from([192, 0, 2, 2]), 2).is_some());

        drop(first);
        let third = table.take(address, 2);
        assert!(third.is_some());
        drop((second, third));
        assert!(table.0.lock().unwrap().is_empty());
    }
}
