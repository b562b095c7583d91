"""Translations of the library's own strings, in gettext domain ``notice``.

With Flask-Babel installed *and* initialised on the app (``Babel(app)``), library
strings translate through our own catalog (``notice/translations/<locale>/LC_MESSAGES/
notice.mo``), so the app's ``messages`` catalog and ours coexist; otherwise every
function here returns the English text, formatted the same way. Pages translate in the
locale the app's Flask-Babel selector picks; emails, pushes and digests are rendered
:func:`for_recipient`, in the locale ``@notices.locale_loader`` gives the user.

Templates call :func:`gettext` and :func:`ngettext` as the Jinja globals
``notice_gettext`` / ``notice_ngettext`` (not ``_``: that is the app's domain).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import current_app, g, has_app_context, has_request_context

logger = logging.getLogger("notice")

#: where the compiled catalogs live (``<locale>/LC_MESSAGES/notice.mo``)
TRANSLATIONS = Path(__file__).parent / "translations"
#: our gettext domain
DOMAIN = "notice"

#: ``loader(user_id) -> locale such as "de" or "pt_BR", or None`` (``Notices.locale_loader``)
LocaleLoader = Callable[[Any], "str | None"]

try:
    import flask_babel
except ImportError:  # the i18n extra is not installed: English, as before
    flask_babel = None
    _domain: Any = None
else:
    _domain = flask_babel.Domain(translation_directories=str(TRANSLATIONS), domain=DOMAIN)


def _babel_ready() -> bool:
    """Translate only where a locale is known without guessing: Flask-Babel initialised
    on this app, and a request (its selector picks) or :func:`for_recipient` (forced).
    A worker thread has neither, and the app's selector would read ``request`` there."""
    if _domain is None or not has_app_context() or "babel" not in current_app.extensions:
        return False
    if has_request_context():
        return True
    # what flask_babel.force_locale sets (Flask-Babel 4): ours in for_recipient, or
    # the app's own around a script or a custom sender
    ctx = g.get("_flask_babel")
    return getattr(ctx, "forced_babel_locale", None) is not None


def gettext(message: str, **variables: Any) -> str:
    """``message`` in the current locale, ``%``-formatted with ``variables``."""
    if _babel_ready():
        return str(_domain.gettext(message, **variables))
    return message % variables if variables else message


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """The singular or a plural form for ``num`` in the current locale; ``%(num)d``
    in the text is ``num``."""
    if _babel_ready():
        return str(_domain.ngettext(singular, plural, num, **variables))
    variables.setdefault("num", num)
    return (singular if num == 1 else plural) % variables


def translating_locale() -> str | None:
    """The language tag (``"de"``, ``"pt-BR"``) text is translated into now, or None
    when nothing is translated (no Flask-Babel on the app, no request, not forced)."""
    if _babel_ready():
        locale = flask_babel.get_locale()
        if locale is not None:
            return _language_tag(locale)
    return None


@functools.lru_cache(maxsize=256)
def _language_tag(locale: Any) -> str:
    # str(Locale) rebuilds the identifier on every call: a third of a push's cost
    return str(locale).replace("_", "-")


def current_locale() -> str:
    """The language tag text is rendered in now, ``"en"`` when nothing is translated
    (``<html lang>``)."""
    return translating_locale() or "en"


def locales() -> list[str]:
    """The locales the library ships a catalog for (``["de"]``)."""
    return sorted(p.parent.parent.name for p in TRANSLATIONS.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))


@contextmanager
def for_recipient(loader: LocaleLoader | None, user_id: Any) -> Iterator[None]:
    """Render what is inside in ``user_id``'s locale (:func:`recipient_locale`), with
    ``flask_babel.force_locale``. Without Flask-Babel on the app, nothing changes."""
    locale = recipient_locale(loader, user_id)
    if locale is None:
        yield
        return
    # a Locale object, not its name: force_locale would parse the name again
    with flask_babel.force_locale(locale):
        yield


def recipient_locale(loader: LocaleLoader | None, user_id: Any) -> Any:
    """``user_id``'s ``babel.Locale`` (``loader(user_id)``), or None without
    Flask-Babel on the app.

    A user without one gets the app's ``BABEL_DEFAULT_LOCALE``, or inside a request (a
    preview built in a view) the request's locale. Deliveries run outside the
    publishing request (on a send thread or a worker), so they never take the
    publisher's language for the recipient's. A locale Babel cannot parse falls back
    the same way, with a warning: one user's bad profile value must not fail their
    deliveries.
    """
    if _domain is None or not has_app_context() or "babel" not in current_app.extensions:
        return None
    wanted = loader(user_id) if loader is not None else None
    locale = _parse(str(wanted)) if wanted else None
    if wanted and locale is None:
        logger.warning("locale_loader gave user %s an unknown locale %r", user_id, wanted)
    if locale is None:
        if has_request_context():
            return flask_babel.get_locale()
        return _parse(flask_babel.get_babel().default_locale)
    return locale


def recipient_language(loader: LocaleLoader | None, user_id: Any) -> str | None:
    """The language tag of :func:`recipient_locale` (``"de"``), or None without
    Flask-Babel on the app; for text that has no library strings to translate (the
    push payload's ``lang``), so nothing is forced."""
    locale = recipient_locale(loader, user_id)
    return None if locale is None else _language_tag(locale)


@functools.lru_cache(maxsize=256)
def _parse(identifier: str) -> Any:
    """``babel.Locale`` of ``identifier``, or None when Babel does not know it; cached,
    since parsing is most of what rendering in a user's locale costs."""
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(identifier)
    except (ValueError, TypeError, UnknownLocaleError):
        return None


def install_jinja_globals(env: Any) -> None:
    """Make ``notice_gettext``, ``notice_ngettext`` and ``notice_locale`` available
    to templates (ours and the app's overrides of them)."""
    env.globals.setdefault("notice_gettext", gettext)
    env.globals.setdefault("notice_ngettext", ngettext)
    env.globals.setdefault("notice_locale", current_locale)
