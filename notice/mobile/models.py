"""The mobile device table, built on the app's ``db`` like :mod:`notice.models`.

* ``notice_device``: one app install of a user: its FCM registration token or APNs
  device token, unique per platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..columns import NEVER_REUSE_IDS, BigId, UTCDateTime, utcnow

#: the platforms a device may be on: the sender names that push to them
PLATFORMS = ("fcm", "apns")
#: longest accepted token: FCM's are ~160 characters, APNs' 64 hex digits today, and
#: both providers say the length may grow
MAX_TOKEN = 512
#: longest Android application id / iOS bundle id
MAX_APP = 255


@dataclass
class DeviceModels:
    """The mobile model classes built for one ``db``."""

    Device: Any


def build_device_models(db: Any, *, user_table: str | None, user_id_type: Any) -> DeviceModels:
    """Declare the device model on ``db.Model`` (like :func:`notice.models.build_models`)."""
    fk = (sa.ForeignKey(user_table, ondelete="CASCADE"),) if user_table else ()

    class Device(db.Model):  # type: ignore[misc]
        """A mobile app install that receives native pushes (FCM or APNs)."""

        __tablename__ = "notice_device"
        __table_args__ = (
            sa.UniqueConstraint("platform", "token", name="uq_device_token"),
            # deliveries name their device by this id: it must never point at another's
            NEVER_REUSE_IDS,
        )

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        user_id: Mapped[Any] = mapped_column(user_id_type, *fk, nullable=False, index=True)
        #: "fcm" or "apns" (:data:`PLATFORMS`)
        platform: Mapped[str] = mapped_column(sa.String(8), nullable=False)
        token: Mapped[str] = mapped_column(sa.String(MAX_TOKEN), nullable=False)
        #: the app's Android application id or iOS bundle id (APNs' ``apns-topic``)
        app_id: Mapped[str | None] = mapped_column(sa.String(MAX_APP), nullable=True)
        created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
        #: the last push the provider accepted; None: none yet
        last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

        def to_dict(self) -> dict[str, Any]:
            """The device as the registration API shows it (the token is the caller's
            own: it registered it)."""
            return {
                "id": self.id,
                "platform": self.platform,
                "token": self.token,
                "app_id": self.app_id,
                "created_at": self.created_at.isoformat(),
                "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            }

        def __repr__(self) -> str:
            return f"<Device {self.id} {self.platform} user={self.user_id}>"

    return DeviceModels(Device=Device)
