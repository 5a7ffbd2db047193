"""Exports under failure: kill -9 in the middle of a copy, transient S3 faults, and errors that no
retry can fix. The volume endpoint is a fault proxy (faultproxy.py) in front of moto, so a copy can
be held mid-flight deterministically instead of hoping to kill the server at the right moment."""
import itertools
import os
from urllib.parse import parse_qs, urlsplit

import pytest
import sevenbridges as sbg

from conftest import (create_volume, download_bytes, poll, s3_volume_body, upload_bytes, wait_export)
from faultproxy import FaultProxy

MiB = 1024 * 1024
PART = 5 * MiB
_names = itertools.count()


def unique(prefix):
    return f"{prefix}{next(_names)}"


@pytest.fixture
def proxy(moto):
    p = FaultProxy(moto.endpoint)
    yield p
    p.close()


def start(egress_factory, proxy, *extra):
    return egress_factory(
        "--multipart-copy-cutoff", str(PART), "--part-size", str(PART), "--retry-base-ms", "50", *extra,
        allow=[proxy.url],
    )


def user_api(server, name):
    return sbg.Api(url=server.url + "/v2", token=server.create_user(name), debug=True)


def volume_on(api, moto, endpoint, **service):
    name = unique("crashvol")
    bucket = moto.bucket("crash-" + name.lower())
    body = s3_volume_body(endpoint, moto.key, moto.secret, bucket, name, **service)
    return create_volume(api, body), bucket


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


def test_kill9_during_a_running_copy_then_restart(egress_factory, moto, proxy, tmp_path):
    server = start(egress_factory, proxy, "--lease-secs", "2")
    api = user_api(server, "crash")
    project = api.projects.create(name="Crash")
    v, bucket = volume_on(api, moto, proxy.url, prefix="crash")
    s3 = moto.client()
    data = os.urandom(12 * MiB)
    blobs_before = blob_files(server)
    f = upload_bytes(api, tmp_path, project.id, "big.bin", data)
    [blob] = blob_files(server) - blobs_before
    files_before = sorted(x.id for x in api.files.query(project=project.id).all())

    # Part 1 may reach the volume; every later part is held, so the copy is running and stuck with a
    # multipart upload open when the server dies.
    proxy.hold(lambda r: (part_number(r) or 0) >= 2)
    e = api.exports.submit_export(file=f, volume=v, location="deep/big.bin")
    held = proxy.wait_for(lambda r: r.fault == "held", timeout=60)
    assert held is not None, [(r.method, r.target) for r in proxy.requests]
    assert api.exports.get(e.id).state == "RUNNING"
    assert open_uploads(s3, bucket), "the first attempt has a multipart upload open"

    server.kill9()
    proxy.release(drop_held=True)  # the dead server's half-sent parts never reach moto
    server.restart()

    e = wait_export(api.exports.get(e.id), timeout=120)
    assert e.state == "COMPLETED", raw(e)["error"]
    key = "crash/deep/big.bin"

    # Nothing lost: the exact bytes are on the volume and the file points at them.
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["ContentLength"] == len(data)
    assert got["Body"].read() == data
    assert got["Metadata"]["egress-export-id"] == e.id
    alias = api.files.get(f.id)
    assert alias.storage.type == "VOLUME" and alias.storage.volume == v.id
    assert alias.storage.location == "deep/big.bin"
    assert alias.size == len(data)
    assert download_bytes(alias, tmp_path) == data

    # Nothing duplicated: one object, one file, the same files as before.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == [key]
    files_after = list(api.files.query(project=project.id).all())
    assert sorted(x.id for x in files_after) == files_before
    assert [x.id for x in files_after if x.storage.type == "VOLUME"] == [f.id]

    # Nothing orphaned: the first attempt's multipart upload is aborted, the platform blob is freed.
    poll(lambda: open_uploads(s3, bucket) == [], "orphaned multipart uploads to be aborted")
    poll(lambda: not blob.exists(), "the platform blob to be freed")
    assert api.exports.get(e.id).state == "COMPLETED"


