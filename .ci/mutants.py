#!/usr/bin/env python3
"""Mutation testing of the lines a change touches in the guarded modules.

The guarded modules (issue 20): verification, header handling on the way
in and out, dedup claims and commits, the spool and the store. The change
is everything between the commit in .ci/mutants-base (the last landed
commit whose mutants were reviewed) and the working tree, restricted to
those paths. `cargo mutants --in-diff` mutates only the changed lines, and
each mutant runs only the test binaries that cover its area (TESTS below).

Verdict:
- a missed mutant that .ci/mutants-reviewed.txt does not excuse fails;
- tests failing on the unmutated tree, or cargo-mutants failing, fail;
- caught, unviable (does not compile) and timed-out (the tests hang, which
  a test run would notice) mutants pass;
- when the time budget runs out, the step passes with a warning that lists
  every mutant left untested: the budget bounds CI's length, it is not a
  verdict on the code. A missed mutant among those tested still fails.

    python3 .ci/mutants.py                # the CI step (see .ci/mutants)
    python3 .ci/mutants.py --self-test    # the reviewed list and report logic

Environment:
  MUTANTS_BASE             the base commit instead of .ci/mutants-base
  MUTANTS_BUDGET_MINUTES   the whole run's budget (default 30)
  MUTANTS_TIMEOUT          seconds a mutant's test run may take (default 120)
  MUTANTS_BUILD_TIMEOUT    seconds a mutant's build may take (default 600)
  MUTANTS_OUT              where mutants.out goes (default target/mutants-ci)
  MUTANTS_TARGET_DIR       the target directory of the mutants' builds
                           (default the checkout's: nothing else may build
                           there while the step runs)
"""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# Paths whose changed lines are mutated.
GUARDED = [
    "src/verify/",
    "src/reserved_headers.rs",
    "src/forward/headers.rs",
    "src/dedup/",
    "src/spool/",
    "src/store/",
]

# The integration test binaries that cover each guarded path (prefix
# match; every matching prefix adds its binaries). The library's unit
# tests (`--lib`) always run. Running every binary would relink about 40
# test executables per mutant; these run in seconds.
TESTS = [
    # jwt/ end to end: a real gateway fetching a JWKS.
    ("src/verify/jwt/", ["jwt"]),
    # Published vectors through the real verifiers, the handshakes
    # (client_state), the allocation-counting timestamp scan, and the
    # shared-secret schemes through a real gateway.
    ("src/verify/", ["vectors", "handshakes", "timestamp_scan", "trust_headers"]),
    # The hookgate-* strip and what goes to a destination.
    ("src/reserved_headers.rs", ["trust_headers"]),
    ("src/forward/headers.rs", ["trust_headers"]),
    # The dedup invariants against SQLite, Redis and PostgreSQL; dedup end
    # to end; replays of captured requests.
    ("src/dedup/", ["dedup_conformance", "dedup", "trust_replay"]),
    # The spool invariants against SQLite and PostgreSQL; async
    # acknowledgement end to end, with the binary killed.
    ("src/spool/", ["spool_conformance", "spool"]),
    # The store under the spool, PostgreSQL sharing, the group commit's
    # test seam, and write failures.
    ("src/store/", ["spool_conformance", "postgres_store", "commit_stall", "store_faults"]),
]

REVIEWED = ".ci/mutants-reviewed.txt"
BASE_FILE = ".ci/mutants-base"

# cargo-mutants exit codes that mean it could not do its job (see its
# src/exit_code.rs): usage, tests failing unmutated, a diff that does not
# match the tree, an unparseable diff, an internal error.
CARGO_MUTANTS_ERRORS = {
    1: "usage error",
    4: "the tests fail on the unmutated tree",
    5: "the diff does not match the source tree",
    6: "the diff could not be parsed",
    70: "internal error",
}


def key_name(name):
    """A mutant's name without its line and column, e.g.
    `src/a.rs: replace > with >= in f` for `src/a.rs:12:9: replace ...`."""
    return re.sub(r"^([^:]+):\d+:\d+: ", r"\1: ", name)


def source_line(root, mutant):
    """The trimmed source line where the mutation starts, and the mutation's
    column in it (1-based, counted from its first non-blank character, so
    that re-indenting the line changes neither)."""
    path = os.path.join(root, mutant["file"])
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError:
        return "", 0
    n = mutant["span"]["start"]["line"]
    if not 0 < n <= len(lines):
        return "", 0
    line = lines[n - 1]
    indent = len(line) - len(line.lstrip())
    return line.strip(), mutant["span"]["start"]["column"] - indent


