//! An in-memory filter of the keys that have a live row in the embedded
//! store's `dedup_claims` table, so that a claim of a new key (nearly every
//! claim) need not read the table: "absent" is certain, "maybe" costs the
//! read it cost before.
//!
//! Invariants:
//! - No false negatives once loaded: a key whose row is live (`expires_at`
//!   later than now) is never answered "absent". Every write of a row
//!   inserts its key, with the row's own `expires_at`, before the write can
//!   be seen by a claim (see `crate::dedup::local`); [`KeyFilter::load`]
//!   inserts every live row already on disk. Until it has, every lookup
//!   answers "maybe".
//! - Expiry without deletes: a Bloom filter cannot forget a key, so keys are
//!   kept in buckets by expiry time, and a bucket is dropped whole once its
//!   span has passed (every key in it has expired).
//!   [`KeyFilter::drop_expired`] runs with the store's pruning.
//! - Memory grows with the keys: a bucket starts at [`MIN_KEYS`] (or the
//!   size its predecessor reached) and, when full, adds a part for twice
//!   the keys it holds (its capacity triples), so an idle gateway holds a
//!   few KiB. Each part is sized for a [`FALSE_POSITIVE`] rate: about 14.4
//!   bits (1.8 bytes) per key of capacity, so 10,000,000 live keys take
//!   about 18 MB in buckets sized by the load or by their predecessor, and
//!   up to three times that in a bucket that grew by parts.
//!
//! Keys are SHA-256 digests, so their first 8 bytes are the filter's hash
//! as they are: no rehashing.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use fastbloom::AtomicBloomFilter;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use super::EventKey;

/// The false-positive rate of one part. A lookup checks every part of every
/// bucket: in steady state, one part in each of 5 to 9 buckets (see
/// [`span_shift`]), so new keys are read from the store about 0.5% to 1% of
/// the time; a bucket that grew by parts adds up to this much per part.
const FALSE_POSITIVE: f64 = 0.001;
/// The fewest keys a part is sized for (about 1.8 KiB).
pub const MIN_KEYS: usize = 1024;
/// A bucket spans at least 2^10 ms (about a second).
const MIN_SHIFT: u32 = 10;
/// A bucket spans at most 2^40 ms (about 35 years): no overflow, whatever
/// the `expires_at`.
const MAX_SHIFT: u32 = 40;
/// A bucket spans at least an eighth of the keys' TTL: a key's bucket is
/// dropped at most a quarter of its TTL after the key expired, and a TTL is
/// covered by at most 9 buckets.
const SLICES: u64 = 8;

/// See the module documentation.
pub struct KeyFilter {
    buckets: RwLock<Vec<Bucket>>,
    /// Every live row on disk has been inserted: "absent" can be trusted.
    loaded: AtomicBool,
    /// Set once the load has been started (it runs once).
    loading: AtomicBool,
    /// Lookups answered "absent": reads the store was spared.
    ruled_out: AtomicU64,
    /// Wakes those waiting for the load (tests, and nothing on the request
    /// path).
    load_done: tokio::sync::watch::Sender<bool>,
}

/// The keys expiring within one span of time.
struct Bucket {
    /// The span is 2^shift ms ...
    shift: u32,
    /// ... and the bucket holds the keys with `expires_at >> shift == slice`.
    slice: i64,
    /// The last part takes the inserts; a full one is followed by a larger one.
    parts: Vec<Part>,
}

struct Part {
    bloom: AtomicBloomFilter,
    capacity: usize,
    /// Inserts started in this part; past `capacity`, it is full.
    inserts: AtomicUsize,
}

impl Part {
    fn new(capacity: usize) -> Part {
        let capacity = capacity.max(MIN_KEYS);
        Part {
            bloom: AtomicBloomFilter::with_false_pos(FALSE_POSITIVE).expected_items(capacity),
            capacity,
            inserts: AtomicUsize::new(0),
        }
    }

