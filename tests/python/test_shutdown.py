"""Graceful shutdown: on SIGTERM the server stops claiming jobs and lets running copies finish, up
to a deadline (`--shutdown-grace-secs`). After that deadline it exits anyway; the unfinished job's
lease expires and the next start takes it again.

As in test_crash.py, the volume endpoint is a fault proxy (faultproxy.py) in front of moto, so a
copy is held mid-flight deterministically. Every wait is bounded; nothing asserts on durations."""
import itertools
import json
import os
import signal
import sqlite3
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest
import sevenbridges as sbg

from conftest import create_volume, download_bytes, poll, s3_volume_body, upload_bytes, wait_export
from faultproxy import FaultProxy

MiB = 1024 * 1024
PART = 5 * MiB
_names = itertools.count()


@pytest.fixture
def proxy(moto):
    p = FaultProxy(moto.endpoint)
    yield p
    p.close()


def start(egress_factory, proxy, *extra):
    """Parts of 5 MiB, so a 12 MiB file is a streamed multipart upload of three parts."""
    return egress_factory(
        "--multipart-copy-cutoff", str(PART), "--part-size", str(PART), "--retry-base-ms", "50",
        "--log-json", *extra, allow=[proxy.url],
    )


def user_api(server, name):
    return sbg.Api(url=server.url + "/v2", token=server.create_user(name), debug=True)


def volume_on(api, moto, endpoint, **service):
    name = f"shutvol{next(_names)}"
    bucket = moto.bucket("shutdown-" + name)
    return create_volume(api, s3_volume_body(endpoint, moto.key, moto.secret, bucket, name, **service)), bucket


def raw(export):
    return export._api.get(f"/storage/exports/{export.id}").json()


def part_number(request):
    if request.method != "PUT":
        return None
    values = parse_qs(urlsplit(request.target).query).get("partNumber")
    return int(values[0]) if values else None


def blob_files(server):
    d = server.data_dir / "platform" / "blobs"
    return set(d.iterdir()) if d.exists() else set()


def open_uploads(s3, bucket):
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def log_events(server):
    """The server's JSON log lines (`--log-json`), every run so far, as dicts of their fields."""
    events = []
    # Read the file itself: `log_text()` flushes the handle, closed once the process has exited.
    for line in (server.data_dir / "server.log").read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            events.append({**entry.get("fields", {}), "level": entry.get("level")})
    return events


def completions(events, export_id):
    return [e for e in events if e.get("message") == "export completed" and e.get("export") == export_id]


def job_events(events, export_id):
    """Everything the engine logged about one job: claims that ended in any outcome, retries."""
    return [e for e in events if export_id in (e.get("export"), e.get("job"))]


def sigterm(server):
    server.proc.send_signal(signal.SIGTERM)
    poll(lambda: any(e.get("message") == "shutting down" for e in log_events(server)),
         "the server to log that it is shutting down", timeout=30)


def wait_exit(server, timeout):
    """Wait (bounded) for the server to exit by itself; return its exit code."""
    try:
        code = server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server did not exit within {timeout}s of SIGTERM")
    server.log.close()
    return code


def export_rows(server):
    """The exports table as the stopped server left it (the default SQLite store)."""
    db = sqlite3.connect(str(server.data_dir / "egress.db"))
    try:
        db.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in db.execute(
            "SELECT id, state, attempt, lease_owner, started_at, finished_at, upload_id FROM exports")}
    finally:
        db.close()


