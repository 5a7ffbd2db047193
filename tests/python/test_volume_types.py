"""Volume types beyond S3 keys, through the official client's helpers and raw HTTP bodies from the
docs: S3 volumes on an IAM role (STS AssumeRole against moto), Alibaba OSS through its
S3-compatible API (moto standing in), Google Cloud Storage (gcp-storage-emulator) and Azure Blob
(raw bodies; Azurite is driven by the Rust tests). Imports are checked byte for byte."""
import hashlib
import itertools
import json
import os

import pytest
import sevenbridges as sbg
from sevenbridges.errors import BadRequest, Forbidden

from conftest import (download_bytes, poll, start_egress, upload_bytes, wait_export, wait_import)

_names = itertools.count()
BIG = os.urandom(6 * 1024 * 1024 + 123)
SMALL = b"a small object\n"


def unique(prefix):
    return f"{prefix}{next(_names)}"


def code_of(e):
    return e.value.code


def allow_policy(actions):
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})


def trust(user):
    """A role trust policy: Egress's own user may assume it, with the external id only."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::123456789012:user/{user}"},
        "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": "sbg-ext-42"}}}]})


@pytest.fixture(scope="module")
def roles(moto_iam):
    """Egress's own identity (may only assume roles), a role that may use S3, one that may not."""
    iam = moto_iam.client("iam")
    user = unique("egress_self")
    own = moto_iam.iam_user(user, ["sts:AssumeRole"])
    arns = {}
    for name, actions in [("reader", ["s3:*"]), ("nothing", ["sqs:ListQueues"])]:
        role = unique(name)
        arns[name] = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust(user))["Role"]["Arn"]
        iam.put_role_policy(RoleName=role, PolicyName=role, PolicyDocument=allow_policy(actions))
    return own, arns


@pytest.fixture(scope="module")
def server(tmp_path_factory, moto, moto_iam, roles):
    (key, secret), _ = roles
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    s = start_egress(tmp_path_factory, moto, moto_iam, "--sts-endpoint", moto_iam.endpoint,
                     "--s3-default-endpoint", moto_iam.endpoint, "--retry-base-ms", "50", env=env)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def api(server):
    return sbg.Api(url=server.url + "/v2", token=server.create_user("tina"), debug=True)


@pytest.fixture(scope="module")
def project(api):
    return api.projects.create(name=unique("types"))


def put(moto, bucket, key, data):
    moto.client().put_object(Bucket=bucket, Key=key, Body=data)


def import_and_read(api, project, volume, location, scratch):
    imp = wait_import(api.imports.submit_import(volume=volume, location=location, project=project, autorename=True))
    assert imp.state == "COMPLETED", imp.error
    return download_bytes(api.files.get(imp.result.id), scratch)


def assert_same(got, want):
    assert len(got) == len(want) and hashlib.sha256(got).digest() == hashlib.sha256(want).digest()


# ---- S3 on an IAM role -------------------------------------------------------------------------

def test_s3_role_volume_browse_import_export(api, project, moto_iam, roles, tmp_path):
    _, arns = roles
    bucket = moto_iam.bucket(unique("role-vol-"))
    put(moto_iam, bucket, "in/big.bin", BIG)
    put(moto_iam, bucket, "in/small.txt", SMALL)
    v = api.volumes.create_s3_volume_role_auth(unique("role_rw"), bucket, arns["reader"], "sbg-ext-42", "RW")
    assert v.service["type"] == "s3" and v.access_mode == "RW"
    shown = api.get(f"/storage/volumes/{v.id}").json()
    assert shown["service"]["credentials"] == {"role_arn": arns["reader"]}
    assert "sbg-ext-42" not in json.dumps(shown), "the external id is sealed, never shown"

    listing = v.list(prefix="in/")
    assert sorted(o.location for o in listing) == ["in/big.bin", "in/small.txt"]

    # moto checking IAM does not take presigned URLs, so the aliases are checked by what the
    # import recorded (size, and the MD5 from the single-part object's ETag) and by the URL a
    # download gets: signed with the role's temporary credentials.
    for location, data in [("in/big.bin", BIG), ("in/small.txt", SMALL)]:
        imp = wait_import(api.imports.submit_import(volume=v, location=location, project=project, autorename=True))
        assert imp.state == "COMPLETED", imp.error
        alias = api.files.get(imp.result.id)
        assert alias.size == len(data)
        assert api.get(f"/files/{alias.id}").json()["checksums"]["md5"] == hashlib.md5(data).hexdigest()
        url = api.get(f"/files/{alias.id}/download_info").json()["url"]
        assert url.startswith(moto_iam.endpoint) and "X-Amz-Security-Token=" in url and "Credential=ASIA" in url

    f = upload_bytes(api, tmp_path, project.id, unique("out") + ".txt", b"exported through a role")
    e = wait_export(api.exports.submit_export(file=f, volume=v, location="out/x.txt", copy_only=True))
    assert e.state == "COMPLETED", e.error
    body = moto_iam.client().get_object(Bucket=bucket, Key="out/x.txt")["Body"].read()
    assert body == b"exported through a role"


