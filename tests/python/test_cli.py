"""`egress export` and `egress import`, run as a researcher runs them: the real binary as a client
of the real `egress serve`, with moto as the S3 server behind the volumes."""
import csv
import hashlib
import os
import random
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests

from conftest import BINARY, Egress, poll, s3_volume_body, start_egress

FILES = 2500
# 5 top folders x 5 sub-folders x 100 files: nested folders, and several batches per folder.
TREE = [f"d{a}/s{b}" for a in range(5) for b in range(5)]


class Client:
    """Raw HTTP as one user: enough to seed projects quickly and look at jobs."""

    def __init__(self, base, token):
        self.base = base + "/v2"
        self.token = token
        self.s = requests.Session()
        self.s.headers["X-SBG-Auth-Token"] = token

    def get(self, path, **params):
        r = self.s.get(self.base + path, params=params)
        r.raise_for_status()
        return r

    def post(self, path, body, **params):
        r = self.s.post(self.base + path, json=body, params=params)
        assert r.status_code < 300, r.text
        return r.json()

    def folder(self, name, project=None, parent=None):
        where = {"project": project} if project else {"parent": parent}
        return self.post("/files", {"name": name, "type": "folder", **where})["id"]

    def upload(self, parent, name, data):
        """The SBG multipart protocol, one part."""
        s = requests.Session()
        s.headers["X-SBG-Auth-Token"] = self.token
        init = s.post(self.base + "/upload/multipart", json={"name": name, "size": len(data), "parent": parent}).json()
        uid = init["upload_id"]
        url = s.get(f"{self.base}/upload/multipart/{uid}/part/1").json()["url"]
        put = s.put(url, data=data)
        put.raise_for_status()
        s.post(f"{self.base}/upload/multipart/{uid}/part", json={"part_number": 1, "response": {"headers": {"ETag": put.headers["ETag"]}}}).raise_for_status()
        done = s.post(f"{self.base}/upload/multipart/{uid}/complete")
        assert done.status_code == 200, done.text
        return done.json()

    def all_exports(self, volume):
        out, offset = [], 0
        while True:
            page = self.get("/storage/exports", volume=volume, offset=offset, limit=100).json()["items"]
            out += page
            if len(page) < 100:
                return out
            offset += 100


def content(path):
    return f"{path}\n".encode() * 3