def test_sigterm_lets_the_running_copy_finish_and_claims_nothing_new(egress_factory, moto, proxy, tmp_path):
    server = start(egress_factory, proxy, "--lease-secs", "2", "--workers", "1", "--shutdown-grace-secs", "30")
    api = user_api(server, "graceful")
    project = api.projects.create(name="Graceful")
    v, bucket = volume_on(api, moto, proxy.url, prefix="grace")
    s3 = moto.client()
    data_a = os.urandom(12 * MiB)
    data_b = os.urandom(6 * MiB + 123)
    blobs_before = blob_files(server)
    fa = upload_bytes(api, tmp_path, project.id, "a.bin", data_a)
    [blob_a] = blob_files(server) - blobs_before
    fb = upload_bytes(api, tmp_path, project.id, "b.bin", data_b)

    # A's parts from the second on are held: A is running, stuck, and holds the only worker.
    proxy.hold(lambda r: (part_number(r) or 0) >= 2)
    a = api.exports.submit_export(file=fa, volume=v, location="a.bin")
    assert proxy.wait_for(lambda r: r.fault == "held", timeout=60) is not None, \
        [(r.method, r.target) for r in proxy.requests]
    assert api.exports.get(a.id).state == "RUNNING"
    b = api.exports.submit_export(file=fb, volume=v, location="b.bin")
    assert api.exports.get(b.id).state == "PENDING", "one worker, busy with A"

    sigterm(server)
    # The copy is still held, so the server is waiting for it (grace: 30 s).
    with pytest.raises(subprocess.TimeoutExpired):
        server.proc.wait(timeout=1)
    assert proxy.held_count() > 0
    assert completions(log_events(server), a.id) == []

    proxy.release()  # A's held parts go through; A can finish, and then the server exits
    code = wait_exit(server, timeout=30)
    assert code == 0, f"exit code {code} after a graceful shutdown"

    first_run = log_events(server)
    [done] = completions(first_run, a.id)
    assert done.get("attempt") == 1, done
    assert not [e for e in first_run if e.get("level") == "WARN" and "grace" in e.get("message", "")], \
        "the copy finished inside the grace period"
    assert job_events(first_run, b.id) == [], "B was never claimed before shutdown"
    assert not [r for r in proxy.requests if "b.bin" in r.target], "nothing of B reached the volume"
    rows = export_rows(server)
    assert rows[a.id]["state"] == "COMPLETED" and rows[a.id]["attempt"] == 1, rows[a.id]
    assert rows[b.id]["state"] == "PENDING", rows[b.id]
    assert rows[b.id]["attempt"] == 0 and rows[b.id]["started_at"] is None, rows[b.id]
    assert rows[b.id]["lease_owner"] is None, rows[b.id]

    # Restart with no hold: A stays done (not re-run), B runs now.
    server.restart()
    b = wait_export(api.exports.get(b.id), timeout=120)
    assert b.state == "COMPLETED", raw(b)["error"]
    a = api.exports.get(a.id)
    assert a.state == "COMPLETED", raw(a)["error"]
    assert len(completions(log_events(server), a.id)) == 1, "A was not run again after the restart"

    got = s3.get_object(Bucket=bucket, Key="grace/a.bin")
    assert got["ContentLength"] == len(data_a)
    assert got["Body"].read() == data_a
    assert got["Metadata"]["egress-export-id"] == a.id
    alias = api.files.get(fa.id)
    assert alias.storage.type == "VOLUME" and alias.storage.volume == v.id
    assert alias.storage.location == "a.bin" and alias.size == len(data_a)
    assert download_bytes(alias, tmp_path) == data_a
    assert s3.get_object(Bucket=bucket, Key="grace/b.bin")["Body"].read() == data_b
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])) == \
        ["grace/a.bin", "grace/b.bin"]
    assert open_uploads(s3, bucket) == []
    poll(lambda: not blob_a.exists(), "A's platform blob to be freed")


def test_sigterm_grace_deadline_then_the_job_is_taken_again(egress_factory, moto, proxy, tmp_path):
    server = start(egress_factory, proxy, "--lease-secs", "2", "--shutdown-grace-secs", "1")
    api = user_api(server, "deadline")
    project = api.projects.create(name="Deadline")
    v, bucket = volume_on(api, moto, proxy.url, prefix="deadline")
    s3 = moto.client()
    data = os.urandom(12 * MiB)
    blobs_before = blob_files(server)
    f = upload_bytes(api, tmp_path, project.id, "stuck.bin", data)
    [blob] = blob_files(server) - blobs_before

    proxy.hold(lambda r: (part_number(r) or 0) >= 2)  # never released while this server runs
    e = api.exports.submit_export(file=f, volume=v, location="stuck.bin")
    assert proxy.wait_for(lambda r: r.fault == "held", timeout=60) is not None, \
        [(r.method, r.target) for r in proxy.requests]
    assert api.exports.get(e.id).state == "RUNNING"
    assert open_uploads(s3, bucket), "the first attempt has a multipart upload open"

    sigterm(server)
    code = wait_exit(server, timeout=20)  # the copy is stuck: only the deadline ends the wait
    assert code == 0, f"exit code {code} after the grace deadline"
    first_run = log_events(server)
    assert [x for x in first_run if x.get("level") == "WARN" and "grace ended" in x.get("message", "")], \
        "the server says it gave up on a running copy"
    assert completions(first_run, e.id) == []
    rows = export_rows(server)
    assert rows[e.id]["state"] == "RUNNING" and rows[e.id]["attempt"] == 1, rows[e.id]

    proxy.release(drop_held=True)  # the dead server's half-sent parts never reach moto
    server.restart()
    e = wait_export(api.exports.get(e.id), timeout=120)
    assert e.state == "COMPLETED", raw(e)["error"]
    [done] = completions(log_events(server), e.id)
    assert done.get("attempt") == 2, done

    key = "deadline/stuck.bin"
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ContentLength"] == len(data)
    assert got["Body"].read() == data
    assert got["Metadata"]["egress-export-id"] == e.id
    alias = api.files.get(f.id)
    assert alias.storage.type == "VOLUME" and alias.storage.volume == v.id
    assert alias.storage.location == "stuck.bin" and alias.size == len(data)
    assert download_bytes(alias, tmp_path) == data
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == [key]
    poll(lambda: open_uploads(s3, bucket) == [], "the first attempt's multipart upload to be aborted")
    poll(lambda: not blob.exists(), "the platform blob to be freed")
