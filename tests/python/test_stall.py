"""A stalled volume endpoint must not starve everyone else. The volume's endpoint is a fault proxy
that holds every PUT, so its copies hang with no answer, as behind a dead load balancer.

- With `--workers 2`, the per-volume cap keeps a worker for other volumes: a third user's export to
  a healthy bucket completes while two exports into the stalled volume are held.
- The stall watchdog gives up on a copy that moves nothing for `--stall-timeout-secs`, retries it,
  and once the attempts are used up fails it with a clear 503 9000 "stalled" error, leaving no
  multipart upload open."""
import itertools
import os
from urllib.parse import parse_qs, urlsplit

import pytest
import sevenbridges as sbg

from conftest import TERMINAL, create_volume, poll, s3_volume_body, upload_bytes, wait_export
from faultproxy import FaultProxy

MiB = 1024 * 1024
_names = itertools.count()


def unique(prefix):
    return f"{prefix}{next(_names)}"


@pytest.fixture
def proxy(moto):
    p = FaultProxy(moto.endpoint)
    yield p
    p.close()


def user_api(server, name):
    return sbg.Api(url=server.url + "/v2", token=server.create_user(name), debug=True)


def volume_on(api, moto, endpoint):
    name = unique("stallvol")
    bucket = moto.bucket("stall-" + name.lower())
    return create_volume(api, s3_volume_body(endpoint, moto.key, moto.secret, bucket, name)), bucket


def raw(api, export_id):
    return api.get(f"/storage/exports/{export_id}").json()


def holds_puts_into(bucket):
    return lambda r: r.method == "PUT" and r.target.startswith(f"/{bucket}/")


def test_a_stalled_volume_leaves_workers_for_a_healthy_one(egress_factory, moto, proxy, tmp_path):
    # The watchdog is out of the way here (600 s): only the cap can let the healthy export run.
    server = egress_factory("--workers", "2", "--stall-timeout-secs", "600", allow=[proxy.url])
    alice, bob, carol = (user_api(server, n) for n in ("alice", "bob", "carol"))
    stalled, stalled_bucket = volume_on(alice, moto, proxy.url)
    alice.post(f"/storage/volumes/{stalled.id}/members",
               data={"username": "bob", "permissions": {"read": True, "write": True}})
    healthy, healthy_bucket = volume_on(carol, moto, moto.endpoint)
    proxy.hold(holds_puts_into(stalled_bucket))

    data = {who: os.urandom(4096) for who in ("alice", "bob", "carol")}
    files = {}
    for who, api in (("alice", alice), ("bob", bob), ("carol", carol)):
        project = api.projects.create(name=f"Stall {who}")
        files[who] = upload_bytes(api, tmp_path, project.id, f"{who}.bin", data[who])

    # Two users' exports into the stalled volume: they take what the cap gives the volume.
    held = [
        alice.exports.submit_export(file=files["alice"], volume=stalled.id, location="alice.bin"),
        bob.exports.submit_export(file=files["bob"], volume=stalled.id, location="bob.bin"),
    ]
    assert proxy.wait_for(lambda r: r.fault == "held", timeout=60), "a PUT into the stalled volume is held"

    # A third user's export to a healthy bucket completes meanwhile.
    e = wait_export(carol.exports.submit_export(file=files["carol"], volume=healthy.id, location="carol.bin"),
                    timeout=60)
    assert e.state == "COMPLETED", raw(carol, e.id)["error"]
    assert moto.client().get_object(Bucket=healthy_bucket, Key="carol.bin")["Body"].read() == data["carol"]

    # ...while the stalled volume still has one export held and the other waiting for its share.
    states = sorted(raw(api, x.id)["state"] for api, x in zip((alice, bob), held))
    assert states == ["PENDING", "RUNNING"], states
    assert proxy.held_count() >= 1

    # Once the endpoint answers again, both stalled exports complete, byte for byte.
    proxy.release()
    for api, x, who in ((alice, held[0], "alice"), (bob, held[1], "bob")):
        x = wait_export(api.exports.get(x.id), timeout=120)
        assert x.state == "COMPLETED", raw(api, x.id)["error"]
        got = moto.client().get_object(Bucket=stalled_bucket, Key=f"{who}.bin")
        assert got["Body"].read() == data[who]


def test_a_stalled_copy_is_retried_then_fails_with_a_stall_error(egress_factory, moto, proxy, tmp_path):
    server = egress_factory(
        "--workers", "2", "--max-workers-per-volume", "2", "--stall-timeout-secs", "2",
        "--max-attempts", "2", "--retry-base-ms", "100", "--lease-secs", "5",
        "--part-size", str(5 * MiB), "--multipart-copy-cutoff", str(5 * MiB),
        allow=[proxy.url],
    )
    api = user_api(server, "stalled")
    project = api.projects.create(name="Stalled")
    v, bucket = volume_on(api, moto, proxy.url)
    s3 = moto.client()
    small = upload_bytes(api, tmp_path, project.id, "small.bin", os.urandom(4096))
    big = upload_bytes(api, tmp_path, project.id, "big.bin", os.urandom(12 * MiB))

    # Every PUT hangs: the small file's PutObject, and the big file's parts (its multipart upload
    # is created, so each attempt leaves one open unless it is aborted).
    proxy.hold(holds_puts_into(bucket))
    exports = [api.exports.submit_export(file=f, volume=v, location=f.name) for f in (small, big)]
    for e, f in zip(exports, (small, big)):
        e = wait_export(e, timeout=90)
        body = raw(api, e.id)
        assert body["state"] == "FAILED", body
        err = body["error"]
        assert (err["status"], err["code"]) == (503, 9000), err
        assert "stalled" in err["message"] and "Gave up after 2 attempts" in err["message"], err
        assert api.files.get(f.id).storage.type == "PLATFORM", "the source stays on the platform"

    held_puts = [r for r in proxy.requests if r.fault == "held"]
    assert len([r for r in held_puts if "partNumber=" not in r.target]) >= 2, "the small file was tried twice"
    uploads = {parse_qs(urlsplit(r.target).query).get("uploadId", [None])[0] for r in held_puts} - {None}
    assert len(uploads) >= 2, "the big file was tried twice"

    # Every abandoned attempt's multipart upload is aborted, and nothing was written.
    poll(lambda: s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [],
         "the abandoned multipart uploads to be aborted")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    proxy.release(drop_held=True)
    assert all(raw(api, e.id)["state"] in TERMINAL for e in exports)
