"""File and project list filters, as the official client sends them (files.query, projects.query)."""
import pytest
import requests
import sevenbridges as sbg
from sevenbridges.errors import BadRequest


@pytest.fixture(scope="module")
def api(egress):
    return sbg.Api(url=egress.url + "/v2", token=egress.create_user("fiona"), debug=True)


@pytest.fixture(scope="module")
def project(api, tmp_path_factory):
    project = api.projects.create(name="Filtered", tags=["genomics"])
    api.projects.create(name="Other", tags=["imaging"])
    folder = tmp_path_factory.mktemp("filters")
    rows = [
        ("a.txt", {"sample_id": "S1", "platform": "illumina"}, ["red"]),
        ("b.txt", {"sample_id": "S2", "platform": "illumina"}, ["blue"]),
        ("c.txt", {"sample_id": "S1", "platform": "nanopore"}, []),
    ]
    for name, metadata, tags in rows:
        path = folder / name
        path.write_bytes(name.encode())
        f = api.files.upload(str(path), project=project.id).result()
        f.metadata = metadata
        f.tags = tags
        f.save()
    return project


def names(collection):
    return sorted(f.name for f in collection.all())


def test_metadata_filters(api, project):
    assert names(api.files.query(project=project.id, metadata={"sample_id": "S1"})) == ["a.txt", "c.txt"]
    both = api.files.query(project=project.id, metadata={"sample_id": "S1", "platform": "illumina"})
    assert names(both) == ["a.txt"]
    one_per_page = api.files.query(project=project.id, metadata={"platform": "illumina"}, limit=1)
    assert one_per_page.total == 2
    assert names(one_per_page) == ["a.txt", "b.txt"]
    assert api.files.query(project=project.id, metadata={"sample_id": "S9"}).total == 0


def test_names_tags_and_parent(api, project):
    assert names(api.files.query(project=project.id, names=["a.txt", "c.txt"])) == ["a.txt", "c.txt"]
    assert names(api.files.query(project=project.id, tags=["red", "blue"])) == ["a.txt", "b.txt"]
    root = project.root_folder
    assert names(api.files.query(parent=root, metadata={"sample_id": "S2"})) == ["b.txt"]


def test_origin_filters_list_nothing(api, project):
    everything = list(api.files.query(project=project.id).all())
    assert everything and all(f.origin.task is None for f in everything)
    assert api.files.query(project=project.id, origin={"task": "some-task"}).total == 0
    assert api.files.query(project=project.id, origin={"dataset": "some-dataset"}).total == 0
    with pytest.raises(BadRequest) as e:
        api.files.query(project=project.id, origin={"app": "x"})
    assert e.value.code == 90000


def test_project_filters(api, project):
    assert [p.name for p in api.projects.query(tags=["genomics"]).all()] == ["Filtered"]
    assert {p.name for p in api.projects.query(tags=["genomics", "imaging"]).all()} == {"Filtered", "Other"}
    assert {p.name for p in api.projects.query(category="PRIVATE").all()} == {"Filtered", "Other"}
    assert api.projects.query(category="PUBLIC").total == 0
    assert [p.name for p in api.projects.query(owner="fiona", name="Other").all()] == ["Other"]
    with pytest.raises(BadRequest) as e:
        api.projects.query(category="SECRET")
    assert e.value.code == 90000


def test_unknown_query_keys_are_refused(api, project, egress):
    headers = {"X-SBG-Auth-Token": api.token}
    for url in (
        f"/v2/files?project={project.id}&tags=red",
        f"/v2/files?project={project.id}&dataset=d1",
        "/v2/projects/?tag=genomics",
    ):
        r = requests.get(egress.url + url, headers=headers)
        assert r.status_code == 400 and r.json()["code"] == 90000, url
        assert "Unknown query parameter" in r.json()["message"]
