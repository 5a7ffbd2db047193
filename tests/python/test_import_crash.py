"""A folder import under kill -9: 500 objects, the server killed in the middle of the import,
restarted on the same data dir and port. The import must complete with exactly one alias per
object: nothing skipped, nothing duplicated.

The volume endpoint is a fault proxy (faultproxy.py) in front of moto. Listing requests after the
first page are held, so the job is deterministically stuck between two committed batches when the
server dies, instead of hoping to kill it at the right moment (the way test_crash.py does it for
exports)."""
import itertools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sevenbridges as sbg

from conftest import (TERMINAL, create_volume, download_bytes, folder_tree, poll, raw_import,
                      s3_volume_body, wait_import)
from faultproxy import FaultProxy

N = 500
_names = itertools.count()


def unique(prefix):
    return f"{prefix}{next(_names)}"


@pytest.fixture
def proxy(moto):
    p = FaultProxy(moto.endpoint)
    yield p
    p.close()


def later_listing_page(request):
    """A ListObjectsV2 request that continues an earlier page (the engine resumes after the last
    key it committed with `start-after`; a continuation token would mean the same)."""
    return request.method == "GET" and ("start-after=" in request.target or "continuation-token=" in request.target)


@pytest.mark.parametrize("preserve, autorename", [(True, False), (False, True)], ids=["structure", "flat-autorename"])
def test_kill9_during_a_folder_import_then_restart(preserve, autorename, egress_factory, moto, proxy, tmp_path):
    """Flat with autorename is the strictest case: a batch replayed after the restart would not
    fail on the clash, it would silently add `_1_objNNN.txt` duplicates."""
    server = egress_factory("--lease-secs", "2", "--retry-base-ms", "50", allow=[proxy.url])
    api = sbg.Api(url=server.url + "/v2", token=server.create_user("crashimp"), debug=True)
    project = api.projects.create(name="Import crash")
    name = unique("impcrash")
    bucket = moto.bucket("crash-" + name)
    v = create_volume(api, s3_volume_body(proxy.url, moto.key, moto.secret, bucket, name, prefix="pre"))
    s3 = moto.client()

    objects = {f"many/d{i % 5}/obj{i:03}.txt": f"object number {i}\n".encode() for i in range(N)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key="pre/" + kv[0], Body=kv[1]), objects.items()))
    s3.put_object(Bucket=bucket, Key="pre/many.txt", Body=b"next to the folder, not in it")
    s3.put_object(Bucket=bucket, Key="pre/many2/x.txt", Body=b"a sibling folder")

    proxy.hold(later_listing_page)
    imp = api.imports.submit_import(volume=v, location="many/", project=project,
                                    preserve_folder_structure=preserve, autorename=autorename)

    def in_flight():
        body = raw_import(imp)
        if body["state"] in TERMINAL or proxy.held_count() > 0:
            return body
        if body["state"] == "RUNNING" and body["progress"]["objects_imported"] > 0:
            return body
        return None

    at_kill = poll(in_flight, "the import to be running")
    server.kill9()
    proxy.release(drop_held=True)  # the dead server's pending requests never reach moto
    assert at_kill["state"] not in TERMINAL, (
        "the import finished before the server could be killed, so this run tested no crash", at_kill)
    server.restart()

    wait_import(imp)
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    body = raw_import(imp)
    assert body["error"] is None
    assert body["progress"]["objects_imported"] == N

    roots = list(api.files.query(project=project.id).all())
    if preserve:
        # One top folder, named after the location, and nothing else at the project root.
        assert [(f.name, f.type) for f in roots] == [("many", "folder")], [(f.name, f.type) for f in roots][:10]
        top = roots[0]
        assert imp.result is not None and imp.result.id == top.id
        tree = folder_tree(api, top.id)
        expected = {key[len("many/"):]: key for key in objects}
        expected_folders = [f"d{i}/" for i in range(5)]
    else:
        assert imp.result is not None and imp.result.id == project.root_folder
        tree = folder_tree(api, project.root_folder)
        expected = {key.rsplit("/", 1)[1]: key for key in objects}
        expected_folders = []

    # Exactly one alias per object, no duplicate folder or file (nor an autorenamed twin).
    counts = Counter(path for path, _ in tree)
    duplicates = {p: n for p, n in counts.items() if n > 1}
    assert not duplicates, f"duplicate entries after the restart: {sorted(duplicates)[:10]}"
    assert sorted(p for p in counts if p.endswith("/")) == expected_folders
    files = {p: f for p, f in tree if not p.endswith("/")}
    extra = sorted(set(files) - set(expected))
    assert not extra, f"unexpected files (replayed batches?): {extra[:10]} (+{max(0, len(extra) - 10)})"
    assert len(files) == N and set(files) == set(expected)
    for path, f in files.items():
        key = expected[path]
        assert f.storage.type == "VOLUME" and f.storage.volume == v.id, path
        assert f.storage.location == key, (path, f.storage.location)
        assert f.size == len(objects[key]), path

    first, last = sorted(files)[0], sorted(files)[-1]
    for path in (first, last):
        assert download_bytes(api.files.get(files[path].id), tmp_path) == objects[expected[path]]
    assert api.imports.query(project=project).total == 1
