"""E2B's filesystem tests (packages/python-sdk/tests/sync/sandbox_sync/files/), on crownest.

E2B's `files.remove` is `files.delete`; `rename` is `move`; `make_dir` is `mkdir`; `get_info` is
`info`; `read(path)` (text) is `read_text`, `read(format="bytes")` is `read`, `read(format="stream")`
is `stream`; `exists(path)` is `info(path)` not raising NotFoundError; E2B's `FileType.DIR` is
`"directory"`; `size`/`modified_time` are `size_bytes`/`modified_at`. Relative paths are relative to
/home/user in both.
"""

from __future__ import annotations

import io
import uuid

import pytest

from crownest import NotFoundError, SandboxHandle


def exists(sandbox: SandboxHandle, path: str) -> bool:
    """E2B's `files.exists`: crownest has no such call; `info` raises NotFoundError instead."""
    try:
        sandbox.files.info(path)
    except NotFoundError:
        return False
    return True


def test_write_text_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_write.py::test_write_text_file"""
    info = sandbox.files.write("test_write.txt", "This is a test file.")
    assert (info.path, info.type_) == ("/home/user/test_write.txt", "file")
    assert exists(sandbox, "test_write.txt")
    assert sandbox.files.read_text("test_write.txt") == "This is a test file."


def test_write_binary_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_write.py::test_write_binary_file"""
    text = "This is a test binary file."
    info = sandbox.files.write("test_write.bin", io.BytesIO(text.encode()))
    assert info.path == "/home/user/test_write.bin"
    assert sandbox.files.read_text("test_write.bin") == text


def test_overwrite_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_write.py::test_overwrite_file"""
    sandbox.files.write("test_overwrite.txt", "Initial content.")
    sandbox.files.write("test_overwrite.txt", "New content.")
    assert sandbox.files.read_text("test_overwrite.txt") == "New content."


def test_write_to_non_existing_directory(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_write.py::test_write_to_non_existing_directory"""
    sandbox.files.write("non_existing_dir/test_write.txt", "This should succeed too.")
    assert sandbox.files.read_text("non_existing_dir/test_write.txt") == "This should succeed too."