def test_transient_faults_are_retried_and_the_export_completes(egress_factory, moto, proxy, tmp_path):
    server = start(egress_factory, proxy, "--max-attempts", "10")
    api = user_api(server, "flaky")
    project = api.projects.create(name="Flaky")
    v, bucket = volume_on(api, moto, proxy.url)
    s3 = moto.client()

    small = os.urandom(4000)
    f = upload_bytes(api, tmp_path, project.id, "small.bin", small)
    proxy.slow_down(3)
    e = wait_export(api.exports.submit_export(file=f, volume=v, location="small.bin"), timeout=120)
    assert e.state == "COMPLETED", raw(e)["error"]
    assert proxy.injected["503"] == 3, "every injected SlowDown was met and retried"
    assert s3.get_object(Bucket=bucket, Key="small.bin")["Body"].read() == small

    big = os.urandom(12 * MiB)
    g = upload_bytes(api, tmp_path, project.id, "big.bin", big)
    proxy.drop(2)
    e = wait_export(api.exports.submit_export(file=g, volume=v, location="big.bin"), timeout=120)
    assert e.state == "COMPLETED", raw(e)["error"]
    assert proxy.injected["drop"] == 2
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == big

    # A slow link (every 16 KiB chunk delayed, both ways) is not an error either.
    slow = upload_bytes(api, tmp_path, project.id, "slow.bin", big)
    proxy.stall(0.001)
    try:
        e = wait_export(api.exports.submit_export(file=slow, volume=v, location="slow.bin"), timeout=120)
    finally:
        proxy.passthrough()
    assert e.state == "COMPLETED", raw(e)["error"]
    assert s3.get_object(Bucket=bucket, Key="slow.bin")["Body"].read() == big

    h = upload_bytes(api, tmp_path, project.id, "mixed.bin", big[:7 * MiB])
    proxy.hold(lambda r: part_number(r) == 2)
    e = api.exports.submit_export(file=h, volume=v, location="mixed.bin", copy_only=True)
    assert proxy.wait_for(lambda r: r.fault == "held", timeout=60)
    proxy.release()
    proxy.slow_down(2)
    e = wait_export(e, timeout=120)
    assert e.state == "COMPLETED", raw(e)["error"]
    assert s3.get_object(Bucket=bucket, Key="mixed.bin")["Body"].read() == big[:7 * MiB]
    poll(lambda: open_uploads(s3, bucket) == [], "no multipart upload left open")


def assert_failed_and_source_kept(api, e, f, data, tmp_path, secret=None):
    e = wait_export(e, timeout=120)
    assert e.state == "FAILED"
    body = raw(e)
    err = body["error"]
    assert isinstance(err["status"], int) and err["status"] >= 400, err
    assert isinstance(err["code"], int) and err["code"] > 0, err
    assert isinstance(err["message"], str) and err["message"], err
    assert "more_info" in err
    assert body["result"] is None
    if secret:
        assert secret not in str(body)
    kept = api.files.get(f.id)
    assert kept.storage.type == "PLATFORM" and kept.size == len(data)
    assert download_bytes(kept, tmp_path) == data
    return err


def test_access_denied_fails_the_job_and_keeps_the_source(egress_factory, moto, moto_iam, proxy, tmp_path):
    server = start(egress_factory, proxy)
    api = user_api(server, "denied")
    project = api.projects.create(name="Denied")
    name = unique("revoked")
    key, secret = moto_iam.iam_user(name, ["s3:*"])
    bucket = moto_iam.bucket("crash-" + name)
    v = create_volume(api, s3_volume_body(moto_iam.endpoint, key, secret, bucket, name))
    moto_iam.client("iam").delete_access_key(UserName=name, AccessKeyId=key)

    data = os.urandom(3000)
    f = upload_bytes(api, tmp_path, project.id, "denied.bin", data)
    blob = [p for p in blob_files(server)]
    e = api.exports.submit_export(file=f, volume=v, location="denied.bin")
    err = assert_failed_and_source_kept(api, e, f, data, tmp_path, secret=secret)
    assert err["status"] in (400, 403), err
    assert moto_iam.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert all(p.exists() for p in blob), "a failed move frees no platform bytes"
    assert secret not in server.log_text()


def test_no_such_bucket_fails_the_job_and_keeps_the_source(egress_factory, moto, proxy, tmp_path):
    server = start(egress_factory, proxy)
    api = user_api(server, "gone")
    project = api.projects.create(name="Gone")
    v, bucket = volume_on(api, moto, moto.endpoint)
    moto.client().delete_bucket(Bucket=bucket)

    data = os.urandom(3000)
    f = upload_bytes(api, tmp_path, project.id, "gone.bin", data)
    e = api.exports.submit_export(file=f, volume=v, location="gone.bin")
    assert_failed_and_source_kept(api, e, f, data, tmp_path)

    big = os.urandom(12 * MiB)
    g = upload_bytes(api, tmp_path, project.id, "gone-big.bin", big)
    e = api.exports.submit_export(file=g, volume=v, location="gone-big.bin")
    assert_failed_and_source_kept(api, e, g, big, tmp_path)
