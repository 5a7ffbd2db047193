"""Import jobs end to end: the real `egress` binary, real moto_server volumes, the official
sevenbridges-python client (submit_import, bulk_submit, bulk_get, query, Import.result), raw HTTP
where the client refuses to send a request, and boto3 to put and look at objects.

An import brings volume objects into a project as alias files: no byte is copied onto the
platform. Jobs are asynchronous: every test polls with a bounded wait (conftest.poll) and never
asserts on timings."""
import itertools
import os

import pytest
import requests
import sevenbridges as sbg
from sevenbridges.errors import BadRequest, Conflict, Forbidden, NotFound

from conftest import (create_volume, download_bytes, folder_tree, poll, raw_import,
                      s3_volume_body, start_egress, upload_bytes, wait_export, wait_import)

STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED")
IMPORT_KEYS = ("href", "id", "state", "source", "destination", "overwrite", "autorename",
               "preserve_folder_structure", "started_on", "finished_on", "error", "result", "progress")
_names = itertools.count()


def unique(prefix):
    return f"{prefix}{next(_names)}"


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory, moto, moto_iam):
    """Default (local folder) platform storage, so platform blobs are files under the data dir."""
    s = start_egress(tmp_path_factory, moto, moto_iam, "--retry-base-ms", "50")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tokens(server):
    return {name: server.create_user(name) for name in ["ima", "olga"]}


def client(server, token):
    return sbg.Api(url=server.url + "/v2", token=token, debug=True)


@pytest.fixture(scope="module")
def api(server, tokens):
    return client(server, tokens["ima"])


@pytest.fixture(scope="module")
def olga(server, tokens):
    return client(server, tokens["olga"])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture(scope="module")
def s3(moto):
    return moto.client()


# ---- helpers -----------------------------------------------------------------------------------

def new_project(api, name=None):
    """A fresh project per test, so names never clash across tests."""
    return api.projects.create(name=name or unique("Imports "))


def make_volume(api, moto, name=None, mode="RW", **service):
    """A new bucket and a volume on it; returns (volume, bucket)."""
    name = name or unique("ivol")
    bucket = moto.bucket("imp-" + name.lower().replace("_", "-"))
    body = s3_volume_body(moto.endpoint, moto.key, moto.secret, bucket, name, mode=mode, **service)
    return create_volume(api, body), bucket


def put(s3, bucket, key, data):
    """Put an object; returns its ETag without quotes."""
    return s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')


def headers(token):
    return {"X-SBG-Auth-Token": token, "Content-Type": "application/json"}


def blobs_dir(server):
    return server.data_dir / "platform" / "blobs"


def blob_names(server):
    d = blobs_dir(server)
    return {p.name for p in d.iterdir()} if d.exists() else set()


def upload_with_blob(server, api, scratch, project, name, data):
    """Upload a platform file and find the blob file it created."""
    before = blob_names(server)
    f = upload_bytes(api, scratch, project.id, name, data)
    new = blob_names(server) - before
    assert len(new) == 1, f"one new blob per upload, got {new}"
    return f, blobs_dir(server) / new.pop()


def file_json(api, file_id):
    return api.get(f"/files/{file_id}").json()


def names_in(api, folder_id):
    return sorted(f.name for f in api.files.query(parent=folder_id).all())


def error_of(record):
    return (record.error.status, record.error.code) if record.error is not None else None


def job_error(imp):
    return (imp.error.status, imp.error.code) if imp.error is not None else None


def assert_alias(api, f, volume, location, data=None, scratch=None):
    body = file_json(api, f.id)
    assert body["type"] == "file"
    assert body["storage"] == {"type": "VOLUME", "volume": volume.id, "location": location}, body["storage"]
    if data is not None:
        assert body["size"] == len(data)
        if scratch is not None:
            assert download_bytes(api.files.get(f.id), scratch) == data


# ---- object imports ------------------------------------------------------------------------------

