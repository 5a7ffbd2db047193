"""Starts the real `egress` binary for the client tests: a fresh data dir and port per test module."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("EGRESS_BIN", ROOT / "target" / "debug" / "egress"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Egress:
    """One `egress serve` process. `kill9()` and `restart()` stop it hard and start it again on the
    same data dir, port and arguments, so URLs and `sbg.Api` objects stay valid across a crash."""

    def __init__(self, data_dir, extra_args=(), env=None, port=None):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = None
        self.start()

    def start(self):
        self.log = open(self.data_dir / "server.log", "ab")
        env = dict(os.environ, EGRESS_DATA_DIR=str(self.data_dir), EGRESS_LOG="info", **self.extra_env)
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "--listen", f"127.0.0.1:{self.port}", *self.extra_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for(self.url + "/v2/", "egress (see " + str(self.data_dir / "server.log") + ")", self.proc)

    def admin(self, *args):
        env = dict(os.environ, EGRESS_DATA_DIR=str(self.data_dir), **self.extra_env)
        out = subprocess.run([str(BINARY), "admin", *args], env=env, check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def create_user(self, name):
        return self.admin("create-user", name)

    def log_text(self):
        self.log.flush()
        return (self.data_dir / "server.log").read_text(errors="replace")

    def kill9(self):
        """SIGKILL: no graceful shutdown, no chance to finish or clean up anything."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.log.close()

    def restart(self):
        self.start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if not self.log.closed:
            self.log.close()


