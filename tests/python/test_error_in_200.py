"""S3 documents that CopyObject and CompleteMultipartUpload may answer `200 OK` with an `<Error>`
in the body once the work is under way. Such an answer is a failure worth another attempt, never
a final error: the fault proxy answers one such request that way and the export must complete."""
import itertools
import os

import pytest
import sevenbridges as sbg

from conftest import create_volume, s3_volume_body, upload_bytes, wait_export
from faultproxy import FaultProxy

MiB = 1024 * 1024
PART = 5 * MiB
_names = itertools.count()


@pytest.fixture
def proxy(moto):
    p = FaultProxy(moto.endpoint)
    yield p
    p.close()


def user_api(server, name):
    return sbg.Api(url=server.url + "/v2", token=server.create_user(name), debug=True)


def volume_on(api, moto, endpoint):
    name = f"err200vol{next(_names)}"
    bucket = moto.bucket("err200-" + name)
    return create_volume(api, s3_volume_body(endpoint, moto.key, moto.secret, bucket, name)), bucket


def raw(api, export_id):
    return api.get(f"/storage/exports/{export_id}").json()


def assert_exported(api, moto, proxy, e, bucket, key, data):
    e = wait_export(e, timeout=120)
    assert e.state == "COMPLETED", raw(api, e.id)["error"]
    assert proxy.injected["200-error"] == 1, "the error inside a 200 was met"
    got = moto.client().get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data, "byte for byte"
    assert got["Metadata"]["egress-export-id"] == e.id
    assert moto.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize("code", ["InternalError", None], ids=["with-code", "without-code"])
def test_complete_multipart_upload_answering_200_with_an_error_is_retried(egress_factory, moto, proxy, tmp_path, code):
    server = egress_factory("--part-size", str(PART), "--multipart-copy-cutoff", str(PART),
                            "--retry-base-ms", "50", allow=[proxy.url])
    api = user_api(server, "complete200")
    project = api.projects.create(name="Complete 200")
    v, bucket = volume_on(api, moto, proxy.url)
    data = os.urandom(12 * MiB)
    f = upload_bytes(api, tmp_path, project.id, "big.bin", data)
    # CompleteMultipartUpload is the POST with an uploadId.
    proxy.error_in_200(1, lambda r: r.method == "POST" and "uploadId=" in r.target, code=code)
    e = api.exports.submit_export(file=f, volume=v, location="big.bin")
    assert_exported(api, moto, proxy, e, bucket, "big.bin", data)


def test_copy_object_answering_200_with_an_error_is_retried(egress_factory, moto, proxy, tmp_path):
    # Platform storage and the volume behind the same proxy: exports are server-side CopyObjects.
    platform = moto.bucket("err200-platform")
    server = egress_factory(
        "--platform-storage", f"s3://{platform}?endpoint={proxy.url}&region=us-east-1",
        "--retry-base-ms", "50",
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"},
        allow=[proxy.url],
    )
    api = user_api(server, "copy200")
    project = api.projects.create(name="Copy 200")
    v, bucket = volume_on(api, moto, proxy.url)
    data = os.urandom(64 * 1024)
    f = upload_bytes(api, tmp_path, project.id, "small.bin", data)
    proxy.error_in_200(1, lambda r: r.method == "PUT" and r.target.startswith(f"/{bucket}/")
                       and r.header("x-amz-copy-source"), code=None)
    e = api.exports.submit_export(file=f, volume=v, location="small.bin")
    assert_exported(api, moto, proxy, e, bucket, "small.bin", data)