def test_object_import_makes_an_alias_and_copies_no_bytes(server, api, moto, s3, scratch):
    project = new_project(api)
    v, bucket = make_volume(api, moto, prefix="pre")
    data = os.urandom(5000 + 3)
    etag = put(s3, bucket, "pre/data/sample.vcf", data)
    put(s3, bucket, "data/sample.vcf", b"outside the prefix")
    before = blob_names(server)

    imp = api.imports.submit_import(volume=v, location="data/sample.vcf", project=project)
    assert imp.state in STATES
    assert imp.href == server.url + "/v2/storage/imports/" + imp.id
    assert imp.source.volume == v.id and imp.source.location == "data/sample.vcf"
    assert imp.destination.project == project.id
    assert imp.overwrite is False
    assert imp.autorename is False, "the client omits autorename=false: the server applies the default"
    assert imp.preserve_folder_structure is True, "the client omits preserve_folder_structure=true"
    body = raw_import(imp)
    for k in IMPORT_KEYS:
        assert k in body, k

    wait_import(imp)
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    body = raw_import(imp)
    assert body["error"] is None
    assert body["progress"]["objects_imported"] == 1
    assert imp.started_on is not None and imp.finished_on is not None
    assert imp.started_on <= imp.finished_on

    f = imp.result
    assert f is not None
    assert f.name == "sample.vcf", "the name defaults to the last segment of the location"
    assert f.size == len(data) and f.project == project.id and f.type == "file"
    assert f.parent == project.root_folder
    assert f.storage.type == "VOLUME" and f.storage.volume == v.id
    assert f.storage.location == "data/sample.vcf", "location is volume-relative, as submitted"
    fj = file_json(api, f.id)
    assert fj["storage"] == {"type": "VOLUME", "volume": v.id, "location": "data/sample.vcf"}
    assert fj["checksums"]["md5"] == etag, "single-part object without KMS: the ETag is the MD5"

    assert blob_names(server) == before, "an import copies no bytes onto the platform"
    alias = api.files.get(f.id)
    assert alias.download_info().url.startswith(moto.endpoint), "an alias downloads from the volume"
    assert download_bytes(alias, scratch) == data, "the object's bytes, not the one outside the prefix"
    assert [x.id for x in api.files.query(project=project.id).all()] == [f.id]
    assert imp.id in {i.id for i in api.imports.query(project=project).all()}


def test_parent_destination_given_name_and_rejected_names_and_locations(api, moto, s3, scratch):
    project = new_project(api)
    folder = api.files.create_folder(unique("dest"), project=project.id)
    v, bucket = make_volume(api, moto)
    data = os.urandom(1234)
    put(s3, bucket, "in/obj.bin", data)

    imp = api.imports.submit_import(volume=v, location="in/obj.bin", parent=folder, name="given.bin")
    assert imp.destination.parent == folder.id and imp.destination.name == "given.bin"
    wait_import(imp)
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    f = imp.result
    assert f.name == "given.bin" and f.parent == folder.id and f.project == project.id
    assert_alias(api, f, v, "in/obj.bin", data, scratch)
    assert names_in(api, folder.id) == ["given.bin"]

    for name in ("a/b.bin", "/lead"):
        with pytest.raises(BadRequest) as exc:
            api.imports.submit_import(volume=v, location="in/obj.bin", parent=folder, name=name)
        assert (exc.value.status, exc.value.code) == (400, 5024), name
    for location in ("/in/obj.bin", "in/../obj.bin", "..", "in/./../x"):
        with pytest.raises(BadRequest) as exc:
            api.imports.submit_import(volume=v, location=location, parent=folder)
        assert (exc.value.status, exc.value.code) == (400, 9011), location
    assert names_in(api, folder.id) == ["given.bin"], "refused submissions create nothing"


def test_a_missing_object_fails_when_the_job_runs(api, moto):
    project = new_project(api)
    v, _ = make_volume(api, moto)
    imp = api.imports.submit_import(volume=v, location="no/such/object.txt", project=project)
    assert imp.state in STATES, "the object is looked up when the job runs, not at submit"
    wait_import(imp)
    assert imp.state == "FAILED"
    assert job_error(imp) == (404, 9105)
    assert imp.error.message
    assert imp.result is None and raw_import(imp)["result"] is None
    assert imp.finished_on is not None
    assert list(api.files.query(project=project.id).all()) == []


# ---- name clashes --------------------------------------------------------------------------------

def test_name_clash_fails_or_autorenames_or_overwrites(server, api, moto, s3, scratch):
    project = new_project(api)
    root = project.root_folder
    v, bucket = make_volume(api, moto)
    data = os.urandom(777)
    put(s3, bucket, "clash.txt", data)
    old_data = os.urandom(300)
    old, old_blob = upload_with_blob(server, api, scratch, project, "clash.txt", old_data)

    imp = wait_import(api.imports.submit_import(volume=v, location="clash.txt", project=project))
    assert imp.state == "FAILED"
    assert job_error(imp) == (409, 9108), raw_import(imp)["error"]
    assert imp.error.message and imp.result is None
    kept = api.files.get(old.id)
    assert kept.storage.type == "PLATFORM" and download_bytes(kept, scratch) == old_data
    assert names_in(api, root) == ["clash.txt"]

    first = wait_import(api.imports.submit_import(volume=v, location="clash.txt", project=project, autorename=True))
    assert first.state == "COMPLETED", raw_import(first)["error"]
    assert first.autorename is True
    assert first.result.name == "_1_clash.txt"
    second = wait_import(api.imports.submit_import(volume=v, location="clash.txt", project=project, autorename=True))
    assert second.state == "COMPLETED", raw_import(second)["error"]
    assert second.result.name == "_2_clash.txt"
    for imp in (first, second):
        assert_alias(api, imp.result, v, "clash.txt", data, scratch)
    assert names_in(api, root) == ["_1_clash.txt", "_2_clash.txt", "clash.txt"]
    assert old_blob.exists()

    over = wait_import(api.imports.submit_import(volume=v, location="clash.txt", project=project, overwrite=True))
    assert over.state == "COMPLETED", raw_import(over)["error"]
    assert over.overwrite is True
    assert over.result.name == "clash.txt" and over.result.parent == root
    assert_alias(api, over.result, v, "clash.txt", data, scratch)
    assert names_in(api, root) == ["_1_clash.txt", "_2_clash.txt", "clash.txt"], "replaced, not added"
    [now] = [f for f in api.files.query(project=project.id).all() if f.name == "clash.txt"]
    assert now.storage.type == "VOLUME" and now.storage.location == "clash.txt"
    assert download_bytes(now, scratch) == data
    poll(lambda: not old_blob.exists(), "the overwritten platform file's blob to be freed")

    # Overwriting an alias with an alias of the same object is fine too.
    again = wait_import(api.imports.submit_import(volume=v, location="clash.txt", project=project, overwrite=True))
    assert again.state == "COMPLETED", raw_import(again)["error"]
    assert names_in(api, root) == ["_1_clash.txt", "_2_clash.txt", "clash.txt"]


