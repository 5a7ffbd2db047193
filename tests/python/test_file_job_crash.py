"""An async delete under kill -9: 300 files in nested folders, the server killed in the middle of
the job, restarted on the same data dir and port. The job must finish with every file gone, each
item done once, and the sweeper must then free exactly the platform bytes that nothing else
refers to: some of the deleted files have copies in another project, which keep their bytes.

A file job touches no object store, so there is nothing to hold at a proxy (the way
test_crash.py holds an export); the hidden `--file-job-item-pause-ms` makes the worker wait
before each item instead, so the job is deterministically between two committed items when the
server dies."""
import requests
import sevenbridges as sbg

from conftest import poll

DIRS = 30          # items of the job: one folder each
PER_DIR = 10       # files per folder: 5 in it, 5 two levels down
DISTINCT = 60      # uploads; every other file is a copy sharing an upload's bytes
KEPT = 20          # uploads with a copy in another project, which keeps their bytes


class Raw:
    """Plain HTTP with the caller's token, for the hundreds of calls that set the scene."""

    def __init__(self, url, token):
        self.url = url + "/v2"
        self.s = requests.Session()
        self.s.headers["X-SBG-Auth-Token"] = token

    def call(self, method, path, body=None):
        r = self.s.request(method, self.url + path, json=body)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def upload(self, parent, name, data):
        """Uploads `data` into folder `parent`; returns the file and its upload id (the id of the
        platform blob that holds its bytes)."""
        up = self.call("POST", "/upload/multipart", {"parent": parent, "name": name, "size": len(data)})
        url = self.call("GET", f"/upload/multipart/{up['upload_id']}/part/1")["url"]
        put = self.s.put(url, data=data)
        assert put.status_code == 200, put.text
        self.call("POST", f"/upload/multipart/{up['upload_id']}/part/",
                  {"part_number": 1, "response": {"headers": {"ETag": put.headers["ETag"]}}})
        return self.call("POST", f"/upload/multipart/{up['upload_id']}/complete"), up["upload_id"]

    def folder(self, name, **place):
        return self.call("POST", "/files", {"name": name, "type": "folder", **place})

    def copy(self, file_id, **target):
        return self.call("POST", f"/files/{file_id}/actions/copy", target)


def blobs(server):
    d = server.data_dir / "platform" / "blobs"
    return {p.name for p in d.iterdir()} if d.exists() else set()


def test_kill9_during_an_async_delete_then_restart(egress_factory):
    server = egress_factory("--lease-secs", "2", "--sweep-interval", "1", "--rate-limit", "100000",
                            "--file-job-item-pause-ms", "150")
    token = server.create_user("crashdel")
    raw = Raw(server.url, token)
    api = sbg.Api(url=server.url + "/v2", token=token, debug=True)
    p = api.projects.create(name="Delete crash")
    keep = api.projects.create(name="Delete crash keep")

    # 30 folders dir{i}, each with 5 files and a sub/deeper folder with 5 more: 300 files whose
    # bytes come from 60 uploads (each shared by 5 files of the tree).
    dirs, files, upload_of = [], [], {}
    sources = []
    for i in range(DIRS):
        d = raw.folder(f"dir{i}", project=p.id)
        deeper = raw.folder("deeper", parent=raw.folder("sub", parent=d["id"])["id"])
        dirs.append(d)
        for j in range(PER_DIR):
            parent = d["id"] if j < PER_DIR // 2 else deeper["id"]
            n = len(files)
            if n % 5 == 0:
                f, upload = raw.upload(parent, f"f{j}.bin", f"bytes of upload {len(sources)}".encode())
                sources.append((f, upload))
            else:
                source, upload = sources[-1]
                f = raw.copy(source["id"], parent=parent, name=f"f{j}.bin")
            upload_of[f["id"]] = upload
            files.append(f)
    assert len(files) == DIRS * PER_DIR and len(sources) == DISTINCT
    kept = set()
    for f, upload in sources[:KEPT]:
        raw.copy(f["id"], project=keep.id)
        kept.add(upload)
    everything = {upload for _, upload in sources}
    assert blobs(server) == everything, "one blob per upload: the copies share them"

    job = api.async_jobs.file_bulk_delete(files=[{"file": d["id"]} for d in dirs])
    assert job.state == "SUBMITTED"

    def in_flight():
        j = api.async_jobs.get_file_delete_job(job.id)
        if j.state == "FINISHED" or j.completed_files >= 3:
            return j
        return None

    at_kill = poll(in_flight, "the delete to be running")
    server.kill9()
    assert at_kill.state in ("RESOLVING", "RUNNING") and at_kill.completed_files < DIRS, (
        "the job finished before the server could be killed, so this run tested no crash",
        at_kill.state, at_kill.completed_files)
    server.restart()

    job = poll(lambda: (lambda j: j if j.state == "FINISHED" else None)(api.async_jobs.get_file_delete_job(job.id)),
               "the delete to finish after the restart", timeout=120)
    assert (job.total_files, job.completed_files, job.failed_files) == (DIRS, DIRS, 0)
    records = job.get_result()
    assert [r.valid for r in records] == [True] * DIRS, [r.error for r in records if not r.valid]
    assert [r.resource.id for r in records] == [d["id"] for d in dirs], "each item once, in order"

    # Every file is gone, and the project is empty.
    assert list(api.files.query(project=p.id).all()) == []
    for start in range(0, len(files), 100):
        chunk = [f["id"] for f in files[start:start + 100]]
        got = raw.call("POST", "/bulk/files/get", {"file_ids": chunk})["items"]
        assert [item.get("error", {}).get("code") for item in got] == [5002] * len(chunk)

    # The sweeper frees exactly the bytes nothing refers to: the copies in `keep` hold theirs.
    poll(lambda: blobs(server) == kept, "the sweeper to free the unreferenced blobs", timeout=60)
    assert blobs(server) == kept
    kept_files = list(api.files.query(project=keep.id).all())
    assert len(kept_files) == KEPT
    for f in kept_files[:3]:
        url = raw.call("GET", f"/files/{f.id}/download_info")["url"]
        assert requests.get(url).content.startswith(b"bytes of upload ")
