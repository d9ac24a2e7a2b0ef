//! The embedded store (`--state-dir DIR`): one redb file, `DIR/state.redb`. redb's copy-on-write B-trees commit
//! atomically, so a crash or a kill mid-write leaves the last committed state, never a damaged file. Each entry is
//! the time it was saved (Unix seconds, 8 bytes), its revision (8 bytes: one more than the sensor's last, so a save
//! is a compare-and-set inside the write transaction) and the value; a state older than `--state-ttl` is never
//! restored, and is deleted when the store opens. One process at a time opens the file (redb locks it).

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _, TableDefinition};

use super::{Expect, StateStore, StoreError, Stored, Write, Written};
use crate::clock::Clock;

/// Sensor id → saved-at seconds, revision and value.
const SENSORS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sensor_states");
/// The bytes before the value: saved-at seconds and revision.
const HEADER: usize = 16;

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

/// Whether an entry is older than `ttl` at `now` (damaged: yes).
fn expired(entry: &[u8], now: u64, ttl: Duration) -> bool {
    let Some(saved) = entry.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes) else { return true };
    entry.len() < HEADER || now.saturating_sub(saved) > ttl.as_secs()
}

/// An entry's revision (as it is stored, expired or not).
fn revision(entry: &[u8]) -> u64 {
    entry.get(8..HEADER).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

impl StateStore for EmbeddedStore {
    fn load(&self, sensor_id: &str) -> Result<Option<Stored>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| failed("cannot read the state")(&e))?;
        let table = txn.open_table(SENSORS).map_err(|e| failed("cannot open the state table")(&e))?;
        let Some(entry) = table.get(sensor_id).map_err(|e| failed("cannot read the state")(&e))? else {
            return Ok(None);
        };
        let entry = entry.value();
        if expired(entry, seconds(self.clock.now()), self.ttl) {
            return Ok(None);
        }
        Ok(Some(Stored { value: entry[HEADER..].to_vec(), revision: revision(entry) }))
    }

    fn save(&self, writes: &[Write]) -> Result<Vec<Written>, StoreError> {
        let now = seconds(self.clock.now());
        let txn = self.db.begin_write().map_err(|e| failed("cannot write the state")(&e))?;
        let mut written = Vec::with_capacity(writes.len());
        {
            let mut table = txn.open_table(SENSORS).map_err(|e| failed("cannot open the state table")(&e))?;
            let mut entry = Vec::new();
            for write in writes {
                // What is there: its revision, and whether it counts (an expired state is as good as none).
                let (last, present) = match table.get(write.sensor_id.as_str()) {
                    Ok(Some(old)) => (revision(old.value()), !expired(old.value(), now, self.ttl)),
                    Ok(None) => (0, false),
                    Err(e) => return Err(failed("cannot read the state")(&e)),
                };
                let holds = match write.expect {
                    Expect::Any => true,
                    Expect::Absent => !present,
                    Expect::Revision(expected) => present && last == expected,
                };
                if !holds {
                    written.push(Written::Superseded);
                    continue;
                }
                let next = last + 1;
                entry.clear();
                entry.extend_from_slice(&now.to_le_bytes());
                entry.extend_from_slice(&next.to_le_bytes());
                entry.extend_from_slice(&write.value);
                table
                    .insert(write.sensor_id.as_str(), entry.as_slice())
                    .map_err(|e| failed("cannot save a state")(&e))?;
                written.push(Written::Saved(next));
            }
        }
        txn.commit().map_err(|e| failed("cannot commit the state")(&e))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn write(sensor_id: &str, value: &[u8], expect: Expect) -> Write {
        Write { sensor_id: sensor_id.to_owned(), value: value.to_vec(), expect }
    }

    #[test]
    fn a_save_is_a_compare_and_set_on_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), Duration::from_secs(3_600), Clock::System).unwrap();
        assert_eq!(store.save(&[write("a", b"one", Expect::Absent)]).unwrap(), [Written::Saved(1)]);
        // Expecting nothing where something is, or an older revision: not written.
        assert_eq!(store.save(&[write("a", b"two", Expect::Absent)]).unwrap(), [Written::Superseded]);
        assert_eq!(store.save(&[write("a", b"two", Expect::Revision(7))]).unwrap(), [Written::Superseded]);
        assert_eq!(store.load("a").unwrap(), Some(Stored { value: b"one".to_vec(), revision: 1 }));
        // One batch, each write on its own: the matching one is written.
        let batch = [write("a", b"two", Expect::Revision(1)), write("b", b"x", Expect::Revision(1))];
        assert_eq!(store.save(&batch).unwrap(), [Written::Saved(2), Written::Superseded]);
        assert_eq!(store.save(&[write("a", b"three", Expect::Any)]).unwrap(), [Written::Saved(3)]);
        assert_eq!(store.load("a").unwrap(), Some(Stored { value: b"three".to_vec(), revision: 3 }));
        assert_eq!(store.load("b").unwrap(), None);
    }

    #[test]
    fn an_expired_state_is_as_good_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000_000));
        let store = EmbeddedStore::open(dir.path(), Duration::from_secs(60), Clock::Manual(clock.clone())).unwrap();
        assert_eq!(store.save(&[write("a", b"old", Expect::Absent)]).unwrap(), [Written::Saved(1)]);
        clock.advance(Duration::from_secs(61));
        assert_eq!(store.load("a").unwrap(), None);
        // Taken up afresh (nothing loaded): written, its revision still counting up.
        assert_eq!(store.save(&[write("a", b"new", Expect::Absent)]).unwrap(), [Written::Saved(2)]);
        assert_eq!(store.load("a").unwrap().map(|s| s.value), Some(b"new".to_vec()));
    }
}