# ---- folder imports ----------------------------------------------------------------------------

FOLDER_OBJECTS = {
    "runs/r1/a.txt": b"a" * 11,
    "runs/r1/sub/b.txt": b"b" * 22,
    "runs/r1/sub/deep/c.txt": b"c" * 33,
}
OUTSIDE_OBJECTS = {"runs/r1.txt": b"sibling file", "runs/r10/x.txt": b"sibling folder", "runs/r2/a.txt": b"other"}


def test_folder_import_keeps_the_structure(api, moto, s3, scratch):
    project = new_project(api)
    v, bucket = make_volume(api, moto, prefix="pre")
    for key, data in {**FOLDER_OBJECTS, **OUTSIDE_OBJECTS}.items():
        put(s3, bucket, "pre/" + key, data)

    imp = api.imports.submit_import(volume=v, location="runs/r1/", project=project)
    assert imp.preserve_folder_structure is True
    wait_import(imp)
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    assert raw_import(imp)["progress"]["objects_imported"] == 3
    top = imp.result
    assert top.type == "folder" and top.name == "r1", "a folder named after the location's last segment"
    assert top.parent == project.root_folder and top.project == project.id
    assert [f.name for f in api.files.query(project=project.id).all()] == ["r1"]

    tree = folder_tree(api, top.id)
    paths = [p for p, _ in tree]
    assert sorted(paths) == ["a.txt", "sub/", "sub/b.txt", "sub/deep/", "sub/deep/c.txt"]
    for path, f in tree:
        if not path.endswith("/"):
            assert_alias(api, f, v, "runs/r1/" + path, FOLDER_OBJECTS["runs/r1/" + path])
    [(_, c)] = [(p, f) for p, f in tree if p == "sub/deep/c.txt"]
    assert download_bytes(api.files.get(c.id), scratch) == FOLDER_OBJECTS["runs/r1/sub/deep/c.txt"]

    # With a name and a parent: the top folder takes the name, inside the parent.
    dest = api.files.create_folder(unique("into"), project=project.id)
    named = wait_import(api.imports.submit_import(volume=v, location="runs/r1/", parent=dest, name="renamed"))
    assert named.state == "COMPLETED", raw_import(named)["error"]
    assert named.result.name == "renamed" and named.result.type == "folder" and named.result.parent == dest.id
    assert names_in(api, dest.id) == ["renamed"]
    assert sorted(p for p, _ in folder_tree(api, named.result.id)) == sorted(paths)


def test_folder_import_flat_puts_every_object_in_the_destination(api, moto, s3, scratch):
    project = new_project(api)
    v, bucket = make_volume(api, moto)
    objects = {"flat/one/same.txt": b"one", "flat/two/same.txt": b"two two", "flat/top.txt": b"top"}
    for key, data in objects.items():
        put(s3, bucket, key, data)
    put(s3, bucket, "flatter.txt", b"not under flat/")
    dest = api.files.create_folder(unique("flat"), project=project.id)

    imp = api.imports.submit_import(volume=v, location="flat/", parent=dest, preserve_folder_structure=False,
                                    autorename=True)
    assert imp.preserve_folder_structure is False and imp.autorename is True
    wait_import(imp)
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    assert imp.result.id == dest.id, "a flat import's result is the destination folder"
    assert raw_import(imp)["progress"]["objects_imported"] == 3
    children = list(api.files.query(parent=dest.id).all())
    assert sorted(f.name for f in children) == ["_1_same.txt", "same.txt", "top.txt"]
    assert all(f.type == "file" for f in children), "no sub-folders in a flat import"
    by_location = {file_json(api, f.id)["storage"]["location"]: f for f in children}
    assert sorted(by_location) == sorted(objects)
    for location, f in by_location.items():
        assert_alias(api, f, v, location, objects[location], scratch)

    # Again without autorename or overwrite: every object clashes, the job fails, nothing is added.
    clash = wait_import(api.imports.submit_import(volume=v, location="flat/", parent=dest,
                                                  preserve_folder_structure=False))
    assert clash.state == "FAILED"
    assert job_error(clash) == (409, 9108), raw_import(clash)["error"]
    assert sorted(names_in(api, dest.id)) == ["_1_same.txt", "same.txt", "top.txt"]


