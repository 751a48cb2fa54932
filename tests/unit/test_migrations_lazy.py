"""Flask-Migrate (and Alembic) are imported only where migrations are used (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("APP_ENV", "DATABASE_URL", "REDIS_URL")}
    env.update(APP_ENV="development", DATABASE_URL=f"sqlite:///{tmp_path / 'lazy.db'}", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_web_process_does_not_import_alembic(tmp_path):
    report = _run(
        "import json, sys\n"
        "from app import create_app\n"
        "app = create_app()\n"
        "print(json.dumps({'alembic': 'alembic' in sys.modules, 'migrate': 'migrate' in app.extensions,"
        " 'db_command': 'db' in app.cli.commands}))",
        tmp_path,
    )
    assert report == {"alembic": False, "migrate": False, "db_command": True}


def test_the_db_command_binds_flask_migrate_when_used(tmp_path):
    report = _run(
        "import json, sys\n"
        "from app import create_app\n"
        "from click.testing import CliRunner\n"
        "app = create_app()\n"
        "result = app.test_cli_runner().invoke(args=['db', 'upgrade'])\n"
        "assert result.exit_code == 0, result.output\n"
        "import sqlite3\n"
        "version = sqlite3.connect('lazy.db').execute('select version_num from alembic_version').fetchone()[0]\n"
        "print(json.dumps({'alembic': 'alembic' in sys.modules, 'migrate': 'migrate' in app.extensions,"
        " 'version': version}))",
        tmp_path,
    )
    assert report["alembic"] and report["migrate"]
    heads = sorted(path.name.split("_", 1)[0] for path in (ROOT / "migrations" / "versions").glob("[0-9]*.py"))
    assert report["version"] == heads[-1]


def test_the_web_process_builds_its_app_without_collections_then_freezes_it(tmp_path):
    """wsgi.py: no garbage collection while start-up makes objects that live as long as the
    process (each full pass over them cost ~100 ms of start-up and, later, of a request's
    latency); then they are frozen out of the collector's sight and collection is back on."""
    report = _run(
        "import gc, json\n"
        "collections = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and collections.append(info['generation']))\n"
        "import wsgi\n"
        "print(json.dumps({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count(),"
        " 'full_collections': collections.count(2)}))",
        tmp_path,
    )
    assert report["enabled"] and report["full_collections"] == 0
    assert report["frozen"] > 50_000
