"""Export jobs end to end: the real `egress` binary, real moto_server volumes, the official
sevenbridges-python client, raw HTTP with the seed's own bodies, and boto3 to look at the buckets.

Jobs are asynchronous: every test polls with a bounded wait (conftest.poll) and never asserts on
timings."""
import itertools
import os
import uuid

import pytest
import requests
import sevenbridges as sbg
from sevenbridges.errors import Conflict, Forbidden, NotFound

from conftest import (TERMINAL, create_volume, download_bytes, poll, s3_volume_body, start_egress,
                      upload_bytes, wait_export, wait_raw_export)
from faultproxy import FaultProxy

MiB = 1024 * 1024
CUTOFF = 5 * MiB
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
_names = itertools.count()


def unique(prefix):
    return f"{prefix}{next(_names)}"


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def proxy(moto):
    """A fault proxy in front of moto, for volumes whose copies must be held mid-flight."""
    p = FaultProxy(moto.endpoint)
    yield p
    p.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, moto, moto_iam, proxy):
    """Default (local folder) platform storage, so every copy is a streamed one; a low multipart
    cutoff so a 12 MiB file goes through the multipart path."""
    s = start_egress(tmp_path_factory, moto, moto_iam,
                     "--multipart-copy-cutoff", str(CUTOFF), "--part-size", str(CUTOFF),
                     "--retry-base-ms", "50", allow=[proxy.url])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tokens(server):
    return {name: server.create_user(name) for name in ["exa", "carol", "dave", "olga"]}


def client(server, token):
    return sbg.Api(url=server.url + "/v2", token=token, debug=True)


@pytest.fixture(scope="module")
def api(server, tokens):
    return client(server, tokens["exa"])


@pytest.fixture(scope="module")
def olga(server, tokens):
    return client(server, tokens["olga"])


@pytest.fixture(scope="module")
def project(api):
    return api.projects.create(name="Exports")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture(scope="module")
def s3(moto):
    return moto.client()


@pytest.fixture(scope="module")
def up(api, project, scratch):
    """up(data, name=None, project=None, as_api=None) -> a new PLATFORM file."""
    def upload(data, name=None, in_project=None, as_api=None):
        return upload_bytes(as_api or api, scratch, (in_project or project).id, name or unique("f") + ".bin", data)
    return upload


def headers(token):
    return {"X-SBG-Auth-Token": token, "Content-Type": "application/json"}


def make_volume(api, moto, name=None, mode="RW", endpoint=None, **service):
    """A new bucket and a volume on it; returns (volume, bucket)."""
    name = name or unique("vol")
    bucket = moto.bucket("exp-" + name.lower().replace("_", "-"))
    body = s3_volume_body(endpoint or moto.endpoint, moto.key, moto.secret, bucket, name, mode=mode, **service)
    return create_volume(api, body), bucket


def keys_under(s3, bucket, prefix=""):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def raw(export):
    """The server's JSON for an Export, with the fields the client does not model (the client
    keeps only the fields it knows, so `copy_only` and `progress` need a raw GET)."""
    return export._api.get(f"/storage/exports/{export.id}").json()


def blobs_dir(server):
    return server.data_dir / "platform" / "blobs"


def blob_names(server):
    d = blobs_dir(server)
    return {p.name for p in d.iterdir()} if d.exists() else set()


def upload_with_blob(server, up, data, **kw):
    """Upload through the default local platform storage and find the blob file it created."""
    before = blob_names(server)
    f = up(data, **kw)
    new = blob_names(server) - before
    assert len(new) == 1, f"one new blob per upload, got {new}"
    return f, blobs_dir(server) / new.pop()


def error_of(record):
    return (record.error.status, record.error.code) if record.error is not None else None


# ---- move exports --------------------------------------------------------------------------------