# ---- validation, in order, in mixed bulk calls ------------------------------------------------------

def test_every_submit_error_in_order_inside_a_mixed_bulk_call(server, api, olga, moto, s3, scratch):
    project = new_project(api)
    folder = api.files.create_folder(unique("bulk"), project=project.id)
    v, bucket = make_volume(api, moto)
    for key in ("ok.txt", "ok2.txt", "ok3.txt"):
        put(s3, bucket, key, key.encode())
    ro, ro_bucket = make_volume(api, moto, mode="RO")
    put(s3, ro_bucket, "ro.txt", b"read only volumes can be imported from")
    inactive, inactive_bucket = make_volume(api, moto)
    put(s3, inactive_bucket, "x.txt", b"x")
    inactive.active = False
    inactive.save()

    olga_private, _ = make_volume(olga, moto)
    olga_read, _ = make_volume(olga, moto)
    olga_read.add_member("ima", {"read": True, "copy": False})
    olga_copy, olga_copy_bucket = make_volume(olga, moto)
    olga_copy.add_member("ima", {"read": True, "copy": True})
    put(s3, olga_copy_bucket, "shared.txt", b"shared by olga")
    olga_project = olga.projects.create(name=unique("Olga private "))
    olga_readonly_project = olga.projects.create(name=unique("Olga shared "))
    olga_readonly_project.add_member("ima", {"read": True, "copy": True, "write": False})

    def item(vol, location, project=None, parent=None, **extra):
        it = {"volume": vol if isinstance(vol, str) else vol.id, "location": location, **extra}
        if project is not None:
            it["project"] = project if isinstance(project, str) else project.id
        if parent is not None:
            it["parent"] = parent if isinstance(parent, str) else parent.id
        return it

    cases = [
        (item(v, "ok.txt", project), None),
        (item("ima/no_such_volume", "ok.txt", project), (404, 9007)),
        (item(olga_private, "x.txt", project), (404, 9007)),
        (item(olga_read, "x.txt", project), (403, 9020)),
        (item(olga_copy, "shared.txt", project), None),
        (item(inactive, "x.txt", project), (403, 9103)),
        (item(v, "ok.txt", olga_project), (404, 3002)),
        (item(v, "ok.txt", olga_readonly_project), (403, 3001)),
        (item(v, "/ok.txt", project), (400, 9011)),
        (item(v, "a/../ok.txt", project), (400, 9011)),
        (item(v, "..", project), (400, 9011)),
        (item(v, "ok.txt", project, name="a/b.txt"), (400, 5024)),
        (item(ro, "ro.txt", parent=folder), None),
        (item(v, "missing.txt", project), None),  # accepted: the object is looked up when the job runs
        (item(v, "ok2.txt", parent=folder, name="second.txt", overwrite=False, autorename=False), None),
    ]
    records = api.imports.bulk_submit([c[0] for c in cases])
    assert len(records) == len(cases)
    for i, ((it, expected), rec) in enumerate(zip(cases, records)):
        if expected is None:
            assert rec.valid and rec.error is None, (i, it, rec.error and rec.error.message)
            assert rec.resource.source.volume == it["volume"] and rec.resource.source.location == it["location"]
            assert rec.resource.state in STATES
        else:
            assert not rec.valid and rec.resource is None, (i, it)
            assert error_of(rec) == expected, (i, it, rec.error.code, rec.error.message)
            assert rec.error.message
    assert api.imports.query(volume=v).total == 3, "refused items create no jobs"

    ok, shared, ro_imp, missing, second = (records[i].resource for i in (0, 4, 12, 13, 14))
    for imp in (ok, shared, ro_imp, second):
        wait_import(imp)
        assert imp.state == "COMPLETED", (imp.source.location, raw_import(imp)["error"])
    wait_import(missing)
    assert missing.state == "FAILED" and job_error(missing) == (404, 9105)
    assert_alias(api, ok.result, v, "ok.txt", b"ok.txt", scratch)
    assert_alias(api, shared.result, olga_copy, "shared.txt", b"shared by olga", scratch)
    assert ro_imp.result.parent == folder.id
    assert_alias(api, ro_imp.result, ro, "ro.txt", b"read only volumes can be imported from", scratch)
    assert second.result.name == "second.txt" and second.result.parent == folder.id
    assert names_in(api, project.root_folder) == sorted([folder.name, "ok.txt", "shared.txt"])

    # What the client refuses to send: an empty location, both project and parent, neither.
    body = {"items": [
        {"source": {"volume": v.id, "location": ""}, "destination": {"project": project.id}, "overwrite": False},
        {"source": {"volume": v.id, "location": "ok3.txt"}, "destination": {"project": project.id, "parent": folder.id},
         "overwrite": False},
        {"source": {"volume": v.id, "location": "ok3.txt"}, "destination": {}, "overwrite": False},
        {"source": {"volume": v.id, "location": "ok3.txt"}, "destination": {"project": project.id, "name": "raw.txt"},
         "overwrite": False},
    ]}
    r = requests.post(server.url + "/v2/bulk/storage/imports/create", json=body, headers=headers(api.token))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 4
    assert [(i.get("error") or {}).get("code") for i in items] == [9011, 5031, 5029, None], items
    assert [(i.get("error") or {}).get("status") for i in items] == [400, 400, 400, None]
    assert items[3]["resource"]["destination"]["name"] == "raw.txt"
    raw_job = wait_import(api.imports.get(items[3]["resource"]["id"]))
    assert raw_job.state == "COMPLETED" and raw_job.result.name == "raw.txt", raw_import(raw_job)["error"]


