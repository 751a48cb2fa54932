"""Parse untrusted files in a child process whose memory and CPU are bounded per job.

A small PNG can declare 12000×12000 pixels and decode to gigabytes (a decompression bomb);
a hostile PDF can do the same with compressed streams. Processing therefore never decodes
in the worker itself: `inspect_image` and `count_pdf_pages` run this file as a script in a
fresh interpreter (`python -I <this file>`), which first lowers its own limits
(`RLIMIT_AS` = `UPLOAD_PROCESSING_MEMORY_MB`, `RLIMIT_CPU`, no core files), then:

- reads the image header and refuses more than `UPLOAD_IMAGE_MAX_PIXELS` before decoding
  anything (and sets Pillow's `Image.MAX_IMAGE_PIXELS` to that limit: a process-wide
  setting, safe here because the process does nothing else);
- decodes, re-encodes without EXIF and writes the thumbnail into a temporary directory.

The worker's own memory never holds a decoded image, a bomb that gets past the header
check dies alone with a MemoryError, and one job cannot starve the other threads of the
`uploads` consumer. Refusals (too many pixels, out of memory, out of CPU time) are final:
the caller rejects the upload with the reason. Anything else is an ordinary failure, retried
by the queue.

This module imports nothing from `app`: the child loads only the standard library, Pillow and pypdf.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

MEMORY_EXIT = 3  # the child ran out of its address space
FAILED_EXIT = 4  # any other error; stderr carries the message
IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
THUMBNAIL_SIZE = 256
MB = 1024 * 1024


class Refused(Exception):
    """The file cannot be processed within the limits: reject the upload with this reason."""


class ProcessingError(Exception):
    """Processing failed for another reason (retried by the queue, then `failed`). Its message
    is written for people ("The file could not be read as an image."): the job records it as
    the error shown everywhere; the technical cause (the child's exception, which names
    temporary paths and library internals) is chained as `__cause__`, so it is in the job's
    traceback only."""

    @property
    def public_message(self) -> str:
        return str(self)


class ChildFailed(Exception):
    """What the processing child reported on stderr: the cause of a ProcessingError."""


def N_(message: str) -> str:  # noqa: N802  (the marker `make messages` extracts)
    """`message` as it is, marked for translation. The sentences here are stored in English
    (`jobs.error`, `uploads.error`) and translated where they are shown (app.i18n
    `translate_stored`; app.uploads.service passes the templates below, STORED_MESSAGES, to
    app.i18n's own `N_`, as this module imports nothing of the app)."""
    return message


# The sentence people see when the child fails on the file itself, by operation.
UNREADABLE = {
    "image": N_("The file could not be read as an image."),
    "pdf": N_("The file could not be read as a PDF."),
}
TOOK_TOO_LONG = N_("Processing took longer than %(seconds)s seconds.")
NEEDS_MEMORY = N_("The file needs more than %(size)s MB of memory to process.")
NEEDS_TIME = N_("The file needs more than %(seconds)s seconds of processing time.")
STOPPED = N_("Processing stopped unexpectedly.")
TOO_MANY_PIXELS = N_(
    "The image is %(width)s×%(height)s pixels (%(megapixels)s megapixels); the limit is %(limit)s megapixels."
)
MORE_THAN_LIMIT = N_("The image has more than %(limit)s megapixels, the limit.")
STORED_MESSAGES = (TOOK_TOO_LONG, NEEDS_MEMORY, NEEDS_TIME, TOO_MANY_PIXELS, MORE_THAN_LIMIT)


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    memory_bytes: int
    cpu_seconds: int = 60
    wall_seconds: float = 120.0


@dataclass(frozen=True)
class ImageResult:
    width: int
    height: int
    clean: bytes  # re-encoded in the same format, without EXIF
    thumbnail: bytes  # JPEG, at most THUMBNAIL_SIZE px on its longer side


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.0f}" if pixels >= 10_000_000 else f"{pixels / 1_000_000:.1f}"