def test_move_export_writes_the_object_and_turns_the_file_into_an_alias(api, project, moto, s3, up, scratch):
    v, bucket = make_volume(api, moto, prefix="exports/run1")
    data = os.urandom(4096 + 17)
    f = up(data, name="sample.vcf")
    props = {"sse_algorithm": "aws:kms", "sse_aws_kms_key_id": "key-123", "aws_canned_acl": "public-read"}
    e = api.exports.submit_export(file=f, volume=v, location="calls/sample.vcf", properties=props)
    assert e.state in ("PENDING", "RUNNING", "COMPLETED")
    assert e.source.id == f.id
    assert e.destination.volume == v.id and e.destination.location == "calls/sample.vcf"
    assert e.overwrite is False and raw(e)["copy_only"] is False
    assert e.href.endswith("/v2/storage/exports/" + e.id) and e.href.startswith("http")

    wait_export(e)
    assert e.state == "COMPLETED", raw(e)["error"]
    body = raw(e)
    assert body["error"] is None and e.started_on is not None and e.finished_on is not None
    assert body["progress"] == {"bytes_copied": len(data), "bytes_total": len(data)}
    assert body["properties"]["sse_algorithm"] == "aws:kms"
    assert body["properties"]["sse_aws_kms_key_id"] == "key-123"
    assert body["properties"]["aws_canned_acl"] == "public-read"

    key = "exports/run1/calls/sample.vcf"
    assert keys_under(s3, bucket) == [key], "one object, under the prefix joined with one '/'"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == "key-123"
    assert head["Metadata"]["egress-export-id"] == e.id
    grants = s3.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    assert any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] == "READ" for g in grants), grants

    result = e.result
    assert result is not None and result.id == f.id
    assert result.storage.type == "VOLUME"
    assert result.storage.volume == v.id
    assert result.storage.location == "calls/sample.vcf", "location is volume-relative, as submitted"
    alias = api.files.get(f.id)
    assert alias.name == "sample.vcf" and alias.size == len(data) and alias.project == project.id
    assert alias.storage.type == "VOLUME" and alias.storage.volume == v.id
    assert alias.storage.location == "calls/sample.vcf"

    info = alias.download_info()
    assert info.url.startswith(moto.endpoint), "an alias downloads straight from the volume object"
    assert download_bytes(alias, scratch) == data

    with pytest.raises(Forbidden) as exc:
        api.exports.submit_export(file=alias, volume=v, location="again.vcf")
    assert (exc.value.status, exc.value.code) == (403, 9006)
    [rec] = api.exports.bulk_submit([{"file": alias.id, "volume": v.id, "location": "again.vcf"}], copy_only=True)
    assert error_of(rec) == (403, 9006) and rec.resource is None

    alias.delete()
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, "deleting an alias keeps the object"


def test_platform_bytes_are_freed_after_a_move_unless_another_file_still_refers_to_them(server, api, project, moto, up, scratch):
    v, _ = make_volume(api, moto)
    other_project = api.projects.create(name="Keeps a copy")
    shared_data, alone_data = os.urandom(3000), os.urandom(2000)
    shared, shared_blob = upload_with_blob(server, up, shared_data)
    before = blob_names(server)
    kept = shared.copy(project=other_project.id)
    assert blob_names(server) == before, "a copy shares the blob, it does not duplicate the bytes"
    alone, alone_blob = upload_with_blob(server, up, alone_data)
    assert shared_blob.exists() and alone_blob.exists()

    e1 = wait_export(api.exports.submit_export(file=shared, volume=v, location="shared.bin"))
    assert e1.state == "COMPLETED", raw(e1)["error"]
    e2 = wait_export(api.exports.submit_export(file=alone, volume=v, location="alone.bin"))
    assert e2.state == "COMPLETED", raw(e2)["error"]

    # The sweeper runs after each commit; once the blob of the later move is gone, a sweep has run
    # after both commits, so the shared blob surviving is not luck of timing.
    poll(lambda: not alone_blob.exists(), "the moved file's platform blob to be freed")
    assert shared_blob.exists(), "the copy in the other project still refers to these bytes"
    assert download_bytes(api.files.get(kept.id), scratch) == shared_data
    assert api.files.get(kept.id).storage.type == "PLATFORM"
    assert download_bytes(api.files.get(shared.id), scratch) == shared_data, "the alias reads the volume"

    api.files.get(kept.id).delete()
    poll(lambda: not shared_blob.exists(), "the last reference's blob to be freed")