def parse_reviewed(text):
    """Entries of the reviewed list: a mutant's name (as key_name prints it)
    on a line of its own, then indented `at:` (the trimmed source line the
    mutation starts on), `col:` (the mutation's column in that trimmed line,
    which tells apart two `||` on one line) and `why:` lines (further
    indented lines continue the reason). Returns (entries, errors)."""
    entries, errors = [], []
    current = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            current = {"name": line.strip(), "at": None, "col": None, "why": "", "line": number}
            entries.append(current)
            continue
        if current is None:
            errors.append(f"line {number}: an indented line before any mutant name")
            continue
        body = line.strip()
        if body.startswith("at:"):
            current["at"] = body[3:].strip()
        elif body.startswith("col:"):
            col = body[4:].strip()
            if col.isdigit():
                current["col"] = int(col)
            else:
                errors.append(f"line {number}: `col:` needs a number, found {col!r}")
        elif body.startswith("why:"):
            current["why"] = body[4:].strip()
        elif current["why"]:
            current["why"] += " " + body
        else:
            errors.append(f"line {number}: expected `at:`, `col:` or `why:`, found {body!r}")
    for e in entries:
        if not re.match(r"^[^:\s]+\.rs: \S", e["name"]) or re.match(r"^[^:]+:\d+:\d+:", e["name"]):
            errors.append(f"line {e['line']}: {e['name']!r} is not a mutant name without line:col")
        if not e["at"]:
            errors.append(f"line {e['line']}: {e['name']!r} has no `at:` line")
        if e["col"] is None:
            errors.append(f"line {e['line']}: {e['name']!r} has no `col:` line")
        if not e["why"] or e["why"].upper().startswith("TODO"):
            errors.append(f"line {e['line']}: {e['name']!r} has no reason (`why:`)")
    return entries, errors


def excused(entries, mutant, at, col):
    """The reviewed entry that excuses this mutant, or None. An entry matches
    on the file, the function, the replacement, the source line and the
    column in it, never on line numbers, so it survives edits elsewhere in
    the file but not an edit of the mutated line itself."""
    k = key_name(mutant["name"])
    for e in entries:
        if e["name"] == k and e["at"] == at and e["col"] == col:
            return e
    return None


def area_tests(files):
    tests = []
    for f in files:
        for prefix, names in TESTS:
            if f.startswith(prefix):
                tests += [t for t in names if t not in tests]
    return tests


def summarize(out_dir, root, entries, listed):
    """Reads mutants.out and returns the report: per-file counts, the missed
    mutants with and without a reviewed entry, the untested ones and the
    baseline's result."""
    with open(os.path.join(out_dir, "outcomes.json"), encoding="utf-8") as f:
        outcomes = json.load(f).get("outcomes", [])
    report = {"files": {}, "missed": [], "excused": [], "timeouts": [], "baseline": None}
    seen = set()
    labels = {
        "CaughtMutant": "caught",
        "MissedMutant": "missed",
        "Unviable": "unviable",
        "Timeout": "timeout",
    }
    for o in outcomes:
        scenario = o["scenario"]
        if scenario == "Baseline" or (isinstance(scenario, dict) and "Baseline" in scenario):
            report["baseline"] = o["summary"]
            continue
        m = scenario["Mutant"]
        seen.add(m["name"])
        counts = report["files"].setdefault(m["file"], counts_zero())
        label = labels.get(o["summary"], "failure")
        counts[label] += 1
        if label == "missed":
            at, col = source_line(root, m)
            entry = excused(entries, m, at, col)
            diff = ""
            if o.get("diff_path"):
                try:
                    with open(os.path.join(out_dir, o["diff_path"]), encoding="utf-8") as f:
                        diff = f.read()
                except OSError:
                    pass
            item = {"name": m["name"], "key": key_name(m["name"]), "at": at, "col": col,
                    "diff": diff}
            if entry:
                item["why"] = entry["why"]
                report["excused"].append(item)
            else:
                report["missed"].append(item)
        elif label == "timeout":
            report["timeouts"].append(m["name"])
    report["untested"] = [m["name"] for m in listed if m["name"] not in seen]
    for m in listed:
        if m["name"] not in seen:
            report["files"].setdefault(m["file"], counts_zero())["untested"] += 1
    return report