@contextmanager
def _in_child(operation: str, data: bytes, arguments: list[str], limits: Limits) -> Iterator[tuple[dict, Path]]:
    """Run `operation` on `data` in a bounded child; yields its JSON answer and its output folder."""
    with tempfile.TemporaryDirectory(prefix="hearth-process-") as workdir:
        source = Path(workdir) / "source"
        source.write_bytes(data)
        command = [
            sys.executable,
            "-I",  # no PYTHON* variables, no user site, no script directory on sys.path
            str(Path(__file__).resolve()),
            operation,
            str(source),
            workdir,
            str(limits.max_pixels),
            str(limits.memory_bytes),
            str(limits.cpu_seconds),
            *arguments,
        ]
        try:
            # The argv is this interpreter, this file and values Hearth chose; no shell.
            child = subprocess.run(  # noqa: S603
                command, capture_output=True, timeout=limits.wall_seconds, check=False, cwd=workdir
            )
        except subprocess.TimeoutExpired:
            raise ProcessingError(TOOK_TOO_LONG % {"seconds": f"{limits.wall_seconds:.0f}"}) from None
        if child.returncode == MEMORY_EXIT:
            raise Refused(NEEDS_MEMORY % {"size": limits.memory_bytes // MB})
        if child.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            raise Refused(NEEDS_TIME % {"seconds": limits.cpu_seconds})
        if child.returncode != 0:
            lines = child.stderr.decode("utf-8", "replace").strip().splitlines()
            if child.returncode == FAILED_EXIT and lines:
                raise ProcessingError(UNREADABLE[operation]) from ChildFailed(lines[-1])
            raise ProcessingError(STOPPED) from ChildFailed(
                lines[-1] if lines else f"The processing child exited with {child.returncode}."
            )
        result = json.loads(child.stdout)
        if "refused" in result:
            raise Refused(result["refused"])
        yield result, Path(workdir)


def inspect_image(data: bytes, content_type: str, limits: Limits) -> ImageResult:
    """Dimensions, an EXIF-free copy and a thumbnail of an image, decoded in a bounded child."""
    with _in_child("image", data, [content_type], limits) as (result, directory):
        return ImageResult(
            width=result["width"],
            height=result["height"],
            clean=(directory / "clean").read_bytes(),
            thumbnail=(directory / "thumbnail").read_bytes(),
        )


def count_pdf_pages(data: bytes, limits: Limits) -> int:
    """The page count of a PDF, parsed in a bounded child."""
    with _in_child("pdf", data, [], limits) as (result, _):
        return int(result["pages"])


# The child ----------------------------------------------------------------------------------


def _child_image(source: str, out: Path, max_pixels: int, content_type: str) -> dict:
    from PIL import Image, ImageOps

    fmt = IMAGE_FORMATS[content_type]
    # The header alone, with Pillow's own check lifted so the refusal can name the size.
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(source) as opened:
        width, height = opened.size
        if width * height > max_pixels:
            return {
                "refused": TOO_MANY_PIXELS
                % {
                    "width": width,
                    "height": height,
                    "megapixels": _megapixels(width * height),
                    "limit": _megapixels(max_pixels),
                }
            }
        # One process, one job: the global is this job's limit, and Pillow's warning above it
        # is an error, so no later step (frames, crops) decodes anything larger either.
        Image.MAX_IMAGE_PIXELS = max_pixels
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = ImageOps.exif_transpose(opened)  # decodes; re-encoding below drops EXIF
        dimensions = {"width": image.width, "height": image.height}
        frame = image.convert("RGB") if fmt == "JPEG" else image
        frame.save(out / "clean", format=fmt)
        # In place on the frame already saved: no third full-size copy in memory.
        thumb = frame if frame.mode == "RGB" else frame.convert("RGB")
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        thumb.save(out / "thumbnail", format="JPEG", quality=85)
        return dimensions


def _child_pdf(source: str) -> dict:
    from pypdf import PdfReader

    return {"pages": len(PdfReader(source).pages)}


def _child(argv: list[str]) -> int:
    operation, source, workdir, max_pixels, memory_bytes, cpu_seconds, *rest = argv
    # Pillow and pypdf are imported in this child only: the web and queue processes that
    # import this module never pay for them (start-up, issue 11). Imported before the limits.
    from PIL import Image

    if operation == "pdf":
        import pypdf  # noqa: F401
    # Limits first, before any byte of the file is parsed. The soft CPU limit sends SIGXCPU.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (int(cpu_seconds), int(cpu_seconds) + 5))
    with suppress(ValueError, OSError):  # macOS lacks it; the pixel check still holds there
        resource.setrlimit(resource.RLIMIT_AS, (int(memory_bytes), int(memory_bytes)))
    try:
        if operation == "image":
            result = _child_image(source, Path(workdir), int(max_pixels), rest[0])
        else:
            result = _child_pdf(source)
    except MemoryError:
        os._exit(MEMORY_EXIT)  # nothing else is safe to do without memory
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # a later frame or step larger than the header said
        result = {"refused": MORE_THAN_LIMIT % {"limit": _megapixels(int(max_pixels))}}
    except Exception as error:  # reported to the parent, which fails the job with it
        sys.stderr.write(f"{type(error).__name__}: {error}\n")
        return FAILED_EXIT
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