def test_copy_only_keeps_the_source_on_the_platform_and_it_can_be_exported_again(server, api, project, moto, s3, up, scratch):
    v, bucket = make_volume(api, moto, prefix="copies")
    data = os.urandom(5000)
    f, blob = upload_with_blob(server, up, data, name="keep.bin")
    [rec] = api.exports.bulk_submit([{"file": f.id, "volume": v.id, "location": "keep-1.bin"}], copy_only=True)
    assert rec.valid, rec.error
    e = wait_export(rec.resource)
    assert e.state == "COMPLETED", raw(e)["error"]
    assert raw(e)["copy_only"] is True
    assert s3.get_object(Bucket=bucket, Key="copies/keep-1.bin")["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key="copies/keep-1.bin")["Metadata"]["egress-export-id"] == e.id
    assert e.result is not None and e.result.id == f.id and e.result.storage.type == "PLATFORM"

    same = api.files.get(f.id)
    assert same.storage.type == "PLATFORM" and same.size == len(data) and same.name == "keep.bin"
    assert download_bytes(same, scratch) == data
    assert blob.exists()

    again = wait_export(api.exports.submit_export(file=same, volume=v, location="keep-2.bin", copy_only=True))
    assert again.state == "COMPLETED" and raw(again)["copy_only"] is True, raw(again)["error"]
    moved = wait_export(api.exports.submit_export(file=same, volume=v, location="keep-3.bin"))
    assert moved.state == "COMPLETED", raw(moved)["error"]
    assert keys_under(s3, bucket) == ["copies/keep-1.bin", "copies/keep-2.bin", "copies/keep-3.bin"]
    assert api.files.get(f.id).storage.type == "VOLUME"
    poll(lambda: not blob.exists(), "the blob to be freed after the final move")


def test_effective_properties_export_over_volume_over_aes256(api, moto, s3, up):
    plain, plain_bucket = make_volume(api, moto)
    vol_props = {"sse_algorithm": "aws:kms", "sse_aws_kms_key_id": "vol-key", "aws_canned_acl": "public-read",
                 "aws_storage_class": "STANDARD_IA"}
    styled, styled_bucket = make_volume(api, moto, properties=vol_props)
    f = up(os.urandom(1000))
    recs = api.exports.bulk_submit([
        {"file": f.id, "volume": plain.id, "location": "default.bin"},
        {"file": f.id, "volume": plain.id, "location": "no-sse.bin", "properties": {"sse_algorithm": None}},
        {"file": f.id, "volume": styled.id, "location": "volume-defaults.bin"},
        {"file": f.id, "volume": styled.id, "location": "override.bin",
         "properties": {"aws_canned_acl": "private", "aws_storage_class": "STANDARD"}},
    ], copy_only=True)
    assert all(r.valid for r in recs), [r.error for r in recs]
    default, no_sse, from_volume, override = [r.resource for r in recs]

    assert raw(default)["properties"]["sse_algorithm"] == "AES256"
    assert raw(default)["properties"]["sse_aws_kms_key_id"] is None
    assert raw(default)["properties"]["aws_canned_acl"] is None
    assert raw(no_sse)["properties"]["sse_algorithm"] is None
    assert raw(from_volume)["properties"] == vol_props
    assert raw(override)["properties"] == {**vol_props, "aws_canned_acl": "private", "aws_storage_class": "STANDARD"}

    for e in (default, no_sse, from_volume, override):
        wait_export(e)
        assert e.state == "COMPLETED", raw(e)["error"]
        assert e.properties is not None

    head = s3.head_object(Bucket=plain_bucket, Key="default.bin")
    assert head["ServerSideEncryption"] == "AES256"
    head = s3.head_object(Bucket=plain_bucket, Key="no-sse.bin")
    assert "ServerSideEncryption" not in head, "sse_algorithm null sends no SSE header"
    head = s3.head_object(Bucket=styled_bucket, Key="volume-defaults.bin")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == "vol-key"
    assert head["StorageClass"] == "STANDARD_IA"
    grants = s3.get_object_acl(Bucket=styled_bucket, Key="volume-defaults.bin")["Grants"]
    assert any(g["Grantee"].get("URI") == ALL_USERS for g in grants)
    head = s3.head_object(Bucket=styled_bucket, Key="override.bin")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == "vol-key"
    assert head.get("StorageClass", "STANDARD") == "STANDARD"
    grants = s3.get_object_acl(Bucket=styled_bucket, Key="override.bin")["Grants"]
    assert not any(g["Grantee"].get("URI") == ALL_USERS for g in grants), grants


# ---- overwrite and the seed's same-location example -----------------------------------------------

SEED_BODY = """{
    "items": [
        {
              "source": {
                "file": "5abce8051c948ec3c0ce2b7c"
              },
              "destination": {
                "volume": "rfranklin/output",
                "location": "output.vcf"
              },
              "overwrite": true,
              "properties": {
              "sse_algorithm": "AES256"
            }
        },
        {
              "source": {
                "file": "5abce8191c948ec3c0ce2b7f"
              },
              "destination": {
                "volume": "rfranklin/output",
                "location": "output.vcf"
              },
              "overwrite": false,
              "properties": {
              "sse_algorithm": "AES256"
            }
        }
         
    ]
}"""


def seed_body(first, second, volume):
    body = SEED_BODY.replace("5abce8051c948ec3c0ce2b7c", first).replace("5abce8191c948ec3c0ce2b7f", second)
    return body.replace("rfranklin/output", volume)


@pytest.mark.parametrize("path, move", [
    ("/v2/bulk/storage/exports/create", True),
    ("/v2/bulk/storage/exports?copy_only=true", False),
])
def test_seed_same_location_example(path, move, server, api, moto, s3, up, scratch):
    """DESIGN.md invariant 5: item 1 (overwrite=true) writes output.vcf first; item 2
    (overwrite=false) then fails with 9107 and its source stays on the platform untouched."""
    v, bucket = make_volume(api, moto, prefix="rfranklin")
    one, two = os.urandom(3333), os.urandom(4444)
    f1, f2 = up(one, name=unique("one") + ".vcf"), up(two, name=unique("two") + ".vcf")
    r = requests.post(server.url + path, data=seed_body(f1.id, f2.id, v.id), headers=headers(api.token))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 2 and all("resource" in i and i.get("error") is None for i in items), items
    first, second = (i["resource"] for i in items)
    assert first["source"] == {"file": f1.id} and second["source"] == {"file": f2.id}
    assert first["destination"] == {"volume": v.id, "location": "output.vcf"}
    assert first["overwrite"] is True and second["overwrite"] is False
    assert first["properties"]["sse_algorithm"] == "AES256" and first["properties"]["sse_aws_kms_key_id"] is None
    assert first["copy_only"] is (not move) and second["copy_only"] is (not move)
    assert first["state"] in ("PENDING", "RUNNING") or first["state"] in TERMINAL

    first = wait_raw_export(api, first["id"])
    second = wait_raw_export(api, second["id"])
    assert first["state"] == "COMPLETED", first["error"]
    assert second["state"] == "FAILED"
    assert second["error"]["status"] == 409 and second["error"]["code"] == 9107, second["error"]
    assert isinstance(second["error"]["message"], str) and second["error"]["message"]
    assert second["result"] is None
    assert first["finished_on"] <= second["finished_on"], "same (volume, key) runs in submission order"

    assert keys_under(s3, bucket) == ["rfranklin/output.vcf"]
    assert s3.get_object(Bucket=bucket, Key="rfranklin/output.vcf")["Body"].read() == one
    assert s3.head_object(Bucket=bucket, Key="rfranklin/output.vcf")["Metadata"]["egress-export-id"] == first["id"]
    assert api.files.get(f1.id).storage.type == ("VOLUME" if move else "PLATFORM")
    loser = api.files.get(f2.id)
    assert loser.storage.type == "PLATFORM" and loser.size == len(two)
    assert download_bytes(loser, scratch) == two


def test_overwrite_false_onto_an_existing_object_fails_and_true_replaces_it(api, moto, s3, up, scratch):
    v, bucket = make_volume(api, moto, prefix="p")
    s3.put_object(Bucket=bucket, Key="p/taken.txt", Body=b"already here")
    data = os.urandom(2048)
    f = up(data)
    e = wait_export(api.exports.submit_export(file=f, volume=v, location="taken.txt", overwrite=False))
    assert e.state == "FAILED"
    assert (e.error.status, e.error.code) == (409, 9107)
    assert e.result is None
    assert s3.get_object(Bucket=bucket, Key="p/taken.txt")["Body"].read() == b"already here"
    still = api.files.get(f.id)
    assert still.storage.type == "PLATFORM" and download_bytes(still, scratch) == data

    e = wait_export(api.exports.submit_export(file=f, volume=v, location="taken.txt", overwrite=True))
    assert e.state == "COMPLETED", raw(e)["error"]
    assert e.overwrite is True
    assert s3.get_object(Bucket=bucket, Key="p/taken.txt")["Body"].read() == data
    assert s3.head_object(Bucket=bucket, Key="p/taken.txt")["Metadata"]["egress-export-id"] == e.id
    assert api.files.get(f.id).storage.type == "VOLUME"


# ---- validation ------------------------------------------------------------------------------------

def test_every_validation_error_in_order_inside_mixed_bulk_calls(server, api, project, olga, moto, up, tokens, gcs):
    rw, _ = make_volume(api, moto)
    pre, pre_bucket = make_volume(api, moto, prefix="pre")
    ro, _ = make_volume(api, moto, mode="RO")
    inactive, _ = make_volume(api, moto)
    inactive.active = False
    inactive.save()
    gcs_volume = api.volumes.create_google_volume(unique("gcs"), gcs.bucket("gbucket"), gcs.email, gcs.key, "RO")
    olga_private, _ = make_volume(olga, moto)
    olga_shared, _ = make_volume(olga, moto)
    olga_shared.add_member("exa", {"read": True})

    olga_project = olga.projects.create(name="Olga private")
    olga_file = up(b"olga's", in_project=olga_project, as_api=olga)
    folder = api.files.create_folder(unique("dir"), project=project.id)
    public_project = api.projects.create(name=unique("Public refs "))
    public_file = up(b"reference", in_project=public_project)
    server.admin("publish-project", public_project.id)
    alias_volume, _ = make_volume(api, moto)
    alias = up(b"soon an alias")
    assert wait_export(api.exports.submit_export(file=alias, volume=alias_volume, location="a.bin")).state == "COMPLETED"

    ok1, twice, ok2, ok3 = (up(os.urandom(100 + i)) for i in range(4))
    missing = "0" * 24

    def item(f, vol, location, **extra):
        return {"file": f if isinstance(f, str) else f.id, "volume": vol if isinstance(vol, str) else vol.id,
                "location": location, **extra}

    cases = [
        (item(ok1, rw, "ok1.bin"), None),
        (item(missing, rw, "x.bin"), (404, 5002)),
        (item(olga_file, rw, "x.bin"), (404, 5002)),
        (item(folder, rw, "x.bin"), (403, 9006)),
        (item(public_file, rw, "x.bin"), (403, 9006)),
        (item(alias, rw, "x.bin"), (403, 9006)),
        (item(twice, rw, "twice-a.bin"), None),
        (item(twice, rw, "twice-b.bin"), (409, 90007)),
        (item(ok2, "exa/no_such_volume", "x.bin"), (404, 9007)),
        (item(ok2, olga_private, "x.bin"), (404, 9007)),
        (item(ok2, olga_shared, "x.bin"), (403, 9020)),
        (item(ok2, ro, "x.bin"), (400, 9026)),
        (item(ok2, inactive, "x.bin"), (403, 9103)),
        (item(ok2, gcs_volume, "x.bin"), (400, 9027)),
        (item(ok2, rw, "/abs.bin"), (400, 9011)),
        (item(ok2, rw, "a/../b.bin"), (400, 9011)),
        (item(ok2, rw, ".."), (400, 9011)),
        (item(ok2, pre, "é" * 511), (400, 9011)),  # 4 + 1022 = 1026 bytes
        (item(ok2, rw, "x.bin", properties={"sse_algorithm": "rot13"}), (400, 9023)),
        (item(ok2, rw, "x.bin", properties={"sse_algorithm": "AES256", "sse_aws_kms_key_id": "k"}), (400, 9023)),
        (item(ok2, rw, "x.bin", properties={"aws_canned_acl": "everyone-please"}), (400, 9022)),
        (item(ok2, rw, "x.bin", properties={"aws_storage_class": "COLD"}), (400, 9024)),
        # ok2 was refused above for other reasons, so nothing reserved it: this one is valid.
        (item(ok2, pre, "é" * 510), None),  # "pre/" + 1020 bytes = exactly 1024
        (item(ok3, rw, "ok3.bin"), None),
    ]
    records = api.exports.bulk_submit([c[0] for c in cases])
    assert len(records) == len(cases)
    for i, ((it, expected), rec) in enumerate(zip(cases, records)):
        if expected is None:
            assert rec.valid and rec.error is None, (i, it, rec.error)
            assert rec.resource.source.id == it["file"] and rec.resource.destination.location == it["location"]
        else:
            assert not rec.valid and rec.resource is None, (i, it)
            assert error_of(rec) == expected, (i, it, rec.error.code, rec.error.message)
            assert rec.error.message
    assert api.exports.query(volume=rw).total == 3, "refused items create no jobs"

    # The empty location is refused by the client itself: send it raw, mixed with good and bad items.
    ok4 = up(b"four")
    body = {"items": [
        {"source": {"file": ok4.id}, "destination": {"volume": rw.id, "location": ""}, "properties": {}, "overwrite": False},
        {"source": {"file": ok4.id}, "destination": {"volume": rw.id, "location": "ok4.bin"}, "properties": {}, "overwrite": False},
        {"source": {"file": ok4.id}, "destination": {"volume": rw.id, "location": "/x"}, "properties": {}, "overwrite": False},
    ]}
    r = requests.post(server.url + "/v2/bulk/storage/exports/create?copy_only=True", json=body, headers=headers(api.token))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(i.get("error") or {}).get("code") for i in items] == [9011, None, 9011]
    assert items[0]["error"]["status"] == 400 and "resource" in items[1]

    valid = [rec.resource for rec in records if rec.valid] + [api.exports.get(items[1]["resource"]["id"])]
    for e in valid:
        wait_export(e)
        assert e.state == "COMPLETED", (e.destination.location, raw(e)["error"])
    assert "pre/" + "é" * 510 in [o["Key"] for o in moto.client().list_objects_v2(Bucket=pre_bucket)["Contents"]]


