"""POST /api/v0/fs/read, /fs/write and /fs/edit against real files, through the real client."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import httpx2
import pytest

from workdock.agentapi import AgentClient, AgentError, FileEdit

pytestmark = pytest.mark.anyio

KIB = 1024


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- read ----------------------------------------------------------------------------------------


async def test_read_relative_and_absolute_paths(client: AgentClient, root: Path, tmp_path: Path) -> None:
    (root / "src").mkdir()
    (root / "src" / "a.txt").write_text("one\ntwo\nthree\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("elsewhere")

    result = await client.read_file("src/a.txt")
    assert result.content == "one\ntwo\nthree\n"
    assert (result.total_lines, result.lines, result.offset) == (3, 3, 0)
    assert result.truncated is False and result.next_offset is None
    assert result.invalid_utf8 is False
    assert result.path == str(root / "src" / "a.txt")
    assert result.size == 14

    absolute = await client.read_file(str(outside))
    assert absolute.content == "elsewhere"
    assert absolute.total_lines == 1  # a last line without a newline still counts


async def test_read_offset_and_limit_in_lines(client: AgentClient, root: Path) -> None:
    (root / "n.txt").write_text("".join(f"line {i}\n" for i in range(10)))

    page = await client.read_file("n.txt", offset=3, limit=4)
    assert page.content == "line 3\nline 4\nline 5\nline 6\n"
    assert (page.offset, page.lines, page.next_offset, page.total_lines) == (3, 4, 7, 10)
    assert page.truncated is True

    rest = await client.read_file("n.txt", offset=page.next_offset or 0)
    assert rest.content == "line 7\nline 8\nline 9\n"
    assert rest.truncated is False and rest.next_offset is None

    past_end = await client.read_file("n.txt", offset=50)
    assert past_end.content == "" and past_end.lines == 0 and past_end.total_lines == 10


async def test_read_defaults_to_the_first_2000_lines(client: AgentClient, root: Path) -> None:
    (root / "long.txt").write_text("".join(f"{i}\n" for i in range(2500)))
    result = await client.read_file("long.txt")
    assert result.lines == 2000
    assert result.content.splitlines()[-1] == "1999"
    assert (result.total_lines, result.next_offset, result.truncated) == (2500, 2000, True)


async def test_read_of_a_10_mb_file_is_capped_at_256_kib(client: AgentClient, root: Path) -> None:
    line = "x" * 999 + "\n"
    (root / "big.log").write_text(line * 10_000)  # 10 MB, 10,000 lines of 1,000 bytes

    first = await client.read_file("big.log")
    assert len(first.content.encode()) <= 256 * KIB
    assert first.lines == 256 * KIB // 1000  # whole lines only: 262 of them
    assert first.content == line * first.lines
    assert (first.total_lines, first.truncated, first.next_offset) == (10_000, True, first.lines)
    assert first.size == 10_000_000

    # Reading on from next_offset continues exactly where the cap stopped.
    second = await client.read_file("big.log", offset=first.next_offset or 0, limit=5)
    assert second.offset == 262 and second.lines == 5 and second.content == line * 5


async def test_read_of_one_line_longer_than_the_cap_gives_its_head(client: AgentClient, root: Path) -> None:
    (root / "min.js").write_text("é" * (300 * KIB) + "\nnext\n")
    result = await client.read_file("min.js")
    encoded = result.content.encode()
    assert 256 * KIB - 2 <= len(encoded) <= 256 * KIB
    assert set(result.content) == {"é"}  # cut between characters, never inside one
    assert result.truncated is True and result.invalid_utf8 is False
    assert (result.lines, result.next_offset, result.total_lines) == (1, 1, 2)


async def test_read_a_directory_is_a_400(client: AgentClient, root: Path) -> None:
    (root / "pkg").mkdir()
    with pytest.raises(AgentError) as caught:
        await client.read_file("pkg")
    assert caught.value.status == 400
    assert caught.value.message == "is a directory"
    assert str(root / "pkg") in (caught.value.detail or "")


async def test_read_a_missing_file_is_a_404(client: AgentClient, root: Path) -> None:
    with pytest.raises(AgentError) as caught:
        await client.read_file("nope/missing.txt")
    assert caught.value.status == 404
    assert str(root / "nope" / "missing.txt") in (caught.value.detail or "")


async def test_read_a_binary_file_is_a_400(client: AgentClient, root: Path) -> None:
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(AgentError) as caught:
        await client.read_file("image.png")
    assert caught.value.status == 400
    assert caught.value.message == "binary file"


async def test_read_a_fifo_is_refused_instead_of_blocking(client: AgentClient, root: Path) -> None:
    os.mkfifo(root / "pipe")
    with anyio.fail_after(10):
        with pytest.raises(AgentError) as caught:
            await client.read_file("pipe")
    assert caught.value.status == 400 and caught.value.message == "not a regular file"


async def test_read_invalid_utf8_is_replaced_and_said_so(client: AgentClient, root: Path) -> None:
    (root / "latin1.txt").write_bytes("café\nnaïve\n".encode("latin-1"))
    result = await client.read_file("latin1.txt")
    assert result.content == "caf\ufffd\nna\ufffdve\n"
    assert result.invalid_utf8 is True
    assert result.total_lines == 2


async def test_read_keeps_a_real_replacement_character_apart_from_invalid_bytes(
    client: AgentClient, root: Path
) -> None:
    (root / "ok.txt").write_text("already \ufffd here\n")
    result = await client.read_file("ok.txt")
    assert result.content == "already \ufffd here\n" and result.invalid_utf8 is False


async def test_read_an_empty_file(client: AgentClient, root: Path) -> None:
    (root / "empty").write_bytes(b"")
    result = await client.read_file("empty")
    assert (result.content, result.total_lines, result.lines, result.truncated) == ("", 0, 0, False)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"path": ""},
        {"path": 42},
        {"path": "a.txt", "offset": -1},
        {"path": "a.txt", "limit": 0},
        {"path": "a.txt", "offset": "3"},
        {"path": "a\u0000b"},
    ],
)
async def test_read_bad_requests_are_400(http: httpx2.AsyncClient, root: Path, body: object) -> None:
    (root / "a.txt").write_text("a\n")
    response = await http.post("/api/v0/fs/read", json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"message", "detail"}


# ---- write ---------------------------------------------------------------------------------------


async def test_write_creates_parents_and_counts_bytes(client: AgentClient, root: Path) -> None:
    result = await client.write_file("deep/er/new.txt", "héllo\n")
    assert result.bytes_written == len("héllo\n".encode()) == 7
    assert result.created is True
    assert result.path == str(root / "deep" / "er" / "new.txt")
    assert (root / "deep" / "er" / "new.txt").read_bytes() == "héllo\n".encode()
    # A new file gets the mode any new file of the user's gets.
    assert stat.S_IMODE((root / "deep" / "er" / "new.txt").stat().st_mode) == 0o666 & ~umask()


async def test_write_replaces_atomically_and_keeps_the_mode(client: AgentClient, root: Path) -> None:
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho old\n")
    script.chmod(0o751)
    before_inode = script.stat().st_ino

    with script.open() as held:  # a reader that opened the file before the write
        result = await client.write_file("run.sh", "#!/bin/sh\necho new\n")
        # A rename, not a truncate-and-write: the open reader still sees the whole old file.
        assert held.read() == "#!/bin/sh\necho old\n"

    assert result.created is False
    assert script.read_text() == "#!/bin/sh\necho new\n"
    assert script.stat().st_ino != before_inode
    assert stat.S_IMODE(script.stat().st_mode) == 0o751
    assert sorted(p.name for p in root.iterdir()) == ["run.sh"]  # no temp file left behind


async def test_write_through_a_symlink_keeps_the_link(client: AgentClient, root: Path) -> None:
    (root / "real.txt").write_text("old")
    (root / "link.txt").symlink_to("real.txt")
    await client.write_file("link.txt", "new")
    assert (root / "link.txt").is_symlink()
    assert (root / "real.txt").read_text() == "new"


async def test_write_to_a_directory_is_a_400(client: AgentClient, root: Path) -> None:
    (root / "dir").mkdir()
    with pytest.raises(AgentError) as caught:
        await client.write_file("dir", "x")
    assert caught.value.status == 400 and caught.value.message == "is a directory"


async def test_write_under_a_file_is_a_400(client: AgentClient, root: Path) -> None:
    (root / "file").write_text("x")
    with pytest.raises(AgentError) as caught:
        await client.write_file("file/child.txt", "x")
    assert caught.value.status == 400
    assert (root / "file").read_text() == "x"


async def test_write_where_permission_is_denied_is_a_403(client: AgentClient, root: Path) -> None:
    if os.geteuid() == 0:
        # root may write into any mode-0555 directory, but not into sysfs
        target = "/sys/workdock-test.txt"
    else:
        locked = root / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = "locked/x.txt"
    try:
        with pytest.raises(AgentError) as caught:
            await client.write_file(target, "x")
        assert caught.value.status == 403
    finally:
        if os.geteuid() != 0:
            (root / "locked").chmod(0o755)


# ---- edit ----------------------------------------------------------------------------------------


async def test_edit_applies_edits_in_order_and_returns_a_diff(client: AgentClient, root: Path) -> None:
    source = root / "app.py"
    source.write_text("def main():\n    print('hi')\n\nmain()\n")
    source.chmod(0o700)
    result = await client.edit_file(
        "app.py",
        [
            FileEdit(old="print('hi')", new="print('hello')"),
            FileEdit(old="print('hello')", new="print('hello, world')"),  # sees the first edit's result
        ],
    )
    assert source.read_text() == "def main():\n    print('hello, world')\n\nmain()\n"
    assert result.replacements == 2
    assert result.diff.startswith("--- a/app.py\n+++ b/app.py\n@@")
    assert "-    print('hi')\n+    print('hello, world')\n" in result.diff
    assert stat.S_IMODE(source.stat().st_mode) == 0o700


async def test_edit_with_no_match_is_a_409_and_changes_nothing(client: AgentClient, root: Path) -> None:
    (root / "a.txt").write_text("alpha\nbeta\n")
    with pytest.raises(AgentError) as caught:
        await client.edit_file("a.txt", [FileEdit(old="gamma", new="delta")])
    assert caught.value.status == 409
    assert caught.value.message == "edit 1 of 1: old text not found"
    assert "0 matches" in (caught.value.detail or "")
    assert (root / "a.txt").read_text() == "alpha\nbeta\n"


async def test_edit_with_two_matches_is_a_409_naming_the_lines(client: AgentClient, root: Path) -> None:
    (root / "a.txt").write_text("x = 1\ny = 2\nx = 1\n")
    with pytest.raises(AgentError) as caught:
        await client.edit_file("a.txt", [FileEdit(old="x = 1", new="x = 3")])
    assert caught.value.status == 409
    assert caught.value.message == "edit 1 of 1: old text matches 2 times"
    assert "at lines 1, 3" in (caught.value.detail or "")
    assert (root / "a.txt").read_text() == "x = 1\ny = 2\nx = 1\n"


async def test_edit_replace_all(client: AgentClient, root: Path) -> None:
    (root / "a.txt").write_text("x = 1\ny = 2\nx = 1\n")
    result = await client.edit_file("a.txt", [FileEdit(old="x = 1", new="x = 3", replace_all=True)])
    assert result.replacements == 2
    assert (root / "a.txt").read_text() == "x = 3\ny = 2\nx = 3\n"


async def test_edit_set_whose_second_edit_fails_leaves_the_file_unchanged(
    client: AgentClient, root: Path
) -> None:
    target = root / "a.txt"
    target.write_text("one\ntwo\nthree\n")
    before = target.stat()
    with pytest.raises(AgentError) as caught:
        await client.edit_file("a.txt", [FileEdit(old="one", new="ONE"), FileEdit(old="four", new="FOUR")])
    assert caught.value.status == 409
    assert caught.value.message.startswith("edit 2 of 2")
    assert target.read_text() == "one\ntwo\nthree\n"
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


async def test_edit_keeps_crlf_line_endings(client: AgentClient, root: Path) -> None:
    (root / "w.txt").write_bytes(b"a\r\nb\r\n")
    await client.edit_file("w.txt", [FileEdit(old="b", new="c")])
    assert (root / "w.txt").read_bytes() == b"a\r\nc\r\n"


async def test_edit_a_missing_file_is_a_404(client: AgentClient) -> None:
    with pytest.raises(AgentError) as caught:
        await client.edit_file("missing.txt", [FileEdit(old="a", new="b")])
    assert caught.value.status == 404


async def test_edit_refuses_files_it_would_corrupt(client: AgentClient, root: Path) -> None:
    (root / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    (root / "blob.bin").write_bytes(b"a\x00b")
    for name, message in (("latin1.txt", "not UTF-8 text"), ("blob.bin", "binary file")):
        with pytest.raises(AgentError) as caught:
            await client.edit_file(name, [FileEdit(old="a", new="b")])
        assert (caught.value.status, caught.value.message) == (400, message)
    assert (root / "latin1.txt").read_bytes() == "café\n".encode("latin-1")


@pytest.mark.parametrize(
    "edits",
    [
        [],
        [{"old": "", "new": "x"}],
        [{"old": "a", "new": "a"}],
        [{"old": "a"}],
        [{"old": "a", "new": "b", "replace_all": "yes"}],
    ],
)
async def test_edit_bad_requests_are_400(http: httpx2.AsyncClient, root: Path, edits: object) -> None:
    (root / "a.txt").write_text("a\n")
    response = await http.post("/api/v0/fs/edit", json={"path": "a.txt", "edits": edits})
    assert response.status_code == 400, response.text
    assert (root / "a.txt").read_text() == "a\n"


async def test_concurrent_edits_of_one_file_all_land(client: AgentClient, root: Path) -> None:
    target = root / "many.txt"
    target.write_text("".join(f"slot {i}\n" for i in range(20)))
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(client.edit_file, "many.txt", [FileEdit(old=f"slot {i}\n", new=f"done {i}\n")])
    assert target.read_text() == "".join(f"done {i}\n" for i in range(20))
