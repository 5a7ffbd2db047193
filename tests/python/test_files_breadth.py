"""Continuation-token paging, bulk update and edit, the list filters, file search and leaving a
project, as the official client (and raw HTTP where it has no call) sends them."""
import pytest
import requests
import sevenbridges as sbg
from sevenbridges.errors import BadRequest, SbgError

FOLDERS = 11


@pytest.fixture(scope="module")
def api(egress):
    return sbg.Api(url=egress.url + "/v2", token=egress.create_user("petra"), debug=True)


@pytest.fixture(scope="module")
def project(api, tmp_path_factory):
    """FOLDERS folders and three files at the root; the folder `f00` holds seven folders."""
    project = api.projects.create(name="Breadth")
    for i in range(FOLDERS):
        api.files.create_folder(name=f"f{i:02}", project=project.id)
    first = next(api.files.query(project=project.id, names=["f00"]).all())
    for i in range(7):
        api.files.create_folder(name=f"sub{i}", parent=first)
    folder = tmp_path_factory.mktemp("breadth")
    rows = [
        ("a.txt", {"sample_id": "S1"}, ["red"]),
        ("b.txt", {"sample_id": "S2"}, ["blue"]),
        ("c.txt", {"sample_id": "S1"}, []),
    ]
    for name, metadata, tags in rows:
        path = folder / name
        path.write_bytes(name.encode())
        f = api.files.upload(str(path), project=project.id).result()
        f.metadata = metadata
        f.tags = tags
        f.save()
    return project


def ids(collection):
    return [f.id for f in collection.all()]


def test_query_with_a_continuation_token_walks_every_page(api, project):
    offset_listing = ids(api.files.query(project=project.id, limit=100))
    assert len(offset_listing) == FOLDERS + 3
    for limit in (1, 4, 5):
        scrolled = api.files.query(project=project.id, cont_token="init", limit=limit)
        assert len(scrolled) == limit and scrolled.total == FOLDERS + 3
        assert [link.rel for link in scrolled.links] == ["next"]
        assert ids(scrolled) == offset_listing, limit
    last = api.files.query(project=project.id, cont_token="init", limit=100)
    assert last.links == []


def test_scroll_takes_names_tags_and_origin_filters(api, project):
    def scrolled(**filters):
        return sorted(f.name for f in api.files.query(project=project.id, cont_token="init", limit=1, **filters).all())

    assert scrolled(names=["a.txt", "c.txt", "f03"]) == ["a.txt", "c.txt", "f03"]
    assert scrolled(tags=["red", "blue"]) == ["a.txt", "b.txt"]
    assert scrolled(origin={"task": "t1"}) == []


def test_scroll_refuses_metadata_filters_like_the_client(api, project, egress):
    with pytest.raises(SbgError):
        api.files.query(project=project.id, cont_token="init", metadata={"sample_id": "S1"})
    r = requests.get(
        f"{egress.url}/v2/files/scroll",
        params={"project": project.id, "token": "init", "metadata.sample_id": "S1"},
        headers={"X-SBG-Auth-Token": api.token},
    )
    assert r.status_code == 400 and r.json()["code"] == 90000
    # Offset paging takes metadata filters.
    assert sorted(f.name for f in api.files.query(project=project.id, metadata={"sample_id": "S1"}).all()) == ["a.txt", "c.txt"]


def test_a_garbled_token_is_a_bad_request(api, project):
    with pytest.raises(BadRequest) as e:
        api.files.query(project=project.id, cont_token="not-a-token")
    assert e.value.code == 90000


def test_list_files_with_a_continuation_token(api, project):
    folder = next(api.files.query(project=project.id, names=["f00"]).all())
    listed = ids(folder.list_files(limit=100))
    assert len(listed) == 7
    page = folder.list_files(cont_token="init", limit=3)
    assert page.total == 7 and len(page) == 3
    assert ids(page) == listed


def test_bulk_update_replaces_and_bulk_edit_merges(api, project):
    a, b = (next(api.files.query(project=project.id, names=[n]).all()) for n in ("a.txt", "b.txt"))
    a.name = "a-renamed.txt"
    a.metadata = {"sample_id": "S9"}
    a.tags = ["green"]
    b.metadata = {}
    records = api.files.bulk_update([a, b])
    assert [r.valid for r in records] == [True, True]
    assert records[0].resource.name == "a-renamed.txt"
    assert dict(records[0].resource.metadata) == {"sample_id": "S9"}
    assert records[0].resource.tags == ["green"]
    assert dict(api.files.get(b.id).metadata) == {}

    a = api.files.get(a.id)
    a.metadata = {"lane": "2"}
    records = api.files.bulk_edit([a])
    assert records[0].valid
    assert dict(api.files.get(a.id).metadata) == {"sample_id": "S9", "lane": "2"}, "merged"

    # Per-item errors, in order: a name taken by another file.
    a = api.files.get(a.id)
    c = next(api.files.query(project=project.id, names=["c.txt"]).all())
    c.name = "a-renamed.txt"
    records = api.files.bulk_edit([a, c])
    assert [r.valid for r in records] == [True, False]
    assert records[1].error.code == 5003 and records[1].error.status == 409


def test_file_search_is_not_implemented(api):
    with pytest.raises(SbgError) as e:
        api.files.search(query="name = 'a.txt'")
    assert e.value.status == 501 and e.value.code == 90000


def test_a_member_leaves_a_project(api, egress):
    owner = api
    quinn_token = egress.create_user("quinn")
    project = owner.projects.create(name="Shared")
    project.add_member(user="quinn", permissions={"read": True, "write": True})
    quinn = sbg.Api(url=egress.url + "/v2", token=quinn_token, debug=True)
    assert quinn.projects.get(project.id).name == "Shared"
    leave = f"{egress.url}/v2/projects/{project.id}/members/leave"
    r = requests.post(leave, headers={"X-SBG-Auth-Token": quinn_token}, json=None)
    assert r.status_code == 204, r.text
    assert "quinn" not in [m.username for m in project.get_members()]
    r = requests.post(leave, headers={"X-SBG-Auth-Token": quinn_token}, json=None)
    assert r.status_code == 404 and r.json()["code"] == 3002
    r = requests.post(leave, headers={"X-SBG-Auth-Token": owner.token}, json=None)
    assert r.status_code == 403 and r.json()["code"] == 3001
