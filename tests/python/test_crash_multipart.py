"""No multipart upload outlives a crash. An attempt killed after S3 created its multipart upload
but before Egress learned the upload's id used to leave the upload open in the user's bucket,
invisible and billed. The job's next attempt must abort it, and never an upload another writer has
open on the same key.

Platform storage is the default local folder, so every export is a streamed upload; 5 MiB parts
make a 12 MiB file a three-part multipart upload."""
import itertools
import os
import random
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import sevenbridges as sbg

from conftest import create_volume, poll, s3_volume_body, upload_bytes, wait_export
from faultproxy import FaultProxy

MiB = 1024 * 1024
PART = 5 * MiB
_names = itertools.count()


@pytest.fixture
def proxy(moto):
    p = FaultProxy(moto.endpoint)
    yield p
    p.close()


def start(egress_factory, *extra, allow=()):
    return egress_factory("--part-size", str(PART), "--multipart-copy-cutoff", str(PART),
                          "--lease-secs", "2", "--retry-base-ms", "50", *extra, allow=allow)


def user_api(server, name):
    return sbg.Api(url=server.url + "/v2", token=server.create_user(name), debug=True)


def volume_on(api, moto, endpoint):
    name = f"mpcrash{next(_names)}"
    bucket = moto.bucket("mpcrash-" + name)
    return create_volume(api, s3_volume_body(endpoint, moto.key, moto.secret, bucket, name)), bucket


def raw(api, export_id):
    return api.get(f"/storage/exports/{export_id}").json()


def open_uploads(s3, bucket):
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def creates_upload(bucket, key):
    def match(r):
        query = parse_qs(urlsplit(r.target).query, keep_blank_values=True)
        return (r.method == "POST" and urlsplit(r.target).path == f"/{bucket}/{key}"
                and "uploads" in query and "uploadId" not in query)
    return match


def test_an_upload_created_just_before_a_crash_is_aborted_and_no_other(egress_factory, moto, proxy, tmp_path):
    server = start(egress_factory, allow=[proxy.url])
    api = user_api(server, "mpcrash")
    project = api.projects.create(name="Multipart crash")
    v, bucket = volume_on(api, moto, proxy.url)
    s3 = moto.client()
    key = "deep/big.bin"
    data = os.urandom(12 * MiB)
    f = upload_bytes(api, tmp_path, project.id, "big.bin", data)

    # Another writer has an upload open on the very key the export will write.
    foreign = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    # S3 creates the export's upload, but the answer never reaches Egress, which dies waiting.
    proxy.swallow(1, creates_upload(bucket, key))
    e = api.exports.submit_export(file=f, volume=v, location=key)
    poll(lambda: len(open_uploads(s3, bucket)) == 2, "S3 to create the export's upload")
    orphan = {u["UploadId"] for u in open_uploads(s3, bucket)} - {foreign}
    assert raw(api, e.id)["state"] == "RUNNING"
    server.kill9()
    proxy.release(drop_held=True)
    server.restart()

    e = wait_export(api.exports.get(e.id), timeout=120)
    assert e.state == "COMPLETED", raw(api, e.id)["error"]
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data, "byte for byte"
    assert got["Metadata"]["egress-export-id"] == e.id
    # The upload the dead attempt opened is gone; the other writer's is still open.
    assert [u["UploadId"] for u in open_uploads(s3, bucket)] == [foreign], orphan
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=foreign)


def test_repeated_kill9_during_multipart_exports_leaves_no_upload_open(egress_factory, moto, tmp_path):
    seed = int(time.time())
    rng = random.Random(seed)
    server = start(egress_factory, "--workers", "4")
    api = user_api(server, "mpkill")
    project = api.projects.create(name="Multipart kills")
    v, bucket = volume_on(api, moto, moto.endpoint)
    s3 = moto.client()
    data = {f"f{i}.bin": os.urandom(12 * MiB) for i in range(6)}
    files = {name: upload_bytes(api, tmp_path, project.id, name, d) for name, d in data.items()}

    exports = {name: api.exports.submit_export(file=f, volume=v, location=f"k/{name}")
               for name, f in files.items()}
    for _ in range(5):
        # Kill at a random moment of the copies (the server restarted a moment ago).
        time.sleep(rng.uniform(0.2, 1.5))
        server.kill9()
        server.restart()

    for name, e in exports.items():
        e = wait_export(api.exports.get(e.id), timeout=120)
        assert e.state == "COMPLETED", (seed, raw(api, e.id)["error"])
        assert s3.get_object(Bucket=bucket, Key=f"k/{name}")["Body"].read() == data[name], (seed, name)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert keys == sorted(f"k/{name}" for name in data), seed
    assert open_uploads(s3, bucket) == [], (seed, "no multipart upload left open")
    assert "leases expired" in server.log_text(), "some kill interrupted a running export"
