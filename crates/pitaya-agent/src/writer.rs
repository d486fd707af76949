//! The writer task: drains the outgoing queue into batched writes.

use bytes::{Bytes, BytesMut};
use pitaya_acceptor::PacketWriter;
use pitaya_codec::MessageCodec;
use pitaya_serialize::Serializer;

use crate::control::{Control, Signal};
use crate::entity::{AgentEntity, Outgoing};
use crate::routes::ClientRoutes;

/// The kick packet, written ahead of the queue (spec §1.7).
const KICK: &[u8] = &[0x05, 0x00, 0x00, 0x00];
const HEARTBEAT: &[u8] = &[0x03, 0x00, 0x00, 0x00];
/// The room a batch buffer starts with.
const FIRST_RESERVE: usize = 1024;

pub(crate) struct WriterTask {
    pub(crate) writer: PacketWriter,
    pub(crate) rx: crate::queue::Receiver<Outgoing>,
    pub(crate) control: Control,
    pub(crate) codec: MessageCodec,
    pub(crate) serializer: std::sync::Arc<dyn Serializer>,
    pub(crate) handshake_ok: Bytes,
    pub(crate) handshake_rejected: Bytes,
    pub(crate) write_timeout: std::time::Duration,
    pub(crate) max_batch: usize,
    /// The connection's route compression, shared with its entity; `None`: codes always.
    pub(crate) client_routes: Option<std::sync::Arc<ClientRoutes>>,
    /// Its entity, for the backlog of broadcasts that found the queue full.
    pub(crate) entity: std::sync::Arc<AgentEntity>,
    /// The highest number of a resumable session's packet in the batch being written.
    pub(crate) last_logged: std::cell::Cell<u64>,
}

impl WriterTask {
    pub(crate) async fn run(mut self) {
        let control = self.control.clone();
        // Allocated per batch and released once written, so that an idle connection holds
        // no write buffer.
        let mut buf = BytesMut::new();
        loop {
            // With a backlog waiting, nothing to wait for: write it.
            if !self.entity.has_backlog() {
                let item = tokio::select! {
                    biased;
                    signal = control.closing() => {
                        self.finish(signal, &mut buf).await;
                        break;
                    }
                    item = self.rx.recv() => item,
                };
                let Some(item) = item else { break };
                self.encode(item, &mut buf);
            } else if self.control.current() != Signal::Open {
                self.finish(self.control.current(), &mut buf).await;
                break;
            }
            // Batch whatever else is already queued into the same write: the queue, then
            // the backlog behind it.
            while buf.len() < self.max_batch {
                match self.rx.try_recv() {
                    Ok(item) => self.encode(item, &mut buf),
                    Err(_) => break,
                }
            }
            if buf.len() < self.max_batch {
                self.take_backlog(&mut buf);
            }
            if buf.is_empty() {
                continue;
            }
            if !self.write(std::mem::take(&mut buf).freeze()).await {
                break;
            }
        }
        self.control.signal(Signal::Close);
        self.rx.close();
        self.writer.close().await;
    }

    /// On close, flushes what was queued before the close; on kick, sends only the kick.
    async fn finish(&mut self, signal: Signal, buf: &mut BytesMut) {
        if signal == Signal::Kick {
            let _ = self.write(Bytes::from_static(KICK)).await;
            return;
        }
        while let Ok(item) = self.rx.try_recv() {
            self.encode(item, buf);
        }
        let entity = self.entity.clone();
        entity.drain_backlog(|item| {
            self.encode(item, buf);
            true
        });
        if !buf.is_empty() {
            let _ = self.write(std::mem::take(buf).freeze()).await;
        }
    }

    /// Moves backlog items into `buf` up to the batch size.
    fn take_backlog(&self, buf: &mut BytesMut) {
        let max = self.max_batch;
        self.entity.drain_backlog(|item| {
            self.encode(item, buf);
            buf.len() < max
        });
    }

    fn encode(&self, item: Outgoing, buf: &mut BytesMut) {
        if buf.capacity() == 0 {
            // One allocation for a typical batch instead of growing from nothing through
            // several reallocations; small enough for the allocator's per-thread cache.
            buf.reserve(FIRST_RESERVE);
        }
        match item {
            Outgoing::Heartbeat => buf.extend_from_slice(HEARTBEAT),
            Outgoing::Shared(packet) => buf.extend_from_slice(&packet),
            Outgoing::Logged(logged) => {
                buf.extend_from_slice(&logged.packet);
                self.last_logged.set(self.last_logged.get().max(logged.seq));
            }
            Outgoing::Handshake { accepted: true } => buf.extend_from_slice(&self.handshake_ok),
            Outgoing::Handshake { accepted: false } => {
                buf.extend_from_slice(&self.handshake_rejected)
            }
            Outgoing::Message(msg) => {
                let codec = match &self.client_routes {
                    Some(routes) => routes.codec(&self.codec),
                    None => &self.codec,
                };
                // Logged there; a push that cannot be encoded is dropped.
                let _ = crate::entity::encode_outgoing(codec, &*self.serializer, &msg, buf);
            }
        }
    }

    /// Writes with the write timeout; false when the connection is unusable.
    ///
    /// Go keeps a connection whose write timed out (spec §1.9); a timed-out write here may
    /// have sent part of a packet, after which the stream cannot be trusted, so the
    /// connection is closed instead.
    async fn write(&mut self, bytes: Bytes) -> bool {
        match tokio::time::timeout(self.write_timeout, self.writer.write(bytes)).await {
            Ok(Ok(())) => {
                let seq = self.last_logged.take();
                if seq > 0 {
                    if let Some(resume) = self.entity.resume.get() {
                        resume.wrote(seq);
                    }
                }
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write failed; closing the connection");
                false
            }
            Err(_) => {
                tracing::warn!("write timed out; closing the connection");
                false
            }
        }
    }
}
