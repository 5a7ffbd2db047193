#!/usr/bin/env python3
"""Export benchmark: Egress bulk exports against rclone, on one loopback s3s-fs server.

Run on its own, never in CI. See bench/README.md for what it does and prints. In short:

  1. start s3s-fs on 127.0.0.1 with a fresh root, and make the buckets;
  2. start Egress with its platform storage on that server (so exports are server-side copies);
  3. for each workload (W1: many small files, W2: a few large ones):
       - raw CopyObject (boto3) of an equal object set: the floor any copier can reach here,
       - `rclone copy` and `rclone move` of that set between two buckets,
       - Egress: bulk export (move) of the same count and sizes, 100 items per call,
         timed from the first submit until every job is COMPLETED;
  4. with --jobs exports stored, time further 100-item bulk creates (p50 / p99);
  5. print one table, the ratios Egress/rclone and the verdict on each target.

Only the standard library, `requests` and `boto3` are used.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

try:
    import boto3
    import requests
    from botocore.config import Config as BotoConfig
except ImportError as missing:  # pragma: no cover - depends on the caller's environment
    sys.exit(f"export_bench: {missing}. Run bench/run.sh, or `pip install requests boto3` first.")

REPO = Path(__file__).resolve().parent.parent
S3S_FS_VERSION = "0.14.1"
ACCESS_KEY = "BENCHACCESSKEY"
SECRET_KEY = "BENCHSECRETKEY0123456789"
REGION = "us-east-1"
PLATFORM_BUCKET = "platform-bucket"
VOLUME_BUCKET = "volume-bucket"
RCLONE_SRC_BUCKET = "rclone-src"
RCLONE_DST_BUCKET = "rclone-dst"
RAW_DST_BUCKET = "raw-dst"
PROJECT_NAME = "bench"
VOLUME_NAME = "out"
USER_NAME = "bench"

# Targets from the exports issue.
TARGET_W1_RATE_RATIO = 1.0  # Egress objects/s ÷ rclone copy objects/s
TARGET_CPU_MS_PER_JOB = 0.5
TARGET_W2_OVER_RAW = 1.10  # Egress wall ≤ 110 % of raw CopyObject wall
TARGET_BULK_P99_MS = 100.0

# The states a job is still at work in; the timed phases wait until none of theirs is.
UNFINISHED = ("PENDING", "RUNNING")

START = time.monotonic()


class BenchError(Exception):
    """A failure that ends the run with a clear message (never with made-up numbers)."""


# --------------------------------------------------------------------------- small helpers


def log(msg: str) -> None:
    print(f"[{time.monotonic() - START:7.1f}s] {msg}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """'4096', '4K', '4KiB', '256M', '1G' → bytes (binary units)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def fmt_size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} B"


def chunks(seq: list, size: int) -> Iterator[list]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} on start:\n{tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s:\n{tail(log_path)}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(proc: Optional[subprocess.Popen], sig: int = signal.SIGTERM) -> None:
    """Stops one process that this script started, by its own handle."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --------------------------------------------------------------------------- /proc readings

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def peak_rss_bytes(pid: int) -> Optional[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def reset_peak_rss(pid: int) -> bool:
    """Resets VmHWM to the current RSS (Linux ≥ 4.0), so each phase reports its own peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class Meter:
    """CPU of one process over a phase, and its peak RSS in that phase."""

    pid: int
    cpu0: float = 0.0
    peak_reset: bool = False

    def start(self) -> "Meter":
        self.peak_reset = reset_peak_rss(self.pid)
        self.cpu0 = cpu_seconds(self.pid)
        return self

    def cpu(self) -> float:
        return cpu_seconds(self.pid) - self.cpu0

    def peak(self) -> Optional[int]:
        return peak_rss_bytes(self.pid)


# --------------------------------------------------------------------------- tools


def ensure_tools(args: argparse.Namespace) -> tuple[str, str]:
    """Finds rclone and s3s-fs, installing whichever is missing (unless --no-install)."""
    rclone = shutil.which("rclone")
    if rclone is None:
        if args.no_install:
            raise BenchError("rclone is not installed (apt-get install rclone), and --no-install was given")
        log("installing rclone from Debian (apt-get)")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "rclone"], check=True)
        rclone = shutil.which("rclone")
        if rclone is None:
            raise BenchError("apt-get install rclone finished, but rclone is not on PATH")

    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    s3s = shutil.which("s3s-fs") or next(
        (str(p) for p in [cargo_home / "bin" / "s3s-fs"] if p.exists()), None
    )
    if s3s is None:
        if args.no_install:
            raise BenchError(f"s3s-fs is not installed (cargo install s3s-fs --version {S3S_FS_VERSION} "
                             "--features binary --locked), and --no-install was given")
        log(f"installing s3s-fs {S3S_FS_VERSION} with cargo (-j{args.install_jobs}, niced; this takes a while)")
        subprocess.run(["nice", "-n", "19", "cargo", "install", "s3s-fs", "--version", S3S_FS_VERSION,
                        "--features", "binary", "--locked", f"-j{args.install_jobs}"], check=True)
        s3s = shutil.which("s3s-fs") or str(cargo_home / "bin" / "s3s-fs")
        if not Path(s3s).exists():
            raise BenchError("cargo install s3s-fs finished, but the binary was not found")
    return rclone, s3s


def egress_binary(args: argparse.Namespace) -> Path:
    if args.build:
        log("building egress (cargo build --release -j2 --bin egress)")
        subprocess.run(["nice", "-n", "10", "cargo", "build", "--release", "-j2", "--bin", "egress"],
                       cwd=REPO, check=True)
    binary = Path(args.egress_bin or os.environ.get("EGRESS_BIN") or REPO / "target" / "release" / "egress")
    if not binary.exists():
        raise BenchError(f"no Egress binary at {binary}; build it (--build, or cargo build --release "
                         "--bin egress) or point EGRESS_BIN / --egress-bin at one")
    return binary


# --------------------------------------------------------------------------- s3s-fs


