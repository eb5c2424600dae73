#!/usr/bin/env python3
"""Audit-log retention (kennel server --audit-retention-days):
  - with 1 day, rows older than a day (by the calendar, as the rows' times
    are) are removed when the writer next commits, newer ones stay;
  - with 0, every row stays;
  - a value out of range is refused at start with exit 2 and says why.
The old rows are written into kennel.db's audit_log directly, as a daemon
that had run for days would have left them."""
import json
import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kn_testlib as lib  # noqa: E402

AKID = "AKIDRETENTION"
SECRET = "kennel-retention-test-secret"


def principals(url):
    st, body = lib.signed(url, "GET", "/kennel/audit?limit=1000", "cloudtrail", AKID, SECRET)
    if st != 200:
        raise RuntimeError(f"GET /kennel/audit: HTTP {st}: {body[:200]!r}")
    return {r["Principal"] for r in json.loads(body)["Events"]}


def run(d, days):
    data = f"{d}/data-{days}"
    srv = lib.Server(data, f"{d}/ready", f"{d}/server.err",
                     ["--audit-retention-days", str(days)]).start()
    if not lib.check(f"server with {days} day(s) started", srv.url, open(f"{d}/server.err").read()):
        return
    try:
        now = time.time()
        db = sqlite3.connect(f"{data}/kennel.db", timeout=10)
        db.executemany("INSERT INTO audit_log (time, principal, action, resource, source, "
                       "decision, statement, request_id, error_code) VALUES "
                       "(?, ?, 'sts:GetCallerIdentity', '*', '127.0.0.1', 'Allow', '', 'r', '')",
                       [(now - 2 * 86400, "user/two-days-ago"), (now - 43200, "user/half-a-day-ago")])
        db.commit()
        db.close()
        # a call: its row is the next the writer commits (and then purges);
        # reading the log flushes the writer first
        st, body = lib.signed(srv.url, "POST", "/", "sts", AKID, SECRET,
                              b"Action=GetCallerIdentity&Version=2011-06-15",
                              {"Content-Type": "application/x-www-form-urlencoded"})
        lib.check(f"{days}: a signed call", st == 200, body[:300])
        seen = principals(srv.url)
        if days == 1:
            lib.check("a row older than the retention is removed", "user/two-days-ago" not in seen,
                      sorted(seen))
        else:
            lib.check("retention 0 keeps every row", "user/two-days-ago" in seen, sorted(seen))
        lib.check(f"{days}: a row within the retention stays", "user/half-a-day-ago" in seen,
                  sorted(seen))
        lib.check(f"{days}: the current call is there", any("admin" in p for p in seen),
                  sorted(seen))
    finally:
        lib.check(f"{days}: server exited cleanly", srv.stop() == 0)


def main():
    tmp, status = lib.begin(AKID, SECRET, needs=("botocore",))
    if not tmp:
        return status
    d = tmp.name
    run(d, 1)
    run(d, 0)
    r = subprocess.run([lib.KN, "server", "--data-dir", f"{d}/bad", "--port", "0",
                        "--audit-retention-days", "-1"], capture_output=True, text=True,
                       timeout=30)
    lib.check("a negative retention refused", r.returncode == 2 and
              "--audit-retention-days '-1' is not in [0, 36500]" in r.stderr, r.stderr)
    return lib.done(f"{d}/server.err")


if __name__ == "__main__":
    sys.exit(main())
