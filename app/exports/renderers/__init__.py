"""Each export kind's document: `RENDERERS[kind].render(context, out)` writes it whole to `out`.

The exports service (app/exports/service.py) validates the filters, opens a temporary file,
calls the renderer inside the job's app context and stores the file when it returns; a
renderer that raises leaves nothing behind. Renderers only read. Kinds:

- `account_data`: a ZIP of everything Hearth holds about the owner (account_data.py);
- `users_csv`, `users_xlsx`: the /admin/users list with its filters (tables.py);
- `audit_csv`: the audit trail with the /admin/audit filters (tables.py);
- `activity_pdf`: a PDF report over a range of days (activity.py).
"""

from __future__ import annotations

from app.exports.renderers.account_data import render_account_data
from app.exports.renderers.activity import render_activity_pdf
from app.exports.renderers.base import RenderContext, Renderer
from app.exports.renderers.tables import render_audit_csv, render_users_csv, render_users_xlsx
from app.i18n import N_

__all__ = ["RENDERERS", "RenderContext", "Renderer"]

RENDERERS: dict[str, Renderer] = {
    "account_data": Renderer(render_account_data, "application/zip", "zip", N_("Account data")),
    "users_csv": Renderer(render_users_csv, "text/csv", "csv", N_("Users (CSV)")),
    "users_xlsx": Renderer(
        render_users_xlsx,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
        N_("Users (Excel)"),
    ),
    "audit_csv": Renderer(render_audit_csv, "text/csv", "csv", N_("Audit trail (CSV)")),
    "activity_pdf": Renderer(render_activity_pdf, "application/pdf", "pdf", N_("Activity report (PDF)")),
}