def test_single_submit_errors(server, api, olga, moto, s3):
    project = new_project(api)
    v, bucket = make_volume(api, moto)
    put(s3, bucket, "x.txt", b"x")
    inactive, _ = make_volume(api, moto)
    inactive.active = False
    inactive.save()
    olga_read, _ = make_volume(olga, moto)
    olga_read.add_member("ima", {"read": True, "copy": False})
    olga_project = olga.projects.create(name=unique("Olga "))
    olga_readonly_project = olga.projects.create(name=unique("Olga ro "))
    olga_readonly_project.add_member("ima", {"read": True, "copy": True, "write": False})

    cases = [
        (dict(volume="ima/nope", location="x.txt", project=project), NotFound, 9007),
        (dict(volume=olga_read, location="x.txt", project=project), Forbidden, 9020),
        (dict(volume=inactive, location="x.txt", project=project), Forbidden, 9103),
        (dict(volume=v, location="x.txt", project=olga_project), NotFound, 3002),
        (dict(volume=v, location="x.txt", project=olga_readonly_project), Forbidden, 3001),
        (dict(volume=v, location="x/../x.txt", project=project), BadRequest, 9011),
        (dict(volume=v, location="x.txt", project=project, name="a/b"), BadRequest, 5024),
    ]
    for kwargs, exc_type, code in cases:
        with pytest.raises(exc_type) as exc:
            api.imports.submit_import(**kwargs)
        assert exc.value.code == code, (kwargs, exc.value.code, exc.value.message)

    h = headers(api.token)
    url = server.url + "/v2/storage/imports"
    src = {"volume": v.id, "location": "x.txt"}
    r = requests.post(url, json={"source": src, "destination": {"project": project.id, "parent": project.root_folder}}, headers=h)
    assert (r.status_code, r.json()["code"]) == (400, 5031), r.text
    r = requests.post(url, json={"source": src, "destination": {}}, headers=h)
    assert (r.status_code, r.json()["code"]) == (400, 5029), r.text
    r = requests.post(url, json={"source": {"volume": v.id, "location": ""}, "destination": {"project": project.id}}, headers=h)
    assert (r.status_code, r.json()["code"]) == (400, 9011), r.text
    assert api.imports.query(project=project).total == 0, "a refused submit creates no job"

    r = requests.post(url, json={"source": src, "destination": {"project": project.id}}, headers=h)
    assert r.status_code in (200, 201), r.text
    assert r.json()["href"] == url + "/" + r.json()["id"]
    assert wait_import(api.imports.get(r.json()["id"])).state == "COMPLETED"


def test_whole_call_errors_and_a_full_bulk_of_one_hundred(server, api, moto, s3):
    project = new_project(api)
    v, bucket = make_volume(api, moto)
    for i in range(100):
        put(s3, bucket, f"h/{i:03}.txt", str(i).encode())
    url = server.url + "/v2/bulk/storage/imports/create"
    h = headers(api.token)

    def good(i):
        return {"source": {"volume": v.id, "location": f"h/{i:03}.txt"}, "destination": {"project": project.id},
                "overwrite": False}

    def refused(resp, status):
        assert resp.status_code == status, resp.text
        err = resp.json()
        assert "items" not in err
        assert err["status"] == status and isinstance(err["code"], int) and err["message"], err

    refused(requests.post(url, json={"items": [good(i % 100) for i in range(101)]}, headers=h), 400)
    refused(requests.post(url, json={"items": []}, headers=h), 400)
    refused(requests.post(url, data='{"items": [', headers=h), 400)
    refused(requests.post(url, json={"nothing": []}, headers=h), 400)
    refused(requests.post(url, json={"items": [good(0)]}, headers={"Content-Type": "application/json"}), 401)
    refused(requests.post(server.url + "/v2/bulk/storage/imports/get", json={"import_ids": ["x"] * 101}, headers=h), 400)
    assert api.imports.query(volume=v).total == 0, "a refused call creates nothing"

    records = api.imports.bulk_submit([{"volume": v.id, "location": f"h/{i:03}.txt", "project": project.id}
                                       for i in range(100)])
    assert len(records) == 100 and all(r.valid for r in records), [r.error for r in records if not r.valid][:3]
    ids = [r.resource.id for r in records]
    assert len(set(ids)) == 100
    assert [r.resource.source.location for r in records] == [f"h/{i:03}.txt" for i in range(100)]
    got = api.imports.bulk_get(ids)
    assert [rec.resource.id for rec in got] == ids
    for imp in (rec.resource for rec in got):
        wait_import(imp)
        assert imp.state == "COMPLETED", raw_import(imp)["error"]
    files = list(api.files.query(project=project.id).all())
    assert sorted(f.name for f in files) == [f"{i:03}.txt" for i in range(100)]


