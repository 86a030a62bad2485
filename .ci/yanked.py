#!/usr/bin/env python3
"""Fails if a crates.io package pinned in a Cargo.lock is yanked.

Reads each package's file in the crates.io sparse index (one JSON object
per published version, with "vers" and "yanked"), the same files cargo
reads. Exit status: 0 when every pinned version is published and not
yanked; 1 when one is yanked, missing from the index, or from a source
this script cannot check; 2 when the index cannot be read (never a silent
pass).

    python3 .ci/yanked.py Cargo.lock fuzz/Cargo.lock
    python3 .ci/yanked.py --self-test     # against a local fake index

CRATES_INDEX_URL overrides the index (default https://index.crates.io).
"""

import concurrent.futures
import contextlib
import http.server
import io
import json
import os
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
TRIES = 3


class IndexUnreachable(Exception):
    pass


def index_path(name):
    """Where the sparse index keeps a package's file."""
    name = name.lower()
    if len(name) <= 2:
        return f"{len(name)}/{name}"
    if len(name) == 3:
        return f"3/{name[0]}/{name}"
    return f"{name[:2]}/{name[2:4]}/{name}"


def get(url):
    """The body at url; None for 404; IndexUnreachable after TRIES failures."""
    request = urllib.request.Request(url, headers={"User-Agent": "hookgate-ci-yanked"})
    error = None
    for attempt in range(TRIES):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read().decode()
        except urllib.error.HTTPError as e:
            if e.code in (404, 410):
                return None
            error = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            error = str(getattr(e, "reason", e))
        if attempt + 1 < TRIES:
            time.sleep(attempt + 1)
    raise IndexUnreachable(f"{url}: {error}")


def published(index, name):
    """{version: yanked} for every published version of name, or None."""
    body = get(f"{index}/{index_path(name)}")
    if body is None:
        return None
    versions = {}
    for line in body.splitlines():
        if line.strip():
            entry = json.loads(line)
            versions[entry["vers"]] = bool(entry.get("yanked", False))
    return versions


def pinned(lock_files):
    """(crates.io (name, version) pairs, problems) from the lock files."""
    packages, problems = set(), []
    for path in lock_files:
        with open(path, "rb") as f:
            lock = tomllib.load(f)
        for package in lock.get("package", []):
            source = package.get("source")
            if source is None:
                continue  # a package of this workspace
            if source == CRATES_IO:
                packages.add((package["name"], package["version"]))
            elif source.startswith("git+"):
                # Git sources cannot be yanked; cargo pins the commit.
                print(f"note: {package['name']} {package['version']} comes from {source}; not checked")
            else:
                problems.append(f"{path}: {package['name']} {package['version']}: unknown source {source}")
    return packages, problems


def check(index, lock_files):
    packages, problems = pinned(lock_files)
    try:
        # The index must answer before anything is called clean.
        if get(f"{index}/config.json") is None:
            raise IndexUnreachable(f"{index}/config.json: not found")
        names = sorted({name for name, _ in packages})
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            versions = dict(zip(names, pool.map(lambda n: published(index, n), names)))
    except IndexUnreachable as e:
        print(f"error: cannot read the crates.io index, so yanked packages were NOT checked: {e}")
        return 2
    for name, version in sorted(packages):
        known = versions[name]
        if known is None:
            problems.append(f"{name} {version}: not in the index")
        elif version not in known:
            problems.append(f"{name} {version}: no such version in the index")
        elif known[version]:
            problems.append(f"{name} {version}: YANKED")
    for problem in problems:
        print(f"error: {problem}")
    if problems:
        print(f"{len(problems)} problem(s) in {', '.join(lock_files)}; update or replace those packages")
        return 1
    print(f"{len(packages)} crates.io packages in {', '.join(lock_files)}: none yanked ({index})")
    return 0


def self_test():
    """The check against a fake index: it must pass a clean lock and fail a
    yanked version, an unknown version, an unknown package and a dead index."""
    files = {
        "config.json": "{}",
        index_path("ab"): '{"vers":"1.0.0","yanked":false}\n',
        index_path("serde"): '{"vers":"1.0.0","yanked":false}\n{"vers":"1.0.1","yanked":true}\n',
    }

    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path.lstrip("/"))
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write((body or "").encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    index = f"http://127.0.0.1:{server.server_address[1]}"

    def lock(*packages):
        text = "version = 3\n"
        for name, version in packages:
            text += f'[[package]]\nname = "{name}"\nversion = "{version}"\nsource = "{CRATES_IO}"\n'
        text += '[[package]]\nname = "local"\nversion = "0.1.0"\n'
        f = tempfile.NamedTemporaryFile("w", suffix=".lock", delete=False)
        f.write(text)
        f.close()
        return f.name

    global TRIES
    TRIES = 1
    cases = [
        ("clean", index, lock(("serde", "1.0.0"), ("ab", "1.0.0")), 0),
        ("yanked", index, lock(("serde", "1.0.1"), ("ab", "1.0.0")), 1),
        ("unknown version", index, lock(("serde", "9.9.9")), 1),
        ("unknown package", index, lock(("no-such-crate", "1.0.0")), 1),
        ("index unreachable", "http://127.0.0.1:9", lock(("serde", "1.0.0")), 2),
    ]
    failed = 0
    for what, url, path, want in cases:
        with contextlib.redirect_stdout(io.StringIO()) as said:
            got = check(url, [path])
        os.unlink(path)
        if got != want:
            print(f"self-test {what}: exit {got}, want {want}; it said:\n{said.getvalue()}")
            failed += 1
    server.shutdown()
    print(f"self-test: {len(cases) - failed} of {len(cases)} cases ok")
    return 1 if failed else 0


def main(args):
    if args == ["--self-test"]:
        return self_test()
    if not args:
        print(__doc__)
        return 2
    index = os.environ.get("CRATES_INDEX_URL", "https://index.crates.io").rstrip("/")
    return check(index, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
