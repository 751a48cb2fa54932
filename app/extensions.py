"""Every Flask extension, created unbound; `create_app` binds them with `init_app`."""

from flask import Flask, current_app
from flask_babel import Babel
from flask_caching import Cache
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names make migrations reproducible and let SQLite batch mode alter tables.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()
cache = Cache()
# Its only state is the translation catalogues it has loaded, keyed by locale: the same files
# (translations/) for every app. app.i18n.init_i18n binds it with the locale selector.
babel = Babel()


# Flask-Limiter keeps its settings on the instance, not per app, so each app gets its own
# (tests build apps with different limits side by side): app.core.ratelimit.init_rate_limiting
# makes the limiter.
def app_limiter(app: Flask | None = None) -> Limiter:
    """The rate limiter of `app` (default: the current app)."""
    return (app or current_app).extensions["hearth.limiter"]
