#!/usr/bin/env python3
"""`egress export` (the client command) against the same export done by hand through the API.

Both export the same N small files from one project to one volume of the same `egress serve`,
with s3s-fs as the S3 server (platform storage and volume), in alternated rounds:

- "server-side": the bulk export benchmark's own path (bench/export_bench.py's `timed_export`):
  bulk creates of 100, then a count poll until nothing is unfinished. Timed from the first
  create to the last job's end.
- "CLI": `egress export --project … --volume …` run as a process: it lists the project, submits,
  polls, writes its journal and report. Timed from start to exit, listing included.

The ratio CLI ÷ server-side is the CLI's cost; the target is ≤ 1.15. A last phase exports a
manifest of --rss-files files with the CLI and reports its peak RSS (target < 100 MiB).

    bench/run.sh is for export_bench.py; run this one with the same Python:
    .venv/bin/python bench/cli_bench.py --egress-bin target/release/egress
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import export_bench as eb  # noqa: E402

TARGET_RATIO = 1.15
TARGET_RSS_MIB = 100


def children_usage() -> tuple[float, int]:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, r.ru_maxrss * 1024


def timed_cli(binary: Path, api: eb.Api, args: list[str], state: Path) -> tuple[float, float, int, str]:
    """Like run_cli, with the CLI's CPU (from the children's usage delta) and peak RSS (from a
    /proc watch, since ru_maxrss of children is the maximum over all of them)."""
    cpu0, _ = children_usage()
    cmd = [str(binary), "export", "--api", api.base, "--token", api.token, "--progress", "none",
           "--state-dir", str(state), *args]
    # Output goes to files: a pipe nobody reads while the CLI runs would fill and stall it.
    out_file, err_file = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, text=True)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    proc.wait()
    out_file.seek(0)
    err_file.seek(0)
    out, err = out_file.read(), err_file.read()
    cpu1, _ = children_usage()
    if proc.returncode != 0:
        raise eb.BenchError(f"egress export exited {proc.returncode}: {err.strip()[-800:]}")
    return wall, cpu1 - cpu0, peak, out


def copies(api: eb.Api, project: str, source: str, count: int, threads: int) -> list[str]:
    """Platform files made by copying one file: each a new file of the same bytes, one call each."""
    def one(i: int) -> str:
        return api.call("POST", f"/files/{source}/actions/copy", {"project": project, "name": f"c-{i:06d}.dat"})["id"]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--egress-bin", type=Path, default=eb.REPO / "target" / "release" / "egress")
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--size", type=eb.parse_size, default="4KiB")
    p.add_argument("--rounds", type=int, default=3, help="alternated pairs of runs")
    p.add_argument("--rss-files", type=int, default=100_000, help="manifest size of the RSS phase (0: skip)")
    p.add_argument("--workers", type=int, default=32)
    p.add_argument("--seed-threads", type=int, default=16)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    s3s_bin = shutil.which("s3s-fs") or str(Path.home() / ".cargo" / "bin" / "s3s-fs")
    if not Path(s3s_bin).exists():
        sys.exit(f"cli_bench: s3s-fs not found; cargo install s3s-fs --version {eb.S3S_FS_VERSION} --features binary --locked")
    workdir = Path(tempfile.mkdtemp(prefix="egress-cli-bench-"))
    s3_root = Path(tempfile.mkdtemp(prefix="egress-cli-bench-s3-", dir="/dev/shm"))
    s3 = eb.S3Server(s3s_bin, s3_root, eb.free_port(), workdir / "s3s-fs.log", pool=args.workers + 8)
    egress = None
    results = {"files": args.files, "size": args.size, "rounds": []}
    try:
        s3.start()
        s3.make_buckets(eb.PLATFORM_BUCKET, eb.VOLUME_BUCKET)
        egress = eb.EgressSide(args.egress_bin, workdir, s3, eb.free_port(), args.workers, None)
        egress.start()
        egress.setup()
        api = egress.api
        eb.log(f"seeding {args.files:,} files of {eb.fmt_size(args.size)} (not timed)")
        ids = egress.seed("w1", args.files, args.size, args.seed_threads, 32 << 20)
        wl = eb.Workload("w1", args.files, args.size)
        for r in range(args.rounds):
            srv = egress.timed_export(wl, ids, 100, True, 0.01, 3600, prefix=f"srv{r}")
            eb.log(f"round {r}: server-side {srv.wall_s:.2f}s, server CPU {srv.cpu_s:.2f}s")
            server = eb.Meter(egress.pid).start()
            wall, cpu, peak, out = timed_cli(args.egress_bin, api, [
                "--volume", egress.volume, "--project", egress.project, "--prefix", f"cli{r}"], workdir / f"state{r}")
            server_cpu = server.cpu()
            objects, size = s3.count(eb.VOLUME_BUCKET, f"cli{r}/")
            if (objects, size) != (wl.count, wl.total):
                raise eb.BenchError(f"the CLI said it was done, but cli{r}/ holds {objects} objects / {size} bytes")
            eb.log(f"round {r}: CLI {wall:.2f}s, CPU {cpu:.2f}s, server CPU {server_cpu:.2f}s, peak RSS {peak / 2**20:.1f} MiB; {out.strip().splitlines()[-1]}")
            # What the run spends before its first submission: checks and the project listing.
            listing, _, _, _ = timed_cli(args.egress_bin, api, [
                "--volume", egress.volume, "--project", egress.project, "--dry-run"], workdir / "state-dry")
            eb.log(f"round {r}: CLI --dry-run (checks and listing) {listing:.2f}s")
            results["rounds"].append({"server_s": srv.wall_s, "cli_s": wall, "cli_cpu_s": cpu,
                                      "server_cpu_by_hand_s": srv.cpu_s, "server_cpu_cli_s": server_cpu,
                                      "cli_peak_rss": peak, "listing_s": listing, "ratio": wall / srv.wall_s})
        if args.rss_files:
            more = args.rss_files - len(ids)
            eb.log(f"making {more:,} more files by copy for the {args.rss_files:,}-file manifest (not timed)")
            all_ids = ids + copies(api, egress.project, ids[0], max(0, more), args.seed_threads)
            manifest = workdir / "manifest.csv"
            manifest.write_text("file\n" + "\n".join(all_ids[: args.rss_files]) + "\n")
            wall, cpu, peak, out = timed_cli(args.egress_bin, api, [
                "--volume", egress.volume, "--manifest", str(manifest), "--prefix", "rss"], workdir / "state-rss")
            eb.log(f"manifest of {args.rss_files:,}: {wall:.1f}s, CPU {cpu:.1f}s, peak RSS {peak / 2**20:.1f} MiB; {out.strip().splitlines()[-1]}")
            results["rss"] = {"files": args.rss_files, "wall_s": wall, "cpu_s": cpu, "peak_rss": peak}
    except eb.BenchError as e:
        print(f"cli_bench: {e}", file=sys.stderr)
        return 1
    finally:
        if egress is not None:
            egress.stop()
        s3.stop()
        shutil.rmtree(s3_root, ignore_errors=True)
    ratios = [r["ratio"] for r in results["rounds"]]
    print(f"\n{args.files:,} files of {eb.fmt_size(args.size)}, {len(ratios)} alternated rounds")
    print("| round | server-side bulk export | egress export (CLI) | CLI ÷ server | server CPU, by hand / CLI | CLI CPU | CLI peak RSS | listing alone |")
    print("|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(results["rounds"]):
        print(f"| {i} | {r['server_s']:.2f} s | {r['cli_s']:.2f} s | {r['ratio']:.3f} "
              f"| {r['server_cpu_by_hand_s']:.2f} s / {r['server_cpu_cli_s']:.2f} s | {r['cli_cpu_s']:.2f} s "
              f"| {r['cli_peak_rss'] / 2**20:.1f} MiB | {r['listing_s']:.2f} s |")
    median = statistics.median(ratios)
    print(f"median CLI ÷ server-side: {median:.3f} (target ≤ {TARGET_RATIO}: {'met' if median <= TARGET_RATIO else 'NOT met'})")
    if "rss" in results:
        mib = results["rss"]["peak_rss"] / 2**20
        print(f"peak RSS, {results['rss']['files']:,}-file manifest: {mib:.1f} MiB (target < {TARGET_RSS_MIB} MiB: {'met' if mib < TARGET_RSS_MIB else 'NOT met'})")
    results["median_ratio"] = median
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