def test_project_rights_copy_for_copy_only_and_write_for_move(server, api, project, moto, up, tokens):
    carol = client(server, tokens["carol"])
    dave = client(server, tokens["dave"])
    project.add_member("carol", {"read": True, "copy": True, "write": False})
    project.add_member("dave", {"read": True, "copy": False, "write": False})
    carol_vol, _ = make_volume(carol, moto)
    dave_vol, _ = make_volume(dave, moto)
    f = up(b"shared with members")

    [rec] = carol.exports.bulk_submit([{"file": f.id, "volume": carol_vol.id, "location": "moved.bin"}])
    assert error_of(rec) == (403, 9004)
    with pytest.raises(Forbidden) as exc:
        carol.exports.submit_export(file=f.id, volume=carol_vol.id, location="moved.bin")
    assert exc.value.code == 9004
    [rec] = carol.exports.bulk_submit([{"file": f.id, "volume": carol_vol.id, "location": "copied.bin"}], copy_only=True)
    assert rec.valid, rec.error
    assert wait_export(rec.resource).state == "COMPLETED"

    [rec] = dave.exports.bulk_submit([{"file": f.id, "volume": dave_vol.id, "location": "copied.bin"}], copy_only=True)
    assert error_of(rec) == (403, 9004)
    assert api.files.get(f.id).storage.type == "PLATFORM"


