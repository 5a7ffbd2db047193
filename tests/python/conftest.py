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
    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(data_dir / "server.log", "wb")
        env = dict(os.environ, EGRESS_DATA_DIR=str(data_dir), EGRESS_LOG="info")
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "--listen", f"127.0.0.1:{self.port}", *extra_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for(self.url + "/v2/", "egress (see " + str(data_dir / "server.log") + ")")

    def admin(self, *args):
        env = dict(os.environ, EGRESS_DATA_DIR=str(self.data_dir))
        out = subprocess.run([str(BINARY), "admin", *args], env=env, check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def create_user(self, name):
        return self.admin("create-user", name)

    def log_text(self):
        self.log.flush()
        return (self.data_dir / "server.log").read_text(errors="replace")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def wait_for(url, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
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
            # The readiness probe and the three IAM calls that make the admin run unauthenticated.
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"
        binary = Path(sys.executable).parent / "moto_server"
        self.log = open(log_dir / f"moto-{self.port}.log", "wb")
        self.proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.endpoint, "moto_server")
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
def egress(tmp_path_factory, moto, moto_iam):
    args = ["--allow-endpoint", moto.endpoint, "--allow-endpoint", moto_iam.endpoint]
    server = Egress(tmp_path_factory.mktemp("egress"), args)
    yield server
    server.stop()