    /// Inserts `hash` unless the part is full.
    fn try_insert(&self, hash: u64) -> bool {
        if self.inserts.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            return false;
        }
        self.bloom.insert_hash(hash);
        true
    }

    fn keys(&self) -> usize {
        self.inserts.load(Ordering::Relaxed).min(self.capacity)
    }
}

impl Bucket {
    /// The first instant at which every key in the bucket has expired.
    fn end(&self) -> i64 {
        (self.slice << self.shift).saturating_add(1 << self.shift)
    }

    fn keys(&self) -> usize {
        self.parts.iter().map(Part::keys).sum()
    }

    fn try_insert(&self, hash: u64) -> bool {
        self.parts.last().is_some_and(|p| p.try_insert(hash))
    }

    fn may_contain(&self, hash: u64) -> bool {
        self.parts.iter().any(|p| p.bloom.contains_hash(hash))
    }
}

/// The filter's hash of `key`: its first 8 bytes (it is a digest already).
fn hash(key: &EventKey) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = key.0;
    u64::from_le_bytes([a, b, c, d, e, f, g, h])
}

/// The span of the buckets for keys that live `ttl_ms`: the smallest power
/// of two of milliseconds at least an eighth of it (so 5 to 9 buckets cover
/// the TTL), within [`MIN_SHIFT`] and [`MAX_SHIFT`].
pub fn span_shift(ttl_ms: i64) -> u32 {
    let eighth = u64::try_from(ttl_ms).unwrap_or(0).div_ceil(SLICES);
    eighth
        .clamp(1 << MIN_SHIFT, 1 << MAX_SHIFT)
        .next_power_of_two()
        .trailing_zeros()
}