def test_s3_role_the_role_refuses(api, moto_iam, roles):
    _, arns = roles
    bucket = moto_iam.bucket(unique("role-deny-"))
    # The role may be assumed, but may not read S3.
    with pytest.raises(Forbidden) as e:
        api.volumes.create_s3_volume_role_auth(unique("role_no"), bucket, arns["nothing"], "sbg-ext-42", "RO")
    assert code_of(e) == 9001
    assert "AccessDenied" in e.value.message
    # The trust policy wants another external id: STS refuses to hand out credentials.
    with pytest.raises(Forbidden) as e:
        api.volumes.create_s3_volume_role_auth(unique("role_ext"), bucket, arns["reader"], "another-id", "RO")
    assert code_of(e) == 9001
    assert "AssumeRole AccessDenied" in e.value.message


def test_s3_role_validation(api, moto_iam, roles):
    _, arns = roles
    bucket = moto_iam.bucket(unique("role-bad-"))
    for arn in ["not-an-arn", "arn:aws:s3:::bucket", "arn:aws:iam::12345:role/x", "arn:aws:iam::123456789012:user/x"]:
        with pytest.raises(BadRequest) as e:
            api.volumes.create_s3_volume_role_auth(unique("role_bad"), bucket, arn, "sbg-ext-42", "RO")
        assert code_of(e) == 9017, arn
    with pytest.raises(BadRequest) as e:
        api.volumes.create_s3_volume_role_auth(unique("role_bad"), bucket, arns["reader"], "bad id!", "RO")
    assert code_of(e) == 9017
    both = {"name": unique("role_both"), "service": {"type": "s3", "bucket": bucket, "credentials": {
        "role_arn": arns["reader"], "external_id": "sbg-ext-42", "access_key_id": "AK", "secret_access_key": "SK"}}}
    with pytest.raises(BadRequest) as e:
        api.post("/storage/volumes", data=both)
    assert code_of(e) == 9017


def test_s3_role_needs_the_servers_own_identity(tmp_path_factory, moto, moto_iam, roles):
    _, arns = roles
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    s = start_egress(tmp_path_factory, moto, moto_iam, "--sts-endpoint", moto_iam.endpoint,
                     "--s3-default-endpoint", moto_iam.endpoint, env=env)
    try:
        api = sbg.Api(url=s.url + "/v2", token=s.create_user("nora"), debug=True)
        bucket = moto_iam.bucket(unique("role-noid-"))
        with pytest.raises(BadRequest) as e:
            api.volumes.create_s3_volume_role_auth("role_noid", bucket, arns["reader"], "sbg-ext-42", "RO")
        assert code_of(e) == 9017
        assert "AWS identity" in e.value.message
    finally:
        s.stop()


# ---- Alibaba OSS, through its S3-compatible API (moto stands in for the endpoint) --------------

