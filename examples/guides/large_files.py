"""Files and artifacts: move a large file in and out in constant memory, with progress."""

import hashlib
import os
import tempfile
from pathlib import Path

from crownest import CrowNest

SIZE = 32 * 1024 * 1024  # 32 MiB


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


with tempfile.TemporaryDirectory() as folder, CrowNest() as client:
    local = Path(folder) / "data.bin"
    local.write_bytes(os.urandom(SIZE))
    reported: list[int] = []

    with client.sandboxes.create(template="base") as sandbox:
        # A path is streamed in chunks (and re-read if the call is retried).
        info = sandbox.files.write("data.bin", local, progress=lambda done, total: reported.append(done))
        print("uploaded", info.size_bytes, "bytes; progress reached", reported[-1])

        # Read it back in chunks without holding it in memory.
        digest = hashlib.sha256()
        with sandbox.files.stream("data.bin") as chunks:
            for chunk in chunks:
                digest.update(chunk)
        print("streamed back intact:", digest.hexdigest() == sha256(local.read_bytes()))

        # An artifact outlives the sandbox; download_to writes it to a local file.
        artifact = sandbox.artifacts.create(path="data.bin")

    copy = Path(folder) / "copy.bin"
    client.artifacts.download_to(artifact.id, copy)
    print("artifact after the sandbox ended, intact:", sha256(copy.read_bytes()) == sha256(local.read_bytes()))
    client.artifacts.delete(artifact.id)
