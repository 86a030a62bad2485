#!/usr/bin/env python3
"""Fills a hookgate store with COUNT pending deliveries of ROUTE (scenario 6).

The database must already have hookgate's schema (start hookgate once on the
data_dir). Bodies are 1.5 KB like the benchmark's requests.

usage: seed_backlog.py DB ROUTE COUNT
"""
import json
import sqlite3
import sys
import time
import uuid

db, route, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(db)
conn.execute("PRAGMA synchronous = OFF")
now = int(time.time() * 1000)
headers = json.dumps([["content-type", "application/json"], ["tt-hook-event", "clocking"]])
body = b'{"id":"backlog","note":"' + b"x" * 1480 + b'"}'
rows = ((str(uuid.uuid4()), route, "pending", now, 0, now, None, headers, body) for _ in range(count))
with conn:
    conn.executemany(
        "INSERT INTO deliveries (id, route, state, received_at, attempts, next_attempt_at, query, headers, body)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
conn.close()
print(count, "pending deliveries in", db)