def counts_zero():
    return {"caught": 0, "missed": 0, "unviable": 0, "timeout": 0, "failure": 0, "untested": 0}


def print_report(report):
    print("\nmutation results (file | caught | missed | unviable | timed out | untested):")
    for file, c in sorted(report["files"].items()):
        extra = f" | {c['failure']} failed to run" if c["failure"] else ""
        print(
            f"  {file} | {c['caught']} | {c['missed']} | {c['unviable']} | "
            f"{c['timeout']} | {c['untested']}{extra}"
        )
    for item in report["excused"]:
        print(f"missed, excused by {REVIEWED}: {item['key']}\n  why: {item['why']}")
    for name in report["timeouts"]:
        print(f"timed out (the tests hang; counted as caught): {name}")


def verdict(report, budget_ran_out):
    """Returns the exit status and prints why."""
    status = 0
    if report["baseline"] not in (None, "Success"):
        print(f"error: the tests fail on the unmutated tree (baseline: {report['baseline']})")
        status = 1
    failures = sum(c["failure"] for c in report["files"].values())
    if failures:
        print(f"error: {failures} mutant(s) could not be run (see the log above)")
        status = 1
    for item in report["missed"]:
        status = 1
        print(f"\nerror: MISSED mutant, no test fails with it: {item['name']}")
        print(item["diff"].rstrip() or "  (no diff recorded)")
        print("Kill it with a test, or if it is equivalent add to " + REVIEWED + ":")
        print(f"{item['key']}\n    at: {item['at']}\n    col: {item['col']}\n"
              "    why: <why no test can tell it apart>")
    if report["untested"]:
        cause = "the time budget ran out" if budget_ran_out else "the run stopped early"
        print(f"\nWARNING: {cause}; {len(report['untested'])} mutant(s) NOT TESTED:")
        for name in report["untested"]:
            print(f"  NOT TESTED: {name}")
        if budget_ran_out and status == 0:
            print(
                "WARNING: passing anyway (the budget bounds CI's length); run them with "
                "MUTANTS_BUDGET_MINUTES raised, or `cargo mutants --in-diff`, before landing"
            )
        elif not budget_ran_out:
            status = 1
    return status


def run_with_budget(cmd, env, seconds):
    """Runs cargo-mutants; when the budget runs out, interrupts it as Ctrl-C
    would (it stops the cargo process it runs, deletes its scratch copy and
    keeps the outcomes so far). Returns (exit status, budget ran out)."""
    child = subprocess.Popen(cmd, env=env)
    try:
        return child.wait(timeout=seconds), False
    except subprocess.TimeoutExpired:
        print(f"\nWARNING: the {seconds // 60}-minute budget ran out; interrupting cargo mutants", flush=True)
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return None, True
    except BaseException:
        child.send_signal(signal.SIGINT)
        child.wait()
        raise