class S3Server:
    """An s3s-fs process on loopback, plus a boto3 client for it."""

    def __init__(self, binary: str, root: Path, port: int, log_path: Path, pool: int):
        self.binary, self.root, self.port, self.log_path = binary, root, port, log_path
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc: Optional[subprocess.Popen] = None
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=BotoConfig(s3={"addressing_style": "path"}, max_pool_connections=max(10, pool),
                              retries={"max_attempts": 3, "mode": "standard"}),
        )

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}  # errors only
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "--host", "127.0.0.1", "--port", str(self.port),
                 "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, str(self.root)],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        wait_for_port(self.port, self.proc, "s3s-fs", self.log_path)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGINT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def make_buckets(self, *names: str) -> None:
        for name in names:
            self.client.create_bucket(Bucket=name)

    def count(self, bucket: str, prefix: str) -> tuple[int, int]:
        """(objects, bytes) under a prefix."""
        objects = size = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                objects += 1
                size += obj["Size"]
        return objects, size

    def keys(self, bucket: str, prefix: str) -> list[str]:
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(obj["Key"] for obj in page.get("Contents", []))
        return out

    def delete_prefix(self, bucket: str, prefix: str) -> None:
        for batch in chunks(self.keys(bucket, prefix), 1000):
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch]})

    def wait_gone(self, bucket: str, keys: list[str], timeout: float = 120) -> None:
        """Waits until none of the keys is listed any more."""
        deadline = time.monotonic() + timeout
        wanted = set(keys)
        while wanted & set(self.keys(bucket, "")):
            if time.monotonic() > deadline:
                raise BenchError(f"{bucket}: objects still present after {timeout:.0f}s")
            time.sleep(0.05)


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    workload: str
    tool: str
    objects: int
    bytes: int
    wall_s: float
    cpu_s: Optional[float]  # the copier's own process
    s3_cpu_s: Optional[float]  # s3s-fs over the same interval
    peak_rss: Optional[int]  # the copier's peak RSS in this phase, bytes
    notes: dict = field(default_factory=dict)

    @property
    def objects_per_s(self) -> float:
        return self.objects / self.wall_s

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.wall_s / 1e6

    @property
    def cpu_ms_per_object(self) -> Optional[float]:
        return None if self.cpu_s is None else self.cpu_s / self.objects * 1000


@dataclass
class Workload:
    name: str  # "w1" / "w2"
    count: int
    size: int

    @property
    def total(self) -> int:
        return self.count * self.size

    def names(self) -> list[str]:
        return [f"{self.name}-{i:06d}.dat" for i in range(self.count)]

    def label(self) -> str:
        return f"{self.name.upper()}: {self.count:,} × {fmt_size(self.size)} ({fmt_size(self.total)})"


# --------------------------------------------------------------------------- the rclone side


