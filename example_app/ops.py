"""The operations page for admins: deliveries by status and channel, the failed ones
with their last error, and a retry button (a CSRF-checked POST)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from notice import DeliveryStatus
from notice.delivery import deliver
from notice.models import utcnow
from notice.web.auth import check_csrf

from . import notices
from .models import db

bp = Blueprint("ops", __name__, url_prefix="/ops")

FAILED = (DeliveryStatus.ERROR.value, DeliveryStatus.DEAD.value)


@bp.before_request
@login_required
def _admins_only() -> None:
    if not current_user.is_admin:
        abort(404)  # the page does not exist for other users
    if request.method == "POST":
        check_csrf()


@bp.route("/")
def index() -> str:
    Delivery, Notice = notices.Delivery, notices.Notice
    by_status = dict(
        db.session.execute(
            sa.select(Delivery.status, sa.func.count()).group_by(Delivery.status)
        ).all()
    )
    by_channel = db.session.execute(
        sa.select(Delivery.channel, Delivery.status, sa.func.count())
        .group_by(Delivery.channel, Delivery.status)
        .order_by(Delivery.channel, Delivery.status)
    ).all()
    failed = db.session.execute(
        sa.select(Delivery, Notice)
        .join(Notice, Notice.id == Delivery.notice_id)
        .where(Delivery.status.in_(FAILED))
        .order_by(Delivery.update_at.desc())
        .limit(100)
    ).all()
    statuses = [s.value for s in DeliveryStatus]
    return render_template(
        "example/ops.html",
        counts=[(s, by_status.get(s, 0)) for s in statuses],
        by_channel=by_channel,
        failed=failed,
        notices_total=db.session.scalar(sa.select(sa.func.count()).select_from(Notice)),
    )


@bp.route("/retry", methods=["POST"])
def retry() -> Response:
    ids = [int(i) for i in request.form.getlist("delivery_id") if i.isdigit()]
    if not ids:
        abort(400)
    report = retry_deliveries(ids)
    flash(
        f"Retried {report['claimed']}: {report['sent']} sent, "
        f"{report['failed'] + report['gave_up']} failed again.",
        "info",
    )
    return redirect(url_for("ops.index"))


def retry_deliveries(ids: list[int]) -> dict[str, Any]:
    """Put failed deliveries back to Wait, due now, and send them right away.

    A dead delivery gets one more attempt; if that fails too it is dead again.
    """
    Delivery = notices.Delivery
    now = utcnow()
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status.in_(FAILED))
        .values(
            status=DeliveryStatus.WAIT.value,
            next_attempt_at=now,
            claimed_until=None,
            claim_token=None,
            update_at=now,
        )
    )
    db.session.commit()
    return deliver(notices.state(), ids=ids).as_dict()
