"""Reading and changing feature flags.

Reads go through one cached dict of every flag (`CacheKey("flags", "all")`): L1 for 30 s,
L2 for 5 minutes, so `feature_enabled` costs one in-process lookup and templates may call it
freely. Every write below is one unit of work (app.core.unit_of_work) with its audit row and
goes through `forget_flags()` in it; the cache layer runs that after the commit, dropping L2
and, through the Redis bus, every instance's L1. Write flags only through these functions;
the queries are app/flags/repository.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from app.audit.service import record
from app.cache import CacheKey, cached, invalidate
from app.core.unit_of_work import unit_of_work
from app.errors import Conflict, NotFound, ValidationFailed
from app.flags.models import FeatureFlag
from app.flags.repository import FeatureFlagRepository
from app.i18n import _
from app.users.models import User

FLAG_NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
DESCRIPTION_MAX = 200
FLAGS_KEY = CacheKey("flags", "all")
FLAGS_TTL = 300

flags = FeatureFlagRepository()


# Reading (cached) ---------------------------------------------------------------------------


def feature_enabled(name: str) -> bool:
    """Is the flag `name` on? Unknown flags are off. A template global too."""
    return _cached_states().get(name, False)


def flag_states() -> dict[str, bool]:
    """Every flag and whether it is on (a copy: change it freely)."""
    return dict(_cached_states())


def forget_flags() -> None:
    """Invalidator of `feature_enabled`/`flag_states`: a flag was created, toggled or deleted."""
    invalidate(FLAGS_KEY)


def _cached_states() -> dict[str, bool]:
    # The cached object itself (L1 hands out the same dict): read it, never change it.
    return cached(FLAGS_KEY, _load_states, timeout=FLAGS_TTL, local=True)


def _load_states() -> dict[str, bool]:
    return flags.states()


# The admin page (always from the database) ------------------------------------------------


@dataclass(frozen=True)
class FlagRow:
    flag: FeatureFlag
    updated_by: str | None  # email of whoever last changed it


def list_flags() -> list[FlagRow]:
    """Every flag by name, with who last changed it: one query."""
    return [FlagRow(flag, email) for flag, email in flags.with_editors()]


def get_flag(name: str) -> FeatureFlag:
    flag = flags.find_by_name(name)
    if flag is None:
        raise NotFound(_("No feature flag named %(name)r.", name=name))
    return flag


def get_row(name: str) -> FlagRow:
    """One flag as `list_flags` shows it (the htmx row after a toggle)."""
    flag = get_flag(name)
    return FlagRow(flag, flags.editor_email(flag))


# Changing (audited, invalidated) -----------------------------------------------------------


def _field_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        message, errors=[{"field": field, "location": "body", "message": message, "type": "value_error"}]
    )


def _state(flag: FeatureFlag) -> dict[str, object]:
    return {"enabled": flag.enabled, "description": flag.description}


def create_flag(actor: User, name: str, description: str = "", enabled: bool = False) -> FeatureFlag:
    """Add a flag (off unless `enabled`)."""
    name = (name or "").strip().lower()
    if not FLAG_NAME.match(name):
        raise _field_error("name", _("2–64 characters: lower-case letters, digits and '_', starting with a letter."))
    description = (description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        raise _field_error("description", _("At most %(num)d characters.", num=DESCRIPTION_MAX))
    if flags.name_taken(name):
        raise _field_error("name", _("A flag named %(name)r already exists.", name=name))
    with unit_of_work() as session:
        flag = flags.add(
            FeatureFlag(name=name, description=description, enabled=bool(enabled), updated_by_user_id=actor.id)
        )
        try:
            session.flush()  # the unique name: a race with another admin fails here, not at the commit
        except IntegrityError:
            raise Conflict(_("A flag named %(name)r was just created by someone else.", name=name)) from None
        record("flag_created", actor_id=actor.id, target=f"flag:{name}", after=_state(flag))
        forget_flags()
    return flag


def set_flag(actor: User, name: str, enabled: bool) -> FeatureFlag:
    """Turn a flag on or off; setting the state it already has changes (and audits) nothing."""
    flag = get_flag(name)
    if flag.enabled == bool(enabled):
        return flag
    with unit_of_work():
        before = {"enabled": flag.enabled}
        flag.enabled = bool(enabled)
        flag.updated_by_user_id = actor.id
        record("flag_updated", actor_id=actor.id, target=f"flag:{name}", before=before, after={"enabled": flag.enabled})
        forget_flags()
    return flag


def delete_flag(actor: User, name: str) -> None:
    """Remove a flag: `feature_enabled(name)` is False from then on."""
    flag = get_flag(name)
    with unit_of_work():
        before = _state(flag)
        flags.delete(flag)
        record("flag_deleted", actor_id=actor.id, target=f"flag:{name}", before=before)
        forget_flags()
