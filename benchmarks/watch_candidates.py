"""Which inotify binding CrowNest Local's file watches use: what each candidate reports, and its import time.

The same scenario for each: a watch on an empty folder, then a folder and a folder in it made
after the watch began, a file written, appended to, renamed and deleted in it, a symlink to a
folder outside, and a file written in that outside folder. Run it with the candidates in a
folder of their own (they are not development dependencies):

    pip install --target /tmp/cand inotify-simple==2.0.1 asyncinotify==4.4.4 watchfiles==1.3.0
    .venv/bin/python benchmarks/watch_candidates.py /tmp/cand

Measured on 2026-11-29 (2 shared vCPUs, Python 3.11.7; import times best of 5, two runs, the
second on a loaded machine):

- watchfiles 1.3.0 (uvicorn's reloader; Rust `notify`): `added` for the folders, the link, `a.txt`
  and `b.txt`, `deleted` for both files: no `modified` (folded into `added` within its debounce)
  and no move (a rename is `deleted` + `added`, unpaired). Import 55 / 168 ms; 1.3 MB plus anyio.
- inotify-simple 2.0.1: every raw event (CREATE, MODIFY, MOVED_FROM/MOVED_TO with one cookie,
  DELETE); nothing behind the link. Import 19 / 72 ms; one 9.5 KB pure-Python file (ctypes), no
  dependencies; its descriptor plugs into the server's event loop (`add_reader`).
- asyncinotify 4.4.4: the same raw events, read through its own asyncio iterator. Import
  55 / 175 ms; 84 KB.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any


def scenario(root: str, outside: str) -> None:
    time.sleep(0.3)
    os.mkdir(f"{root}/new")
    time.sleep(0.1)
    os.mkdir(f"{root}/new/deep")
    time.sleep(0.1)
    with open(f"{root}/new/deep/a.txt", "w") as f:
        f.write("x")
    with open(f"{root}/new/deep/a.txt", "a") as f:
        f.write("y")
    os.rename(f"{root}/new/deep/a.txt", f"{root}/new/deep/b.txt")
    os.unlink(f"{root}/new/deep/b.txt")
    os.symlink(outside, f"{root}/link")
    time.sleep(0.1)
    with open(f"{outside}/host.txt", "w") as f:
        f.write("outside")
    time.sleep(0.5)


def folders() -> tuple[str, str]:
    return tempfile.mkdtemp(), tempfile.mkdtemp()


def with_watchfiles() -> list[Any]:
    watchfiles = importlib.import_module("watchfiles")
    root, outside = folders()
    stop = threading.Event()
    changes_seen: list[Any] = []
    worker = threading.Thread(target=scenario, args=(root, outside))
    worker.start()

    def stopper() -> None:
        worker.join()
        time.sleep(0.3)
        stop.set()

    threading.Thread(target=stopper).start()
    for changes in watchfiles.watch(root, stop_event=stop, debounce=50, step=10, raise_interrupt=False):
        changes_seen.extend(sorted((change.name, path.replace(root, "")) for change, path in changes))
    return changes_seen


def with_inotify_simple() -> list[Any]:
    module = importlib.import_module("inotify_simple")
    flags = module.flags
    root, outside = folders()
    inotify = module.INotify()
    mask = flags.CREATE | flags.MODIFY | flags.DELETE | flags.MOVED_FROM | flags.MOVED_TO | flags.ONLYDIR
    paths = {inotify.add_watch(root, mask): root}
    worker = threading.Thread(target=scenario, args=(root, outside))
    worker.start()
    seen: list[Any] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for event in inotify.read(timeout=100):
            path = os.path.join(paths[event.wd], event.name)
            seen.append(([f.name for f in flags.from_mask(event.mask)], path.replace(root, ""), event.cookie))
            if event.mask & flags.ISDIR and event.mask & flags.CREATE:
                paths[inotify.add_watch(path, mask)] = path  # a folder made after the watch began
    worker.join()
    return seen


async def with_asyncinotify() -> list[Any]:
    module = importlib.import_module("asyncinotify")
    mask_type = module.Mask
    root, outside = folders()
    seen: list[Any] = []
    mask = (
        mask_type.CREATE
        | mask_type.MODIFY
        | mask_type.DELETE
        | mask_type.MOVED_FROM
        | mask_type.MOVED_TO
        | mask_type.ONLYDIR
    )
    with module.Inotify() as inotify:
        inotify.add_watch(root, mask)
        worker = threading.Thread(target=scenario, args=(root, outside))
        worker.start()

        async def read() -> None:
            async for event in inotify:
                seen.append((str(event.mask), str(event.path).replace(root, ""), event.cookie))
                if mask_type.ISDIR in event.mask and mask_type.CREATE in event.mask:
                    inotify.add_watch(event.path, mask)

        try:
            await asyncio.wait_for(read(), 3)
        except TimeoutError:
            pass
        worker.join()
    return seen


def import_ms(module: str, where: str) -> float:
    """The best of five imports of `module` in a new interpreter, in milliseconds."""
    probe = f"import sys, time; sys.path.insert(0, {where!r}); t = time.perf_counter(); import {module}; "
    probe += "print(time.perf_counter() - t)"
    return 1000 * min(float(subprocess.check_output([sys.executable, "-c", probe], text=True)) for _ in range(5))


def main() -> None:
    where = sys.argv[1]
    sys.path.insert(0, where)
    for name, events in (
        ("watchfiles", with_watchfiles()),
        ("inotify_simple", with_inotify_simple()),
        ("asyncinotify", asyncio.run(with_asyncinotify())),
    ):
        print(f"== {name}")
        for event in events:
            print("  ", event)
    for module in ("watchfiles", "inotify_simple", "asyncinotify"):
        print(f"import {module}: {import_ms(module, where):.1f} ms (best of 5)")


if __name__ == "__main__":
    main()
