"""A file table's row (/files and its htmx answers), written in Python rather than by a Jinja
macro: the same HTML, byte for byte (every value escaped as `{{ }}` would escape it), at a
fraction of the cost of a macro call and its ~40 expressions for each of a page's 20 rows.
templates/files/_row.html renders one (the row polling while a file is processed, the answer
to confirm); templates/files/_list.html a table of them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from markupsafe import Markup, escape

from app.core.templating import badge, time_tag
from app.i18n import format_filesize


def file_row(
    upload: Any, thumbnail: str | None, final: bool, urls: dict[str, Any], csrf: str, labels: SimpleNamespace
) -> Markup:
    """One `<tr>`: `urls` are files.routes' `file_row_urls()` (UrlPatterns), `csrf` the token,
    `labels` the table's words (`file_labels()`, app.core.templating: Markup, once per language)."""
    L = labels  # noqa: N806  (the templates' name for them)
    upload_id = upload.id
    status = upload.status
    delete_url = escape(urls["delete"].fill(upload_id))
    kind = escape(L.kinds.get(upload.kind) or upload.kind_label)
    name = escape(upload.filename)
    size = escape(format_filesize(upload.shown_size))
    error = upload.shown_error
    poll = "" if final else f'hx-get="{escape(urls["row"].fill(upload_id))}" hx-trigger="every 2s" hx-swap="outerHTML"'
    image = f'<img src="{escape(thumbnail)}" alt="" width="48" height="48" class="thumb">' if thumbnail else ""
    reason = (
        f'<span class="secondary-line error-text clamp" title="{escape(error)}" tabindex="0">{escape(error)}</span>'
        if error
        else ""
    )
    download = (
        f'<li><a href="{escape(urls["download"].fill(upload_id))}">{L.download}</a></li>' if status == "ready" else ""
    )
    return Markup(  # noqa: S704  (every value is escaped above)
        f'<tr id="upload-{escape(upload_id)}" class="file-row" data-status="{escape(status)}"\n'
        f"    {poll}>\n"
        "  <td>\n"
        '    <div class="file-cell">\n'
        f"      {image}\n"
        f'      <span><span class="truncate" title="{name}" tabindex="0">{name}</span>'
        f'<span class="secondary-line below-md">{kind} · {size}</span></span>\n'
        "    </div>\n"
        "  </td>\n"
        f'  <td class="col-md" data-label="{L.kind}">{kind}</td>\n'
        f'  <td class="num col-md" data-label="{L.size}">{size}</td>\n'
        f'  <td data-label="{L.status}">{badge(status, L.statuses.get(status) or upload.status_label)}{reason}</td>\n'
        f'  <td class="col-lg" data-label="{L.uploaded}">{time_tag(upload.created_at)}</td>\n'
        '  <td class="actions-cell">\n'
        '    <details class="row-menu">\n'
        f'      <summary aria-label="{L.actions_for.replace("__NAME__", name)}" title="{L.actions}">···</summary>\n'
        "      <ul>\n"
        f"        {download}\n"
        f'        <li><form method="post" action="{delete_url}"\n'
        f'              hx-post="{delete_url}" hx-target="closest tr" hx-swap="outerHTML"\n'
        f'              hx-confirm="{L.delete_question.replace("__NAME__", name)}">\n'
        f'          <input type="hidden" name="csrf_token" value="{escape(csrf)}">\n'
        f'          <button type="submit" class="danger">{L.delete}</button>\n'
        "        </form></li>\n"
        "      </ul>\n"
        "    </details>\n"
        "  </td>\n"
        "</tr>"
    )