def git(*args):
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def main():
    started = time.monotonic()
    root = git("rev-parse", "--show-toplevel").strip()
    os.chdir(root)

    with open(REVIEWED, encoding="utf-8") as f:
        entries, errors = parse_reviewed(f.read())
    if errors:
        for e in errors:
            print(f"error: {REVIEWED}: {e}")
        return 1

    base = os.environ.get("MUTANTS_BASE", "").strip()
    if not base:
        with open(BASE_FILE, encoding="utf-8") as f:
            base = next(
                (t for t in (l.strip() for l in f) if t and not t.startswith("#")), ""
            )
    if subprocess.run(["git", "cat-file", "-e", f"{base}^{{commit}}"], capture_output=True).returncode:
        print(f"error: the mutation base {base!r} ({BASE_FILE}) is not a commit of this clone")
        return 1
    if subprocess.run(["git", "merge-base", "--is-ancestor", base, "HEAD"]).returncode:
        print(f"warning: {base} is not an ancestor of HEAD; diffing against it anyway")

    # Against the working tree, which is what cargo-mutants copies (in CI,
    # a clean clone, that is BASE..HEAD). No renames: a renamed file is new
    # in full, so all of it is mutated.
    diff = ["diff", "--no-ext-diff", "--no-color", "--no-renames", "--src-prefix=a/", "--dst-prefix=b/"]
    names = git(*diff, "--name-only", "--diff-filter=d", base, "--", *GUARDED)
    changed = [f for f in names.split("\n") if f.endswith(".rs")]
    print(f"mutation base {base}; guarded paths: {' '.join(GUARDED)}")
    if not changed:
        print("no Rust file in the guarded paths changed since the base: nothing to mutate, pass")
        return 0
    print("changed: " + " ".join(changed))

    out = os.path.abspath(os.environ.get("MUTANTS_OUT", "target/mutants-ci"))
    shutil.rmtree(os.path.join(out, "mutants.out"), ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    diff_file = os.path.join(out, "guarded.diff")
    with open(diff_file, "w", encoding="utf-8") as f:
        f.write(git(*diff, base, "--", *changed))

    listing = subprocess.run(
        ["cargo", "mutants", "--list", "--json", "--in-diff", diff_file],
        capture_output=True, text=True,
    )
    if listing.returncode:
        print(listing.stdout + listing.stderr)
        print(f"error: cargo mutants --list failed ({listing.returncode})")
        return 1
    listed = json.loads(listing.stdout or "[]")
    # --in-diff keeps mutants of any file in the diff; only guarded files are in it.
    if not listed:
        print("the changed lines produce no mutants (comments, tests, declarations): pass")
        return 0

    tests = area_tests(changed)
    test_args = ["--lib"] + [a for t in tests for a in ("--test", t)]
    # As --cargo-arg, not after `--`: cargo-mutants adds the args after `--`
    # only to `cargo test`, so its build step (`cargo test --no-run`) would
    # build and link every test binary of the crate for each mutant.
    cargo_args = [f"--cargo-arg={a}" for a in test_args]
    budget = float(os.environ.get("MUTANTS_BUDGET_MINUTES", "30"))
    timeout = os.environ.get("MUTANTS_TIMEOUT", "120")
    build_timeout = os.environ.get("MUTANTS_BUILD_TIMEOUT", "600")
    print(f"{len(listed)} mutant(s) on the changed lines; tests: {' '.join(test_args)}")
    for m in listed:
        print(f"  {m['name']}")

    # Incremental builds: a mutant rebuilds the crate in about a quarter
    # of the time (CI turns them off for the clean test build, which never
    # reuses them). The scratch copies share the checkout's target
    # directory, so the dependencies the tests built are not rebuilt.
    # Only one build may use that directory meanwhile: the copy's crate has
    # the same artifact names as the checkout's, so a build in the checkout
    # during the run overwrites a mutant's test binaries with unmutated ones
    # and the mutant's verdict is wrong. In CI nothing else builds; locally,
    # MUTANTS_TARGET_DIR sets a directory of its own (a full build first).
    env = dict(os.environ, CARGO_INCREMENTAL="1")
    target = env.get("MUTANTS_TARGET_DIR") or env.get("CARGO_TARGET_DIR") or "target"
    env["CARGO_TARGET_DIR"] = os.path.abspath(target)
    print(f"building in {env['CARGO_TARGET_DIR']}: build nothing else there until this finishes")
    cmd = [
        "cargo", "mutants", "--in-diff", diff_file, "--no-shuffle", "-j", "1",
        "--timeout", timeout, "--build-timeout", build_timeout, "-o", out, *cargo_args,
    ]
    print("$ " + " ".join(cmd) + f"   (budget {budget} min)", flush=True)
    code, budget_ran_out = run_with_budget(cmd, env, int(budget * 60))

    out_dir = os.path.join(out, "mutants.out")
    if not os.path.exists(os.path.join(out_dir, "outcomes.json")):
        if not budget_ran_out:
            print(f"error: cargo mutants wrote no outcomes (exit {code})")
            return 1
        # Out of time before the first outcome: every mutant is untested.
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "outcomes.json"), "w", encoding="utf-8") as f:
            json.dump({"outcomes": []}, f)
    report = summarize(out_dir, root, entries, listed)
    print_report(report)
    status = verdict(report, budget_ran_out)
    if code in CARGO_MUTANTS_ERRORS:
        print(f"error: cargo mutants: {CARGO_MUTANTS_ERRORS[code]} (exit {code})")
        status = 1
    print(f"\noutput: {out_dir}; {(time.monotonic() - started) / 60:.1f} minutes")
    print("mutation step: " + ("FAILED" if status else "passed"))
    return status


