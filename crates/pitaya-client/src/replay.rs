//! The sans-IO parts of session resume (`docs/resume.md`): the replay buffer of the
//! client's own Data packets and the reconnect backoff.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

/// The client's own Data packets, numbered from 1 in the order they were written, the
/// last few kept for re-sending (spec: `docs/resume.md`, "Counting").
#[derive(Debug)]
pub(crate) struct ReplayBuffer {
    /// Packets written so far on this session (the number of the last one).
    sent: u64,
    /// `(number, packet)`, oldest first, numbers consecutive and ending at `sent`.
    kept: VecDeque<(u64, Bytes)>,
    kept_bytes: usize,
    max_packets: usize,
    max_bytes: usize,
}

/// Why the packets after the server's count cannot be re-sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReplayError {
    /// The server says it read more packets than were ever sent.
    #[error("the server read {server} of the client's packets, but only {sent} were sent")]
    Ahead { server: u64, sent: u64 },
    /// The packets right after the server's count were evicted from the buffer.
    #[error("packets after {server} are no longer kept (oldest kept: {oldest}, sent: {sent})")]
    Evicted { server: u64, oldest: u64, sent: u64 },
}

impl ReplayBuffer {
    pub(crate) fn new(max_packets: usize, max_bytes: usize) -> Self {
        Self { sent: 0, kept: VecDeque::new(), kept_bytes: 0, max_packets, max_bytes }
    }

    /// Numbers `packet` (the next number) and keeps a copy, evicting the oldest packets
    /// beyond the bounds (the new one too, when it alone is over the byte bound).
    pub(crate) fn record(&mut self, packet: Bytes) -> u64 {
        self.sent += 1;
        self.kept_bytes += packet.len();
        self.kept.push_back((self.sent, packet));
        while self.kept.len() > self.max_packets || self.kept_bytes > self.max_bytes {
            match self.kept.pop_front() {
                Some((_, old)) => self.kept_bytes -= old.len(),
                None => break,
            }
        }
        self.sent
    }

    /// Packets written so far on this session.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Packets kept, and their bytes.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> (usize, usize) {
        (self.kept.len(), self.kept_bytes)
    }

    /// The packets after `server_read`, in order, to send again after a resume; the ones
    /// up to it are forgotten (the server has them).
    ///
    /// # Errors
    /// [`ReplayError`] when the server claims more than was sent, or when a packet it
    /// needs is no longer kept. The buffer is unchanged then.
    pub(crate) fn resend_after(&mut self, server_read: u64) -> Result<Vec<Bytes>, ReplayError> {
        if server_read > self.sent {
            return Err(ReplayError::Ahead { server: server_read, sent: self.sent });
        }
        if server_read < self.sent {
            let oldest = self.kept.front().map_or(self.sent + 1, |(n, _)| *n);
            if oldest > server_read + 1 {
                return Err(ReplayError::Evicted { server: server_read, oldest, sent: self.sent });
            }
        }
        while self.kept.front().is_some_and(|(n, _)| *n <= server_read) {
            if let Some((_, old)) = self.kept.pop_front() {
                self.kept_bytes -= old.len();
            }
        }
        Ok(self.kept.iter().map(|(_, p)| p.clone()).collect())
    }

    /// Forgets everything: a fresh session counts from 1 again.
    pub(crate) fn reset(&mut self) {
        self.sent = 0;
        self.kept.clear();
        self.kept_bytes = 0;
    }
}

/// Reconnect delays: `initial`, doubling up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self { next: initial.min(max), max }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    #[test]
    fn packets_are_numbered_from_one_and_resent_after_the_servers_count() {
        let mut buf = ReplayBuffer::new(10, 1000);
        for n in 1..=5u8 {
            assert_eq!(buf.record(packet(n, 3)), u64::from(n));
        }
        assert_eq!(buf.sent(), 5);
        let again = buf.resend_after(2).unwrap();
        assert_eq!(again, vec![packet(3, 3), packet(4, 3), packet(5, 3)]);
        // Those up to 2 are forgotten; 3.. are still kept for a later drop.
        assert_eq!(buf.kept(), (3, 9));
        assert_eq!(buf.resend_after(5).unwrap(), Vec::<Bytes>::new());
        assert_eq!(buf.kept(), (0, 0));
        // Numbering goes on across resumes.
        assert_eq!(buf.record(packet(6, 1)), 6);
    }

    #[test]
    fn the_buffer_is_bounded_by_packets_and_bytes() {
        let mut buf = ReplayBuffer::new(3, 10);
        for n in 1..=5u8 {
            buf.record(packet(n, 2));
        }
        assert_eq!(buf.kept(), (3, 6));
        assert_eq!(
            buf.resend_after(1),
            Err(ReplayError::Evicted { server: 1, oldest: 3, sent: 5 })
        );
        buf.record(packet(6, 8));
        // 6 + 8 bytes > 10: the oldest go first.
        assert_eq!(buf.kept(), (2, 10));
        assert_eq!(
            buf.resend_after(3),
            Err(ReplayError::Evicted { server: 3, oldest: 5, sent: 6 })
        );
        // A packet alone over the byte bound is not kept.
        buf.record(packet(7, 11));
        assert_eq!(buf.kept(), (0, 0));
        assert_eq!(buf.resend_after(7), Ok(Vec::new()));
    }

    #[test]
    fn a_server_ahead_of_the_client_is_refused() {
        let mut buf = ReplayBuffer::new(3, 10);
        buf.record(packet(1, 1));
        assert_eq!(buf.resend_after(2), Err(ReplayError::Ahead { server: 2, sent: 1 }));
        assert_eq!(buf.kept(), (1, 1));
        buf.reset();
        assert_eq!((buf.sent(), buf.kept()), (0, (0, 0)));
        assert_eq!(buf.record(packet(2, 1)), 1);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let delays: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        let mut capped = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(capped.next_delay(), Duration::from_secs(1));
    }
}
