"""Security of volumes against a real S3 protocol server (moto): who may re-point a volume's
credentials (F5), and what the official client makes of the profiles other users see (F11)."""
import itertools

import pytest
import requests
import sevenbridges as sbg

from conftest import s3_volume_body

_names = itertools.count()


def unique(prefix):
    return f"{prefix}{next(_names)}"


class Caller:
    """Raw HTTP as one user, so every answer's status and SBG code can be asserted."""

    def __init__(self, egress, name, admin=False):
        self.name = name
        args = ["create-user", name] + (["--admin"] if admin else [])
        self.token = egress.admin(*args)
        self.base = egress.url + "/v2"

    def call(self, method, path, body=None):
        return requests.request(method, self.base + path, json=body, headers={"X-SBG-Auth-Token": self.token})

    def get(self, path):
        return self.call("GET", path)

    def patch(self, path, body):
        return self.call("PATCH", path, body)


def error(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["message"]
    return body["message"]


@pytest.fixture(scope="module")
def people(egress):
    return {
        "owner": Caller(egress, "vol_owner"),
        "delegate": Caller(egress, "vol_delegate"),
        "root": Caller(egress, "vol_root", admin=True),
    }


@pytest.fixture
def volume(people, moto):
    """The owner's RW volume on a bucket holding one object, with `delegate` as a member with
    every right, `admin` included."""
    owner, delegate = people["owner"], people["delegate"]
    bucket = moto.bucket(unique("f5-home-"))
    moto.client().put_object(Bucket=bucket, Key="home/shared.txt", Body=b"shared")
    name = unique("f5vol")
    body = s3_volume_body(moto.endpoint, moto.key, moto.secret, bucket, name, prefix="home")
    r = owner.call("POST", "/storage/volumes", body)
    assert r.status_code == 200, r.text
    vid = r.json()["id"]
    r = owner.call("POST", f"/storage/volumes/{vid}/members",
                   {"username": delegate.name, "type": "USER",
                    "permissions": {"read": True, "copy": True, "write": True, "admin": True}})
    assert r.status_code == 200, r.text
    return vid, bucket


def service_of(caller, vid):
    r = caller.get(f"/storage/volumes/{vid}")
    assert r.status_code == 200, r.text
    return r.json()["service"]


def listed(caller, vid):
    r = caller.get(f"/storage/volumes/{vid}/list")
    assert r.status_code == 200, r.text
    return sorted(i["location"] for i in r.json()["items"])


def test_a_delegated_volume_admin_cannot_touch_the_service(people, volume, moto, moto_iam):
    owner, delegate = people["owner"], people["delegate"]
    vid, bucket = volume
    other = moto.bucket(unique("f5-other-"))
    moto.client().put_object(Bucket=other, Key="home/payroll.csv", Body=b"secret")
    before = service_of(owner, vid)
    attempts = [
        {"bucket": other},
        {"endpoint": moto_iam.endpoint},
        {"prefix": ""},
        {"region": "eu-west-1"},
        {"properties": {"aws_canned_acl": "public-read"}},
        {"credentials": {"access_key_id": moto.key, "secret_access_key": moto.secret}},
        {"bucket": other, "credentials": {"access_key_id": moto.key, "secret_access_key": moto.secret}},
        {},
    ]
    for service in attempts:
        r = delegate.patch(f"/storage/volumes/{vid}", {"service": service})
        assert "owner" in error(r, 403, 9020), service
    assert service_of(owner, vid) == before
    assert listed(delegate, vid) == ["shared.txt"], "still the owner's bucket and prefix"
    # The delegated admin keeps every other power of `admin`.
    r = delegate.patch(f"/storage/volumes/{vid}", {"description": "tidied by the delegate"})
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "tidied by the delegate"


def test_re_pointing_needs_credentials_in_the_same_request(people, volume, moto, moto_iam):
    owner = people["owner"]
    vid, bucket = volume
    other = moto.bucket(unique("f5-next-"))
    moto.client().put_object(Bucket=other, Key="elsewhere/moved.txt", Body=b"moved")
    before = service_of(owner, vid)
    for caller in (owner, people["root"]):
        for service in [
            {"bucket": other},
            {"endpoint": moto_iam.endpoint},
            {"prefix": "elsewhere"},
            {"region": "eu-west-1"},
            {"bucket": other, "prefix": "elsewhere", "credentials": {"access_key_id": moto.key}},
            {"bucket": other, "credentials": {"access_key_id": moto.key, "secret_access_key": ""}},
        ]:
            r = caller.patch(f"/storage/volumes/{vid}", {"service": service})
            error(r, 400, 9017)
            assert service_of(owner, vid) == before, (caller.name, service)
    # Giving the same values again is no re-pointing.
    same = {"bucket": bucket, "prefix": "home", "endpoint": moto.endpoint}
    assert owner.patch(f"/storage/volumes/{vid}", {"service": same}).status_code == 200

    creds = {"access_key_id": moto.key, "secret_access_key": moto.secret}
    r = owner.patch(f"/storage/volumes/{vid}", {"service": {"bucket": other, "prefix": "elsewhere", "credentials": creds}})
    assert r.status_code == 200, r.text
    assert (r.json()["service"]["bucket"], r.json()["service"]["prefix"]) == (other, "elsewhere")
    assert listed(owner, vid) == ["moved.txt"]
    # A platform administrator may re-point too, with credentials.
    r = people["root"].patch(f"/storage/volumes/{vid}", {"service": {"bucket": bucket, "prefix": "home", "credentials": creds}})
    assert r.status_code == 200, r.text
    assert listed(owner, vid) == ["shared.txt"]


def test_the_owner_changes_properties_without_credentials(people, volume):
    owner = people["owner"]
    vid, _ = volume
    props = {"aws_canned_acl": "bucket-owner-full-control", "aws_storage_class": "STANDARD_IA"}
    r = owner.patch(f"/storage/volumes/{vid}", {"service": {"properties": props}})
    assert r.status_code == 200, r.text
    assert {k: r.json()["service"]["properties"][k] for k in props} == props


def test_the_client_reads_public_profiles_and_member_lists_without_emails(people, volume, egress):
    owner, delegate = people["owner"], people["delegate"]
    vid, _ = volume
    api = sbg.Api(url=egress.url + "/v2", token=delegate.token, debug=True)
    seen = api.users.get(owner.name)
    assert seen.username == owner.name
    assert seen.email is None and seen.role is None
    assert api.users.me().email == f"{delegate.name}@localhost"
    members = {m.username: m for m in api.volumes.get(vid).get_members()}
    assert set(members) == {owner.name, delegate.name}
    assert all(m.email is None for m in members.values())
    assert members[delegate.name].permissions["admin"] is True
