//! A sink's task: takes batches from its queue and delivers them through its [`Deliver`], retrying with
//! exponential backoff and full jitter while the counterpart is away, so that nothing is lost to an outage shorter
//! than the queue; counts what is sent and what is dropped.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{DropReason, SinkAlert, SinkCounts};
use crate::clock::timer_deadline;

/// The most alerts one delivery carries.
pub(super) const MAX_BATCH: usize = 500;
/// The first pause after a failed delivery; it doubles, with full jitter, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a delivery failed.
#[derive(Debug)]
pub(super) enum DeliveryError {
    /// The counterpart is away or failing for now: try again later.
    Retry(String),
    /// The counterpart refused the alerts for good: trying again would fail the same way.
    Reject(String),
}

/// How one kind of sink delivers.
pub(super) trait Deliver: Send + 'static {
    /// Delivers `batch`, all of it or, on error, as if none of it.
    fn deliver(&mut self, batch: &[Arc<SinkAlert>]) -> impl Future<Output = Result<(), DeliveryError>> + Send;

    /// When the sink has work of its own to do without any alert (a file to complete); `None`: never.
    fn due_at(&self) -> Option<Instant> {
        None
    }

    /// Does that work.
    fn due(&mut self) -> impl Future<Output = Result<(), DeliveryError>> + Send {
        async { Ok(()) }
    }

    /// Before the task ends, however it ends.
    fn finish(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Runs a sink until `finish` is cancelled and its queue is drained and delivered, or until `abandon` is
/// cancelled: then what it still holds is counted as dropped at the flush deadline.
pub(super) async fn run<D: Deliver>(
    mut sink: D,
    mut inbox: mpsc::Receiver<Arc<SinkAlert>>,
    counts: Arc<SinkCounts>,
    (finish, abandon): (CancellationToken, CancellationToken),
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut finishing = false;
    let completed = loop {
        if batch.is_empty() {
            let due = sink.due_at();
            tokio::select! {
                biased;
                () = abandon.cancelled() => break false,
                () = finish.cancelled(), if !finishing => {
                    // No more alerts come in; those queued are still delivered.
                    inbox.close();
                    finishing = true;
                    continue;
                }
                taken = inbox.recv_many(&mut batch, MAX_BATCH) => if taken == 0 {
                    break true;
                },
                () = sleep_until(due) => {
                    if !retry(&mut sink, Work::Due, &counts, &abandon).await {
                        break false;
                    }
                    continue;
                }
            }
        }
        // Work of its own that came due goes first, so that a sink kept busy still does it (a file completed by its
        // age, firing alerts sent again before Alertmanager would end them).
        if sink.due_at().is_some_and(|at| at <= timer_deadline(Duration::ZERO))
            && !retry(&mut sink, Work::Due, &counts, &abandon).await
        {
            break false;
        }
        if !retry(&mut sink, Work::Batch(&batch), &counts, &abandon).await {
            break false;
        }
        batch.clear();
    };
    if !completed {
        let left = batch.len() + inbox.len();
        if left > 0 {
            counts.dropped(DropReason::FlushDeadline, left as u64, "they were still queued or unsent");
        }
    }
    sink.finish().await;
}

/// What a sink is asked to do.
#[derive(Clone, Copy)]
enum Work<'a> {
    /// Deliver these alerts.
    Batch(&'a [Arc<SinkAlert>]),
    /// Its own work ([`Deliver::due`]).
    Due,
}

/// Does `work` until it succeeds or is refused for good, pausing with backoff and full jitter in between;
/// `false` when `abandon` came first.
async fn retry<D: Deliver>(sink: &mut D, work: Work<'_>, counts: &SinkCounts, abandon: &CancellationToken) -> bool {
    let count = match work {
        Work::Batch(batch) => batch.len(),
        Work::Due => 0,
    };
    let mut ceiling = FIRST_BACKOFF;
    let mut failing = false;
    loop {
        let attempt = async {
            match work {
                Work::Batch(batch) => sink.deliver(batch).await,
                Work::Due => sink.due().await,
            }
        };
        let outcome = tokio::select! {
            biased;
            () = abandon.cancelled() => return false,
            outcome = attempt => outcome,
        };
        match outcome {
            Ok(()) => {
                counts.sent.increment(count as u64);
                if failing {
                    tracing::info!(sink = %counts.name, "Sink delivering again.");
                }
                return true;
            }
            Err(DeliveryError::Reject(why)) => {
                counts.dropped(DropReason::Rejected, count as u64, &why);
                return true;
            }
            Err(DeliveryError::Retry(why)) => {
                if !failing {
                    tracing::warn!(sink = %counts.name, "Sink cannot deliver; retrying with backoff: {why}");
                    failing = true;
                }
                let pause = ceiling.mul_f64(fastrand::f64());
                ceiling = (ceiling * 2).min(MAX_BACKOFF);
                tokio::select! {
                    biased;
                    () = abandon.cancelled() => return false,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::telemetry::Telemetry;

    /// A sink whose own work is always due: it counts its deliveries and its own work.
    struct AlwaysDue {
        delivered: Arc<AtomicUsize>,
        due: Arc<AtomicUsize>,
    }

    impl Deliver for AlwaysDue {
        async fn deliver(&mut self, batch: &[Arc<SinkAlert>]) -> Result<(), DeliveryError> {
            self.delivered.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }

        fn due_at(&self) -> Option<Instant> {
            Some(timer_deadline(Duration::ZERO))
        }

        async fn due(&mut self) -> Result<(), DeliveryError> {
            self.due.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn alert() -> Arc<SinkAlert> {
        Arc::new(crate::sinks::test_alert(1))
    }

    #[tokio::test]
    async fn a_sink_kept_busy_still_does_its_own_work_when_due() {
        let (delivered, due) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let sink = AlwaysDue { delivered: Arc::clone(&delivered), due: Arc::clone(&due) };
        let (queue, inbox) = mpsc::channel(10);
        // Every batch is queued before the task first looks: it never waits on an empty queue.
        for _ in 0..10 {
            queue.try_send(alert()).unwrap();
        }
        drop(queue);
        let counts = Arc::new(SinkCounts::new("busy", &Telemetry::off()));
        let stops = (CancellationToken::new(), CancellationToken::new());
        run(sink, inbox, counts, stops).await;
        assert_eq!(delivered.load(Ordering::SeqCst), 10);
        assert!(due.load(Ordering::SeqCst) >= 1, "its own work ran between deliveries");
    }
}
