"""The preference tables, built on the app's ``db`` like :mod:`notice.models`.

* ``notice_preference``: a user's choice for one notice type on one channel. Only
  choices that were made are stored; a missing row means the configured default.
* ``notice_digest``: a user's digest frequency, the lease a digest run holds while
  it emails that user (so two overlapping runs never email the same notices twice),
  and the address the mail server refused for good, if any.
* ``notice_quiet_hours``: a user's time zone and quiet window; email and push
  deliveries due inside it wait until it ends (:mod:`notice.schedule.quiet`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..columns import UTCDateTime, utcnow


@dataclass
class PreferenceModels:
    """The preference model classes built for one ``db``."""

    Preference: Any
    DigestSetting: Any
    #: a user's quiet hours (``notice_quiet_hours``)
    QuietHours: Any = None


def build_preference_models(
    db: Any, *, user_table: str | None, user_id_type: Any
) -> PreferenceModels:
    """Declare the preference models on ``db.Model`` (see
    :func:`notice.models.build_models` for the parameters)."""

    def user_fk() -> tuple[Any, ...]:
        # a ForeignKey belongs to one column: a new one per table
        return (sa.ForeignKey(user_table, ondelete="CASCADE"),) if user_table else ()

    class Preference(db.Model):  # type: ignore[misc]
        """One user's on/off choice for a notice type on a channel."""

        __tablename__ = "notice_preference"

        user_id: Mapped[Any] = mapped_column(
            user_id_type, *user_fk(), primary_key=True, autoincrement=False
        )
        notice_type: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
        channel: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
        enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
        #: the email channel's mode: "immediate", "daily", "weekly" or "off" (None:
        #: ``enabled`` and NOTICE_EMAIL_MODES decide)
        mode: Mapped[str | None] = mapped_column(sa.String(9), nullable=True)
        update_at: Mapped[datetime] = mapped_column(
            UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
        )

        def __repr__(self) -> str:
            state = "on" if self.enabled else "off"
            return f"<Preference user={self.user_id} {self.notice_type}/{self.channel} {state}>"

    class DigestSetting(db.Model):  # type: ignore[misc]
        """A user's digest frequency and the digest run's per-user lease."""

        __tablename__ = "notice_digest"

        user_id: Mapped[Any] = mapped_column(
            user_id_type, *user_fk(), primary_key=True, autoincrement=False
        )
        #: "off", "daily" or "weekly"; None follows ``NOTICE_DIGEST_DEFAULT``
        frequency: Mapped[str | None] = mapped_column(sa.String(8), nullable=True)
        #: a digest run is emailing this user until then (None: nobody is)
        claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        claim_token: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
        last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        #: the address, as ``email_loader`` gave it, refused for good (a 5xx reply to
        #: RCPT TO, or no valid mailbox): digest runs skip the user while the loader
        #: still gives it, instead of failing on it every run. A digest that goes out
        #: clears it; an operator resets it with ``flask notice digest --retry-refused``
        #: (or by setting it NULL). None: no standing refusal.
        refused_address: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
        refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        #: the server's reply (or why the address is no mailbox)
        refused_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
        update_at: Mapped[datetime] = mapped_column(
            UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
        )

        def __repr__(self) -> str:
            return f"<DigestSetting user={self.user_id} {self.frequency}>"

    class QuietHours(db.Model):  # type: ignore[misc]
        """A user's quiet window, in local time of an IANA time zone."""

        __tablename__ = "notice_quiet_hours"

        user_id: Mapped[Any] = mapped_column(
            user_id_type, *user_fk(), primary_key=True, autoincrement=False
        )
        #: an IANA zone name, e.g. "Europe/Berlin" (checked against zoneinfo when set)
        timezone: Mapped[str] = mapped_column(sa.String(64), nullable=False)
        #: the window in minutes after local midnight; end < start crosses midnight
        start_minute: Mapped[int] = mapped_column(sa.Integer, nullable=False)
        end_minute: Mapped[int] = mapped_column(sa.Integer, nullable=False)
        update_at: Mapped[datetime] = mapped_column(
            UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
        )

        def __repr__(self) -> str:
            return f"<QuietHours user={self.user_id} {self.timezone}>"

    return PreferenceModels(
        Preference=Preference, DigestSetting=DigestSetting, QuietHours=QuietHours
    )