def test_whole_call_errors_are_plain_error_responses(server, api, moto, up):
    v, _ = make_volume(api, moto)
    f = up(b"whole call")
    good = {"source": {"file": f.id}, "destination": {"volume": v.id, "location": "w.bin"}, "properties": {}, "overwrite": False}
    url = server.url + "/v2/bulk/storage/exports/create?copy_only=True"
    h = headers(api.token)

    def refused(resp, status, code=None):
        assert resp.status_code == status, resp.text
        err = resp.json()
        assert "items" not in err
        assert err["status"] == status and isinstance(err["code"], int) and err["message"], err
        if code is not None:
            assert err["code"] == code, err

    many = {"items": [dict(good, destination={"volume": v.id, "location": f"w{i}.bin"}) for i in range(101)]}
    refused(requests.post(url, json=many, headers=h), 400)
    refused(requests.post(url, json={"items": []}, headers=h), 400)
    refused(requests.post(url, data='{"items": [', headers=h), 400, 90009)
    refused(requests.post(url, json={"items": [{k: x for k, x in good.items() if k != "destination"}]}, headers=h), 400)
    refused(requests.post(url, json={"items": [dict(good, source={})]}, headers=h), 400)
    refused(requests.post(url, json={"nothing": []}, headers=h), 400)
    refused(requests.post(url, json={"items": [good]}, headers={"Content-Type": "application/json"}), 401)
    refused(requests.post(server.url + "/v2/bulk/storage/exports/get", json={"export_ids": ["x"] * 101}, headers=h), 400)
    assert api.exports.query(volume=v).total == 0, "a refused call creates nothing"

    hundred = {"items": [dict(good, destination={"volume": v.id, "location": f"w{i}.bin"}) for i in range(100)]}
    r = requests.post(server.url + "/v2/bulk/storage/exports?copy_only=True", json=hundred, headers=h)
    assert r.status_code == 200 and len(r.json()["items"]) == 100, r.text
    ids = [i["resource"]["id"] for i in r.json()["items"]]
    assert len(set(ids)) == 100
    got = api.exports.bulk_get(ids)
    assert [rec.resource.id for rec in got] == ids
    for e in (rec.resource for rec in got):
        wait_export(e)
        assert e.state == "COMPLETED", raw(e)["error"]


