#!/usr/bin/env python3
"""Pre-generates signed TruTac requests for wrk (wrk's Lua cannot HMAC).

Writes OUT: line 1 is the body template split in three tab-separated parts,
every further line is `<event id>\t<hex HMAC-SHA1>`. The body of line i is
part1 + id + part2 + id + part3, exactly the bytes that were signed, so
bench/trutac.lua can rebuild it without keeping a whole body per event.

usage: gen_requests.py SECRET COUNT OUT
"""
import hashlib
import hmac
import json
import sys

secret, count, out = sys.argv[1].encode(), int(sys.argv[2]), sys.argv[3]

# A TruTac clocking event, padded to about 1.5 KB like a real one with its
# employee, location and device details.
ID = "@@ID@@"
event = {
    "id": ID,
    "type": "clocking",
    "action": "created",
    "created_at": "2026-11-23T12:00:00Z",
    "clocking": {
        "id": ID,
        "employee": {"id": "emp_4711", "name": "Erika Mustermann", "email": "erika@example.com",
                     "department": "Warehouse North", "cost_center": "CC-1234"},
        "location": {"id": "loc_0815", "name": "Hamburg Hafen", "lat": 53.5413, "lon": 9.9841,
                     "address": "Am Sandtorkai 1, 20457 Hamburg, Germany"},
        "device": {"id": "dev_42", "model": "TT-Terminal 3", "firmware": "3.14.1"},
        "kind": "clock_in",
        "at": "2026-11-23T11:59:58Z",
        "note": "x" * 990,
    },
}
template = json.dumps(event, separators=(",", ":"))
parts = template.split(ID)
assert len(parts) == 3 and all("\t" not in p and "\n" not in p for p in parts)

with open(out, "w") as f:
    f.write("\t".join(parts) + "\n")
    for i in range(count):
        eid = "evt_%09d" % i
        body = (parts[0] + eid + parts[1] + eid + parts[2]).encode()
        f.write("%s\t%s\n" % (eid, hmac.new(secret, body, hashlib.sha1).hexdigest()))
print(len(body), "byte bodies,", count, "events")
