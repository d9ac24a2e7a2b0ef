//! The embedded store (`--state-dir DIR`): one redb file, `DIR/state.redb`. redb's copy-on-write B-trees commit
//! atomically, so a crash or a kill mid-write leaves the last committed state, never a damaged file. Each value is
//! the time it was saved (Unix seconds, 8 bytes) and the snapshot; a state older than `--state-ttl` is never
//! restored, and is deleted when the store opens.

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redb::{Database, ReadableDatabase as _, ReadableTableMetadata as _, TableDefinition};

use super::{StateStore, StoreError};
use crate::clock::Clock;

/// Sensor id → saved-at seconds and snapshot.
const SENSORS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sensors");

/// The embedded store: a redb file.
pub struct EmbeddedStore {
    db: Database,
    ttl: Duration,
    clock: Clock,
}

fn failed(what: &str) -> impl Fn(&dyn std::fmt::Display) -> StoreError + '_ {
    move |e| StoreError(format!("{what}: {e}"))
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/state.redb`, keeping states for `ttl` after they were saved, on `clock`'s time; and
    /// deletes those already older.
    ///
    /// # Errors
    /// The directory or the file cannot be created or opened (another server holds it, or it is not a redb file).
    pub fn open(dir: &Path, ttl: Duration, clock: Clock) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| failed("cannot create the state directory")(&e))?;
        let path = dir.join("state.redb");
        let db = Database::create(&path).map_err(|e| failed(&format!("cannot open {}", path.display()))(&e))?;
        let store = Self { db, ttl, clock };
        let forgotten = store.forget_expired()?;
        if forgotten > 0 {
            tracing::info!(sensors = forgotten, "Forgot sensor states older than --state-ttl.");
        }
        Ok(store)
    }

    /// Deletes the states saved longer than the time-to-live ago (and makes the table if it is new): how many.
    fn forget_expired(&self) -> Result<usize, StoreError> {
        let now = seconds(self.clock.now());
        let txn = self.db.begin_write().map_err(|e| failed("cannot write the state")(&e))?;
        let removed = {
            let mut table = txn.open_table(SENSORS).map_err(|e| failed("cannot open the state table")(&e))?;
            let before = table.len().map_err(|e| failed("cannot read the state")(&e))?;
            table
                .retain(|_, value| !expired(value, now, self.ttl))
                .map_err(|e| failed("cannot forget old states")(&e))?;
            before - table.len().map_err(|e| failed("cannot read the state")(&e))?
        };
        txn.commit().map_err(|e| failed("cannot commit the state")(&e))?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }
}

/// Whether a stored value (saved-at seconds, then the snapshot) is older than `ttl` at `now` (damaged: yes).
fn expired(value: &[u8], now: u64, ttl: Duration) -> bool {
    let Some(saved) = value.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes) else { return true };
    now.saturating_sub(saved) > ttl.as_secs()
}

impl StateStore for EmbeddedStore {
    fn load(&self, sensor_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| failed("cannot read the state")(&e))?;
        let table = txn.open_table(SENSORS).map_err(|e| failed("cannot open the state table")(&e))?;
        let Some(value) = table.get(sensor_id).map_err(|e| failed("cannot read the state")(&e))? else {
            return Ok(None);
        };
        let value = value.value();
        if expired(value, seconds(self.clock.now()), self.ttl) {
            return Ok(None);
        }
        Ok(Some(value[8..].to_vec()))
    }

    fn save(&self, states: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let saved_at = seconds(self.clock.now()).to_le_bytes();
        let txn = self.db.begin_write().map_err(|e| failed("cannot write the state")(&e))?;
        {
            let mut table = txn.open_table(SENSORS).map_err(|e| failed("cannot open the state table")(&e))?;
            let mut value = Vec::new();
            for (sensor_id, snapshot) in states {
                value.clear();
                value.extend_from_slice(&saved_at);
                value.extend_from_slice(snapshot);
                table.insert(sensor_id.as_str(), value.as_slice()).map_err(|e| failed("cannot save a state")(&e))?;
            }
        }
        txn.commit().map_err(|e| failed("cannot commit the state")(&e))
    }
}
