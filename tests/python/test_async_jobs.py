"""Async bulk file jobs through the official client: `api.async_jobs.file_bulk_copy`,
`file_bulk_move`, `file_bulk_delete`, their getters, `get_result()` and `list_file_jobs`."""
import pytest
import sevenbridges as sbg
from sevenbridges.errors import BadRequest, NotFound

from conftest import download_bytes, poll, upload_bytes

MISSING = "0123456789abcdef01234567"


@pytest.fixture(scope="module")
def api(egress):
    return sbg.Api(url=egress.url + "/v2", token=egress.create_user("asyncann"), debug=True)


@pytest.fixture(scope="module")
def other_api(egress):
    return sbg.Api(url=egress.url + "/v2", token=egress.create_user("asyncbob"), debug=True)


def finished(get, job):
    """Reloads a job with its getter until it is FINISHED."""
    return poll(lambda: (lambda j: j if j.state == "FINISHED" else None)(get(job.id)), f"job {job.id} to finish")


def test_copy_move_and_delete_with_the_official_client(api, other_api, tmp_path):
    src = api.projects.create(name="Async source")
    dst = api.projects.create(name="Async destination")
    a = upload_bytes(api, tmp_path, src.id, "a.txt", b"alpha")
    b = upload_bytes(api, tmp_path, src.id, "b.txt", b"beta")
    folder = api.files.create_folder(name="d", project=src.id)
    b.move_to_folder(folder.id)

    # Copy: a file to another project, a folder with its contents, a file that does not exist.
    job = api.async_jobs.file_bulk_copy(files=[
        {"file": a.id, "project": dst.id},
        {"file": folder.id, "project": dst.id, "name": "d-copy"},
        {"file": MISSING, "project": dst.id},
    ])
    assert (job.type, job.state, job.total_files) == ("COPY", "SUBMITTED", 3)
    assert job.get_result() == []
    job = finished(api.async_jobs.get_file_copy_job, job)
    assert (job.completed_files, job.failed_files) == (2, 1)
    assert job.started_on is not None and job.finished_on is not None
    records = job.get_result()
    assert [r.valid for r in records] == [True, True, False]
    copy, folder_copy = records[0].resource, records[1].resource
    assert (copy.name, copy.project) == ("a.txt", dst.id)
    assert copy.id != a.id
    assert download_bytes(api.files.get(copy.id), tmp_path) == b"alpha"
    assert (folder_copy.name, folder_copy.type) == ("d-copy", "folder")
    assert [f.name for f in api.files.query(parent=folder_copy.id).all()] == ["b.txt"]
    assert (records[2].error.status, records[2].error.code) == (404, 5002)

    # Move: across projects, keeping the file's id; the taken name is renamed.
    job = api.async_jobs.file_bulk_move(files=[
        {"file": a.id, "project": dst.id, "parent": "", "name": ""},
        {"file": MISSING, "project": dst.id},
    ])
    assert job.type == "MOVE"
    job = finished(api.async_jobs.get_file_move_job, job)
    moved, missing = job.get_result()
    assert moved.valid and moved.resource.id == a.id
    assert (moved.resource.project, moved.resource.name) == (dst.id, "_1_a.txt")
    assert (missing.error.status, missing.error.code) == (404, 5002)
    assert api.files.get(a.id).project == dst.id

    # Delete: a folder with what is in it, and a file.
    job = api.async_jobs.file_bulk_delete(files=[{"file": folder.id}, {"file": copy.id}])
    assert job.type == "DELETE"
    job = finished(api.async_jobs.get_file_delete_job, job)
    assert [r.valid for r in job.get_result()] == [True, True]
    assert job.get_result()[0].resource.id == folder.id
    for gone in (folder.id, b.id, copy.id):
        with pytest.raises(NotFound):
            api.files.get(gone)

    # The list pages through the caller's jobs, newest first; other users see none of them.
    jobs = api.async_jobs.list_file_jobs(limit=2)
    assert jobs.total == 3
    assert [j.type for j in jobs.all()] == ["DELETE", "MOVE", "COPY"]
    assert other_api.async_jobs.list_file_jobs().total == 0
    with pytest.raises(NotFound):
        other_api.async_jobs.get_file_delete_job(job.id)
    with pytest.raises(NotFound):
        api.async_jobs.get_file_copy_job(job.id)


def test_whole_call_errors(api):
    with pytest.raises(BadRequest) as e:
        api.async_jobs.file_bulk_delete(files=[{"file": MISSING}] * 101)
    assert e.value.code == 90000
    with pytest.raises(BadRequest) as e:
        api.async_jobs.file_bulk_copy(files=[])
    assert e.value.code == 90000
    with pytest.raises(NotFound):
        api.async_jobs.get_file_move_job(MISSING)


def test_rights_are_those_of_the_moment_the_item_runs(api, other_api, tmp_path):
    """A caller without write on the project gets a per-item error, and the file stays."""
    project = api.projects.create(name="Async guarded")
    f = upload_bytes(api, tmp_path, project.id, "keep.txt", b"keep")
    project.add_member(user="asyncbob", permissions={"read": True, "copy": True, "write": False})
    job = other_api.async_jobs.file_bulk_delete(files=[{"file": f.id}])
    job = finished(other_api.async_jobs.get_file_delete_job, job)
    [record] = job.get_result()
    assert (record.error.status, record.error.code) == (403, 5001)
    assert api.files.get(f.id).name == "keep.txt"