def test_write_io_with_octet_stream(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_write.py::test_write_io_with_octet_stream

    crownest always uploads a raw octet-stream body, streamed from the file object."""
    text = "Streamed octet-stream upload. " * 10_000
    info = sandbox.files.write("test_write_octet_io.bin", io.BytesIO(text.encode()))
    assert info.path == "/home/user/test_write_octet_io.bin"
    assert sandbox.files.read_text("test_write_octet_io.bin") == text


def test_read_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_read.py::test_read_file"""
    sandbox.files.write("test_read.txt", "Hello, world!")
    assert sandbox.files.read_text("test_read.txt") == "Hello, world!"


def test_read_non_existing_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_read.py::test_read_non_existing_file"""
    with pytest.raises(NotFoundError) as raised:
        sandbox.files.read_text("non_existing_file.txt")
    assert raised.value.code == "file_not_found"


def test_read_empty_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_read.py::test_read_empty_file"""
    sandbox.commands.run("touch empty_file.txt")
    assert sandbox.files.read_text("empty_file.txt") == ""


def test_read_file_as_stream(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_read.py::test_read_file_as_stream
    and ::test_read_file_as_stream_context_manager (crownest's stream is always a context manager)"""
    content = "Streamed read content. " * 10_000
    sandbox.files.write("test_read_stream.txt", content)
    with sandbox.files.stream("test_read_stream.txt") as stream:
        assert b"".join(stream).decode() == content


def test_read_non_existing_file_as_stream(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_read.py::test_read_non_existing_file_as_stream"""
    with pytest.raises(NotFoundError), sandbox.files.stream("non_existing_file.txt") as stream:
        b"".join(stream)


def test_read_file_as_stream_partial_then_close(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_read.py::test_read_file_as_stream_partial_then_close"""
    sandbox.files.write("test_read_stream_partial.txt", "Streamed read content. " * 10_000)
    stream = sandbox.files.stream("test_read_stream_partial.txt")
    assert len(next(iter(stream))) > 0
    stream.close()
    assert sandbox.files.read_text("test_read_stream_partial.txt").startswith("Streamed")  # the client still works


def test_exists(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_exists.py::test_exists"""
    sandbox.files.write("test_exists.txt", "test")
    assert exists(sandbox, "test_exists.txt")


def test_remove_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_remove.py::test_remove_file"""
    sandbox.files.write("test_remove.txt", "This file will be removed.")
    sandbox.files.delete("test_remove.txt")
    assert not exists(sandbox, "test_remove.txt")


def test_remove_non_existing_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_remove.py::test_remove_non_existing_file

    E2B's remove succeeds silently; crownest's delete raises NotFoundError (`file_not_found`)."""
    with pytest.raises(NotFoundError):
        sandbox.files.delete("non_existing_file.txt")


def test_rename_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_rename.py::test_rename_file"""
    sandbox.files.write("test_rename_old.txt", "This file will be renamed.")
    info = sandbox.files.move("test_rename_old.txt", "test_rename_new.txt")
    assert info.path == "/home/user/test_rename_new.txt"
    assert not exists(sandbox, "test_rename_old.txt")
    assert sandbox.files.read_text("test_rename_new.txt") == "This file will be renamed."


def test_rename_non_existing_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_rename.py::test_rename_non_existing_file"""
    with pytest.raises(NotFoundError):
        sandbox.files.move("non_existing_file.txt", "new_non_existing_file.txt")


def test_make_directory(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_make_dir.py::test_make_directory"""
    name = f"test_directory_{uuid.uuid4()}"
    sandbox.files.mkdir(name)
    assert sandbox.files.info(name).type_ == "directory"


def test_make_directory_already_exists(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_make_dir.py::test_make_directory_already_exists

    E2B's make_dir returns False the second time; crownest's mkdir is idempotent (like `mkdir -p`)
    and returns the directory both times."""
    name = f"test_directory_{uuid.uuid4()}"
    first = sandbox.files.mkdir(name)
    second = sandbox.files.mkdir(name)
    assert first.path == second.path == f"/home/user/{name}"
    assert second.type_ == "directory"


def test_make_nested_directory(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_make_dir.py::test_make_nested_directory"""
    nested = f"test_directory_{uuid.uuid4()}/nested_directory"
    sandbox.files.mkdir(nested)
    assert exists(sandbox, nested)


def test_list_directory(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_files_list.py::test_list_directory

    Its depth-1 cases: crownest lists one level (no `depth`)."""
    parent = f"test_directory_{uuid.uuid4()}"
    for sub in ("subdir1/subdir1_1", "subdir1/subdir1_2", "subdir2/subdir2_1", "subdir2/subdir2_2"):
        sandbox.files.mkdir(f"{parent}/{sub}")
    sandbox.files.write(f"{parent}/file1.txt", "Hello, world!")
    entries = sorted(sandbox.files.list(parent), key=lambda e: e.name)
    assert [(e.name, e.path, e.type_) for e in entries] == [
        ("file1.txt", f"/home/user/{parent}/file1.txt", "file"),
        ("subdir1", f"/home/user/{parent}/subdir1", "directory"),
        ("subdir2", f"/home/user/{parent}/subdir2", "directory"),
    ]
    sandbox.files.delete(parent, recursive=True)
    assert not exists(sandbox, parent)


def test_file_entry_details(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_files_list.py::test_file_entry_details

    Without E2B's `permissions` string, `owner`, `group` and `symlink_target`, which crownest lacks."""
    sandbox.files.mkdir("test-file-entry")
    sandbox.files.write("test-file-entry/test.txt", "Hello, World!")
    [entry] = sandbox.files.list("test-file-entry")
    assert (entry.name, entry.path, entry.type_) == ("test.txt", "/home/user/test-file-entry/test.txt", "file")
    assert (entry.mode, entry.size_bytes) == (0o644, len("Hello, World!"))
    assert entry.modified_at.tzinfo is not None


def test_directory_entry_details(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_files_list.py::test_directory_entry_details"""
    sandbox.files.mkdir("test-entry-info/subdir")
    [entry] = sandbox.files.list("test-entry-info")
    assert (entry.name, entry.path, entry.type_) == ("subdir", "/home/user/test-entry-info/subdir", "directory")
    assert entry.mode == 0o755
    assert entry.modified_at.tzinfo is not None


def test_mixed_entries(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_files_list.py::test_mixed_entries"""
    sandbox.files.mkdir("test-mixed-entries/subdir")
    sandbox.files.write("test-mixed-entries/test.txt", "Hello, World!")
    entries = {e.name: e for e in sandbox.files.list("test-mixed-entries")}
    assert set(entries) == {"subdir", "test.txt"}
    assert (entries["subdir"].type_, entries["subdir"].mode) == ("directory", 0o755)
    assert (entries["test.txt"].type_, entries["test.txt"].mode, entries["test.txt"].size_bytes) == ("file", 0o644, 13)


def test_get_info_of_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_info.py::test_get_info_of_file"""
    sandbox.files.write("test_file.txt", "test")
    info = sandbox.files.info("test_file.txt")
    pwd = sandbox.commands.run("pwd").stdout.strip()
    assert (info.name, info.type_, info.path) == ("test_file.txt", "file", f"{pwd}/test_file.txt")
    assert (info.size_bytes, info.mode) == (4, 0o644)
    assert info.modified_at.tzinfo is not None


def test_get_info_of_nonexistent_file(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_info.py::test_get_info_of_nonexistent_file"""
    with pytest.raises(NotFoundError):
        sandbox.files.info("test_does_not_exist.txt")


def test_get_info_of_directory(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_info.py::test_get_info_of_directory"""
    sandbox.files.mkdir("test_dir")
    info = sandbox.files.info("test_dir")
    pwd = sandbox.commands.run("pwd").stdout.strip()
    assert (info.name, info.type_, info.path) == ("test_dir", "directory", f"{pwd}/test_dir")
    assert info.size_bytes > 0
    assert info.mode == 0o755
    assert info.modified_at.tzinfo is not None


def test_get_info_of_nonexistent_directory(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_info.py::test_get_info_of_nonexistent_directory"""
    with pytest.raises(NotFoundError):
        sandbox.files.info("test_does_not_exist_dir")


def test_file_symlink(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/files/test_info.py::test_file_symlink

    E2B follows the link (type FILE, `symlink_target`); crownest describes the link itself (type
    `symlink`) and has no `symlink_target`; reading it reads the target."""
    sandbox.files.write("test-simlink-entry/test.txt", "Hello, World!")
    sandbox.commands.run("ln -s test.txt symlink_to_test.txt", cwd="/home/user/test-simlink-entry")
    info = sandbox.files.info("test-simlink-entry/symlink_to_test.txt")
    assert (info.type_, info.path) == ("symlink", "/home/user/test-simlink-entry/symlink_to_test.txt")
    assert sandbox.files.read_text("test-simlink-entry/symlink_to_test.txt") == "Hello, World!"


def test_read_empty_file_in_all_formats(sandbox: SandboxHandle) -> None:
    """packages/js-sdk/tests/sandbox/files/read.test.ts::'read empty file in all formats' (text, bytes, stream)"""
    sandbox.commands.run("touch empty-file-formats.txt")
    assert sandbox.files.read_text("empty-file-formats.txt") == ""
    assert sandbox.files.read("empty-file-formats.txt") == b""
    with sandbox.files.stream("empty-file-formats.txt") as stream:
        assert b"".join(stream) == b""