# ---- single export endpoints, get, query, idempotency -----------------------------------------------

def test_single_export_get_and_job_visibility(server, api, olga, moto, up):
    v, bucket = make_volume(api, moto)
    f = up(b"single")
    h = headers(api.token)
    body = {"source": {"file": f.id}, "destination": {"volume": v.id, "location": "single.bin"}, "overwrite": False}
    r = requests.post(server.url + "/v2/storage/exports?copy_only=True", json=body, headers=h)
    assert r.status_code in (200, 201), r.text
    copied = r.json()
    assert copied["copy_only"] is True and copied["source"] == {"file": f.id}
    assert copied["href"] == server.url + "/v2/storage/exports/" + copied["id"]
    for k in ("state", "destination", "properties", "overwrite", "started_on", "finished_on", "error", "result"):
        assert k in copied, k

    r = requests.post(server.url + "/v2/storage/exports", json=dict(body, destination={"volume": v.id, "location": "moved.bin"}), headers=h)
    assert r.status_code in (200, 201), r.text
    moved = r.json()
    assert moved["copy_only"] is False

    got = requests.get(server.url + "/v2/storage/exports/" + moved["id"], headers=h)
    assert got.status_code == 200 and got.json()["id"] == moved["id"]
    assert wait_raw_export(api, copied["id"])["state"] == "COMPLETED"
    done = wait_raw_export(api, moved["id"])
    assert done["state"] == "COMPLETED" and done["result"]["storage"]["type"] == "VOLUME"

    r = requests.get(server.url + "/v2/storage/exports/nosuchexport", headers=h)
    assert (r.status_code, r.json()["code"]) == (404, 9008)
    with pytest.raises(NotFound) as exc:
        olga.exports.get(moved["id"])
    assert exc.value.code == 9008
    recs = olga.exports.bulk_get([moved["id"], "nosuchexport"])
    assert [error_of(rec) for rec in recs] == [(404, 9008), (404, 9008)]
    recs = api.exports.bulk_get([moved["id"], "nosuchexport", copied["id"]])
    assert [rec.valid for rec in recs] == [True, False, True]
    assert recs[0].resource.id == moved["id"] and error_of(recs[1]) == (404, 9008)
    assert moved["id"] not in {e.id for e in olga.exports.query().all()}


