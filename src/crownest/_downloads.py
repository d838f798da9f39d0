"""Downloads into a local file, in constant memory, resumed with `Range` after a broken transfer.

The content goes to `<to>.part` and is renamed to `to` once complete, so a
failed download leaves no file. After a break the next attempt asks for the
rest of the same content (`RangeResume`); a server that answers 200 instead
of a matching 206 sends it all again, and the file starts over.
"""

from __future__ import annotations

import contextlib
import os

from ._streams import RangeResume
from ._uploads import Progress


class Download:
    """One download: `resume` drives the client's stream loop, `write` takes each chunk."""

    def __init__(self, to: str | os.PathLike[str], progress: Progress | None) -> None:
        self._to = to
        self._part = f"{os.fspath(to)}.part"
        self._file = open(self._part, "wb")  # noqa: SIM115 (closed by finish() or abandon())
        self._progress = progress
        self.resume = RangeResume(restart=True)

    def write(self, chunk: bytes) -> None:
        position = self.resume.received  # 0 again when the server started over
        self.resume.take(chunk)
        if self._file.tell() != position:
            self._file.seek(position)
            self._file.truncate()
        self._file.write(chunk)
        if self._progress is not None:
            self._progress(self.resume.received, self.resume.total)

    def finish(self) -> int:
        """Put the complete file in place; the number of bytes written."""
        self._file.truncate(self.resume.received)
        self._file.close()
        os.replace(self._part, self._to)
        return self.resume.received

    def abandon(self) -> None:
        """Remove what was written (the call failed)."""
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._part)
