"""10,000 small files into a sandbox and back: one request (`upload_dir`, `download_dir`) against
one request per file (`files.write`, `files.download`), sync, on CrowNest Local on this machine.

Each way runs in its own process (a fresh client, the peak RSS reset before the transfer), so the
memory figure is that transfer's alone. Prints one row per way: seconds up, seconds down, peak RSS
growth of the client in MiB.

    .venv/bin/python benchmarks/dirs.py [--files N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = 10_000


def make_tree(root: Path, files: int) -> None:
    for i in range(files):
        folder = root / f"pkg{i % 100:02d}" / f"mod{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.py").write_bytes(f"# file {i}\n".encode() * (1 + i % 50))


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1])


def child(way: str, tree: Path, back: Path) -> None:
    """One way, in this process: prints `up down growth_mib`."""
    from crownest import CrowNest

    with CrowNest(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        try:
            sandbox.files.write_many({"warm/a.txt": "warm"})  # the code paths, imported and warm
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            before = rss_kib("VmRSS")
            start = time.perf_counter()
            if way == "one request":
                sandbox.files.upload_dir(tree, "tree")
            else:
                for path in sorted(p for p in tree.rglob("*") if p.is_file()):
                    sandbox.files.write(f"tree/{path.relative_to(tree).as_posix()}", path)
            up = time.perf_counter() - start
            start = time.perf_counter()
            if way == "one request":
                sandbox.files.download_dir("tree", back)
            else:
                for info in sandbox.files.list("tree", depth=3):
                    if info.type_ == "file":
                        to = back / Path(info.path).relative_to("/home/user/tree")
                        to.parent.mkdir(parents=True, exist_ok=True)
                        sandbox.files.download(info.path, to)
            down = time.perf_counter() - start
            print(f"{up:.2f} {down:.2f} {(rss_kib('VmHWM') - before) / 1024:.1f}")
        finally:
            sandbox.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=FILES)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    from crownest_local import LocalServer

    with tempfile.TemporaryDirectory() as folder, LocalServer() as server:
        tree = Path(folder) / "tree"
        make_tree(tree, args.files)
        env = {**os.environ, "CROWNEST_BASE_URL": server.base_url, "CROWNEST_API_KEY": server.api_key}
        print(f"{args.files} files, {sum(p.stat().st_size for p in tree.rglob('*') if p.is_file())} bytes")
        print(f"{'way':<22}{'upload s':>10}{'download s':>12}{'RSS growth MiB':>16}")
        for way in ("one request", "one request per file"):
            back = Path(folder) / way.replace(" ", "-")
            done = subprocess.run(
                [sys.executable, __file__, "--child", way, str(tree), str(back)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            up, down, growth = done.stdout.split()
            print(f"{way:<22}{up:>10}{down:>12}{growth:>16}")


if __name__ == "__main__":
    main()
