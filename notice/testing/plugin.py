"""The pytest plugin of the test kit, loaded automatically where ``notice`` is
installed (the ``pytest11`` entry point).

It only defines fixtures: no hooks, no markers, no options, and it imports nothing of
the kit until a test asks for one of its fixtures, so a project that never uses them
runs exactly as without it. The fixtures need an ``app`` fixture returning your Flask
app, defined in your ``conftest.py`` (as with pytest-flask)::

    @pytest.fixture
    def app(tmp_path):
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/t.db"})
        with app.app_context():
            db.create_all()
        yield app
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .outbox import NoticeOutbox


@pytest.fixture
def notice_outbox(request: pytest.FixtureRequest) -> Iterator[NoticeOutbox]:
    """Capture what the ``app`` fixture's app sends during the test instead of sending
    it (:func:`notice.testing.capture_notices`); the outbox has ``assert_sent``,
    ``assert_not_sent``, ``assert_count``, ``assert_nothing_sent`` and ``sent``."""
    try:
        app = request.getfixturevalue("app")
    except pytest.FixtureLookupError:
        pytest.fail(
            "the notice_outbox fixture needs an 'app' fixture returning your Flask app; "
            "define one in conftest.py (see notice.testing.plugin)",
            pytrace=False,
        )
    from .capture import capture_notices  # only now: the plugin imports nothing unused

    with capture_notices(app) as outbox:
        yield outbox