impl Default for KeyFilter {
    fn default() -> Self {
        KeyFilter {
            buckets: RwLock::default(),
            loaded: AtomicBool::new(false),
            loading: AtomicBool::new(false),
            ruled_out: AtomicU64::new(0),
            load_done: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl KeyFilter {
    fn read(&self) -> RwLockReadGuard<'_, Vec<Bucket>> {
        self.buckets.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<Bucket>> {
        self.buckets.write().unwrap_or_else(|p| p.into_inner())
    }

    /// False only if `key` certainly has no live row: the filter is loaded
    /// and no bucket holds it.
    pub fn may_contain(&self, key: &EventKey) -> bool {
        // Acquire: pairs with the load's Release, so every key the load
        // inserted is seen by a lookup that sees `loaded`.
        if !self.loaded.load(Ordering::Acquire) {
            return true;
        }
        let hash = hash(key);
        let maybe = self.read().iter().any(|b| b.may_contain(hash));
        if !maybe {
            self.ruled_out.fetch_add(1, Ordering::Relaxed);
        }
        maybe
    }

    /// How many lookups were answered "absent" (each a read spared).
    pub fn ruled_out(&self) -> u64 {
        self.ruled_out.load(Ordering::Relaxed)
    }

    /// Adds `key`, whose row lives until `expires_at` (unix ms, exactly as
    /// written in the row) for a TTL of `ttl_ms`.
    pub fn insert(&self, key: &EventKey, expires_at: i64, ttl_ms: i64) {
        self.insert_in(hash(key), expires_at, span_shift(ttl_ms));
    }

    fn insert_in(&self, hash: u64, expires_at: i64, shift: u32) {
        let slice = expires_at >> shift;
        let found = |b: &Bucket| b.shift == shift && b.slice == slice;
        if self
            .read()
            .iter()
            .find(|b| found(b))
            .is_some_and(|b| b.try_insert(hash))
        {
            return;
        }
        // The bucket is missing or full: add it, or a part twice as large.
        let mut buckets = self.write();
        let at = match buckets.iter().position(found) {
            Some(at) => at,
            None => {
                // Sized for as many keys as the span before it got: the
                // steady rate of a route fills each bucket about as much.
                let before = buckets
                    .iter()
                    .find(|b| b.shift == shift && b.slice + 1 == slice)
                    .map_or(0, Bucket::keys);
                buckets.push(Bucket {
                    shift,
                    slice,
                    parts: vec![Part::new(before)],
                });
                buckets.len() - 1
            }
        };
        let bucket = &mut buckets[at];
        if !bucket.try_insert(hash) {
            let grown = bucket.keys() * 2;
            bucket.parts.push(Part::new(grown));
            bucket.try_insert(hash);
        }
    }

    /// Drops the buckets whose keys have all expired at `now` (unix ms);
    /// returns how many keys went with them.
    pub fn drop_expired(&self, now: i64) -> usize {
        let mut dropped = 0;
        self.write().retain(|b| {
            let live = b.end() > now;
            if !live {
                dropped += b.keys();
            }
            live
        });
        dropped
    }

    /// How many keys the filter holds (expired ones until their bucket goes).
    pub fn keys(&self) -> usize {
        self.read().iter().map(Bucket::keys).sum()
    }

    /// The memory the filter's bits take, in bytes.
    pub fn bytes(&self) -> usize {
        let parts = self.read();
        parts
            .iter()
            .flat_map(|b| &b.parts)
            .map(|p| p.bloom.num_bits() / 8)
            .sum()
    }

    /// Whether the load has finished: "absent" is trusted from then on.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Waits until the load has finished (for tests; never resolves if the
    /// load failed).
    pub async fn wait_loaded(&self) {
        let _ = self.load_done.subscribe().wait_for(|done| *done).await;
    }

    /// True for the one caller that should run the load.
    pub fn start_loading(&self) -> bool {
        !self.loading.swap(true, Ordering::AcqRel)
    }

    /// Inserts every row of `dedup_claims` still live at `now` (in flight or
    /// committed: a row too many only costs a read), then trusts "absent".
    /// Rows written meanwhile are inserted by their writers, so the snapshot
    /// this reads may miss them. Buckets span an eighth of the longest time
    /// left to a row, and are sized by counting their rows first: a filter
    /// rebuilt over millions of keys needs no growing parts.
    pub fn load(&self, conn: &Connection, now: i64) -> rusqlite::Result<usize> {
        let snapshot = conn.unchecked_transaction()?;
        let latest: Option<i64> = snapshot
            .query_row("SELECT max(expires_at) FROM dedup_claims", [], |r| r.get(0))
            .optional()?
            .flatten();
        let mut loaded = 0;
        if let Some(latest) = latest {
            // Past rows are not loaded; a store of them spans the least.
            let shift = span_shift(latest - now);
            self.presize(&snapshot, now, shift)?;
            let mut rows = snapshot
                .prepare("SELECT key, expires_at FROM dedup_claims WHERE expires_at > ?1")?;
            let mut rows = rows.query([now])?;
            while let Some(row) = rows.next()? {
                // A key that is not a 32-byte blob was not written by
                // hookgate, and no claim's lookup can match it.
                let ValueRef::Blob(key) = row.get_ref(0)? else {
                    continue;
                };
                let Ok(key) = <[u8; 32]>::try_from(key) else {
                    continue;
                };
                self.insert_in(hash(&EventKey(key)), row.get(1)?, shift);
                loaded += 1;
            }
        }
        self.loaded.store(true, Ordering::Release);
        self.load_done.send_replace(true);
        Ok(loaded)
    }

    /// Adds a part sized for the rows each bucket will get from the load.
    fn presize(&self, conn: &Connection, now: i64, shift: u32) -> rusqlite::Result<()> {
        let mut counts = conn.prepare(
            "SELECT expires_at >> ?2, count(*) FROM dedup_claims WHERE expires_at > ?1 GROUP BY 1",
        )?;
        let counts = counts
            .query_map(rusqlite::params![now, shift], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut buckets = self.write();
        for (slice, rows) in counts {
            let part = Part::new(usize::try_from(rows).unwrap_or(MIN_KEYS));
            match buckets
                .iter_mut()
                .find(|b| b.shift == shift && b.slice == slice)
            {
                Some(bucket) => bucket.parts.push(part),
                None => buckets.push(Bucket {
                    shift,
                    slice,
                    parts: vec![part],
                }),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn key(i: u64) -> EventKey {
        // Digests, as the store's keys are.
        use sha2::Digest;
        EventKey(sha2::Sha256::digest(i.to_le_bytes()).into())
    }

    fn loaded() -> KeyFilter {
        let filter = KeyFilter::default();
        filter.loaded.store(true, Ordering::Release);
        filter
    }

    fn parts(filter: &KeyFilter) -> Vec<usize> {
        filter.read().iter().map(|b| b.parts.len()).collect()
    }

    #[test]
    fn every_inserted_key_is_found_and_few_others_are() {
        let filter = loaded();
        let now = 1_700_000_000_000;
        // Many buckets (TTLs from 1 s to 2 days), each growing parts.
        for i in 0..100_000u64 {
            let ttl = 1000 * (1 + (i % 7) as i64 * 30_000);
            filter.insert(&key(i), now + ttl - (i % 1000) as i64, ttl);
        }
        assert_eq!(filter.keys(), 100_000);
        assert!((0..100_000).all(|i| filter.may_contain(&key(i))));
        assert_eq!(filter.ruled_out(), 0);
        let positives = (100_000..200_000)
            .filter(|&i| filter.may_contain(&key(i)))
            .count();
        // Each part is sized for 0.1%, and a lookup checks them all: here
        // about 30 parts (7 TTLs, each bucket grown from the smallest part).
        assert!(positives < 3_000, "{positives} false positives in 100000");
        assert_eq!(filter.ruled_out(), 100_000 - positives as u64);
    }

    #[test]
    fn until_loaded_every_key_may_be_there() {
        let filter = KeyFilter::default();
        assert!(!filter.is_loaded());
        assert!(filter.may_contain(&key(1)));
        assert_eq!(filter.ruled_out(), 0);
        filter.loaded.store(true, Ordering::Release);
        assert!(filter.is_loaded());
        assert!(!filter.may_contain(&key(1)));
        assert_eq!(filter.ruled_out(), 1);
    }

    #[test]
    fn a_bucket_goes_once_all_its_keys_expired() {
        let filter = loaded();
        let ttl = 8 << 20; // spans of 2^20 ms
        assert_eq!(span_shift(ttl), 20);
        let start = 1000 << 20;
        filter.insert(&key(1), start, ttl);
        filter.insert(&key(2), start + (1 << 20) - 1, ttl); // same span
        filter.insert(&key(3), start + (1 << 20), ttl); // the next one
        assert_eq!(parts(&filter), [1, 1]);
        // Key 2 is live until start + 2^20 - 1: its bucket stays till then.
        assert_eq!(filter.drop_expired(start + (1 << 20) - 1), 0);
        assert!(filter.may_contain(&key(1)));
        assert_eq!(filter.drop_expired(start + (1 << 20)), 2);
        assert_eq!(filter.keys(), 1);
        assert!(!filter.may_contain(&key(1)) && !filter.may_contain(&key(2)));
        assert!(filter.may_contain(&key(3)));
        assert_eq!(filter.drop_expired(start + (2 << 20)), 1);
        assert_eq!(filter.keys(), 0);
        assert_eq!(filter.bytes(), 0);
    }

    #[test]
    fn spans_are_an_eighth_of_the_ttl_within_bounds() {
        assert_eq!(span_shift(0), MIN_SHIFT);
        assert_eq!(span_shift(-5), MIN_SHIFT);
        assert_eq!(span_shift(8 << 10), 10);
        assert_eq!(span_shift((8 << 10) + 1), 11);
        assert_eq!(span_shift(24 * HOUR), 24); // 4.7 h: 6 buckets a day
        assert_eq!(span_shift(i64::MAX), MAX_SHIFT);
        // The last instant of a bucket at the far end does not overflow.
        let filter = loaded();
        filter.insert(&key(1), i64::MAX, i64::MAX);
        assert_eq!(filter.drop_expired(i64::MAX - 1), 0);
        assert_eq!(filter.drop_expired(i64::MAX), 1);
    }

    #[test]
    fn memory_grows_with_the_keys() {
        let filter = loaded();
        let (ttl, at) = (HOUR, 1000 * HOUR);
        filter.insert(&key(0), at, ttl);
        let idle = filter.bytes();
        assert!(idle <= 2048, "one key takes {idle} bytes");
        // A full part is followed by one for twice the keys the bucket holds.
        for i in 1..(MIN_KEYS as u64 * 3) {
            filter.insert(&key(i), at, ttl);
        }
        assert_eq!(parts(&filter), [2]);
        let caps: Vec<usize> = filter.read()[0].parts.iter().map(|p| p.capacity).collect();
        assert_eq!(caps, [MIN_KEYS, 2 * MIN_KEYS]);
        filter.insert(&key(99_999), at, ttl);
        assert_eq!(parts(&filter), [3]);
        assert_eq!(filter.keys(), 3 * MIN_KEYS + 1);
        // About 14.4 bits a key of capacity: 1 + 2 + 6 times 1024 keys.
        let bytes = filter.bytes();
        assert!((16_000..17_000).contains(&bytes), "{bytes} bytes");
        // The next span starts at the size this one reached.
        filter.insert(&key(100_000), at + (1 << span_shift(ttl)), ttl);
        let next = filter.read()[1].parts[0].capacity;
        assert_eq!(next, 3 * MIN_KEYS + 1);
        // A span with no key in the one before it starts small.
        filter.insert(&key(100_001), at + (5 << span_shift(ttl)), ttl);
        assert_eq!(filter.read()[2].parts[0].capacity, MIN_KEYS);
    }

    fn store_with_rows(rows: &[(Vec<u8>, i64)]) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::open(dir.path(), false, Box::new(|_, _, _| {})).unwrap();
        drop(db);
        let conn = Connection::open(dir.path().join("hookgate.db")).unwrap();
        for (key, expires_at) in rows {
            conn.execute(
                "INSERT INTO dedup_claims (key, route, state, token, expires_at)
                 VALUES (?1, 'r', 1, 1, ?2)",
                rusqlite::params![key, expires_at],
            )
            .unwrap();
        }
        (dir, conn)
    }

    #[tokio::test]
    async fn the_load_inserts_the_live_rows_in_presized_buckets() {
        let now = 1000 * HOUR;
        let mut rows: Vec<(Vec<u8>, i64)> =
            (0..3000).map(|i| (key(i).0.to_vec(), now + HOUR)).collect();
        rows.push((key(5000).0.to_vec(), now)); // expired
        rows.push((b"not a digest".to_vec(), now + HOUR));
        let (_dir, conn) = store_with_rows(&rows);
        let filter = KeyFilter::default();
        // Written while loading: a key of another span of the load's size,
        // then one of the span most rows fall in.
        filter.insert(&key(9001), now + 3 * HOUR, HOUR);
        filter.insert(&key(9000), now + HOUR, HOUR);
        assert_eq!(parts(&filter), [1, 1]);
        assert!(filter.start_loading());
        assert!(!filter.start_loading(), "the load runs once");
        assert_eq!(filter.load(&conn, now).unwrap(), 3000);
        filter.wait_loaded().await;
        assert!(filter.is_loaded());
        assert_eq!(filter.keys(), 3002);
        assert!((0..3000)
            .chain([9000, 9001])
            .all(|i| filter.may_contain(&key(i))));
        // Counted first (the odd row too), so the 3000 keys fit one part,
        // added to the bucket that had one already.
        assert_eq!(parts(&filter), [1, 2]);
        assert_eq!(filter.read()[1].parts[1].capacity, 3001);
        assert_eq!(filter.read()[1].shift, span_shift(HOUR));
    }

    #[test]
    fn an_empty_or_expired_store_loads_as_empty() {
        let now = 1000 * HOUR;
        let (_dir, conn) = store_with_rows(&[(key(1).0.to_vec(), now)]);
        let filter = KeyFilter::default();
        assert_eq!(filter.load(&conn, now).unwrap(), 0);
        assert!(filter.is_loaded());
        assert_eq!(filter.bytes(), 0);
        assert!(!filter.may_contain(&key(1)));
    }
}
