#!/usr/bin/env python3
"""Fills the dedup_claims table of a hookgate store with COUNT committed keys
of ROUTE (scenario 7).

The database must already have hookgate's schema (start hookgate once on the
data_dir): this script checks that dedup_claims is the WITHOUT ROWID table
of src/store/mod.rs with its expiry index, and writes rows as
`LocalStore::commit` does (state 1 = committed). Keys are random 32-byte
values, not route-namespaced SHA-256 digests of event ids: a lookup cannot
tell the difference, and no benchmark event collides with them. expires_at
is far in the future (about a year), so nothing is pruned during the run.

Keys are generated first and inserted in sorted order, with expires_at rising
along them, so both B-trees (the table and the expiry index) are appended to
instead of split at random: 10,000,000 rows take about a minute, not an hour.
The resulting trees are as full as SQLite packs sequential inserts (denser
than a store that grew by random inserts; see BENCHMARKS.md).

usage: seed_dedup.py DB ROUTE COUNT
"""
import random
import sqlite3
import sys
import time

db, route, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(db, isolation_level=None)

table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'dedup_claims'").fetchone()
index = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'dedup_claims_expiry'").fetchone()
if not table or "WITHOUT ROWID" not in table[0] or not index:
    sys.exit(f"{db}: no hookgate dedup_claims schema (start hookgate once on its data_dir)")

started = time.time()
rng = random.Random(7)
keys = sorted(rng.randbytes(32) for _ in range(count))
far = int(time.time() * 1000) + 365 * 24 * 3600 * 1000
rows = ((k, route, 1, rng.getrandbits(63), far + i) for i, k in enumerate(keys))

conn.execute("PRAGMA journal_mode = OFF")
conn.execute("PRAGMA synchronous = OFF")
conn.execute("PRAGMA cache_size = -262144")  # 256 MiB while seeding
conn.execute("BEGIN")
conn.executemany(
    "INSERT INTO dedup_claims (key, route, state, token, expires_at) VALUES (?, ?, ?, ?, ?)",
    rows,
)
conn.execute("COMMIT")
# Back to the store's own journal mode, as hookgate leaves it.
conn.execute("PRAGMA journal_mode = WAL")
n = conn.execute("SELECT count(*) FROM dedup_claims").fetchone()[0]
conn.close()
print(f"{n} committed dedup keys in {db} ({time.time() - started:.0f} s)")
