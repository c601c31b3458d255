//! Wake-ups for long-polling agents: a local table of waiters per printer, fed directly on
//! this instance and, on Postgres, by LISTEN/NOTIFY so a command queued on one server instance
//! reaches an agent held open on another.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use tokio::sync::{watch, Notify};

pub use crate::db::NOTIFY_CHANNEL as CHANNEL;

pub struct Notifier {
    waiters: Mutex<HashMap<i64, Arc<Notify>>>,
    /// Flips to true once when the server starts shutting down; held polls then answer at once.
    shutdown: watch::Sender<bool>,
    held: AtomicUsize,
    /// Counts changes of printers seen by this instance (reports, commands), so that open
    /// dashboards re-render at once.
    changes: watch::Sender<u64>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            waiters: Mutex::default(),
            shutdown: watch::Sender::new(false),
            held: AtomicUsize::new(0),
            changes: watch::Sender::new(0),
        }
    }
}

/// Counts one held long poll while alive (dropped when the request ends or is abandoned).
pub struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Notifier {
    /// Starts the shutdown of this instance: held polls end and the HTTP server stops.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves once the shutdown has started (at once if it already has).
    pub async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        // The sender lives as long as self, so this only ends with a shutdown.
        let _ = rx.wait_for(|down| *down).await;
    }

    /// Marks a long poll as held until the returned guard is dropped.
    pub fn hold(&self) -> Held<'_> {
        self.held.fetch_add(1, Ordering::Relaxed);
        Held(&self.held)
    }

    /// Long polls held right now on this instance.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The wake-up handle of one printer; create its `notified()` future before checking for
    /// work, so a wake-up between the check and the wait is not lost.
    pub fn handle(&self, printer: i64) -> Arc<Notify> {
        let mut map = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(printer).or_default().clone()
    }

    pub fn wake(&self, printer: i64) {
        {
            let map = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get(&printer) {
                n.notify_waiters();
            }
        }
        self.printers_changed();
    }

    /// A printer's state, queue or job changed (committed).
    pub fn printers_changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Follows `printers_changed` (a dashboard's live view).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Listens on Postgres for commands queued by any instance. Runs on its own thread until the
/// notifier is dropped (the server stopped).
pub fn spawn_pg_listener(url: String, notifier: Weak<Notifier>) {
    std::thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || {
            let mut backoff = Duration::from_millis(200);
            while notifier.strong_count() > 0 {
                match listen(&url, &notifier) {
                    Ok(()) => return,
                    Err(e) => {
                        if notifier.strong_count() == 0 {
                            return;
                        }
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the LISTEN thread"));
}

fn listen(url: &str, notifier: &Weak<Notifier>) -> Result<(), String> {
    let mut conn = PgConnection::establish(url).map_err(|e| e.to_string())?;
    diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    loop {
        let Some(n) = notifier.upgrade() else {
            return Ok(());
        };
        // Reads what arrived on the socket without a round trip.
        for note in conn.notifications_iter() {
            let note = note.map_err(|e| e.to_string())?;
            if let Ok(printer) = note.payload.parse::<i64>() {
                n.wake(printer);
            }
        }
        drop(n);
        std::thread::sleep(Duration::from_millis(25));
    }
}
