"""A child process for tests/test_dirs.py: 10,000 files up and down through one sandbox, with the peak RSS.

Usage: `dirs_memory.py make WORK_DIR` makes the tree in WORK_DIR/tree; then
`dirs_memory.py sync|async BASE_URL WORK_DIR` (the key in CROWNEST_API_KEY) sends it up and back
down into WORK_DIR/<mode> and prints `key=value` lines: `equal` (the tree came back byte-exact),
`rss_growth_kib` (the peak RSS during the transfers above the RSS before them, the peak reset
through /proc/self/clear_refs), and the seconds each transfer took. The sync and async runs can
go at the same time, each in its own process.
"""

from __future__ import annotations

import asyncio
import filecmp
import os
import sys
import time
from pathlib import Path

from crownest import AsyncCrowNest, CrowNest

FILES = 10_000
BIG = 40 * 1024 * 1024  # one file larger than the memory bound: only streaming keeps under it


def make_tree(root: Path) -> None:
    for i in range(FILES):
        folder = root / f"pkg{i % 100:02d}" / f"mod{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.py").write_bytes(f"# file {i}\n".encode() * (1 + i % 50))
    with open(root / "big.bin", "wb") as f:
        f.write(os.urandom(1024 * 1024) * (BIG // (1024 * 1024)))


def status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def reset_peak() -> int:
    """Reset VmHWM to the current RSS (Linux 4.0+); the RSS now, in KiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status("VmRSS")


def same_tree(a: Path, b: Path) -> bool:
    """Same names, and the same bytes in every file (compared file by file, one at a time)."""
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*"))
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*"))
    if names_a != names_b:
        return False
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names_a if (a / n).is_file())


def run_sync(base_url: str, work: Path) -> dict[str, float]:
    with CrowNest(base_url=base_url) as client:
        sandbox = client.sandboxes.create(template="base")
        try:
            sandbox.files.write_many({"warm/a.txt": "warm"})  # the code paths, imported and warm
            sandbox.files.download_dir("warm", work / "sync-warm")
            before = reset_peak()
            start = time.perf_counter()
            sandbox.files.upload_dir(work / "tree", "tree")
            up = time.perf_counter() - start
            sandbox.files.download_dir("tree", work / "sync")
            down = time.perf_counter() - start - up
            return {"rss_growth_kib": status("VmHWM") - before, "upload_s": up, "download_s": down}
        finally:
            sandbox.kill()


async def run_async(base_url: str, work: Path) -> dict[str, float]:
    async with AsyncCrowNest(base_url=base_url) as client:
        sandbox = await client.sandboxes.create(template="base")
        try:
            await sandbox.files.write_many({"warm/a.txt": "warm"})
            await sandbox.files.download_dir("warm", work / "async-warm")
            before = reset_peak()
            start = time.perf_counter()
            await sandbox.files.upload_dir(work / "tree", "tree")
            up = time.perf_counter() - start
            await sandbox.files.download_dir("tree", work / "async")
            down = time.perf_counter() - start - up
            return {"rss_growth_kib": status("VmHWM") - before, "upload_s": up, "download_s": down}
        finally:
            await sandbox.kill()


def main() -> None:
    if sys.argv[1] == "make":
        make_tree(Path(sys.argv[2]) / "tree")
        return
    mode, base_url, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    figures: dict[str, object] = {
        **(run_sync(base_url, work) if mode == "sync" else asyncio.run(run_async(base_url, work)))
    }
    figures["equal"] = same_tree(work / "tree", work / mode)
    for key, value in figures.items():
        print(f"{key}={round(value, 2) if isinstance(value, float) else value}")


if __name__ == "__main__":
    main()
