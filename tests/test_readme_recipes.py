"""The README's operator recipes, run as written."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from storage.db import open_database

README = Path(__file__).resolve().parents[1] / "README.md"
SIGFOX_BOT = Path(sys.executable).parent / "sigfox-bot"  # the console script pip installed


def backup_recipe() -> str:
    text = README.read_text()
    [command] = [c for c in re.findall(r"```sh\n(.*?)```", text, re.S) if " backup " in c]
    return command.strip()


def test_the_backup_recipe_writes_an_owner_only_complete_copy(tmp_path: Path) -> None:
    database = tmp_path / "var" / "lib" / "sigfox-bot" / "sigfox-bot.db"
    live = open_database(database)  # the bot is running: its connection stays open
    live.db["kv"].insert({"key": "marker", "value": "kept"}, replace=True)
    command = backup_recipe().replace("/var/lib/sigfox-bot/", f"{database.parent}/")
    command = command.replace("sigfox-bot backup", f"{SIGFOX_BOT} backup", 1)
    # Run from a shell whose umask would make an ordinary copy world-readable.
    done = subprocess.run(["sh", "-c", f"umask 022 && {command}"], cwd=tmp_path, check=True,
                          capture_output=True, text=True)
    live.close()
    copy = tmp_path / "backup.db"
    assert "readable by you only" in done.stdout
    assert stat.S_IMODE(copy.stat().st_mode) & 0o077 == 0
    assert open_database(copy).query("SELECT value FROM kv WHERE key = 'marker'") == [
        {"value": "kept"}]


def test_backup_refuses_to_overwrite_or_to_copy_nothing(tmp_path: Path) -> None:
    database = tmp_path / "sigfox-bot.db"
    open_database(database).close()
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"an older backup")
    runner = CliRunner()
    refused = runner.invoke(main, ["backup", "--db", str(database), str(existing)])
    assert refused.exit_code == 1 and "exists already" in refused.output
    assert existing.read_bytes() == b"an older backup"
    missing = runner.invoke(main, ["backup", "--db", str(tmp_path / "nope.db"),
                                   str(tmp_path / "copy.db")])
    assert missing.exit_code == 1 and "--db FILE" in missing.output
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "nope.db").exists()