def test_oss_volume_browse_import_and_no_export(api, project, moto, tmp_path):
    bucket = moto.bucket(unique("oss-vol-"))
    put(moto, bucket, "data/big.bin", BIG)
    put(moto, bucket, "data/small.txt", SMALL)
    # moto without IAM takes any keys.
    v = api.volumes.create_oss_volume(unique("oss"), bucket, moto.endpoint, "LTAI-oss-key", "oss-secret-9", "RO")
    assert v.service["type"] == "oss" and v.access_mode == "RO"
    shown = api.get(f"/storage/volumes/{v.id}").json()
    assert shown["service"]["credentials"] == {"access_key_id": "LTAI-oss-key"}
    assert shown["service"]["endpoint"] == moto.endpoint
    assert "oss-secret-9" not in json.dumps(shown)

    assert sorted(o.location for o in v.list(prefix="data/")) == ["data/big.bin", "data/small.txt"]
    assert v.get_volume_object_info("data/small.txt").metadata["size"] == len(SMALL)
    assert_same(import_and_read(api, project, v, "data/big.bin", tmp_path), BIG)
    assert_same(import_and_read(api, project, v, "data/small.txt", tmp_path), SMALL)

    f = upload_bytes(api, tmp_path, project.id, unique("to_oss") + ".txt", b"x")
    with pytest.raises(BadRequest) as e:
        api.exports.submit_export(file=f, volume=v, location="out.txt", copy_only=True)
    assert code_of(e) == 9027


def test_oss_volume_validation(api, moto):
    bucket = moto.bucket(unique("oss-bad-"))
    with pytest.raises(BadRequest) as e:
        api.volumes.create_oss_volume(unique("oss_rw"), bucket, moto.endpoint, moto.key, moto.secret, "RW")
    assert code_of(e) == 9057
    with pytest.raises(BadRequest) as e:  # not on the allowlist: refused before any connection
        api.volumes.create_oss_volume(unique("oss_far"), bucket, "https://oss-cn-hangzhou.aliyuncs.com",
                                      moto.key, moto.secret, "RO")
    assert code_of(e) == 9017
    no_endpoint = {"name": unique("oss_noend"), "access_mode": "RO", "service": {
        "type": "OSS", "bucket": bucket, "credentials": {"access_key_id": moto.key, "secret_access_key": moto.secret}}}
    with pytest.raises(BadRequest) as e:
        api.post("/storage/volumes", data=no_endpoint)
    assert code_of(e) == 9017
    with pytest.raises(Forbidden) as e:
        api.volumes.create_oss_volume(unique("oss_gone"), "no-such-bucket-here", moto.endpoint, moto.key, moto.secret, "RO")
    assert code_of(e) == 9001
    v = api.volumes.create_oss_volume(unique("oss_ok"), bucket, moto.endpoint, moto.key, moto.secret, "RO")
    with pytest.raises(BadRequest) as e:
        api.patch(f"/storage/volumes/{v.id}", data={"access_mode": "RW"})
    assert code_of(e) == 9057


# ---- Google Cloud Storage (gcp-storage-emulator) ---------------------------------------------

def test_gcs_volume_browse_import_byte_for_byte(api, project, gcs, tmp_path):
    bucket = gcs.bucket(unique("gcs-vol-"))
    gcs.put(bucket, "reads/big.bin", BIG)
    gcs.put(bucket, "reads/small.txt", SMALL)
    gcs.put(bucket, "reads/deeper/c.txt", b"c")
    v = api.volumes.create_google_volume(unique("gcs"), bucket, gcs.email, gcs.key, "RO", prefix="reads")
    shown = api.get(f"/storage/volumes/{v.id}").json()
    assert shown["service"]["credentials"] == {"client_email": gcs.email}
    assert "PRIVATE KEY" not in json.dumps(shown)

    listing = v.list()
    assert sorted(o.location for o in listing) == ["big.bin", "small.txt"]
    assert [p.prefix for p in listing.prefixes] == ["deeper/"]
    info = v.get_volume_object_info("big.bin")
    assert info.metadata["size"] == len(BIG)

    assert_same(import_and_read(api, project, v, "big.bin", tmp_path), BIG)
    assert_same(import_and_read(api, project, v, "small.txt", tmp_path), SMALL)
    # The MD5 GCS states is recorded on the alias.
    imp = wait_import(api.imports.submit_import(volume=v, location="small.txt", project=project, autorename=True))
    assert api.get(f"/files/{imp.result.id}").json()["checksums"]["md5"] == hashlib.md5(SMALL).hexdigest()
    # A folder import brings the whole tree.
    folder = wait_import(api.imports.submit_import(volume=v, location="deeper/", project=project, autorename=True))
    assert folder.state == "COMPLETED", folder.error

    f = upload_bytes(api, tmp_path, project.id, unique("to_gcs") + ".txt", b"x")
    with pytest.raises(BadRequest) as e:
        api.exports.submit_export(file=f, volume=v, location="out.txt")
    assert code_of(e) == 9027


