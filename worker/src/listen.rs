//! LISTEN for queue notifications: lane wake-ups and cancel requests.
//!
//! The listener holds one dedicated connection. When it drops (Postgres restarted), the loop
//! reconnects with backoff and wakes every lane, because notifications sent meanwhile are lost;
//! the lanes' one-second polling covers the gap either way.

use std::sync::Arc;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use wharf_shared::jobs::NOTIFY_CHANNEL;

use crate::runtime::{db_backoff, pause, Shared};

pub(crate) async fn listen_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut failures = 0u32;
    loop {
        let connected = tokio::select! {
            r = connect(&shared) => r,
            _ = stop.cancelled() => return,
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "cannot LISTEN; relying on polling until reconnected");
                if !pause(db_backoff(failures), &stop).await {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        shared.wake_all();
        loop {
            let next = tokio::select! {
                n = listener.try_recv() => n,
                _ = stop.cancelled() => return,
            };
            match next {
                Ok(Some(notification)) => shared.signal(notification.payload()),
                Ok(None) => {
                    tracing::warn!("LISTEN connection lost; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN failed; reconnecting");
                    break;
                }
            }
        }
        if !pause(db_backoff(1), &stop).await {
            return;
        }
    }
}

async fn connect(shared: &Shared) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&shared.pool).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}
