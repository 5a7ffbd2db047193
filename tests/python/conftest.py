"""Starts the real `egress` binary for the client tests: a fresh data dir and port per test module."""
import os
import socket
import subprocess
import time
from pathlib import Path

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
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/v2/", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("egress did not start; see " + str(data_dir / "server.log"))

    def admin(self, *args):
        env = dict(os.environ, EGRESS_DATA_DIR=str(self.data_dir))
        out = subprocess.run([str(BINARY), "admin", *args], env=env, check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def create_user(self, name):
        return self.admin("create-user", name)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def egress(tmp_path_factory):
    server = Egress(tmp_path_factory.mktemp("egress"))
    yield server
    server.stop()
