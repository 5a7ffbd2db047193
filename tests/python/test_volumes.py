"""Volumes against real S3 protocol servers (moto), through the official client and raw HTTP."""
import itertools

import pytest
import requests
import sevenbridges as sbg
from sevenbridges.errors import BadRequest, Conflict, Forbidden, NotFound

_names = itertools.count()


def unique(prefix):
    return f"{prefix}{next(_names)}"


@pytest.fixture(scope="module")
def api(egress):
    return sbg.Api(url=egress.url + "/v2", token=egress.create_user("vera"), debug=True)


def s3_body(moto, bucket, name, mode="RW", **service):
    body = {
        "name": name,
        "access_mode": mode,
        "service": {
            "type": "s3",
            "bucket": bucket,
            "endpoint": moto.endpoint,
            "credentials": {"access_key_id": moto.key, "secret_access_key": moto.secret},
            **service,
        },
    }
    return body


def create(api, body):
    """Volumes on an S3-compatible endpoint need `service.endpoint`, which the client's
    helpers never send, so they are created with a raw POST and read back with the client."""
    data = api.post("/storage/volumes", data=body).json()
    return api.volumes.get(data["id"])


def code_of(excinfo):
    return excinfo.value.code


def test_create_rw_and_ro_with_prefix_and_properties(api, moto):
    bucket = moto.bucket("vol-create")
    props = {"sse_algorithm": "aws:kms", "sse_aws_kms_key_id": "key-1", "aws_canned_acl": "bucket-owner-full-control", "aws_storage_class": "STANDARD_IA"}
    body = s3_body(moto, bucket, "rw_vol", prefix="exports/", properties=props)
    body["description"] = "read write"
    rw = create(api, body)
    assert rw.id == "vera/rw_vol" and rw.access_mode == "RW" and rw.active is True
    assert rw.service["type"] == "s3" and rw.service["prefix"] == "exports"
    assert rw.service["properties"] == props
    assert rw.service["credentials"] == {"access_key_id": moto.key}
    assert rw.description == "read write"
    ro = create(api, s3_body(moto, bucket, "ro_vol", mode="RO"))
    assert ro.access_mode == "RO"
    keys = [o["Key"] for o in moto.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [], "the write probe cleans up after itself"
    assert {"vera/rw_vol", "vera/ro_vol"} <= {v.id for v in api.volumes.query(limit=1).all()}


def test_access_mode_defaults_to_rw(api, moto):
    bucket = moto.bucket("vol-default-mode")
    body = {k: v for k, v in s3_body(moto, bucket, "no_mode").items() if k != "access_mode"}
    assert create(api, body).access_mode == "RW"
    assert create(api, s3_body(moto, bucket, "null_mode", mode=None)).access_mode == "RW"


def test_gcs_volumes_are_read_only(api, gcs):
    bucket = gcs.bucket("gbucket")
    v = api.volumes.create_google_volume("gcs_ro", bucket, gcs.email, gcs.key, "RO")
    assert v.service["type"] == "gcs" and v.access_mode == "RO"
    assert "PRIVATE KEY" not in str(api.volumes.get(v.id).service)
    with pytest.raises(BadRequest) as e:
        api.volumes.create_google_volume("gcs_rw", bucket, gcs.email, gcs.key, "RW")
    assert code_of(e) == 9057


def test_patch_deactivate_rotate_delete(api, moto, moto_iam):
    bucket = moto_iam.bucket("vol-rotate")
    body = s3_body(moto_iam, bucket, "rotating")
    v = create(api, body)
    v.description = "changed"
    v = v.save()
    assert api.volumes.get(v.id).description == "changed"

    new_key, new_secret = moto_iam.iam_user("rotated", ["s3:*"])
    rotated = api.patch(f"/storage/volumes/{v.id}", data={"service": {"credentials": {"access_key_id": new_key, "secret_access_key": new_secret}}}).json()
    assert rotated["service"]["credentials"] == {"access_key_id": new_key}
    with pytest.raises(Forbidden) as e:
        api.patch(f"/storage/volumes/{v.id}", data={"service": {"credentials": {"access_key_id": "AKIAWRONG", "secret_access_key": "nope"}}})
    assert code_of(e) == 9001
    assert api.volumes.get(v.id).service["credentials"]["access_key_id"] == new_key, "a refused rotation changes nothing"

    with pytest.raises(Conflict):
        api.volumes.get(v.id).delete()
    v = api.volumes.get(v.id)
    v.active = False
    v = v.save()
    assert v.active is False
    with pytest.raises(Forbidden):
        list(v.list().all())
    v.active = True
    v = v.save()
    assert v.active is True
    v.active = False
    v.save()
    api.volumes.get(v.id).delete()
    with pytest.raises(NotFound):
        api.volumes.get(v.id)


def test_browse_pages_and_object_info(api, moto):
    bucket = moto.bucket("vol-browse")
    s3 = moto.client()
    for i in range(120):
        s3.put_object(Bucket=bucket, Key=f"pre/dir/f{i:03}.txt", Body=b"x" * i)
    s3.put_object(Bucket=bucket, Key="pre/dir/sub/deep.txt", Body=b"deep")
    s3.put_object(Bucket=bucket, Key="outside.txt", Body=b"no")
    s3.put_object(Bucket=bucket, Key="pre/a b.txt", Body=b"spaces", ServerSideEncryption="AES256", ContentType="text/plain")
    v = create(api, s3_body(moto, bucket, "browse", mode="RO", prefix="pre"))

    listing = v.list(prefix="dir/", limit=50)
    assert [p.prefix for p in v.list(prefix="dir/s").prefixes] == ["dir/sub/"]
    objects = list(listing.all())
    assert len(objects) == 120, "all() follows the continuation links across pages"
    locations = {o.location for o in objects}
    assert "dir/f000.txt" in locations and "dir/f119.txt" in locations
    top = v.list()
    assert [p.prefix for p in top.prefixes] == ["dir/"]
    assert [o.location for o in top] == ["a b.txt"]

    info = v.get_volume_object_info("a b.txt")
    assert info.location == "a b.txt" and info.volume == v.id and info.type == "s3"
    assert info.metadata["size"] == 6 and info.metadata["sse_algorithm"] == "AES256"
    assert info.metadata["content_type"] == "text/plain"
    with pytest.raises(NotFound) as e:
        v.get_volume_object_info("missing.txt")
    assert code_of(e) == 9105


def test_bad_input_gets_the_right_codes(api, moto, moto_iam, egress):
    bucket = moto.bucket("vol-bad")
    cases = [
        ({**s3_body(moto, bucket, "x" * 33)}, 400, 9014),
        ({**s3_body(moto, bucket, "has-dash")}, 400, 9014),
        ({**s3_body(moto, bucket, "")}, 400, 9013),
        (s3_body(moto, bucket, "bad_mode", mode="RX"), 400, 9015),
        ({"name": "no_service", "access_mode": "RW"}, 400, 9016),
        ({**s3_body(moto, bucket, "azure_vol"), "service": {"type": "hdfs"}}, 400, 9017),
        (s3_body(moto, bucket, "kms_aes", properties={"sse_algorithm": "AES256", "sse_aws_kms_key_id": "k"}), 400, 9023),
        (s3_body(moto, bucket, "rot13", properties={"sse_algorithm": "rot13"}), 400, 9023),
        (s3_body(moto, bucket, "bad_acl", properties={"aws_canned_acl": "everyone-please"}), 400, 9022),
        (s3_body(moto, bucket, "bad_class", properties={"aws_storage_class": "COLD"}), 400, 9024),
        (s3_body(moto, "no-such-bucket", "no_bucket"), 403, 9001),
        (s3_body(moto_iam, moto_iam.bucket("vol-creds"), "bad_creds", credentials={"access_key_id": "AKIAWRONG", "secret_access_key": "wrong"}), 403, 9001),
    ]
    reader_key, reader_secret = moto_iam.iam_user("ro_only", ["s3:ListBucket", "s3:GetObject"])
    cases.append((s3_body(moto_iam, moto_iam.bucket("vol-ro-creds"), "cannot_write", credentials={"access_key_id": reader_key, "secret_access_key": reader_secret}), 403, 9002))
    headers = {"X-SBG-Auth-Token": api.token}
    for body, status, code in cases:
        r = requests.post(egress.url + "/v2/storage/volumes", json=body, headers=headers)
        assert (r.status_code, r.json().get("code")) == (status, code), (body.get("name"), r.text)
    ro_ok = requests.post(egress.url + "/v2/storage/volumes", json=s3_body(moto_iam, "vol-ro-creds", "read_only_ok", mode="RO", credentials={"access_key_id": reader_key, "secret_access_key": reader_secret}), headers=headers)
    assert ro_ok.status_code == 200, ro_ok.text

    create(api, s3_body(moto, bucket, "dup_name"))
    with pytest.raises(Conflict) as e:
        create(api, s3_body(moto, bucket, "dup_name"))
    assert code_of(e) == 9010


def test_endpoint_outside_the_allowlist_is_refused_without_connecting(api, moto, egress):
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    body = s3_body(moto, "anything", "internal")
    body["service"]["endpoint"] = f"http://127.0.0.1:{port}"
    with pytest.raises(BadRequest) as e:
        create(api, body)
    assert code_of(e) == 9017
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()
    # The client's own helper sends no endpoint, so the default (AWS over https) applies; this
    # server allows only the test endpoints, so it is refused before any connection too.
    with pytest.raises(BadRequest):
        api.volumes.create_s3_volume("aws_default", "bucket", "AK", "SK", "RW")


def test_other_users_cannot_reach_a_volume(api, moto, egress):
    v = create(api, s3_body(moto, moto.bucket("vol-private"), "private"))
    other = sbg.Api(url=egress.url + "/v2", token=egress.create_user("oscar"), debug=True)
    with pytest.raises(NotFound):
        other.volumes.get(v.id)
    with pytest.raises(NotFound):
        other.patch(f"/storage/volumes/{v.id}", data={"description": "mine"})
    assert v.id not in {x.id for x in other.volumes.query().all()}
    v.add_member("oscar", {"read": True})
    assert other.volumes.get(v.id).id == v.id
    with pytest.raises(Forbidden) as e:
        other.patch(f"/storage/volumes/{v.id}", data={"description": "mine"})
    assert code_of(e) == 9020


def test_secrets_never_leave_the_server(api, moto, egress):
    secret = "VERY-SECRET-" + "Z" * 20
    bucket = moto.bucket("vol-secret")
    body = s3_body(moto, bucket, "secretive", credentials={"access_key_id": moto.key, "secret_access_key": secret})
    r = requests.post(egress.url + "/v2/storage/volumes", json=body, headers={"X-SBG-Auth-Token": api.token})
    assert r.status_code == 200 and secret not in r.text
    bad = s3_body(moto, "no-such-bucket-2", "secretive2", credentials={"access_key_id": moto.key, "secret_access_key": secret})
    r2 = requests.post(egress.url + "/v2/storage/volumes", json=bad, headers={"X-SBG-Auth-Token": api.token})
    assert r2.status_code == 403 and secret not in r2.text
    for path in ["/v2/storage/volumes/vera/secretive", "/v2/storage/volumes?limit=100"]:
        assert secret not in requests.get(egress.url + path, headers={"X-SBG-Auth-Token": api.token}).text
    assert secret not in egress.log_text()
    for f in egress.data_dir.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