class RcloneSide:
    def __init__(self, rclone: str, s3: S3Server, workdir: Path, transfers: int, checkers: int):
        self.rclone, self.s3, self.workdir = rclone, s3, workdir
        self.transfers, self.checkers = transfers, checkers
        self.config = workdir / "rclone.conf"
        self.config.write_text(
            "[s3]\n"
            "type = s3\n"
            "provider = Other\n"
            f"access_key_id = {ACCESS_KEY}\n"
            f"secret_access_key = {SECRET_KEY}\n"
            f"endpoint = {s3.endpoint}\n"
            f"region = {REGION}\n"
            "force_path_style = true\n"
        )
        self.log_path = workdir / "rclone.log"

    def version(self) -> str:
        out = subprocess.run([self.rclone, "version"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "rclone (unknown version)"

    def _run(self, verb: str, src: str, dst: str, transfers: int) -> tuple[float, float, int]:
        """Runs one rclone command; returns (wall s, CPU s, peak RSS bytes) from wait4."""
        cmd = [self.rclone, "--config", str(self.config), verb, src, dst,
               "--transfers", str(transfers), "--checkers", str(self.checkers),
               "--stats", "0", "--log-level", "NOTICE", "--log-file", str(self.log_path)]
        # AWS_* variables (a CA bundle, a profile) would only change how rclone talks to real AWS,
        # and AWS_CA_BUNDLE even stops it from starting: everything here is plain HTTP on loopback.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise BenchError(f"`{' '.join(cmd)}` exited with {proc.returncode}:\n{tail(self.log_path)}")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024

    def seed(self, wl: Workload) -> None:
        """Puts wl.count random objects of wl.size under rclone-src/<wl>/ (not timed)."""
        local = self.workdir / "seed" / wl.name
        local.mkdir(parents=True, exist_ok=True)
        for name in wl.names():
            with open(local / name, "wb") as f:
                remaining = wl.size
                while remaining:
                    n = min(remaining, 8 << 20)
                    f.write(os.urandom(n))
                    remaining -= n
        self._run("copy", str(local), f"s3:{RCLONE_SRC_BUCKET}/{wl.name}/", self.transfers)
        shutil.rmtree(local)
        self.check(RCLONE_SRC_BUCKET, f"{wl.name}/", wl, "seeded rclone source")

    def check(self, bucket: str, prefix: str, wl: Workload, what: str) -> None:
        objects, size = self.s3.count(bucket, prefix)
        if (objects, size) != (wl.count, wl.total):
            raise BenchError(f"{what}: expected {wl.count} objects / {wl.total} bytes under "
                             f"{bucket}/{prefix}, found {objects} / {size}")

    def timed(self, verb: str, wl: Workload) -> Result:
        # The trailing slashes matter: for `s3:bucket/prefix` rclone first HEADs `prefix` to see
        # whether it names a single file, and s3s-fs answers that HEAD of a directory with a 500,
        # which rclone retries for about 50 s. `prefix/` is known to be a directory: no HEAD.
        src = f"s3:{RCLONE_SRC_BUCKET}/{wl.name}/"
        dst_prefix = f"{verb}/{wl.name}"
        settle()
        s3_meter = Meter(self.s3.pid).start()
        wall, cpu, rss = self._run(verb, src, f"s3:{RCLONE_DST_BUCKET}/{dst_prefix}/", self.transfers)
        s3_cpu = s3_meter.cpu()
        self.check(RCLONE_DST_BUCKET, f"{dst_prefix}/", wl, f"rclone {verb}")
        if verb == "move" and self.s3.count(RCLONE_SRC_BUCKET, f"{wl.name}/")[0] != 0:
            raise BenchError(f"rclone move left objects under {RCLONE_SRC_BUCKET}/{wl.name}/")
        return Result(wl.name, f"rclone {verb}", wl.count, wl.total, wall, cpu, s3_cpu, rss,
                      {"transfers": self.transfers, "checkers": self.checkers})


def settle(pause: float = 0.0) -> None:
    """Flushes dirty pages before a timed phase, so that no phase pays for the writeback of
    the bytes an earlier one wrote; then waits `pause` seconds (see --w2-settle)."""
    os.sync()
    time.sleep(pause)


def raw_copy(s3: S3Server, wl: Workload, concurrency: int, src_bucket: str = RCLONE_SRC_BUCKET,
             keys: Optional[list[str]] = None, dst_prefix: Optional[str] = None,
             tool: str = "raw CopyObject", pause: float = 0.0) -> Result:
    """CopyObject of every source object with boto3: the server-side floor. By default the
    sources are rclone's; a paired W2 round passes Egress's own platform objects."""
    keys = s3.keys(src_bucket, f"{wl.name}/") if keys is None else keys
    dst_prefix = dst_prefix or wl.name
    threads = max(1, min(concurrency, len(keys)))
    settle(pause)
    s3_meter = Meter(s3.pid).start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()

    def copy(key: str) -> None:
        s3.client.copy_object(Bucket=RAW_DST_BUCKET, Key=f"{dst_prefix}/{key.rsplit('/', 1)[-1]}",
                              CopySource={"Bucket": src_bucket, "Key": key})

    with ThreadPoolExecutor(threads) as pool:
        for fut in as_completed([pool.submit(copy, k) for k in keys]):
            fut.result()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    objects, size = s3.count(RAW_DST_BUCKET, f"{dst_prefix}/")
    if (objects, size) != (wl.count, wl.total):
        raise BenchError(f"{tool}: expected {wl.count} objects, found {objects}")
    return Result(wl.name, tool, wl.count, wl.total, wall, cpu, s3_meter.cpu(), None,
                  {"threads": threads, "client": "boto3 (this Python process)"})


# --------------------------------------------------------------------------- the Egress side


class ApiError(BenchError):
    def __init__(self, method: str, path: str, status: int, body: str):
        self.status, self.body = status, body
        super().__init__(f"{method} {path} → HTTP {status}: {body[:500]}")


class Api:
    """The Egress v2 API. JSON calls go over one kept-alive http.client connection per thread:
    it costs the client about a third of the CPU of requests per call, and the benchmark's own
    status polls should take as little CPU as they can from the copies they time. Uploads of
    part bytes use requests."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token
        self._local = threading.local()
        self._host = urllib.parse.urlsplit(base).netloc

    # Egress closes a keep-alive connection that sends no request for --header-read-timeout-secs
    # (30 s by default); one idle longer than this is replaced before it is used, not after a
    # request sent on it is lost.
    IDLE_REUSE_SECS = 10.0

    @property
    def connection(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "connection", None)
        now = time.monotonic()
        if c is not None and now - getattr(self._local, "used_at", now) > self.IDLE_REUSE_SECS:
            c.close()
            c = None
        if c is None:
            c = http.client.HTTPConnection(self._host, timeout=300)
            self._local.connection = c
        self._local.used_at = now
        return c

    @property
    def session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["X-SBG-Auth-Token"] = self.token
            self._local.session = s
        return s

    def _send(self, method: str, path: str, body: Optional[dict],
              params: Optional[dict]) -> tuple[http.client.HTTPResponse, bytes]:
        url = f"/v2{path}" + (f"?{urllib.parse.urlencode(params, doseq=True)}" if params else "")
        payload = None if body is None else json.dumps(body).encode()
        headers = {"X-SBG-Auth-Token": self.token, "Content-Type": "application/json"}
        try:
            self.connection.request(method, url, body=payload, headers=headers)
        except (http.client.HTTPException, OSError):
            self._local.connection = None  # a kept-alive connection the server closed: send again
            self.connection.request(method, url, body=payload, headers=headers)
        r = self.connection.getresponse()
        content = r.read()
        if r.status >= 400:
            raise ApiError(method, path, r.status, content.decode(errors="replace"))
        return r, content

    def call(self, method: str, path: str, body: Optional[dict] = None,
             params: Optional[dict] = None) -> dict:
        _, content = self._send(method, path, body, params)
        return json.loads(content) if content else {}

    def count_exports(self, volume: str, states: tuple[str, ...]) -> int:
        """How many of the caller's exports to `volume` are in `states`: the list's
        X-Total-Matching-Query, with one job on the page."""
        r, _ = self._send("GET", "/storage/exports", None,
                          {"volume": volume, "state": list(states), "limit": 1})
        return int(r.headers["X-Total-Matching-Query"])

    def upload(self, project: str, name: str, size: int, part_size: int,
               data: Callable[[int], bytes]) -> str:
        """The SBG multipart protocol; data(n) gives n bytes. Returns the new file's id."""
        up = self.call("POST", "/upload/multipart",
                       {"project": project, "name": name, "size": size, "part_size": part_size})
        upload_id, part_size = up["upload_id"], up["part_size"]
        parts = max(1, math.ceil(size / part_size))
        for n in range(1, parts + 1):
            url = self.call("GET", f"/upload/multipart/{upload_id}/part/{n}")["url"]
            length = min(part_size, size - (n - 1) * part_size)
            r = self.session.put(url, data=data(length), headers={"X-SBG-Auth-Token": None}, timeout=600)
            if r.status_code >= 400:
                raise ApiError("PUT", f"part {n} of upload {upload_id}", r.status_code, r.text)
            self.call("POST", f"/upload/multipart/{upload_id}/part/",
                      {"part_number": n, "response": {"headers": {"ETag": r.headers["ETag"]}}})
        return self.call("POST", f"/upload/multipart/{upload_id}/complete")["id"]

    # bulk exports -----------------------------------------------------------

    def bulk_create(self, items: list[dict], copy_only: bool) -> list[str]:
        body = self.call("POST", "/bulk/storage/exports/create", {"items": items},
                         params={"copy_only": "True" if copy_only else "False"})
        ids = []
        for n, entry in enumerate(body["items"]):
            if "error" in entry:
                raise BenchError(f"bulk export create refused item {n} "
                                 f"({items[n]['destination']['location']}): {json.dumps(entry['error'])}")
            ids.append(entry["resource"]["id"])
        return ids

    def bulk_get(self, ids: list[str]) -> list[dict]:
        body = self.call("POST", "/bulk/storage/exports/get", {"export_ids": ids})
        out = []
        for export_id, entry in zip(ids, body["items"]):
            if "error" in entry:
                raise BenchError(f"bulk export get failed for {export_id}: {json.dumps(entry['error'])}")
            out.append(entry["resource"])
        return out


class EgressSide:
    def __init__(self, binary: Path, workdir: Path, s3: S3Server, port: int, workers: int,
                 log_level: Optional[str]):
        self.binary, self.s3, self.port, self.workers = binary, s3, port, workers
        self.data_dir = workdir / "egress-data"
        self.log_path = workdir / "egress.log"
        self.log_level = log_level
        self.proc: Optional[subprocess.Popen] = None
        self.api: Optional[Api] = None
        self.notes: list[str] = []
        self.project = ""
        self.volume = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _serve_flags(self) -> str:
        return subprocess.run([str(self.binary), "serve", "--help"], capture_output=True, text=True).stdout

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        platform = f"s3://{PLATFORM_BUCKET}?endpoint={self.s3.endpoint}&region={REGION}"
        cmd = [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", str(self.data_dir), "--platform-storage", platform,
               "--rate-limit", "1000000000"]
        supported = self._serve_flags()
        if "--allow-endpoint" in supported:
            cmd += ["--allow-endpoint", self.s3.endpoint]
        else:
            self.notes.append("this egress has no --allow-endpoint flag; volumes on loopback may be refused")
        if "--workers" in supported:
            cmd += ["--workers", str(self.workers)]
        else:
            self.notes.append(f"this egress has no --workers flag; its default worker count was used, "
                              f"not {self.workers}")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "EGRESS_"))}
        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_REGION=REGION)
        if self.log_level:
            env["EGRESS_LOG"] = self.log_level
        for note in self.notes:
            log(f"note: {note}")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc, "egress serve", self.log_path)

        made = subprocess.run([str(self.binary), "admin", "create-user", USER_NAME,
                               "--data-dir", str(self.data_dir)], capture_output=True, text=True, env=env)
        if made.returncode != 0:
            raise BenchError(f"egress admin create-user failed: {made.stderr.strip()}")
        token = made.stdout.strip().splitlines()[-1].strip()
        self.api = Api(f"http://127.0.0.1:{self.port}", token)

    def stop(self) -> None:
        stop_process(self.proc)

    def preflight(self) -> None:
        """Fails early and clearly when this binary has no export endpoints."""
        assert self.api is not None
        for path, body in (("/bulk/storage/exports/get", {"export_ids": []}),
                           ("/bulk/storage/exports/create", {"items": []})):
            try:
                self.api.call("POST", path, body, params={"copy_only": "True"} if "create" in path else None)
            except ApiError as e:
                if e.status in (404, 405):
                    raise BenchError(
                        f"this Egress binary ({self.binary}) has no export API: POST /v2{path} answered "
                        f"HTTP {e.status} ({e.body[:200]}). Build a version with bulk exports.") from None
                # Any other answer (400 for an empty list, say) means the route exists.

    def setup(self) -> None:
        assert self.api is not None
        self.project = self.api.call("POST", "/projects", {"name": PROJECT_NAME})["id"]
        try:
            self.volume = self.api.call("POST", "/storage/volumes", {
                "name": VOLUME_NAME,
                "access_mode": "RW",
                "service": {
                    "type": "s3", "bucket": VOLUME_BUCKET, "prefix": "",
                    "endpoint": self.s3.endpoint, "region": REGION,
                    "credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
                },
            })["id"]
        except ApiError as e:
            raise BenchError(f"could not create the volume on {self.s3.endpoint}: {e}") from None

    def seed(self, prefix: str, count: int, size: int, threads: int, part_size: int) -> list[str]:
        """Uploads count random files of size bytes; returns their ids in name order (not timed)."""
        assert self.api is not None
        api = self.api
        names = [f"{prefix}-{i:06d}.dat" for i in range(count)]
        ids: list[Optional[str]] = [None] * count
        done = 0
        step = max(1, count // 10)
        with ThreadPoolExecutor(max(1, min(threads, count))) as pool:
            futures = {pool.submit(api.upload, self.project, name, size, part_size, os.urandom): i
                       for i, name in enumerate(names)}
            for fut in as_completed(futures):
                ids[futures[fut]] = fut.result()
                done += 1
                if done % step == 0 or done == count:
                    log(f"  uploaded {done:,}/{count:,} {prefix} files")
        return [i for i in ids if i is not None]

    def items(self, file_ids: list[str], names: list[str], location_prefix: str) -> list[dict]:
        return [{"source": {"file": fid},
                 "destination": {"volume": self.volume, "location": f"{location_prefix}/{name}"},
                 "overwrite": False, "properties": {}}
                for fid, name in zip(file_ids, names)]

    def submit(self, items: list[dict], batch: int, copy_only: bool) -> tuple[list[str], list[float]]:
        """Bulk-creates the items, batch per call, in order; returns job ids and per-call latency (s)."""
        assert self.api is not None
        ids: list[str] = []
        latencies = []
        for chunk in chunks(items, batch):
            t0 = time.perf_counter()
            ids += self.api.bulk_create(chunk, copy_only)
            latencies.append(time.perf_counter() - t0)
        return ids, latencies

    def wait_finished(self, poll: float, timeout: float, since: Optional[float] = None) -> None:
        """Returns once none of the volume's jobs is PENDING or RUNNING.

        Each poll is one list call that counts them (its X-Total-Matching-Query), so watching
        10,000 jobs costs Egress one indexed count per poll, not a render of every job. The
        pause between polls grows with the time since `since` (a `time.perf_counter()`
        reading, by default now): 1% of it, at least `poll`."""
        assert self.api is not None
        started = time.perf_counter() if since is None else since
        deadline = time.perf_counter() + timeout
        while (left := self.api.count_exports(self.volume, UNFINISHED)) > 0:
            if time.perf_counter() > deadline:
                raise BenchError(f"{left:,} export job(s) still unfinished after {timeout:.0f}s")
            # Resolution relative to the run: at most 1% of the time so far (but never below
            # `poll`), so a long run is not charged for hundreds of status calls.
            time.sleep(max(poll, 0.01 * (time.perf_counter() - started)))

    def check_completed(self, ids: list[str]) -> None:
        """Every job must have ended COMPLETED (not timed); raises with the first that did not."""
        assert self.api is not None
        for window in chunks(ids, 100):
            states = self.api.bulk_get(window)
            bad = [r for r in states if r.get("state") != "COMPLETED"]
            if bad:
                raise BenchError(f"{len(bad)} export job(s) did not complete, e.g. {json.dumps(bad[0])[:600]}")

    def wait_completed(self, ids: list[str], poll: float, timeout: float) -> None:
        self.wait_finished(poll, timeout)
        self.check_completed(ids)

    def timed_export(self, wl: Workload, file_ids: list[str], batch: int, copy_only: bool,
                     poll: float, timeout: float, prefix: Optional[str] = None,
                     pause: float = 0.0) -> Result:
        prefix = prefix or wl.name
        items = self.items(file_ids, wl.names(), prefix)
        if (left := self.api.count_exports(self.volume, UNFINISHED)) > 0:
            raise BenchError(f"{left:,} earlier export job(s) to the volume are still unfinished")
        settle(pause)
        meter = Meter(self.pid).start()
        s3_meter = Meter(self.s3.pid).start()
        t0 = time.perf_counter()
        ids, latencies = self.submit(items, batch, copy_only)
        submitted = time.perf_counter() - t0
        # The run is timed from the first submit, so the polls' 1% resolution is of that time.
        self.wait_finished(poll, timeout, t0)
        wall = time.perf_counter() - t0
        cpu, s3_cpu, peak = meter.cpu(), s3_meter.cpu(), meter.peak()
        self.check_completed(ids)
        objects, size = self.s3.count(VOLUME_BUCKET, f"{prefix}/")
        if (objects, size) != (wl.count, wl.total):
            raise BenchError(f"Egress reported every {wl.name} job COMPLETED, but the volume holds "
                             f"{objects} objects / {size} bytes under {prefix}/ "
                             f"(expected {wl.count} / {wl.total})")
        verb = "copy" if copy_only else "move"
        return Result(wl.name, f"Egress export ({verb})", wl.count, wl.total, wall, cpu, s3_cpu,
                      peak if meter.peak_reset else None,
                      {"submit_s": round(submitted, 3), "bulk_calls": len(latencies), "batch": batch,
                       "workers": self.workers, "peak_rss_is_lifetime": not meter.peak_reset})


def median_result(rounds: list[Result]) -> Result:
    """The round with the median wall time, noting every round's time."""
    ordered = sorted(rounds, key=lambda r: r.wall_s)
    mid = ordered[len(ordered) // 2]
    mid.notes["round_walls_s"] = [round(r.wall_s, 3) for r in rounds]
    return mid


def paired_rounds(egress: "EgressSide", s3: S3Server, wl: Workload, args: argparse.Namespace) -> list[Result]:
    """W2 in rounds. Sub-second copies of large files vary a lot on a shared 2-core VM, so
    each round times Egress's export and a raw CopyObject of the same bytes back to back,
    alternating which goes first; each side's median round and the median of the
    per-round ratios are reported.

    Both sides leave the machine alike for the other: page-cache pages a copy must allocate
    cost far more when the VM has handed them back to its host, and a move frees its sources
    (through Egress's sweeper, which is waited for and not timed). So the raw side frees its
    copies too before Egress runs, and each round ends by deleting what it wrote."""
    raws, exports = [], []
    for r in range(args.w2_rounds):
        before = set(s3.keys(PLATFORM_BUCKET, "blobs/"))
        log(f"{wl.label()}: round {r + 1}/{args.w2_rounds}: uploading into Egress (not timed)")
        ids = egress.seed(f"{wl.name}r{r}", wl.count, wl.size, args.seed_threads, args.part_size)
        sources = sorted(set(s3.keys(PLATFORM_BUCKET, "blobs/")) - before)
        if len(sources) != wl.count:
            raise BenchError(f"expected {wl.count} new platform objects, found {len(sources)}")
        prefix = f"{wl.name}-r{r}"

        def export() -> None:
            exports.append(egress.timed_export(wl, ids, args.batch, args.copy_only, args.poll,
                                               args.timeout, prefix, args.w2_settle))
            if not args.copy_only:
                s3.wait_gone(PLATFORM_BUCKET, sources)  # the sweeper frees the moved bytes

        def raw(after_move: bool) -> None:
            # A move has freed the platform copies; the exported objects hold the same bytes.
            bucket, keys = ((VOLUME_BUCKET, s3.keys(VOLUME_BUCKET, f"{prefix}/")) if after_move
                            else (PLATFORM_BUCKET, sources))
            raws.append(raw_copy(s3, wl, args.transfers, bucket, keys, prefix, "raw CopyObject (paired)",
                                 args.w2_settle))
            s3.delete_prefix(RAW_DST_BUCKET, f"{prefix}/")

        # Alternate which side goes first, so neither always inherits the other's aftermath.
        if r % 2:
            export()
            raw(after_move=not args.copy_only)
        else:
            raw(after_move=False)
            export()
        s3.delete_prefix(VOLUME_BUCKET, f"{prefix}/")
        log(f"  raw {raws[-1].wall_s:.2f}s, Egress {exports[-1].wall_s:.2f}s")
    raw, export = median_result(raws), median_result(exports)
    # The two sides of a round ran back to back on the same memory state, so the ratio within
    # a round carries little of the machine's drift from one round to the next.
    ratios = [e.wall_s / r.wall_s for e, r in zip(exports, raws)]
    export.notes["round_ratios"] = [round(x, 3) for x in ratios]
    export.notes["median_round_ratio"] = statistics.median(ratios)
    return [raw, export]


# --------------------------------------------------------------------------- bulk-create latency


@dataclass
class Latency:
    jobs_stored: int
    calls: int
    batch: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    fill_s: float
    drained: bool


def bulk_latency(egress: EgressSide, fill_ids: list[str], stored: int, args: argparse.Namespace) -> Latency:
    """Fills the store to --jobs exports with copy_only exports, then times more bulk creates."""
    names = [f"fill-{i:06d}.dat" for i in range(len(fill_ids))]
    needed = max(0, args.jobs - stored)
    rounds = math.ceil(needed / len(fill_ids)) if needed else 0
    log(f"filling the store: {rounds:,} bulk calls of {len(fill_ids)} copy-only exports "
        f"({stored:,} jobs stored, target {args.jobs:,})")
    t0 = time.perf_counter()
    fill_jobs: list[str] = []
    for r in range(rounds):
        take = min(len(fill_ids), needed - r * len(fill_ids))
        ids, _ = egress.submit(egress.items(fill_ids[:take], names[:take], f"fill/{r:06d}"),
                               args.batch, copy_only=True)
        fill_jobs += ids
        if (r + 1) % max(1, rounds // 10) == 0:
            log(f"  submitted {len(fill_jobs):,}/{needed:,} filler jobs")
    stored += len(fill_jobs)
    if not args.no_drain and fill_jobs:
        log("waiting for the filler jobs to complete (--no-drain skips this)")
        egress.wait_completed(fill_jobs, max(args.poll, 0.5), args.timeout)
    fill_s = time.perf_counter() - t0
    log(f"store holds {stored:,} export jobs ({fill_s:.0f}s to fill); timing {args.latency_calls} bulk creates")

    latencies = []
    for call in range(args.latency_calls):
        items = egress.items(fill_ids[: args.batch], names[: args.batch], f"lat/{call:06d}")
        _, lat = egress.submit(items, args.batch, copy_only=True)
        latencies += lat
        if args.latency_interval:
            time.sleep(args.latency_interval)
    ms = [x * 1000 for x in latencies]
    return Latency(stored, len(ms), min(args.batch, len(fill_ids)), percentile(ms, 50),
                   percentile(ms, 99), max(ms), sum(ms) / len(ms), fill_s, not args.no_drain)


# --------------------------------------------------------------------------- report


def fmt(value: Optional[float], spec: str, unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or not b else a / b


def report(workloads: list[Workload], results: list[Result], latency: Optional[Latency],
           header: list[str]) -> list[tuple[str, str, str]]:
    """Prints the table and returns the target verdicts."""
    print()
    print("Egress export benchmark")
    for line in header:
        print(f"  {line}")
    cols = ("tool", "wall s", "objects/s", "MB/s", "CPU s", "CPU ms/obj", "s3s-fs CPU s",
            "peak RSS MiB", "rate ×rclone copy", "rate ×rclone move", "CPU ×rclone copy")
    widths = (22, 8, 10, 8, 7, 10, 12, 12, 17, 17, 16)

    def row(cells: Iterable[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    verdicts: list[tuple[str, str, str]] = []
    for wl in workloads:
        rows = [r for r in results if r.workload == wl.name]
        if not rows:
            continue
        by_tool = {r.tool: r for r in rows}
        rc_copy, rc_move = by_tool.get("rclone copy"), by_tool.get("rclone move")
        print()
        print(wl.label())
        print(row(cols))
        print(row("-" * w for w in widths))
        for r in rows:
            print(row([
                r.tool, f"{r.wall_s:.2f}", f"{r.objects_per_s:,.1f}", f"{r.mb_per_s:,.1f}",
                fmt(r.cpu_s, ".2f"), fmt(r.cpu_ms_per_object, ".3f"), fmt(r.s3_cpu_s, ".2f"),
                fmt(None if r.peak_rss is None else r.peak_rss / (1 << 20), ".1f"),
                fmt(ratio(r.objects_per_s, rc_copy.objects_per_s if rc_copy else None), ".2f"),
                fmt(ratio(r.objects_per_s, rc_move.objects_per_s if rc_move else None), ".2f"),
                fmt(ratio(r.cpu_s, rc_copy.cpu_s if rc_copy else None), ".2f"),
            ]))
        eg = next((r for r in rows if r.tool.startswith("Egress")), None)
        raw = by_tool.get("raw CopyObject")
        paired = by_tool.get("raw CopyObject (paired)")
        if eg:
            print(f"  Egress: {eg.notes['bulk_calls']} bulk calls of ≤{eg.notes['batch']}, all submitted "
                  f"after {eg.notes['submit_s']:.2f}s; {eg.notes['workers']} workers requested"
                  + ("; peak RSS is the process lifetime's (VmHWM could not be reset)"
                     if eg.notes.get("peak_rss_is_lifetime") else ""))
        if rc_copy:
            print(f"  rclone: --transfers {rc_copy.notes['transfers']} --checkers {rc_copy.notes['checkers']}")
        if raw:
            print(f"  raw CopyObject: boto3 from this script, {raw.notes['threads']} threads "
                  "(its CPU column is this Python process)")

        # Targets for this workload.
        if wl.name == "w1":
            r_rate = ratio(eg.objects_per_s, rc_copy.objects_per_s) if eg and rc_copy else None
            verdicts.append(("W1 rate ≥ 1.0× rclone copy", fmt(r_rate, ".2f", "×"),
                             verdict(r_rate, lambda v: v >= TARGET_W1_RATE_RATIO)))
            cpu = eg.cpu_ms_per_object if eg else None
            verdicts.append(("W1 Egress CPU ≤ 0.5 ms/job", fmt(cpu, ".3f", " ms"),
                             verdict(cpu, lambda v: v <= TARGET_CPU_MS_PER_JOB)))
        if eg and paired:
            print(f"  paired rounds (wall s): raw {paired.notes['round_walls_s']}, "
                  f"Egress {eg.notes['round_walls_s']}")
            print(f"  Egress ÷ raw in each round: {eg.notes['round_ratios']}; median "
                  f"{eg.notes['median_round_ratio']:.3f} (median rounds: "
                  f"{ratio(eg.wall_s, paired.wall_s):.3f})")
        if wl.name == "w2":
            if eg and paired:
                over = eg.notes["median_round_ratio"]
            else:
                over = ratio(eg.wall_s, raw.wall_s) if eg and raw else None
            verdicts.append(("W2 wall ≤ 1.10× raw CopyObject", fmt(over, ".2f", "×"),
                             verdict(over, lambda v: v <= TARGET_W2_OVER_RAW)))

    if latency:
        print()
        print(f"Bulk create latency ({latency.calls} calls of {latency.batch} items, "
              f"{latency.jobs_stored:,} export jobs stored"
              + ("" if latency.drained else ", filler jobs not drained") + ")")
        print(f"  p50 {latency.p50_ms:.1f} ms   p99 {latency.p99_ms:.1f} ms   "
              f"max {latency.max_ms:.1f} ms   mean {latency.mean_ms:.1f} ms   (store filled in {latency.fill_s:.0f}s)")
        verdicts.append(("bulk create p99 ≤ 100 ms", f"{latency.p99_ms:.1f} ms",
                         verdict(latency.p99_ms, lambda v: v <= TARGET_BULK_P99_MS)))

    if verdicts:
        print()
        print("Targets")
        for name, value, v in verdicts:
            print(f"  {name:<34} {value:>12}   {v}")
    print()
    return verdicts


def verdict(value: Optional[float], ok: Callable[[float], bool]) -> str:
    if value is None:
        return "n/a"
    return "PASS" if ok(value) else "FAIL"


# --------------------------------------------------------------------------- main


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Egress bulk export vs rclone on a loopback s3s-fs server (not part of CI).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("workloads")
    g.add_argument("--w1-count", type=int, default=10_000, help="W1: number of small files")
    g.add_argument("--w1-size", type=parse_size, default="4KiB", help="W1: size of each file")
    g.add_argument("--w2-count", type=int, default=4, help="W2: number of large files")
    g.add_argument("--w2-size", type=parse_size, default="256MiB", help="W2: size of each file")
    g.add_argument("--w2-settle", type=float, default=1.0,
                   help="seconds each paired W2 phase waits after syncing")
    g.add_argument("--w2-rounds", type=int, default=8,
                   help="paired W2 rounds: each uploads W2 into Egress and times the Egress export "
                        "of those files and a raw CopyObject of the same bytes, alternating which "
                        "goes first; medians are reported (0: one unpaired export, compared with "
                        "the raw copy of rclone's sources)")
    g.add_argument("--only", choices=["w1", "w2"], action="append",
                   help="run only this workload (repeatable); default both")
    g.add_argument("--batch", type=int, default=100, help="items per bulk create call")
    g.add_argument("--workers", type=int, default=32, help="Egress --workers")
    g.add_argument("--transfers", type=int, help="rclone --transfers and raw CopyObject threads "
                                                  "(default: --workers)")
    g.add_argument("--checkers", type=int, default=32, help="rclone --checkers")
    g.add_argument("--copy-only", action="store_true",
                   help="time Egress copies (copy_only=True) instead of moves")

    g = p.add_argument_group("bulk create latency")
    g.add_argument("--jobs", type=int, default=100_000,
                   help="export jobs stored before bulk create latency is timed")
    g.add_argument("--latency-calls", type=int, default=200, help="timed bulk create calls")
    g.add_argument("--latency-interval", type=float, default=0.0,
                   help="seconds to sleep between timed bulk create calls")
    g.add_argument("--no-drain", action="store_true",
                   help="time bulk creates without waiting for the filler jobs to finish")
    g.add_argument("--skip-latency", action="store_true")

    g = p.add_argument_group("what to run")
    g.add_argument("--skip-egress", action="store_true", help="run only the rclone / raw CopyObject side")
    g.add_argument("--skip-rclone", action="store_true", help="run only the Egress side")

    g = p.add_argument_group("setup")
    g.add_argument("--egress-bin", help="Egress binary (default: $EGRESS_BIN or target/release/egress)")
    g.add_argument("--build", action="store_true", help="cargo build --release -j2 --bin egress first")
    g.add_argument("--egress-log", help="EGRESS_LOG filter for the server (default: the server's own)")
    g.add_argument("--no-install", action="store_true", help="fail instead of installing rclone / s3s-fs")
    g.add_argument("--install-jobs", type=int, default=1, help="cargo -j when installing s3s-fs")
    g.add_argument("--s3-port", type=int, default=0, help="s3s-fs port (0: a free one)")
    g.add_argument("--egress-port", type=int, default=0, help="Egress port (0: a free one)")
    g.add_argument("--seed-threads", type=int, default=32, help="threads uploading files into Egress")
    g.add_argument("--part-size", type=parse_size, default="32MiB", help="upload part size for seeding")
    g.add_argument("--workdir", type=Path, help="where Egress keeps data and the logs go (default: a temp dir)")
    g.add_argument("--s3-root", type=Path,
                   help="where s3s-fs keeps its objects (default: a temp dir in /dev/shm when it has "
                        f"{TMPFS_NEED_GIB} GiB free, else WORKDIR/s3)")
    g.add_argument("--s3-on-disk", action="store_true", help="keep s3s-fs's objects in WORKDIR/s3")
    g.add_argument("--keep", action="store_true", help="keep the work dir (and its logs) afterwards")
    g.add_argument("--poll", type=float, default=0.01,
                   help="shortest pause between job state polls (the pause is 1%% of the time so far)")
    g.add_argument("--timeout", type=float, default=3600, help="seconds to wait for one phase's jobs")
    g.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = p.parse_args(argv)
    args.transfers = args.transfers or args.workers
    if not 1 <= args.batch <= 100:
        p.error("--batch must be between 1 and 100")
    return args


TMPFS = Path("/dev/shm")
TMPFS_NEED_GIB = 8  # peak of a full run is about 4 GiB (W2 rounds delete as they go)


def pick_s3_root(args: argparse.Namespace, workdir: Path) -> tuple[Path, bool]:
    """Where s3s-fs keeps objects, and whether it is a temp dir of ours to remove.

    s3s-fs writes and fsyncs every object; on a shared disk that I/O made its CPU per copy vary
    threefold between runs, and Egress (which waits on it) with it. Memory removes that noise from
    the comparison; Egress's own data dir stays on disk.
    """
    if args.s3_root:
        return args.s3_root, False
    if not args.s3_on_disk and TMPFS.is_dir():
        st = os.statvfs(TMPFS)
        if st.f_bavail * st.f_frsize >= TMPFS_NEED_GIB << 30:
            return Path(tempfile.mkdtemp(prefix="egress-bench-s3-", dir=TMPFS)), True
    return workdir / "s3", False


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    workloads = [w for w in (Workload("w1", args.w1_count, args.w1_size),
                             Workload("w2", args.w2_count, args.w2_size))
                 if w.count > 0 and (not args.only or w.name in args.only)]
    rclone_bin, s3s_bin = ensure_tools(args)
    binary = None if args.skip_egress else egress_binary(args)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="egress-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"work dir {workdir}")
    s3_root, s3_root_is_temp = pick_s3_root(args, workdir)
    s3 = S3Server(s3s_bin, s3_root, args.s3_port or free_port(), workdir / "s3s-fs.log",
                  pool=args.transfers + 8)
    egress: Optional[EgressSide] = None
    results: list[Result] = []
    latency: Optional[Latency] = None
    header = [f"machine: {os.cpu_count()} CPUs; S3: s3s-fs {S3S_FS_VERSION} on {s3.endpoint} "
              f"(root {s3_root})"]
    failure: Optional[str] = None
    try:
        s3.start()
        s3.make_buckets(PLATFORM_BUCKET, VOLUME_BUCKET, RCLONE_SRC_BUCKET, RCLONE_DST_BUCKET, RAW_DST_BUCKET)

        if binary is not None:
            egress = EgressSide(binary, workdir, s3, args.egress_port or free_port(), args.workers,
                                args.egress_log)
            egress.start()
            egress.preflight()  # before anything is timed: no export API, no run
            egress.setup()
            header.append(f"Egress: {binary} on 127.0.0.1:{egress.port}, --workers {args.workers}, "
                          f"EGRESS_LOG={args.egress_log or '(default)'}, "
                          f"exports {'copy_only=True' if args.copy_only else 'copy_only=False (move)'}")
            header += [f"note: {n}" for n in egress.notes]

        if not args.skip_rclone:
            rc = RcloneSide(rclone_bin, s3, workdir, args.transfers, args.checkers)
            header.append(f"rclone: {rc.version()}, --transfers {args.transfers} --checkers {args.checkers}")
            for wl in workloads:
                log(f"{wl.label()}: seeding {RCLONE_SRC_BUCKET}/{wl.name}/ (not timed)")
                rc.seed(wl)
                log(f"{wl.label()}: raw CopyObject")
                results.append(raw_copy(s3, wl, args.transfers))
                for verb in ("copy", "move"):  # move last: it empties the source
                    log(f"{wl.label()}: rclone {verb}")
                    results.append(rc.timed(verb, wl))
                    log(f"  {results[-1].wall_s:.2f}s")

        if egress is not None:
            file_ids = {}
            for wl in workloads:
                if wl.name == "w2" and args.w2_rounds:
                    continue  # each paired round uploads its own files
                log(f"{wl.label()}: uploading into Egress (not timed)")
                file_ids[wl.name] = egress.seed(wl.name, wl.count, wl.size, args.seed_threads, args.part_size)
            fill_ids: list[str] = []
            if not args.skip_latency:
                n = min(args.batch, 100)
                log(f"uploading {n} filler files for the latency phase (not timed)")
                fill_ids = egress.seed("fill", n, 4096, args.seed_threads, args.part_size)
            stored = 0
            for wl in workloads:
                if wl.name == "w2" and args.w2_rounds:
                    results += paired_rounds(egress, s3, wl, args)
                    stored += wl.count * args.w2_rounds
                    continue
                log(f"{wl.label()}: Egress export, {math.ceil(wl.count / args.batch)} bulk calls")
                results.append(egress.timed_export(wl, file_ids[wl.name], args.batch, args.copy_only,
                                                   args.poll, args.timeout))
                stored += wl.count
                log(f"  {results[-1].wall_s:.2f}s")
            if not args.skip_latency:
                latency = bulk_latency(egress, fill_ids, stored, args)
    except BenchError as e:
        failure = str(e)
    except KeyboardInterrupt:
        failure = "interrupted"
    finally:
        if egress is not None:
            egress.stop()
        s3.stop()
        if s3_root_is_temp and not args.keep:
            shutil.rmtree(s3_root, ignore_errors=True)  # it holds memory until removed

    verdicts = report(workloads, results, latency, header)
    if args.json:
        args.json.write_text(json.dumps({
            "header": header,
            "workloads": [asdict(w) for w in workloads],
            "results": [dict(asdict(r), objects_per_s=r.objects_per_s, mb_per_s=r.mb_per_s,
                             cpu_ms_per_object=r.cpu_ms_per_object) for r in results],
            "latency": asdict(latency) if latency else None,
            "targets": [{"target": n, "value": v, "verdict": d} for n, v, d in verdicts],
            "failure": failure,
        }, indent=2))
    if failure:
        print(f"export_bench: FAILED: {failure}", file=sys.stderr)
        if args.workdir is None and not args.keep:
            print(f"(logs kept in {workdir})", file=sys.stderr)
        return 1
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
