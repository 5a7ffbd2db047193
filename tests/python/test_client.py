"""The official sevenbridges-python client, unchanged, against a real Egress server."""
import hashlib
import os

import pytest
import requests
import sevenbridges as sbg
from sevenbridges.errors import BadRequest, Conflict, NotFound, Unauthorized


@pytest.fixture(scope="module")
def api(egress):
    return sbg.Api(url=egress.url + "/v2", token=egress.create_user("alice"), debug=True)


@pytest.fixture(scope="module")
def other_api(egress):
    return sbg.Api(url=egress.url + "/v2", token=egress.create_user("mallory"), debug=True)


def test_me(api):
    me = api.users.me()
    assert me.username == "alice"
    assert api.remaining <= api.limit


def test_projects_create_and_query_all(api):
    for i in range(3):
        api.projects.create(name=f"Client project {i}", description="made by the client")
    projects = list(api.projects.query(limit=2).all())
    assert {p.id for p in projects} >= {"alice/client-project-0", "alice/client-project-1", "alice/client-project-2"}
    p = api.projects.get("alice/client-project-0")
    assert p.name == "Client project 0"
    assert p.description == "made by the client"
    assert p.root_folder


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_upload_query_download_copy_delete(api, tmp_path):
    project = api.projects.create(name="Uploads")
    second = api.projects.create(name="Copies")
    blobs = {
        "empty.bin": b"",
        "small.txt": os.urandom(1024),
        "big.bin": os.urandom(12 * 1024 * 1024),
    }
    uploaded = {}
    for name, data in blobs.items():
        upload = api.files.upload(str(write(tmp_path, name, data)), project=project.id, part_size=5 * 1024 * 1024)
        f = upload.result()
        assert f.name == name and f.size == len(data)
        uploaded[name] = f

    listed = list(api.files.query(project=project.id, limit=2).all())
    assert sorted(f.name for f in listed) == sorted(blobs)

    for name, data in blobs.items():
        target = tmp_path / ("down-" + name)
        uploaded[name].download(str(target))
        assert target.read_bytes() == data, name
        got = api.files.get(uploaded[name].id)
        assert got.storage.type == "PLATFORM"

    big = uploaded["big.bin"]
    copy = big.copy(project=second.id)
    assert copy.project == second.id and copy.size == big.size
    target = tmp_path / "copy.bin"
    copy.download(str(target))
    assert hashlib.md5(target.read_bytes()).hexdigest() == hashlib.md5(blobs["big.bin"]).hexdigest()

    big.delete()
    with pytest.raises(NotFound):
        api.files.get(big.id)
    copy.reload()
    target2 = tmp_path / "copy-after-delete.bin"
    copy.download(str(target2))
    assert target2.read_bytes() == blobs["big.bin"], "the copy keeps its bytes after the original is deleted"


def test_metadata_tags_and_rename(api, tmp_path):
    project = api.projects.create(name="Meta")
    f = api.files.upload(str(write(tmp_path, "m.txt", b"meta")), project=project.id).result()
    f.metadata["sample_id"] = "S1"
    f.tags = ["a", "b"]
    f.name = "renamed.txt"
    f.save()
    again = api.files.get(f.id)
    assert again.name == "renamed.txt"
    assert again.metadata["sample_id"] == "S1"
    assert again.tags == ["a", "b"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_errors_reach_the_client_as_exceptions(api, other_api, egress, tmp_path):
    bad = sbg.Api(url=egress.url + "/v2", token="0" * 32, debug=True)
    with pytest.raises(Unauthorized):
        bad.users.me()
    with pytest.raises(NotFound):
        api.files.get("000000000000000000000000")
    project = api.projects.create(name="Private")
    with pytest.raises(NotFound):
        other_api.projects.get(project.id)
    with pytest.raises(NotFound):
        list(other_api.files.query(project=project.id).all())
    f = api.files.upload(str(write(tmp_path, "dup.txt", b"1")), project=project.id).result()
    with pytest.raises(BadRequest):
        f.name = "a/b"
        f.save()
    # The client's upload thread turns the refusal into a failed transfer without a result.
    failed = api.files.upload(str(write(tmp_path, "dup.txt", b"2")), project=project.id)
    assert failed.result() is None
    with pytest.raises(Conflict):
        api.post("/upload/multipart", data={"project": project.id, "name": "dup.txt", "size": 1})


def test_raw_http_bad_input_never_500(api, egress):
    headers = {"X-SBG-Auth-Token": api.token, "Content-Type": "application/json"}
    cases = [
        ("post", "/v2/projects", "{not json"),
        ("post", "/v2/projects", "x" * (2 * 1024 * 1024)),
        ("get", "/v2/files?project=nope", None),
        ("get", "/v2/files?project=alice/uploads&offset=100000", None),
        ("get", "/v2/files?project=alice/uploads&limit=0", None),
        ("get", "/v2/files?project=alice/uploads&limit=1000", None),
        ("get", "/v2/projects/a/b/c/d", None),
        ("patch", "/v2/files/nope", '{"name": "x"}'),
    ]
    for method, path, body in cases:
        r = requests.request(method, egress.url + path, headers=headers, data=body)
        assert r.status_code < 500, (path, r.status_code, r.text)
        if r.status_code >= 400:
            err = r.json()
            assert isinstance(err["code"], int) and err["status"] == r.status_code and err["message"], err