# ---- get, bulk get, query, visibility ------------------------------------------------------------

def test_get_bulk_get_query_and_visibility(server, api, olga, moto, s3):
    project = new_project(api)
    v, bucket = make_volume(api, moto)
    put(s3, bucket, "q1.txt", b"1")
    put(s3, bucket, "q2.txt", b"2")
    recs = api.imports.bulk_submit([
        {"volume": v.id, "location": "q1.txt", "project": project.id},
        {"volume": v.id, "location": "q2.txt", "project": project.id},
        {"volume": v.id, "location": "gone.txt", "project": project.id},
    ])
    jobs = [wait_import(r.resource) for r in recs]
    assert [j.state for j in jobs] == ["COMPLETED", "COMPLETED", "FAILED"]
    completed = {jobs[0].id, jobs[1].id}
    h = headers(api.token)

    got = requests.get(server.url + "/v2/storage/imports/" + jobs[0].id, headers=h)
    assert got.status_code == 200 and got.json()["id"] == jobs[0].id
    assert got.json()["result"]["storage"]["type"] == "VOLUME"
    r = requests.get(server.url + "/v2/storage/imports/nosuchimport", headers=h)
    assert (r.status_code, r.json()["code"]) == (404, 9008), r.text
    with pytest.raises(NotFound) as exc:
        api.imports.get("nosuchimport")
    assert exc.value.code == 9008
    with pytest.raises(NotFound) as exc:
        olga.imports.get(jobs[0].id)
    assert exc.value.code == 9008, "another user's job does not exist for them"
    assert [error_of(rec) for rec in olga.imports.bulk_get([jobs[0].id, "nosuchimport"])] == [(404, 9008), (404, 9008)]
    mixed = api.imports.bulk_get([jobs[0].id, "nosuchimport", jobs[2].id])
    assert [rec.valid for rec in mixed] == [True, False, True]
    assert mixed[0].resource.id == jobs[0].id and error_of(mixed[1]) == (404, 9008)
    assert mixed[2].resource.state == "FAILED" and mixed[2].resource.error.code == 9105
    assert not {j.id for j in jobs} & {i.id for i in olga.imports.query().all()}

    base = server.url + "/v2/storage/imports"
    r = requests.get(base, params={"volume": v.id, "state": "COMPLETED"}, headers=h)
    assert r.status_code == 200 and r.headers["X-Total-Matching-Query"] == "2", r.text
    assert {i["id"] for i in r.json()["items"]} == completed
    r = requests.get(base, params={"project": project.id, "state": "FAILED", "fields": "_all"}, headers=h)
    assert r.headers["X-Total-Matching-Query"] == "1"
    assert r.json()["items"][0]["error"]["code"] == 9105
    r = requests.get(base, params={"volume": v.id, "state": "RUNNING"}, headers=h)
    assert r.headers["X-Total-Matching-Query"] == "0" and r.json()["items"] == []
    r = requests.get(base, params={"project": project.id, "offset": 1, "limit": 1}, headers=h)
    assert r.status_code == 200 and r.headers["X-Total-Matching-Query"] == "3" and len(r.json()["items"]) == 1

    assert {i.id for i in api.imports.query(volume=v, state="COMPLETED").all()} == completed
    assert {i.id for i in api.imports.query(project=project, volume=v).all()} == {j.id for j in jobs}
    assert {i.id for i in project.get_imports(state="FAILED").all()} == {jobs[2].id}
    assert {i.id for i in v.get_imports(project=project).all()} == {j.id for j in jobs}
    assert {i.id for i in api.imports.query(project=project, limit=1).all()} == {j.id for j in jobs}
    page = api.imports.query(project=project, limit=2)
    assert page.total == 3 and len(page) == 2


# ---- round trip, aliases, volumes ----------------------------------------------------------------

