"""The operations page for admins: the numbers ``flask notice stats`` prints, the
failed deliveries with their last error, and a retry button (a CSRF-checked POST)
that re-queues them like ``flask notice retry --id`` and sends them at once."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from notice.columns import utcnow
from notice.delivery import deliver
from notice.store import maintenance
from notice.web.auth import check_csrf

from . import notices
from .models import db

bp = Blueprint("ops", __name__, url_prefix="/ops")


@bp.before_request
@login_required
def _admins_only() -> None:
    if not current_user.is_admin:
        abort(404)  # the page does not exist for other users
    if request.method == "POST":
        check_csrf()


def _tables() -> tuple[Any, Any]:
    return notices.Delivery.__table__, notices.Notice.__table__


@bp.route("/")
def index() -> str:
    Delivery, Notice = notices.Delivery, notices.Notice
    delivery, notice = _tables()
    stats = maintenance.stats(db.engine, delivery, notice, now=utcnow())
    failed = db.session.execute(
        sa.select(Delivery, Notice)
        .join(Notice, Notice.id == Delivery.notice_id)
        .where(Delivery.status.in_(maintenance.FAILED_STATES))
        .order_by(Delivery.update_at.desc())
        .limit(100)
    ).all()
    return render_template("example/ops.html", stats=stats, failed=failed)


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


def retry_deliveries(ids: list[int]) -> dict[str, int]:
    """Re-queue failed deliveries with a fresh attempt budget, then send them now
    (what is not sent here, the sweeper retries)."""
    delivery, _notice = _tables()
    maintenance.requeue(db.engine, delivery, ids, now=utcnow())
    return deliver(notices.state(), ids=ids).as_dict()
