//! The command worker: sends queued offer commands to devices and resends them, on a
//! doubling schedule, until the device answers or the offer lapses.

use std::sync::Arc;
use std::time::Duration;

use protocol::clock::Clock;
use protocol::retry::Backoff;
use protocol::Timestamp;
use rumqttc::{AsyncClient, QoS};
use tokio::sync::watch;

use crate::ops::events::{self, Emit};
use crate::ops::metrics::Metrics;
use crate::store::{outbox, tickets, Store, StoreError};
use crate::tickets::TicketState;

/// Settings of the command worker.
#[derive(Debug, Clone)]
pub struct CommandWorker {
    /// Resend schedule of an unanswered command: the first resend after `first`,
    /// doubling up to `max`.
    pub resend: Backoff,
    /// How often the outbox is checked.
    pub poll: Duration,
}

impl CommandWorker {
    /// A worker that first resends after `resend_after`, doubling up to 64 times that.
    pub fn new(resend_after: Duration, poll: Duration) -> Self {
        CommandWorker {
            resend: Backoff::new(resend_after, resend_after.saturating_mul(64)),
            poll,
        }
    }

    /// Sends due commands until `stop`.
    pub async fn run(
        self,
        store: Store,
        client: AsyncClient,
        connected: watch::Receiver<bool>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            if *connected.borrow() {
                if let Err(e) = self.send_due(&store, &client, clock.now(), &metrics).await {
                    events::OutboxFailed {
                        outbox: "commands",
                        error: &e,
                    }
                    .emit(&metrics);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// One pass over the outbox: the number of commands published. Resends and expiry
    /// both run on `now`, the service's clock, the one offers state their expiry in.
    pub async fn send_due(
        &self,
        store: &Store,
        client: &AsyncClient,
        now: Timestamp,
        metrics: &Metrics,
    ) -> Result<usize, StoreError> {
        let resend = |attempts: u32| self.resend.delay(attempts).as_millis() as u64;
        let mut sent = 0;
        let mut full = false;
        for cmd in store.claim_commands(now.0, 500, resend).await? {
            if cmd.expires_ms.is_some_and(|e| now.0 >= e) {
                self.expire(store, &cmd, now, metrics).await?;
                continue;
            }
            // Never wait on the request channel: a full one is backpressure; the claimed
            // sends go back, due again now.
            if full
                || client
                    .try_publish(cmd.topic, QoS::AtLeastOnce, false, cmd.payload)
                    .is_err()
            {
                full = true;
                store.command_unsent(&cmd.command_id, now.0).await?;
                continue;
            }
            events::CommandSent {
                command_id: &cmd.command_id,
                attempt: cmd.attempts + 1,
            }
            .emit(metrics);
            sent += 1;
        }
        Ok(sent)
    }

    /// An offer past its expiry: no more sends, and a ticket whose offer never reached
    /// the device is withdrawn.
    async fn expire(
        &self,
        store: &Store,
        cmd: &outbox::DueCommand,
        now: Timestamp,
        metrics: &Metrics,
    ) -> Result<(), StoreError> {
        let mut tx = store.begin().await?;
        if !outbox::expire_command(&mut tx, &cmd.command_id).await? {
            return Ok(()); // another replica got there first
        }
        if let Some(t) = cmd.ticket_id {
            if tickets::state(&mut tx, t).await? == TicketState::Opened {
                tickets::move_ticket(
                    &mut tx,
                    t,
                    TicketState::Cancelled,
                    "policy",
                    Some("the offer never reached the device"),
                    now.0,
                )
                .await?;
            }
        }
        tx.commit().await?;
        events::CommandExpired {
            command_id: &cmd.command_id,
        }
        .emit(metrics);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_double_up_to_sixty_four_times_the_first() {
        let w = CommandWorker::new(Duration::from_secs(60), Duration::from_millis(250));
        let secs: Vec<u64> = [0, 1, 2, 6, 7, 30]
            .iter()
            .map(|&a| w.resend.delay(a).as_secs())
            .collect();
        assert_eq!(secs, [60, 120, 240, 3840, 3840, 3840]);
    }
}