def test_export_then_import_of_the_same_object(api, moto, s3, scratch):
    project = new_project(api)
    v, bucket = make_volume(api, moto, prefix="rt")
    data = os.urandom(4321)
    f = upload_bytes(api, scratch, project.id, "round.txt", data)
    e = wait_export(api.exports.submit_export(file=f, volume=v, location="back/round.txt"))
    assert e.state == "COMPLETED"
    moved = api.files.get(f.id)
    assert moved.storage.type == "VOLUME" and moved.storage.location == "back/round.txt"
    assert s3.get_object(Bucket=bucket, Key="rt/back/round.txt")["Body"].read() == data

    imp = wait_import(api.imports.submit_import(volume=v, location="back/round.txt", project=project))
    assert imp.state == "FAILED"
    assert job_error(imp) == (409, 9108), "the moved file is already an alias of that name"
    renamed = wait_import(api.imports.submit_import(volume=v, location="back/round.txt", project=project,
                                                    autorename=True))
    assert renamed.state == "COMPLETED", raw_import(renamed)["error"]
    assert renamed.result.name == "_1_round.txt" and renamed.result.id != f.id
    assert_alias(api, renamed.result, v, "back/round.txt", data, scratch)
    assert file_json(api, f.id)["storage"] == file_json(api, renamed.result.id)["storage"], "the same object"
    assert download_bytes(api.files.get(f.id), scratch) == data
    assert names_in(api, project.root_folder) == ["_1_round.txt", "round.txt"]


def test_aliases_download_copy_delete_and_cannot_be_exported(api, moto, s3, scratch):
    project = new_project(api)
    other = new_project(api)
    v, bucket = make_volume(api, moto)
    data = os.urandom(64 * 1024 + 5)
    put(s3, bucket, "obj.bin", data)
    imp = wait_import(api.imports.submit_import(volume=v, location="obj.bin", project=project))
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    alias = api.files.get(imp.result.id)
    assert download_bytes(alias, scratch) == data, "byte for byte what boto3 put"

    copy = alias.copy(project=other.id)
    assert copy.id != alias.id and copy.project == other.id
    assert copy.storage.type == "VOLUME" and copy.storage.volume == v.id and copy.storage.location == "obj.bin"
    assert download_bytes(api.files.get(copy.id), scratch) == data

    with pytest.raises(Forbidden) as exc:
        api.exports.submit_export(file=alias, volume=v, location="again.bin")
    assert (exc.value.status, exc.value.code) == (403, 9006)
    [rec] = api.exports.bulk_submit([{"file": copy.id, "volume": v.id, "location": "again.bin"}], copy_only=True)
    assert error_of(rec) == (403, 9006)

    alias.delete()
    with pytest.raises(NotFound):
        api.files.get(alias.id)
    assert s3.get_object(Bucket=bucket, Key="obj.bin")["Body"].read() == data, "deleting an alias keeps the object"
    assert download_bytes(api.files.get(copy.id), scratch) == data
    api.files.get(copy.id).delete()
    assert s3.get_object(Bucket=bucket, Key="obj.bin")["Body"].read() == data
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["obj.bin"]


def test_a_volume_with_imported_aliases_cannot_be_deleted_even_when_deactivated(api, moto, s3):
    project = new_project(api)
    v, bucket = make_volume(api, moto)
    put(s3, bucket, "dir/one.txt", b"one")
    put(s3, bucket, "dir/two.txt", b"two")
    imp = wait_import(api.imports.submit_import(volume=v, location="dir/", project=project))
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    with pytest.raises(Conflict):
        api.volumes.get(v.id).delete()
    v = api.volumes.get(v.id)
    v.active = False
    v.save()
    with pytest.raises(Conflict) as exc:
        api.volumes.get(v.id).delete()
    assert exc.value.status == 409
    tree = folder_tree(api, imp.result.id)
    assert sorted(p for p, _ in tree) == ["one.txt", "two.txt"]
    assert all(f.storage.volume == v.id for _, f in tree)

    # Once no alias points into it any more, the volume can go.
    for _, f in tree:
        f.delete()
    api.volumes.get(v.id).delete()
    with pytest.raises(NotFound):
        api.volumes.get(v.id)


# ---- checksums, odd keys, folder markers, concurrent clashes ---------------------------------------

def md5_of_alias(api, f):
    return (file_json(api, f.id).get("checksums") or {}).get("md5")


