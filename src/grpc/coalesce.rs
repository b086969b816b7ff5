//! A TCP stream that gathers the TLS records of several answers into one send.
//!
//! A group commit answers many callers at once. Each answer wakes its connection's HTTP/2 task,
//! and tokio runs a task woken this way right after the waker (its LIFO slot). The connection
//! therefore wrote and flushed one answer at a time: one `writev` system call, one loopback
//! segment and one wake-up of the peer per answer. With this stream under TLS, the first flush
//! after new data does not send: it yields the connection task once to the back of its worker's
//! queue, so the other answers of the commit are queued on the connection first, and the second
//! flush sends them all with one call.
//!
//! Nothing waits for a timer: the flush is only put after the tasks that are ready now, and a
//! connection with nothing else to run sends at once on its next poll. Gathering starts only
//! after the TLS handshake, which flushes its own flights.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bytes gathered before a write sends them even without a flush.
const MAX_GATHERED: usize = 256 * 1024;
/// Buffer capacity a connection keeps between sends.
const KEPT_CAPACITY: usize = 64 * 1024;
/// Most yields of one flush: it yields again while the last yield brought more to send.
const MAX_YIELDS: u32 = 4;

/// A stream whose writes are gathered until a flush; see the module documentation.
#[derive(Debug)]
pub struct Coalescing<S> {
    inner: S,
    /// Bytes written but not yet sent; `buf[sent..]` is what is left to send.
    buf: Vec<u8>,
    sent: usize,
    /// Gathering is on (after the handshake).
    gathering: bool,
    /// How often the current flush has yielded, and how many bytes were gathered at its last yield.
    yields: u32,
    gathered_at_yield: usize,
}

impl<S> Coalescing<S> {
    /// A stream that passes writes straight through until [`Coalescing::gather`].
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            sent: 0,
            gathering: false,
            yields: 0,
            gathered_at_yield: 0,
        }
    }

    /// From now on, writes are gathered until a flush.
    pub fn gather(&mut self) {
        self.gathering = true;
    }
}

impl<S: AsyncWrite + Unpin> Coalescing<S> {
    /// Sends every gathered byte.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        // A burst (a large answer) does not pin its buffer for the connection's lifetime.
        if self.buf.capacity() > KEPT_CAPACITY {
            self.buf.shrink_to(KEPT_CAPACITY);
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room before gathering more: sends what is gathered once it reaches the limit.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.len() >= MAX_GATHERED {
            ready!(self.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalescing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if !this.gathering {
            ready!(this.poll_send(cx))?;
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        ready!(this.poll_room(cx))?;
        let mut n = 0;
        for buf in bufs {
            this.buf.extend_from_slice(buf);
            n += buf.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.sent < this.buf.len() {
            if this.buf.len() > this.gathered_at_yield && this.yields < MAX_YIELDS {
                // Let the tasks that are ready now queue their answers on this connection; a
                // task that wakes itself goes to the back of its worker's queue.
                this.yields += 1;
                this.gathered_at_yield = this.buf.len();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(this.poll_send(cx))?;
        }
        this.yields = 0;
        this.gathered_at_yield = 0;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl Connected for Coalescing<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_pass_through_until_gathering_then_wait_for_a_flush() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut stream = Coalescing::new(near);
        stream.write_all(b"hello ").await.unwrap();
        let mut got = [0u8; 6];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello ");

        stream.gather();
        stream.write_all(b"one ").await.unwrap();
        stream.write_all(b"two").await.unwrap();
        let mut probe = [0u8; 1];
        assert!(
            far.read(&mut probe).now_or_never().is_none(),
            "gathered bytes were sent before a flush"
        );

        stream.flush().await.unwrap();
        let mut got = [0u8; 7];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two");
    }

    #[tokio::test]
    async fn a_full_buffer_is_sent_without_a_flush_and_shutdown_sends_the_rest() {
        let (near, mut far) = tokio::io::duplex(4 * MAX_GATHERED);
        let mut stream = Coalescing::new(near);
        stream.gather();
        let block = vec![7u8; MAX_GATHERED];
        stream.write_all(&block).await.unwrap();
        stream.write_all(b"tail").await.unwrap();
        let mut got = vec![0u8; MAX_GATHERED];
        far.read_exact(&mut got).await.unwrap();
        assert!(got.iter().all(|b| *b == 7));
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        far.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"tail");
    }
}