def run_cli(server, token, *args, home=None, timeout=600):
    env = dict(os.environ, HOME=str(home or server.data_dir), XDG_STATE_HOME="")
    env.pop("SB_API_ENDPOINT", None)
    env.pop("SB_AUTH_TOKEN", None)
    cmd = [str(BINARY), *args, "--api", server.url, "--token", token, "--progress", "plain"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def report_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def keys_under(s3, bucket, prefix):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


@pytest.fixture(scope="module")
def egress(tmp_path_factory, moto, moto_iam):
    """Seeding 2,500 files takes 12,500 requests: no rate limit in the way."""
    server = start_egress(tmp_path_factory, moto, moto_iam, "--rate-limit", "1000000")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def world(egress, moto):
    """ann with project ann/big (2,500 files in nested folders) and RW volume ann/out."""
    token = egress.create_user("ann")
    c = Client(egress.url, token)
    c.post("/projects", {"name": "big"})
    bucket = moto.bucket("cli-out")
    c.post("/storage/volumes", s3_volume_body(moto.endpoint, moto.key, moto.secret, bucket, "out"))
    parents = {}
    for path in TREE:
        top, sub = path.split("/")
        if top not in parents:
            parents[top] = c.folder(top, project="ann/big")
        parents[path] = c.folder(sub, parent=parents[top])
    paths = [f"{d}/f{i:03}.txt" for d in TREE for i in range(FILES // len(TREE))]
    with ThreadPoolExecutor(8) as pool:
        files = list(pool.map(lambda p: c.upload(parents[p.rsplit("/", 1)[0]], p.rsplit("/", 1)[1], content(p)), paths))
    ids = {p: f["id"] for p, f in zip(paths, files)}
    return {"token": token, "client": c, "bucket": bucket, "paths": paths, "ids": ids}


def test_a_nested_project_lands_key_for_key_with_its_bytes_and_a_full_report(egress, moto, world, tmp_path):
    report = tmp_path / "report.csv"
    out = run_cli(egress, world["token"], "export", "--volume", "ann/out", "--project", "ann/big", "--prefix", "all", "--report", str(report))
    assert out.returncode == 0, out.stderr + out.stdout
    assert f"{FILES} files: {FILES} completed (0 before this run), 0 failed, 0 skipped" in out.stdout
    s3 = moto.client()
    landed = keys_under(s3, world["bucket"], "all/")
    assert set(landed) == {f"all/{p}" for p in world["paths"]}
    for p in random.Random(7).sample(world["paths"], 200):
        assert s3.get_object(Bucket=world["bucket"], Key=f"all/{p}")["Body"].read() == content(p)
    assert all(landed[f"all/{p}"] == len(content(p)) for p in world["paths"])
    rows = report_rows(report)
    assert len(rows) == FILES
    assert {r["state"] for r in rows} == {"COMPLETED"}
    assert {(r["file"], r["path"], r["location"]) for r in rows} == {(world["ids"][p], p, f"all/{p}") for p in world["paths"]}
    assert all(r["job"] and int(r["bytes"]) == len(content(r["path"])) for r in rows)

    # The same command again: nothing is submitted, everything is reported as done before.
    exports_before = len(world["client"].all_exports("ann/out"))
    again = run_cli(egress, world["token"], "export", "--volume", "ann/out", "--project", "ann/big", "--prefix", "all")
    assert again.returncode == 0, again.stderr
    assert f"{FILES} completed ({FILES} before this run)" in again.stdout
    assert len(world["client"].all_exports("ann/out")) == exports_before


def test_kill_9_three_times_then_a_rerun_exports_each_file_exactly_once(egress, moto, world, tmp_path):
    args = ["export", "--volume", "ann/out", "--project", "ann/big", "--prefix", "killed", "--report", str(tmp_path / "r.csv")]
    env = dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME="")
    rng = random.Random(11)
    for _ in range(3):
        cli = subprocess.Popen([str(BINARY), *args, "--api", egress.url, "--token", world["token"], "--progress", "none"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.0))
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    out = subprocess.run([str(BINARY), *args, "--api", egress.url, "--token", world["token"], "--progress", "none"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr + out.stdout
    jobs = [j for j in world["client"].all_exports("ann/out") if j["destination"]["location"].startswith("killed/")]
    per_file = {}
    for j in jobs:
        per_file.setdefault(j["source"]["file"], []).append(j["state"])
    assert set(per_file) == set(world["ids"].values())
    assert all(states == ["COMPLETED"] for states in per_file.values()), {f: s for f, s in per_file.items() if s != ["COMPLETED"]}
    rows = report_rows(tmp_path / "r.csv")
    assert len(rows) == FILES and {r["state"] for r in rows} == {"COMPLETED"}
    assert len(keys_under(moto.client(), world["bucket"], "killed/")) == FILES


def test_existing_objects_fail_with_9107_without_overwrite_and_the_rest_complete(egress, moto, world, tmp_path):
    s3 = moto.client()
    taken = world["paths"][:3]
    for p in taken:
        s3.put_object(Bucket=world["bucket"], Key=f"some/{p}", Body=b"theirs")
    report = tmp_path / "r.csv"
    out = run_cli(egress, world["token"], "export", "--volume", "ann/out", "--project", "ann/big", "--folder", "d0/s0", "--prefix", "some/d0/s0", "--report", str(report))
    assert out.returncode == 1, out.stderr + out.stdout
    rows = {r["path"]: r for r in report_rows(report)}
    assert len(rows) == FILES // len(TREE)
    for p in taken:
        assert rows[p]["state"] == "FAILED" and rows[p]["error_code"] == "9107", rows[p]
        assert s3.get_object(Bucket=world["bucket"], Key=f"some/{p}")["Body"].read() == b"theirs"
    assert all(r["state"] == "COMPLETED" for p, r in rows.items() if p not in taken)
    assert "3 failed" in out.stdout


def test_bad_token_unknown_or_read_only_volume_exit_2_before_anything_is_submitted(egress, moto, world, tmp_path):
    c = world["client"]
    bucket = moto.bucket("cli-ro")
    c.post("/storage/volumes", s3_volume_body(moto.endpoint, moto.key, moto.secret, bucket, "readonly", mode="RO"))
    before = c.get("/storage/exports", limit=1).headers["X-Total-Matching-Query"]
    cases = [
        ("not-a-valid-token-at-all", "ann/out", "token"),
        (world["token"], "ann/nope", "no volume ann/nope"),
        (world["token"], "ann/readonly", "read-only"),
        (world["token"], "not-an-id", "OWNER/NAME"),
    ]
    for token, volume, says in cases:
        out = run_cli(egress, token, "export", "--volume", volume, "--project", "ann/big", home=tmp_path)
        assert out.returncode == 2, (volume, out.stderr)
        assert says in out.stderr, out.stderr
    out = run_cli(egress, world["token"], "export", "--volume", "ann/out", "--project", "ann/none", home=tmp_path)
    assert out.returncode == 2 and "no project ann/none" in out.stderr
    assert c.get("/storage/exports", limit=1).headers["X-Total-Matching-Query"] == before
    unreachable = subprocess.run([str(BINARY), "export", "--volume", "ann/out", "--project", "ann/big", "--api", "http://127.0.0.1:9", "--token", "t"],
                                 capture_output=True, text=True, timeout=600, env=dict(os.environ, HOME=str(tmp_path)))
    assert unreachable.returncode == 2 and "cannot reach http://127.0.0.1:9/v2" in unreachable.stderr


def test_a_manifest_with_locations_skips_folders_and_names_bad_lines(egress, moto, world, tmp_path):
    ids, c = world["ids"], world["client"]
    folder_id = c.get("/files", project="ann/big", name="d1").json()["items"][0]["id"]
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"file,location\n{ids['d0/s0/f000.txt']},custom/one.txt\n{ids['d0/s1/f001.txt']},\n{folder_id},x\n")
    report = tmp_path / "r.csv"
    out = run_cli(egress, world["token"], "export", "--volume", "ann/out", "--manifest", str(manifest), "--prefix", "man", "--report", str(report))
    assert out.returncode == 1, out.stderr + out.stdout
    rows = {r["file"]: r for r in report_rows(report)}
    assert rows[ids["d0/s0/f000.txt"]]["location"] == "custom/one.txt" and rows[ids["d0/s0/f000.txt"]]["state"] == "COMPLETED"
    assert rows[ids["d0/s1/f001.txt"]]["location"] == "man/d0/s1/f001.txt" and rows[ids["d0/s1/f001.txt"]]["state"] == "COMPLETED"
    assert rows[folder_id]["state"] == "SKIPPED" and "folder" in rows[folder_id]["error_message"]
    s3 = moto.client()
    assert s3.get_object(Bucket=world["bucket"], Key="custom/one.txt")["Body"].read() == content("d0/s0/f000.txt")

    for text, says in [
        (f"file\n{ids['d0/s0/f000.txt']}\nbad/../id\n", "line 3"),
        (f"file,location\n{ids['d0/s0/f000.txt']},/abs\n", "line 2"),
        (f"file\n{ids['d0/s0/f000.txt']}\n\n{'0' * 24}\n", "line 4"),
    ]:
        manifest.write_text(text)
        out = run_cli(egress, world["token"], "export", "--volume", "ann/out", "--manifest", str(manifest))
        assert out.returncode == 2 and says in out.stderr, out.stderr


class CountingProxy:
    """Forwards every request to Egress, except job counts (a job list with a `state` filter):
    `refuse` answers them 400, as a server without that filter might; `misread` asks for
    COMPLETED jobs instead, as a server that reads the filter another way might. It records what
    went through."""

    def __init__(self, upstream, mode):
        self.upstream, self.mode, self.seen = upstream, mode, []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.forward()

            def do_POST(self):
                self.forward()

            def forward(self):
                url = urlsplit(self.path)
                query = parse_qsl(url.query)
                counting = url.path == "/v2/storage/exports" and any(k == "state" for k, _ in query)
                proxy.seen.append(("count" if counting else self.command, url.path))
                if counting and proxy.mode == "refuse":
                    return self.answer(400, {"Content-Type": "application/json"},
                                       b'{"status": 400, "code": 9000, "message": "Unknown filter: state", "more_info": ""}')
                if counting:
                    query = [(k, v) for k, v in query if k != "state"] + [("state", "COMPLETED")]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("x-sbg-auth-token", "idempotency-key", "content-type")}
                r = requests.request(self.command, f"{proxy.upstream}{url.path}?{urlencode(query)}", data=body, headers=headers)
                kept = {k: v for k, v in r.headers.items() if k.lower() in ("content-type", "x-total-matching-query", "x-ratelimit-reset")}
                self.answer(r.status_code, kept, r.content)

            def answer(self, status, headers, body):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.mark.parametrize("mode", ["refuse", "misread"])
def test_a_server_that_will_not_count_jobs_by_state_is_polled_without_counts(egress, moto, world, tmp_path, mode):
    # A completed job on the volume, for the misread count to list.
    c = world["client"]
    seed = c.post("/storage/exports", {"source": {"file": world["ids"]["d0/s0/f000.txt"]},
                                       "destination": {"volume": "ann/out", "location": f"seed-{mode}"}}, copy_only="true")
    poll(lambda: c.get(f"/storage/exports/{seed['id']}").json()["state"] == "COMPLETED", "the seed export")
    proxy = CountingProxy(egress.url, mode)
    try:
        report = tmp_path / "report.csv"
        out = run_cli(SimpleNamespace(url=proxy.url), world["token"], "export", "--volume", "ann/out", "--project", "ann/big",
                      "--folder", "d1", "--prefix", f"uncounted-{mode}", "--report", str(report), home=tmp_path)
    finally:
        proxy.close()
    assert out.returncode == 0, out.stderr + out.stdout
    mine = [p for p in world["paths"] if p.startswith("d1/")]
    assert {r["state"] for r in report_rows(report)} == {"COMPLETED"} and len(report_rows(report)) == len(mine)
    landed = keys_under(moto.client(), world["bucket"], f"uncounted-{mode}/")
    assert set(landed) == {f"uncounted-{mode}/{p[len('d1/'):]}" for p in mine}
    counts = [s for s in proxy.seen if s[0] == "count"]
    gets = [s for s in proxy.seen if s[1] == "/v2/bulk/storage/exports/get"]
    # The first count shows the server will not count by state (refused, or a COMPLETED job
    # listed); after it, polls are bulk gets only.
    assert len(counts) == 1, proxy.seen
    assert gets and proxy.seen.index(counts[0]) < proxy.seen.index(gets[0])


def test_dry_run_lists_and_changes_nothing(egress, world, tmp_path):
    before = world["client"].get("/storage/exports", limit=1).headers["X-Total-Matching-Query"]
    out = run_cli(egress, world["token"], "export", "--volume", "ann/out", "--project", "ann/big", "--folder", "d4", "--prefix", "dry", "--dry-run", home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "would export d4/s0/f000.txt" in out.stdout and "-> dry/s0/f000.txt" in out.stdout
    assert f"{FILES // 5} files" in out.stdout and "nothing was changed" in out.stdout
    assert world["client"].get("/storage/exports", limit=1).headers["X-Total-Matching-Query"] == before


def test_a_profile_from_the_credentials_file_or_the_environment(egress, world, tmp_path):
    creds = tmp_path / ".sevenbridges" / "credentials"
    creds.parent.mkdir()
    creds.write_text(f"[default]\napi_endpoint = http://127.0.0.1:9/v2\nauth_token = nope\n\n[mine]\napi_endpoint = {egress.url}/v2\nauth_token = {world['token']}\n")
    args = [str(BINARY), "export", "--volume", "ann/out", "--project", "ann/big", "--folder", "d4/s4", "--dry-run"]
    env = dict(os.environ, HOME=str(tmp_path), XDG_STATE_HOME="")
    env.pop("SB_API_ENDPOINT", None)
    env.pop("SB_AUTH_TOKEN", None)
    by_profile = subprocess.run([*args, "--profile", "mine"], env=env, capture_output=True, text=True)
    assert by_profile.returncode == 0, by_profile.stderr
    by_default = subprocess.run(args, env=env, capture_output=True, text=True)
    assert by_default.returncode == 2 and "cannot reach http://127.0.0.1:9/v2" in by_default.stderr
    by_env = subprocess.run(args, env=dict(env, SB_API_ENDPOINT=egress.url + "/v2", SB_AUTH_TOKEN=world["token"]), capture_output=True, text=True)
    assert by_env.returncode == 0, by_env.stderr


def test_a_tight_rate_limit_slows_the_run_but_fails_nothing(egress_factory, moto, tmp_path):
    seeding = egress_factory()
    token = seeding.create_user("rat")
    c = Client(seeding.url, token)
    c.post("/projects", {"name": "p"})
    root = c.folder("data", project="rat/p")
    for i in range(150):
        c.upload(root, f"f{i}.txt", content(f"r{i}"))
    bucket = moto.bucket("cli-rate")
    c.post("/storage/volumes", s3_volume_body(moto.endpoint, moto.key, moto.secret, bucket, "vol"))
    seeding.stop()
    # The same data, served with 4 requests per 5 s: the checks and the listing alone pass it.
    server = Egress(seeding.data_dir, [*seeding.extra_args, "--rate-limit", "4", "--rate-limit-window", "5"])
    try:
        out = run_cli(server, token, "export", "--volume", "rat/vol", "--project", "rat/p", home=tmp_path)
    finally:
        server.stop()
    assert out.returncode == 0, out.stderr + out.stdout
    assert "150 completed" in out.stdout
    waited = int(out.stdout.split(" rate-limited")[0].rsplit("(", 1)[1])
    assert waited > 0, out.stdout
    assert len(keys_under(moto.client(), bucket, "data/")) == 150


def test_move_leaves_aliases_and_frees_the_platform_bytes(egress_factory, moto, tmp_path):
    server = egress_factory("--sweep-interval", "1")
    token = server.create_user("mo")
    c = Client(server.url, token)
    c.post("/projects", {"name": "p"})
    root = c.folder("in", project="mo/p")
    for i in range(30):
        c.upload(root, f"m{i}.bin", content(f"move{i}"))
    blobs = server.data_dir / "platform" / "blobs"
    count = lambda: sum(1 for p in blobs.rglob("*") if p.is_file())
    assert count() >= 30
    bucket = moto.bucket("cli-move")
    c.post("/storage/volumes", s3_volume_body(moto.endpoint, moto.key, moto.secret, bucket, "vol"))
    out = run_cli(server, token, "export", "--volume", "mo/vol", "--project", "mo/p", "--move", home=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    files = c.get("/files", parent=root, limit=100).json()["items"]
    assert len(files) == 30 and all(f["storage"]["type"] == "VOLUME" for f in files)
    poll(lambda: count() == 0, "the moved files' platform bytes to be freed")
    assert moto.client().get_object(Bucket=bucket, Key="in/m7.bin")["Body"].read() == content("move7")


def test_import_a_prefix_flat_or_with_its_folders(egress_factory, moto, tmp_path):
    server = egress_factory()
    token = server.create_user("imp")
    c = Client(server.url, token)
    c.post("/projects", {"name": "p"})
    bucket = moto.bucket("cli-in")
    s3 = moto.client()
    objects = {f"raw/{d}/o{i}.dat": os.urandom(100 + i) for d in ("a", "b/c") for i in range(120)}
    for k, v in objects.items():
        s3.put_object(Bucket=bucket, Key=k, Body=v)
    c.post("/storage/volumes", s3_volume_body(moto.endpoint, moto.key, moto.secret, bucket, "src", mode="RO"))

    dry = run_cli(server, token, "import", "--volume", "imp/src", "--location", "raw/", "--project", "imp/p", "--folder", "flat", "--dry-run", home=tmp_path)
    assert dry.returncode == 0 and "240 files" in dry.stdout, dry.stderr
    assert c.get("/files", project="imp/p").json()["items"] == []

    report = tmp_path / "flat.csv"
    # The same names under a/ and b/c/: the second of each is renamed.
    out = run_cli(server, token, "import", "--volume", "imp/src", "--location", "raw/", "--project", "imp/p", "--folder", "flat/in", "--autorename", "--report", str(report), home=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout
    rows = report_rows(report)
    assert len(rows) == 240 and {r["state"] for r in rows} == {"COMPLETED"}
    flat = c.get("/files", project="imp/p", name="flat").json()["items"][0]["id"]
    inner = c.get("/files", parent=flat).json()["items"][0]
    assert inner["name"] == "in"
    assert int(c.get("/files", parent=inner["id"], limit=1).headers["X-Total-Matching-Query"]) == 240
    f = c.get("/files", parent=inner["id"], name="o7.dat").json()["items"][0]
    url = c.get(f"/files/{f['id']}/download_info").json()["url"]
    assert requests.get(url).content in (objects["raw/a/o7.dat"], objects["raw/b/c/o7.dat"])

    kept = run_cli(server, token, "import", "--volume", "imp/src", "--location", "raw/b", "--project", "imp/p", "--preserve-folder-structure", home=tmp_path)
    assert kept.returncode == 0, kept.stderr + kept.stdout
    b = c.get("/files", project="imp/p", name="b").json()["items"][0]
    cdir = c.get("/files", parent=b["id"]).json()["items"][0]
    assert cdir["name"] == "c"
    assert int(c.get("/files", parent=cdir["id"], limit=1).headers["X-Total-Matching-Query"]) == 120