def test_md5_only_when_the_etag_is_one(api, moto, s3, scratch):
    """The ETag is the MD5 only for a single-part object without KMS: a multipart or KMS object's
    ETag must not be reported as its MD5, neither by an object nor by a folder import."""
    project = new_project(api)
    v, bucket = make_volume(api, moto)
    plain = os.urandom(1000)
    plain_etag = put(s3, bucket, "sums/plain.bin", plain)
    s3.put_object(Bucket=bucket, Key="sums/kms.bin", Body=b"kms encrypted", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId="key-1")
    big = os.urandom(11 * 1024 * 1024)
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="sums/multi.bin")
    parts = []
    for n, start in enumerate(range(0, len(big), 5 * 1024 * 1024), 1):
        r = s3.upload_part(Bucket=bucket, Key="sums/multi.bin", UploadId=mpu["UploadId"], PartNumber=n,
                           Body=big[start:start + 5 * 1024 * 1024])
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="sums/multi.bin", UploadId=mpu["UploadId"],
                                 MultipartUpload={"Parts": parts})
    assert "-" in s3.head_object(Bucket=bucket, Key="sums/multi.bin")["ETag"]

    singles = {}
    for key in ("plain.bin", "kms.bin", "multi.bin"):
        imp = wait_import(api.imports.submit_import(volume=v, location="sums/" + key, project=project))
        assert imp.state == "COMPLETED", raw_import(imp)["error"]
        singles[key] = imp.result
    assert md5_of_alias(api, singles["plain.bin"]) == plain_etag
    assert md5_of_alias(api, singles["kms.bin"]) is None, "a KMS object's ETag is not its MD5"
    assert md5_of_alias(api, singles["multi.bin"]) is None, "a multipart ETag is not an MD5"
    assert file_json(api, singles["multi.bin"].id)["size"] == len(big)
    assert download_bytes(api.files.get(singles["multi.bin"].id), scratch) == big

    dest = api.files.create_folder(unique("sums"), project=project.id)
    imp = wait_import(api.imports.submit_import(volume=v, location="sums/", parent=dest))
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    tree = dict(folder_tree(api, imp.result.id))
    assert sorted(tree) == ["kms.bin", "multi.bin", "plain.bin"]
    # A listing does not tell how objects are encrypted, so a folder import vouches for no MD5.
    assert md5_of_alias(api, tree["plain.bin"]) is None
    assert md5_of_alias(api, tree["multi.bin"]) is None, "a multipart ETag is not an MD5 (folder import)"
    assert md5_of_alias(api, tree["kms.bin"]) is None, "a KMS object's ETag is not its MD5 (folder import)"


def test_keys_with_spaces_unicode_and_plus_signs(api, moto, s3, scratch):
    project = new_project(api)
    v, bucket = make_volume(api, moto, prefix="odd")
    data = os.urandom(999)
    put(s3, bucket, "odd/dir with space/ä b+c.txt", data)
    imp = wait_import(api.imports.submit_import(volume=v, location="dir with space/ä b+c.txt", project=project))
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    assert imp.source.location == "dir with space/ä b+c.txt"
    assert imp.result.name == "ä b+c.txt"
    assert_alias(api, imp.result, v, "dir with space/ä b+c.txt", data, scratch)

    folder = wait_import(api.imports.submit_import(volume=v, location="dir with space/", project=project))
    assert folder.state == "COMPLETED", raw_import(folder)["error"]
    assert folder.result.name == "dir with space"
    [(path, f)] = folder_tree(api, folder.result.id)
    assert path == "ä b+c.txt"
    assert_alias(api, f, v, "dir with space/ä b+c.txt", data, scratch)


def test_folder_markers_do_not_become_files(api, moto, s3):
    """Consoles create zero-byte `dir/` keys as folder markers: they are folders, not files."""
    project = new_project(api)
    v, bucket = make_volume(api, moto)
    for key in ("m/", "m/sub/", "m/sub/empty/"):
        put(s3, bucket, key, b"")
    put(s3, bucket, "m/sub/f.txt", b"f")
    imp = wait_import(api.imports.submit_import(volume=v, location="m/", project=project))
    assert imp.state == "COMPLETED", raw_import(imp)["error"]
    paths = [p for p, _ in folder_tree(api, imp.result.id)]
    assert "" not in paths and not any(p.endswith("//") for p in paths), paths
    assert "sub/f.txt" in paths and [p for p in paths if not p.endswith("/")] == ["sub/f.txt"], paths


def test_concurrent_imports_of_one_name_never_duplicate_it(api, moto, s3, scratch):
    project = new_project(api)
    v, bucket = make_volume(api, moto)
    put(s3, bucket, "same.txt", b"same")

    plain = api.imports.bulk_submit([{"volume": v.id, "location": "same.txt", "project": project.id}] * 5)
    jobs = [wait_import(r.resource) for r in plain]
    assert sorted(j.state for j in jobs) == ["COMPLETED"] + ["FAILED"] * 4, [j.state for j in jobs]
    assert all(job_error(j) == (409, 9108) for j in jobs if j.state == "FAILED")
    assert names_in(api, project.root_folder) == ["same.txt"]

    renamed = api.imports.bulk_submit([{"volume": v.id, "location": "same.txt", "project": project.id,
                                        "autorename": True}] * 5)
    jobs = [wait_import(r.resource) for r in renamed]
    assert all(j.state == "COMPLETED" for j in jobs), [raw_import(j)["error"] for j in jobs]
    expected = ["same.txt"] + [f"_{i}_same.txt" for i in range(1, 6)]
    assert names_in(api, project.root_folder) == sorted(expected)
    assert sorted(j.result.name for j in jobs) == sorted(expected[1:])
