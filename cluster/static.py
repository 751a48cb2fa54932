"""Static files laid out for nginx: every file of `static/` under its plain name and under the
fingerprinted name Hearth's pages link (`css/hearth.css` → `css/hearth.<hash>.css`).

Hearth's fingerprinted names exist only in its in-memory manifest (app/core/assets.py), so a
web server reading `static/` directly cannot find them. Collecting writes them to disk, each a
copy whose name is the hash of the bytes it holds, so nginx can serve `/static/…` itself with
the one-year immutable Cache-Control and a name is never paired with other content. Run it at
every release into the same directory without emptying it first: names from the previous release
stay, so a page an older instance rendered during a rolling restart still finds its files.

    python -m cluster.static /srv/hearth/static     # default source: the repository's static/
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from app.core.assets import fingerprint, fingerprinted_name

REPOSITORY_STATIC = Path(__file__).resolve().parent.parent / "static"


def _install(source: Path, target: Path) -> None:
    """Copy `source` to `target` atomically (a reader never sees half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".collect-")
    os.close(fd)
    try:
        shutil.copyfile(source, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def collect_static(destination: Path, source: Path = REPOSITORY_STATIC) -> int:
    """Write every file of `source` to `destination` under its plain and fingerprinted names;
    returns the number of source files. Fingerprinted copies already there are kept."""
    count = 0
    for file in sorted(source.rglob("*")):
        if not file.is_file():
            continue
        relative = file.relative_to(source).as_posix()
        plain = destination / relative
        _install(file, plain)
        # Hashed from the copy just written, so the name always matches the bytes nginx serves.
        hashed = destination / fingerprinted_name(relative, fingerprint(plain))
        if not hashed.exists():
            _install(plain, hashed)
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("destination", type=Path)
    parser.add_argument("--source", type=Path, default=REPOSITORY_STATIC)
    args = parser.parse_args(argv)
    count = collect_static(args.destination, args.source)
    sys.stdout.write(f"{count} static files collected into {args.destination} (plain and fingerprinted names)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
