"""Fingerprinted static assets: `asset_url("css/hearth.css")` → `/static/css/hearth.<hash>.css`.

The manifest hashes every file under `static/` once, when the app is built (a few milliseconds;
no build step). The static view serves a fingerprinted name as the file it names, with
`Cache-Control: public, max-age=31536000, immutable`: a changed file gets a new name, so a
cached copy never needs revalidating. A fingerprint that is not the file's current hash is a
404. Plain names (`/static/css/hearth.css`) keep working with a short max-age.

In development the manifest re-checks a file's size and mtime when it is asked for, so an
edited stylesheet gets its new name on the next page load without a restart.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, current_app, send_from_directory, url_for

FINGERPRINT_LENGTH = 12
IMMUTABLE_MAX_AGE = 31536000  # one year: the conventional ceiling for "never changes"
PLAIN_MAX_AGE = 300
MANIFEST_KEY = "hearth.assets"


def fingerprint(file: Path) -> str:
    """The first FINGERPRINT_LENGTH hex digits of the file's BLAKE2b hash."""
    with file.open("rb") as handle:
        return hashlib.file_digest(handle, "blake2b").hexdigest()[:FINGERPRINT_LENGTH]


def fingerprinted_name(path: str, digest: str) -> str:
    """`css/hearth.css` → `css/hearth.<digest>.css` (the digest goes before the last suffix)."""
    directory, slash, name = path.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    name = f"{stem}.{digest}.{suffix}" if dot and stem else f"{name}.{digest}"
    return f"{directory}{slash}{name}"


@dataclass(frozen=True)
class _Entry:
    name: str  # the fingerprinted path, relative to the static folder
    signature: tuple[int, int]  # (mtime_ns, size) when it was hashed


class AssetManifest:
    """Every file under `root` with its fingerprinted name, and the way back."""

    def __init__(self, root: Path, *, watch: bool = False):
        self.root = root
        self.watch = watch
        self._entries: dict[str, _Entry] = {}
        self._paths: dict[str, str] = {}  # fingerprinted name → real path
        self._lock = threading.Lock()
        if root.is_dir():
            for file in sorted(root.rglob("*")):
                if file.is_file():
                    self._hash(file.relative_to(root).as_posix())

    def __len__(self) -> int:
        return len(self._entries)

    def _signature(self, path: str) -> tuple[int, int] | None:
        try:
            stat = (self.root / path).stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _hash(self, path: str) -> _Entry | None:
        signature = self._signature(path)
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._paths.pop(old.name, None)
            if signature is None:
                return None
            entry = _Entry(fingerprinted_name(path, fingerprint(self.root / path)), signature)
            self._entries[path] = entry
            self._paths[entry.name] = path
            return entry

    def _current(self, path: str) -> _Entry | None:
        entry = self._entries.get(path)
        if self.watch and (entry is None or entry.signature != self._signature(path)):
            entry = self._hash(path)
        return entry

    def name_for(self, path: str) -> str:
        """The fingerprinted name of `path` (relative to the static folder, no leading slash)."""
        entry = self._current(path)
        if entry is None:
            raise LookupError(f"no static file {path!r} under {self.root}")
        return entry.name

    def resolve(self, name: str) -> str | None:
        """The real path a fingerprinted name stands for, if it is the file's current name."""
        path = self._paths.get(name)
        if path is not None and self.watch:
            entry = self._current(path)
            return path if entry is not None and entry.name == name else None
        return path


def asset_url(path: str) -> str:
    """URL of a static file under its fingerprinted name: the one way templates link assets."""
    return url_for("static", filename=current_app.extensions[MANIFEST_KEY].name_for(path))


def serve_static(filename: str) -> Response:
    """The `static` endpoint: fingerprinted names are immutable, plain names cache briefly."""
    folder = current_app.static_folder
    real = current_app.extensions[MANIFEST_KEY].resolve(filename)
    if real is None:
        return send_from_directory(folder, filename, max_age=PLAIN_MAX_AGE)
    response = send_from_directory(folder, real, max_age=IMMUTABLE_MAX_AGE)
    response.cache_control.immutable = True
    return response


def init_assets(app: Flask, *, watch: bool) -> None:
    """Hash `static/`, serve it through `serve_static` and give templates `asset_url`."""
    app.extensions[MANIFEST_KEY] = AssetManifest(Path(app.static_folder), watch=watch)
    app.view_functions["static"] = serve_static
    app.jinja_env.globals["asset_url"] = asset_url