def test_gcs_volume_validation_and_probe(api, gcs):
    bucket = gcs.bucket(unique("gcs-bad-"))
    with pytest.raises(BadRequest) as e:
        api.volumes.create_google_volume(unique("gcs_key"), bucket, gcs.email,
                                         "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n", "RO")
    assert code_of(e) == 9025
    with pytest.raises(BadRequest) as e:
        api.volumes.create_google_volume(unique("gcs_key"), bucket, gcs.email, "not a key", "RO")
    assert code_of(e) == 9025
    with pytest.raises(Forbidden) as e:
        api.volumes.create_google_volume(unique("gcs_gone"), "no-such-gcs-bucket", gcs.email, gcs.key, "RO")
    assert code_of(e) == 9001
    far = {"name": unique("gcs_far"), "access_mode": "RO", "service": {
        "type": "gcs", "bucket": bucket, "root_url": "https://gcs.example.com",
        "credentials": {"client_email": gcs.email, "private_key": gcs.key}}}
    with pytest.raises(BadRequest) as e:
        api.post("/storage/volumes", data=far)
    assert code_of(e) == 9017


def test_gcs_iam_volume_is_validated_then_refused_clearly(api, gcs):
    bucket = gcs.bucket(unique("gcs-iam-"))
    configuration = json.dumps({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/sbg",
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"environment_id": "aws1"}})
    with pytest.raises(Forbidden) as e:
        api.volumes.create_google_iam_volume(unique("gcs_iam"), bucket, configuration, "RO")
    assert code_of(e) == 9001
    assert "identity federation" in e.value.message
    for bad in ["not json", json.dumps({"type": "service_account"}), json.dumps([1])]:
        with pytest.raises(BadRequest) as e:
            api.volumes.create_google_iam_volume(unique("gcs_iam"), bucket, bad, "RO")
        assert code_of(e) == 9017


# ---- raw bodies from the docs ------------------------------------------------------------------

AZURE_BODY = {
    "name": "azure_docs",
    "description": "Azure container from the docs",
    "service": {
        "type": "azure",
        "storage_account": "sbgstorage",
        "container": "samples",
        "prefix": "run1",
        "credentials": {"tenant_id": "72f988bf-0000-0000-0000-2d7cd011db47",
                        "client_id": "0c1d2e3f-0000-0000-0000-000000000000",
                        "client_secret": "client-secret-value"},
        "properties": {"resource_id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/sbgstorage"},
    },
}


def test_raw_azure_body_from_the_docs(api):
    """No access_mode: RW by default, which Azure volumes are not (9057); as RO, the body is valid
    and the server then refuses the endpoint (Azure's own host), which this server's allowlist
    does not name, before any connection (9017). Browsing and imports run against Azurite in the
    Rust tests (crates/egress/tests/api/volumes_azure.rs)."""
    with pytest.raises(BadRequest) as e:
        api.post("/storage/volumes", data=AZURE_BODY)
    assert code_of(e) == 9057
    with pytest.raises(BadRequest) as e:
        api.post("/storage/volumes", data={**AZURE_BODY, "access_mode": "RO"})
    assert code_of(e) == 9017
    assert "not allowed" in e.value.message
    for service in [{k: v for k, v in AZURE_BODY["service"].items() if k != "container"},
                    {**AZURE_BODY["service"], "credentials": {"tenant_id": "t", "client_id": "c"}},
                    {**AZURE_BODY["service"], "storage_account": "Bad_Name"}]:
        with pytest.raises(BadRequest) as e:
            api.post("/storage/volumes", data={**AZURE_BODY, "access_mode": "RO", "service": service})
        assert code_of(e) == 9017


def test_raw_s3_role_body_from_the_docs_without_access_mode(api, moto_iam, roles):
    _, arns = roles
    bucket = moto_iam.bucket(unique("role-docs-"))
    body = {"name": unique("role_docs"), "service": {
        "type": "s3", "bucket": bucket, "prefix": "", "endpoint": moto_iam.endpoint,
        "credentials": {"role_arn": arns["reader"], "external_id": "sbg-ext-42"},
        "properties": {"sse_algorithm": "AES256"}}}
    created = api.post("/storage/volumes", data=body).json()
    assert created["access_mode"] == "RW" and created["service"]["credentials"] == {"role_arn": arns["reader"]}