def test_query_by_volume_and_repeated_state(server, api, moto, s3, up):
    v, bucket = make_volume(api, moto)
    s3.put_object(Bucket=bucket, Key="exists.bin", Body=b"x")
    f = up(b"query me")
    recs = api.exports.bulk_submit([
        {"file": f.id, "volume": v.id, "location": "q1.bin"},
        {"file": f.id, "volume": v.id, "location": "q2.bin"},
        {"file": f.id, "volume": v.id, "location": "exists.bin"},
    ], copy_only=True)
    jobs = [wait_export(r.resource) for r in recs]
    assert [j.state for j in jobs] == ["COMPLETED", "COMPLETED", "FAILED"]
    completed = {jobs[0].id, jobs[1].id}

    h = headers(api.token)
    base = server.url + "/v2/storage/exports"
    r = requests.get(base, params={"volume": v.id, "state": "COMPLETED"}, headers=h)
    assert r.status_code == 200 and r.headers["X-Total-Matching-Query"] == "2"
    assert {i["id"] for i in r.json()["items"]} == completed
    r = requests.get(base, params=[("volume", v.id), ("state", "COMPLETED"), ("state", "FAILED")], headers=h)
    assert r.headers["X-Total-Matching-Query"] == "3" and len(r.json()["items"]) == 3
    r = requests.get(base, params={"volume": v.id, "state": "FAILED", "fields": "_all"}, headers=h)
    assert r.headers["X-Total-Matching-Query"] == "1"
    assert r.json()["items"][0]["error"]["code"] == 9107
    r = requests.get(base, params={"volume": v.id, "state": "RUNNING"}, headers=h)
    assert r.headers["X-Total-Matching-Query"] == "0" and r.json()["items"] == []

    assert {e.id for e in api.exports.query(volume=v, state="COMPLETED").all()} == completed
    assert {e.id for e in v.get_exports(state="FAILED").all()} == {jobs[2].id}
    assert {e.id for e in api.exports.query(volume=v.id, limit=1).all()} == {j.id for j in jobs}
    page = api.exports.query(volume=v, limit=2)
    assert page.total == 3 and len(page) == 2
    assert {j.id for j in jobs} <= {e.id for e in api.exports.query(limit=100).all()}


def test_idempotency_key_returns_the_first_response(server, api, moto, up):
    v, _ = make_volume(api, moto)
    f = up(b"only once")
    body = {"items": [
        {"source": {"file": f.id}, "destination": {"volume": v.id, "location": "i1.bin"}, "properties": {}, "overwrite": False},
        {"source": {"file": f.id}, "destination": {"volume": v.id, "location": "i2.bin"}, "properties": {}, "overwrite": False},
    ]}
    h = dict(headers(api.token), **{"Idempotency-Key": str(uuid.uuid4())})
    url = server.url + "/v2/bulk/storage/exports/create?copy_only=True"
    first = requests.post(url, json=body, headers=h)
    second = requests.post(url, json=body, headers=h)
    assert first.status_code == second.status_code == 200
    ids = [i["resource"]["id"] for i in first.json()["items"]]
    assert [i["resource"]["id"] for i in second.json()["items"]] == ids
    assert api.exports.query(volume=v).total == 2

    single = {"source": {"file": f.id}, "destination": {"volume": v.id, "location": "i3.bin"}, "overwrite": False}
    h2 = dict(headers(api.token), **{"Idempotency-Key": str(uuid.uuid4())})
    a = requests.post(server.url + "/v2/storage/exports?copy_only=True", json=single, headers=h2)
    b = requests.post(server.url + "/v2/storage/exports?copy_only=True", json=single, headers=h2)
    assert a.status_code in (200, 201) and a.json()["id"] == b.json()["id"]
    assert api.exports.query(volume=v).total == 3

    fresh = dict(headers(api.token), **{"Idempotency-Key": str(uuid.uuid4())})
    third = requests.post(url, json=body, headers=fresh)
    assert third.status_code == 200 and not set(i["resource"]["id"] for i in third.json()["items"]) & set(ids)
    assert api.exports.query(volume=v).total == 5
    for export_id in ids + [a.json()["id"]]:
        assert wait_raw_export(api, export_id)["state"] == "COMPLETED"


# ---- files and volumes while exports run or after them ----------------------------------------------

def test_a_file_being_moved_cannot_be_deleted_or_renamed(api, moto, proxy, up):
    v, bucket = make_volume(api, moto, endpoint=proxy.url)
    f = up(os.urandom(1000), name="busy.bin")
    proxy.hold()  # every request to the volume waits: the job is claimed, then stuck mid-copy
    try:
        e = api.exports.submit_export(file=f, volume=v, location="busy.bin")
        assert proxy.wait_for(lambda r: r.fault == "held", timeout=60), "the engine never reached the volume"
        assert api.exports.get(e.id).state == "RUNNING"
        [rec] = api.exports.bulk_submit([{"file": f.id, "volume": v.id, "location": "second-move.bin"}])
        assert error_of(rec) == (409, 90007), "another move would take a file that is already being moved"
        with pytest.raises(Conflict) as exc:
            api.files.get(f.id).delete()
        assert exc.value.status == 409
        busy = api.files.get(f.id)
        busy.name = "renamed.bin"
        with pytest.raises(Conflict):
            busy.save()
        assert api.files.get(f.id).name == "busy.bin"
    finally:
        proxy.release()
    wait_export(e)
    assert e.state == "COMPLETED", raw(e)["error"]
    done = api.files.get(f.id)
    done.name = "renamed.bin"
    done.save()
    assert api.files.get(f.id).name == "renamed.bin", "once the export has ended the file is free again"
    assert moto.client().get_object(Bucket=bucket, Key="busy.bin")["Body"].read()


