//! [`deliver_in_order`]: hands the messages of a stream to a handler one at a time, in
//! arrival order, with a bounded queue in front.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{Stream, StreamExt};
use pitaya_core::BoxFuture;
use tokio::sync::oneshot;

/// Turns one received item into the work that delivers it, or `None` to skip it.
pub(crate) type Deliver<T> = Box<dyn Fn(T) -> Option<BoxFuture<'static, ()>> + Send + Sync>;

/// Delivers the items of `intake` one at a time, in order, until `stop` fires (or its
/// sender is dropped) or `intake` ends.
///
/// The intake is read while a delivery is in progress, so a slow handler never backs up
/// into the NATS client: up to `capacity` items wait in the queue, and the ones beyond
/// are dropped, counted in `dropped` and logged once per overflow episode. On stop the
/// waiting items are discarded and the delivery in progress is finished; the caller
/// bounds that by aborting the task.
pub(crate) async fn deliver_in_order<T, S>(
    mut intake: S,
    capacity: usize,
    deliver: Deliver<T>,
    mut stop: oneshot::Receiver<()>,
    dropped: Arc<AtomicU64>,
    what: &'static str,
) where
    S: Stream<Item = T> + Unpin,
{
    let mut queue = VecDeque::new();
    let mut current: Option<BoxFuture<'static, ()>> = None;
    let mut overflowing = false;
    loop {
        while current.is_none() {
            match queue.pop_front() {
                Some(item) => current = deliver(item),
                None => break,
            }
        }
        tokio::select! {
            biased;
            _ = &mut stop => break,
            () = run(&mut current) => current = None,
            item = intake.next() => match item {
                Some(item) if queue.len() < capacity => {
                    overflowing = false;
                    queue.push_back(item);
                }
                Some(_) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    if !overflowing {
                        overflowing = true;
                        tracing::warn!(what, capacity, "nats: buffer full, dropping messages");
                    }
                }
                // The connection is closed for good.
                None => break,
            },
        }
    }
    if let Some(current) = current {
        current.await;
    }
}

/// Runs the delivery in progress; pending while there is none.
async fn run(current: &mut Option<BoxFuture<'static, ()>>) {
    match current {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    fn recorder(log: Arc<Mutex<Vec<u32>>>, pause: Duration) -> Deliver<u32> {
        Box::new(move |n| {
            let log = log.clone();
            Some(Box::pin(async move {
                tokio::time::sleep(pause).await;
                log.lock().unwrap().push(n);
            }))
        })
    }

    #[tokio::test(start_paused = true)]
    async fn in_order_with_a_bounded_queue() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(AtomicU64::new(0));
        let (_stop_tx, stop) = oneshot::channel();
        // Ten items arrive at once; one is delivered while three wait; six are dropped.
        let intake = futures_util::stream::iter(0..10).chain(futures_util::stream::pending());
        let task = tokio::spawn(deliver_in_order(
            Box::pin(intake),
            3,
            recorder(log.clone(), Duration::from_millis(10)),
            stop,
            dropped.clone(),
            "test",
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*log.lock().unwrap(), [0, 1, 2, 3]);
        assert_eq!(dropped.load(Ordering::Relaxed), 6);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn stop_discards_the_queue_but_finishes_the_current_delivery() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop) = oneshot::channel();
        let intake = futures_util::stream::iter(0..5).chain(futures_util::stream::pending());
        let task = tokio::spawn(deliver_in_order(
            Box::pin(intake),
            10,
            recorder(log.clone(), Duration::from_millis(10)),
            stop,
            Arc::default(),
            "test",
        ));
        tokio::time::sleep(Duration::from_millis(15)).await;
        drop(stop_tx);
        task.await.unwrap();
        assert_eq!(*log.lock().unwrap(), [0, 1]);
    }
}