def self_test():
    """The reviewed list's parser and matcher, and the report, against a
    fake mutants.out."""
    entries, errors = parse_reviewed(
        "# comment\n"
        "src/a.rs: replace > with >= in f\n"
        "    at: if x > 1 && x > 1 {\n"
        "    col: 6\n"
        "    why: x is never 1 here:\n"
        "      the caller checks it\n"
        "src/b.rs: delete ! in g\n"
        "    at: !y\n"
        "    col: 1\n"
    )
    assert errors == ["line 7: 'src/b.rs: delete ! in g' has no reason (`why:`)"], errors
    assert entries[0]["why"] == "x is never 1 here: the caller checks it", entries
    _, errors = parse_reviewed("src/a.rs:3:4: replace f with ()\n    at: x\n    col: 1\n    why: y\n")
    assert any("without line:col" in e for e in errors), errors
    _, errors = parse_reviewed("src/a.rs: replace f with ()\n    why: TODO\n")
    assert len(errors) == 3, errors
    assert key_name("src/a.rs:12:9: replace > with >= in f") == "src/a.rs: replace > with >= in f"
    assert area_tests(["src/verify/jwt/keys.rs"]) == [
        "jwt", "vectors", "handshakes", "timestamp_scan", "trust_headers"]
    assert area_tests(["src/forward/headers.rs", "src/reserved_headers.rs"]) == ["trust_headers"]
    assert area_tests(["src/store/mod.rs", "src/spool/sqlite.rs"]) == [
        "spool_conformance", "postgres_store", "commit_stall", "store_faults", "spool"]

    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "src"))
        with open(os.path.join(tmp, "src/a.rs"), "w") as f:
            f.write("fn f(x: u8) -> bool {\n    if x > 1 && x > 1 {\n        return true;\n    }\n    x > 1\n}\n")

        def mutant(line, col, what="replace > with >= in f"):
            return {"name": f"src/a.rs:{line}:{col}: {what}", "file": "src/a.rs",
                    "span": {"start": {"line": line, "column": col}}}

        listed = [mutant(2, 10), mutant(5, 7), mutant(1, 1, "replace f -> bool with true"),
                  mutant(3, 16, "replace f -> bool with false"), mutant(2, 19)]
        out = os.path.join(tmp, "mutants.out")
        os.makedirs(os.path.join(out, "diff"))
        with open(os.path.join(out, "diff/m.diff"), "w") as f:
            f.write("-    x > 1\n+    x >= 1\n")
        outcomes = [
            {"scenario": "Baseline", "summary": "Success"},
            {"scenario": {"Mutant": listed[0]}, "summary": "MissedMutant"},
            {"scenario": {"Mutant": listed[1]}, "summary": "MissedMutant", "diff_path": "diff/m.diff"},
            {"scenario": {"Mutant": listed[2]}, "summary": "CaughtMutant"},
            {"scenario": {"Mutant": listed[4]}, "summary": "MissedMutant"},
        ]
        with open(os.path.join(out, "outcomes.json"), "w") as f:
            json.dump({"outcomes": outcomes}, f)
        report = summarize(out, tmp, entries, listed)
        # The entry names the first `>` of line 2; the second `>` there and
        # line 5's are other mutants of the same name.
        assert [(i["at"], i["col"]) for i in report["excused"]] == [("if x > 1 && x > 1 {", 6)]
        assert [(i["at"], i["col"]) for i in report["missed"]] == [
            ("x > 1", 3), ("if x > 1 && x > 1 {", 15)], report
        assert report["missed"][0]["diff"].startswith("-    x > 1"), report
        assert report["untested"] == [listed[3]["name"]], report
        assert report["files"]["src/a.rs"] == {
            "caught": 1, "missed": 3, "unviable": 0, "timeout": 0, "failure": 0, "untested": 1}
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            assert verdict(report, budget_ran_out=True) == 1
            assert "at: x > 1\n    col: 3\n" in printed.getvalue(), printed.getvalue()
            report["missed"] = []
            assert verdict(report, budget_ran_out=True) == 0
            assert "NOT TESTED: src/a.rs:3:16" in printed.getvalue(), printed.getvalue()
            assert verdict(report, budget_ran_out=False) == 1
            report["untested"] = []
            report["baseline"] = "Failure"
            assert verdict(report, budget_ran_out=False) == 1
    print("mutants.py self-test passed")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    sys.exit(main())