def test_a_volume_with_aliases_cannot_be_deleted_even_when_deactivated(api, moto, up):
    v, _ = make_volume(api, moto)
    f = up(b"pinned")
    assert wait_export(api.exports.submit_export(file=f, volume=v, location="pinned.bin")).state == "COMPLETED"
    with pytest.raises(Conflict):
        api.volumes.get(v.id).delete()
    v = api.volumes.get(v.id)
    v.active = False
    v.save()
    with pytest.raises(Conflict) as exc:
        api.volumes.get(v.id).delete()
    assert exc.value.status == 409
    assert api.files.get(f.id).storage.volume == v.id


# ---- 12 MiB: streamed multipart and server-side multipart copy ------------------------------------

def test_twelve_mib_streamed_from_local_platform_storage(api, moto, s3, up, scratch):
    v, bucket = make_volume(api, moto, prefix="big")
    data = os.urandom(12 * MiB)
    f = up(data, name="big.bin")
    e = wait_export(api.exports.submit_export(file=f, volume=v, location="streamed/big.bin"), timeout=120)
    assert e.state == "COMPLETED", raw(e)["error"]
    assert raw(e)["progress"]["bytes_copied"] == len(data)
    got = s3.get_object(Bucket=bucket, Key="big/streamed/big.bin")
    assert got["ContentLength"] == len(data)
    assert got["Body"].read() == data, "byte for byte"
    assert got["Metadata"]["egress-export-id"] == e.id
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert download_bytes(api.files.get(f.id), scratch) == data


def platform_s3_server(egress_factory, moto, platform_endpoint, bucket, allow=()):
    moto.bucket(bucket)
    return egress_factory(
        "--platform-storage", f"s3://{bucket}?endpoint={platform_endpoint}&region=us-east-1",
        "--multipart-copy-cutoff", str(CUTOFF), "--part-size", str(CUTOFF), "--retry-base-ms", "50",
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"},
        allow=allow,
    )


def test_twelve_mib_server_side_multipart_copy_with_platform_on_s3(egress_factory, moto, s3, tmp_path):
    server = platform_s3_server(egress_factory, moto, moto.endpoint, "exp-platform-direct")
    api = client(server, server.create_user("sam"))
    project = api.projects.create(name="On S3")
    v, bucket = make_volume(api, moto, prefix="mp")
    data = os.urandom(12 * MiB)
    before = set(keys_under(s3, "exp-platform-direct"))
    f = upload_bytes(api, tmp_path, project.id, "big.bin", data)
    new_keys = set(keys_under(s3, "exp-platform-direct")) - before
    [blob_key] = [k for k in new_keys if "blobs/" in k]

    e = wait_export(api.exports.submit_export(file=f, volume=v, location="big.bin"), timeout=120)
    assert e.state == "COMPLETED", raw(e)["error"]
    got = s3.get_object(Bucket=bucket, Key="mp/big.bin")
    assert got["ContentLength"] == len(data) and got["Body"].read() == data, "byte for byte"
    assert got["Metadata"]["egress-export-id"] == e.id
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert api.files.get(f.id).storage.type == "VOLUME"
    poll(lambda: blob_key not in keys_under(s3, "exp-platform-direct"), "the platform object to be freed")


def test_server_side_multipart_copy_is_used_when_the_volume_can_read_the_platform(egress_factory, moto, s3, tmp_path):
    """Platform storage and volume both on one endpoint (a pass-through proxy that records every
    request): above the cutoff the bytes must move with UploadPartCopy, never through Egress."""
    recorder = FaultProxy(moto.endpoint)
    try:
        server = platform_s3_server(egress_factory, moto, recorder.url, "exp-platform-proxied", allow=[recorder.url])
        api = client(server, server.create_user("sid"))
        project = api.projects.create(name="Server side")
        v, bucket = make_volume(api, moto, endpoint=recorder.url, prefix="ss")
        data = os.urandom(12 * MiB)
        f = upload_bytes(api, tmp_path, project.id, "big.bin", data)
        seen = len(recorder.requests)
        e = wait_export(api.exports.submit_export(file=f, volume=v, location="big.bin"), timeout=120)
        assert e.state == "COMPLETED", raw(e)["error"]
        assert s3.get_object(Bucket=bucket, Key="ss/big.bin")["Body"].read() == data
        to_volume = [r for r in recorder.requests[seen:] if r.target.startswith(f"/{bucket}/")]
        parts = [r for r in to_volume if r.method == "PUT" and "partNumber=" in r.target]
        assert parts, [(r.method, r.target) for r in to_volume]
        assert all(r.header("x-amz-copy-source") for r in parts), "every part is an UploadPartCopy"
        assert all(r.header("x-amz-copy-source-range") for r in parts)
        assert sum(int(r.header("content-length", "0") or 0) for r in parts) < 1 * MiB, "no bytes streamed"
    finally:
        recorder.close()
