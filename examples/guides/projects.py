"""Whole projects in one request: upload a folder, run it, download what it made."""

import filecmp
import tempfile
from pathlib import Path

from crownest import CrowNest

with tempfile.TemporaryDirectory() as folder, CrowNest() as client:
    project = Path(folder) / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "main.py").write_text(
        "import os\nos.makedirs('out', exist_ok=True)\n"
        "for i in range(3):\n    open(f'out/result-{i}.txt', 'w').write(str(i * i))\n"
    )
    for i in range(500):
        (project / "app" / f"module_{i}.py").write_text(f"VALUE = {i}\n")

    with client.sandboxes.create(template="python") as sandbox:
        # One request, however many files: a tar stream made as it is sent.
        sent: list[int] = []
        written = sandbox.files.upload_dir(project, "project", progress=lambda done, total: sent.append(done))
        print("uploaded", written.files, "files into", written.path)

        # A few small files at once, from memory.
        sandbox.files.write_many({"project/app/config.toml": "debug = false\n", "project/README": "demo\n"})

        sandbox.commands.run("cd project && python3 app/main.py", check=True)

        # One request back: streamed to disk, then unpacked with the same safety rules.
        count = sandbox.files.download_dir("project", Path(folder) / "back")
        print("downloaded", count, "entries")

    back = Path(folder) / "back"
    print("results:", sorted(p.read_text() for p in (back / "out").iterdir()))
    print(
        "sources intact:", filecmp.cmp(project / "app" / "module_42.py", back / "app" / "module_42.py", shallow=False)
    )
