//! Guest stdout and stderr, sent to tracing line by line with the agent's
//! name instead of the host's own streams.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// How much one instance may print before the rest is dropped, so a chatty
/// or hostile guest cannot flood the host's logs.
const MAX_BYTES_PER_INSTANCE: usize = 256 * 1024;
const MAX_LINE: usize = 4096;

#[derive(Debug, Default)]
struct Buffer {
    line: Vec<u8>,
    total: usize,
    dropped: bool,
}

/// One guest output stream.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    agent: Arc<str>,
    stream: &'static str,
    buffer: Arc<Mutex<Buffer>>,
}

impl GuestOutput {
    pub fn new(agent: &str, stream: &'static str) -> Self {
        GuestOutput { agent: agent.into(), stream, buffer: Arc::default() }
    }

    fn accept(&self, bytes: &[u8]) {
        let Ok(mut buffer) = self.buffer.lock() else {
            return;
        };
        if buffer.total >= MAX_BYTES_PER_INSTANCE {
            if !buffer.dropped {
                buffer.dropped = true;
                tracing::warn!(agent = %self.agent, stream = self.stream, "guest output limit reached; further output dropped");
            }
            return;
        }
        // Only what fits: the write that crosses the cap is cut, not taken whole.
        let room = MAX_BYTES_PER_INSTANCE - buffer.total;
        let bytes = &bytes[..bytes.len().min(room)];
        buffer.total += bytes.len();
        for &byte in bytes {
            if byte == b'\n' || buffer.line.len() >= MAX_LINE {
                let line = crate::text::one_line(&String::from_utf8_lossy(&buffer.line));
                buffer.line.clear();
                tracing::info!(agent = %self.agent, stream = self.stream, "{line}");
                if byte == b'\n' {
                    continue;
                }
            }
            buffer.line.push(byte);
        }
    }
}

#[async_trait::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.accept(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_crosses_the_cap_is_cut_to_it() {
        let output = GuestOutput::new("chatty", "stdout");
        output.accept(&vec![b'x'; 100 * 1024]);
        output.accept(&vec![b'y'; 300 * 1024]);
        output.accept(b"more");
        let total = output.buffer.lock().map(|b| b.total).unwrap_or(0);
        assert_eq!(total, MAX_BYTES_PER_INSTANCE);
    }
}
