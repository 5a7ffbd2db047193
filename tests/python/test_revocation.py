"""Rights and volumes hold at the moment of effect, tried while a move is held mid-copy by the
fault proxy in front of moto:
- the volume cannot be deactivated, made read-only or deleted under the running job (409), unless
  a deactivation is forced, which fails the job and fences its worker out;
- a move whose owner lost the volume while it copied commits nothing: the file stays on the
  platform with its bytes;
- a volume deleted and made again under the same name is another volume.

Jobs are asynchronous: every wait is bounded (conftest.poll); nothing asserts on timings."""
import itertools
import os

import pytest
import requests
import sevenbridges as sbg

from conftest import download_bytes, poll, s3_volume_body, start_egress, upload_bytes, wait_raw_export
from faultproxy import FaultProxy

_names = itertools.count()


@pytest.fixture(scope="module")
def proxy(moto):
    p = FaultProxy(moto.endpoint)
    yield p
    p.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, moto, moto_iam, proxy):
    s = start_egress(tmp_path_factory, moto, moto_iam, "--retry-base-ms", "50", allow=[proxy.url])
    yield s
    s.stop()


class User:
    def __init__(self, server, name):
        self.name = name
        self.token = server.create_user(name)
        self.url = server.url + "/v2"
        self.api = sbg.Api(url=self.url, token=self.token, debug=True)

    def call(self, method, path, body=None):
        return requests.request(method, self.url + path, json=body,
                                headers={"X-SBG-Auth-Token": self.token}, timeout=30)


def unique(prefix):
    return f"{prefix}{next(_names)}"


def volume_on(owner, moto, endpoint, name=None):
    name = name or unique("rv")
    bucket = moto.bucket(unique("revoke-"))
    r = owner.call("POST", "/storage/volumes",
                   s3_volume_body(endpoint, moto.key, moto.secret, bucket, name))
    assert r.status_code == 200, r.text
    return r.json()["id"], bucket


def held_move(owner, proxy, file_id, volume_id, location):
    """Submits a move and returns its id once its PUT is held at the proxy."""
    proxy.hold()
    r = owner.call("POST", "/storage/exports?copy_only=false",
                   {"source": {"file": file_id}, "destination": {"volume": volume_id, "location": location}})
    assert r.status_code == 200, r.text
    assert proxy.wait_for(lambda q: q.fault == "held", timeout=60), "the engine never reached the volume"
    return r.json()["id"]


def test_a_volume_is_not_changed_under_a_running_move_unless_deactivation_is_forced(server, moto, proxy, tmp_path):
    alice = User(server, unique("alice"))
    project = alice.api.projects.create(name=unique("p"))
    data = os.urandom(3000)
    f = upload_bytes(alice.api, tmp_path, project.id, "kept.bin", data)
    volume_id, _ = volume_on(alice, moto, proxy.url)
    try:
        job = held_move(alice, proxy, f.id, volume_id, "kept.bin")
        assert alice.call("GET", f"/storage/exports/{job}").json()["state"] == "RUNNING"
        for body in ({"active": False}, {"access_mode": "RO"}):
            r = alice.call("PATCH", f"/storage/volumes/{volume_id}", body)
            assert (r.status_code, r.json()["code"]) == (409, 90007), r.text
        r = alice.call("DELETE", f"/storage/volumes/{volume_id}")
        assert r.status_code == 409, r.text
        v = alice.call("GET", f"/storage/volumes/{volume_id}").json()
        assert (v["active"], v["access_mode"]) == (True, "RW")

        r = alice.call("PATCH", f"/storage/volumes/{volume_id}?force=true", {"active": False})
        assert r.status_code == 200 and r.json()["active"] is False, r.text
        failed = alice.call("GET", f"/storage/exports/{job}").json()
        assert failed["state"] == "FAILED" and failed["error"]["code"] == 9103, failed
    finally:
        proxy.release()
    # The worker, let go, finds its job taken from it (its attempt was raised): nothing commits.
    poll(lambda: any("lease lost" in line and job in line for line in server.log_text().splitlines()),
         "the fenced worker to give the job up")
    assert wait_raw_export(alice.api, job)["state"] == "FAILED"
    file = alice.api.files.get(f.id)
    assert file.storage.type == "PLATFORM"
    assert download_bytes(file, tmp_path) == data

    # Gone, and made again on another bucket under the same name: the file keeps its own bytes.
    assert alice.call("DELETE", f"/storage/volumes/{volume_id}").status_code == 204
    again_id, again_bucket = volume_on(alice, moto, moto.endpoint, name=volume_id.split("/")[1])
    assert again_id == volume_id
    moto.client().put_object(Bucket=again_bucket, Key="kept.bin", Body=b"SOMETHING ELSE ENTIRELY")
    assert download_bytes(alice.api.files.get(f.id), tmp_path) == data
    assert wait_raw_export(alice.api, job)["state"] == "FAILED"


def test_a_move_whose_owner_lost_the_volume_while_it_copied_commits_nothing(server, moto, proxy, tmp_path):
    owner = User(server, unique("owner"))
    bob = User(server, unique("bob"))
    volume_id, _ = volume_on(owner, moto, proxy.url)
    r = owner.call("POST", f"/storage/volumes/{volume_id}/members",
                   {"username": bob.name, "type": "USER",
                    "permissions": {"read": True, "copy": True, "write": True, "admin": False}})
    assert r.status_code == 200, r.text
    project = bob.api.projects.create(name=unique("p"))
    data = os.urandom(2048)
    f = upload_bytes(bob.api, tmp_path, project.id, "bobs.bin", data)
    try:
        job = held_move(bob, proxy, f.id, volume_id, "bobs.bin")
        r = owner.call("DELETE", f"/storage/volumes/{volume_id}/members/{bob.name}")
        assert r.status_code == 204, r.text
    finally:
        proxy.release()
    done = wait_raw_export(bob.api, job)
    assert done["state"] == "FAILED", done
    assert (done["error"]["status"], done["error"]["code"]) == (403, 9020), done
    file = bob.api.files.get(f.id)
    assert file.storage.type == "PLATFORM", "the file was not turned into an alias"
    assert download_bytes(file, tmp_path) == data
