"""The README's operator recipes, run as written."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from storage.db import open_database

README = Path(__file__).resolve().parents[1] / "README.md"


def backup_recipe() -> str:
    text = README.read_text()
    [command] = [c for c in re.findall(r"```sh\n(.*?)```", text, re.S) if ".backup" in c]
    return command.strip()


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 shell")
def test_the_backup_recipe_writes_an_owner_only_copy(tmp_path: Path) -> None:
    database = tmp_path / "var" / "lib" / "sigfox-bot" / "sigfox-bot.db"
    open_database(database).close()
    command = backup_recipe().replace("/var/lib/sigfox-bot/", f"{database.parent}/")
    # Run from a shell whose umask would make an ordinary copy world-readable.
    subprocess.run(["sh", "-c", f"umask 022 && {command}"], cwd=tmp_path, check=True)
    copy = tmp_path / "backup.db"
    assert copy.exists()
    assert stat.S_IMODE(copy.stat().st_mode) & 0o077 == 0
