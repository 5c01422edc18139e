//! Bounded line I/O shared by the server and the client: a fixed read buffer, lines
//! capped at a caller-given length (the rest of an overlong line is discarded up to
//! its LF), replies queued and flushed only before the next socket read (PIPELINING).
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

const READ_BUF: usize = 16 * 1024;

/// A TCP stream before or after its TLS handshake.
pub(crate) enum MaybeTls<T> {
    Plain(TcpStream),
    Tls(Box<T>),
    /// Only while the stream is moved out for a STARTTLS handshake.
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "stream taken for TLS handshake",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for MaybeTls<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for MaybeTls<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// What [`LineIo::read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line; the buffer holds it without CRLF / LF.
    Complete,
    /// The line exceeded the bound; it was consumed up to its LF and dropped.
    TooLong,
    /// The peer closed its side (any partial line is dropped).
    Eof,
}

pub(crate) struct LineIo<S> {
    pub(crate) stream: S,
    rbuf: Box<[u8]>,
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    /// Bound on each socket read and write.
    pub(crate) timeout: Duration,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

impl<S: AsyncRead + AsyncWrite + Unpin> LineIo<S> {
    pub(crate) fn new(stream: S, timeout: Duration) -> Self {
        Self {
            stream,
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            wbuf: Vec::new(),
            timeout,
        }
    }

    /// Drop whatever the peer sent that was not read yet; returns how many bytes.
    /// STARTTLS uses it so pipelined plaintext cannot leak into the TLS session.
    pub(crate) fn discard_buffered(&mut self) -> usize {
        let n = self.end - self.start;
        self.start = 0;
        self.end = 0;
        n
    }

    /// True when a complete line is already buffered (no socket read needed).
    pub(crate) fn has_line(&self) -> bool {
        self.rbuf[self.start..self.end].contains(&b'\n')
    }

    pub(crate) fn queue(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.wbuf);
        let fut = async {
            self.stream.write_all(&data).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        }
    }

    /// Write straight through (the client's message body), bounded by the timeout.
    pub(crate) async fn write_now(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush().await?;
        match tokio::time::timeout(self.timeout, self.stream.write_all(bytes)).await {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        self.flush().await?;
        self.start = 0;
        self.end = 0;
        match tokio::time::timeout(self.timeout, self.stream.read(&mut self.rbuf)).await {
            Ok(Ok(n)) => {
                self.end = n;
                Ok(n)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(timed_out()),
        }
    }

    /// Read one line of at most `max` bytes including its terminator into `out`
    /// (cleared first). Bare LF ends a line as CRLF does.
    pub(crate) async fn read_line(&mut self, max: usize, out: &mut Vec<u8>) -> io::Result<Line> {
        out.clear();
        let mut too_long = false;
        loop {
            if self.start == self.end && self.fill().await? == 0 {
                return Ok(Line::Eof);
            }
            let avail = &self.rbuf[self.start..self.end];
            let (chunk_len, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            if !too_long {
                if out.len() + chunk_len > max {
                    too_long = true;
                    out.clear();
                } else {
                    out.extend_from_slice(&avail[..chunk_len]);
                }
            }
            self.start += chunk_len;
            if done {
                if too_long {
                    return Ok(Line::TooLong);
                }
                out.pop();
                if out.last() == Some(&b'\r') {
                    out.pop();
                }
                return Ok(Line::Complete);
            }
        }
    }

    /// Best-effort close: flush, then TLS close_notify / FIN, bounded in time.
    pub(crate) async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.shutdown()).await;
    }
}