def wait_for_port(port, what, proc):
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def wait_for(url, what, proc=None):
    # Generous: a busy machine (a build beside the tests) slows every first answer.
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            requests.get(url, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


class Moto:
    """A real S3 protocol server (moto_server) on loopback. With `iam=True` it checks
    credentials and policies, so wrong keys and missing permissions fail for real."""

    def __init__(self, log_dir, iam=False):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        if iam:
            # The three IAM calls that make the admin run unauthenticated; readiness is probed
            # with a bare TCP connect, which moto does not count.
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        binary = Path(sys.executable).parent / "moto_server"
        self.log = open(log_dir / f"moto-{self.port}.log", "wb")
        self.proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, "moto_server", self.proc)
        self.key, self.secret = "testing", "testing"
        if iam:
            self.key, self.secret = self.iam_user("admin", ["s3:*", "iam:*"], creds=("x", "y"))

    def client(self, service="s3", key=None, secret=None):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=key or self.key, aws_secret_access_key=secret or self.secret)

    def iam_user(self, name, actions, creds=None):
        iam = self.client("iam", *(creds or (None, None)))
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
        iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps(policy))
        return key["AccessKeyId"], key["SecretAccessKey"]

    def bucket(self, name):
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def service_account_key():
    """A fresh RSA key in PEM (PKCS #8), as a Google service account's JSON key file holds it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class GcsEmulator:
    """gcp-storage-emulator (PyPI) on loopback: the GCS JSON API, in memory. It checks no
    credentials, so `key` only has to be a key Egress can sign with."""

    def __init__(self, log_dir):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        binary = Path(sys.executable).parent / "gcp-storage-emulator"
        self.log = open(log_dir / f"gcs-{self.port}.log", "wb")
        self.proc = subprocess.Popen([str(binary), "start", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--in-memory"], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.endpoint + "/", "gcp-storage-emulator", self.proc)
        self.email = "egress-test@example.iam.gserviceaccount.com"
        self.key = service_account_key()

    def bucket(self, name):
        r = requests.post(f"{self.endpoint}/storage/v1/b", json={"name": name})
        assert r.status_code in (200, 409), r.text
        return name

    def put(self, bucket, key, data):
        r = requests.post(f"{self.endpoint}/upload/storage/v1/b/{bucket}/o",
                          params={"uploadType": "media", "name": key}, data=data)
        assert r.status_code == 200, r.text

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="session")
def gcs(tmp_path_factory):
    server = GcsEmulator(tmp_path_factory.mktemp("gcs"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    server = Moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_iam(tmp_path_factory):
    server = Moto(tmp_path_factory.mktemp("moto-iam"), iam=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def egress(tmp_path_factory, moto, moto_iam, gcs):
    server = start_egress(tmp_path_factory, moto, moto_iam)
    yield server
    server.stop()


GCS_ENDPOINT = []


@pytest.fixture(scope="session", autouse=True)
def _gcs_endpoint(gcs):
    """Every server allows the GCS emulator and makes it the default GCS endpoint."""
    GCS_ENDPOINT[:] = [gcs.endpoint]


def start_egress(tmp_path_factory, moto, moto_iam, *extra_args, env=None, allow=()):
    """An Egress server with extra flags and environment. Both moto endpoints and the GCS
    emulator are always allow-listed; pass more endpoints with `allow=[url, …]`."""
    args = ["--allow-endpoint", moto.endpoint, "--allow-endpoint", moto_iam.endpoint]
    for url in GCS_ENDPOINT:
        args += ["--allow-endpoint", url, "--gcs-default-endpoint", url]
    for url in allow:
        args += ["--allow-endpoint", url]
    return Egress(tmp_path_factory.mktemp("egress"), [*args, *extra_args], env=env)


@pytest.fixture
def egress_factory(tmp_path_factory, moto, moto_iam):
    """`egress_factory(*flags, env=None, allow=())` starts a server; each is stopped after the test."""
    servers = []

    def start(*extra_args, env=None, allow=()):
        server = start_egress(tmp_path_factory, moto, moto_iam, *extra_args, env=env, allow=allow)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# ---- helpers shared by the export tests ----------------------------------------------------------

TERMINAL = ("COMPLETED", "FAILED")


def poll(condition, what, timeout=60, interval=0.2):
    """Wait until `condition()` is truthy and return its value; fail with `what` after `timeout` s."""
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_export(export, timeout=60):
    """Reload a client `Export` until it is COMPLETED or FAILED."""
    def done():
        export.reload()
        return export.state in TERMINAL
    poll(done, f"export {export.id} to finish", timeout)
    return export


def wait_raw_export(api, export_id, timeout=60):
    """GET /storage/exports/{id} until the job is terminal; returns the JSON body."""
    def done():
        body = api.get(f"/storage/exports/{export_id}").json()
        return body if body["state"] in TERMINAL else None
    return poll(done, f"export {export_id} to finish", timeout)


def s3_volume_body(endpoint, key, secret, bucket, name, mode="RW", **service):
    return {
        "name": name,
        "access_mode": mode,
        "service": {
            "type": "s3",
            "bucket": bucket,
            "endpoint": endpoint,
            "credentials": {"access_key_id": key, "secret_access_key": secret},
            **service,
        },
    }


def create_volume(api, body):
    """Volumes on an S3-compatible endpoint need `service.endpoint`, which the client's helpers
    never send: create with a raw POST, read back with the client."""
    data = api.post("/storage/volumes", data=body).json()
    return api.volumes.get(data["id"])


def upload_bytes(api, folder, project, name, data):
    """Upload `data` as a new platform file `name` in `project` with the official client."""
    path = Path(folder) / f"up-{time.time_ns()}-{name.replace('/', '_')}"
    path.write_bytes(data)
    f = api.files.upload(str(path), project=project, file_name=name, part_size=5 * 1024 * 1024).result()
    assert f is not None, f"upload of {name} failed"
    path.unlink()
    return f


def download_bytes(file, folder):
    path = Path(folder) / f"down-{time.time_ns()}"
    file.download(str(path))
    data = path.read_bytes()
    path.unlink()
    return data


# ---- helpers shared by the import tests -----------------------------------------------------------

def raw_import(imp):
    """The server's JSON for a client `Import` (the client does not model `progress`)."""
    return imp._api.get(f"/storage/imports/{imp.id}").json()


def wait_import(imp, timeout=60):
    """Reload a client `Import` until it is COMPLETED or FAILED."""
    def done():
        imp.reload()
        return imp.state in TERMINAL
    poll(done, f"import {imp.id} to finish", timeout)
    return imp


def folder_tree(api, folder_id, base=""):
    """Every entry under a folder, recursively, as a list of (path, File); folders end with '/'.
    A list, not a dict, so duplicate names stay visible."""
    out = []
    for f in api.files.query(parent=folder_id).all():
        path = base + f.name
        if f.is_folder():
            out.append((path + "/", f))
            out.extend(folder_tree(api, f.id, path + "/"))
        else:
            out.append((path, f))
    return out
