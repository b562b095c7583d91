"""Sign up, log in, log out: flask-login sessions and werkzeug password hashes."""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user
from werkzeug.wrappers import Response

from notice import NoticeType, notice_event
from notice.web.auth import check_csrf

from .models import User, db

bp = Blueprint("auth", __name__)


@bp.before_request
def _csrf() -> None:
    if request.method == "POST":
        check_csrf()


def _safe_next(target: str | None) -> str:
    # only same-site paths: an open redirect would let a link send users anywhere
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("example.index")


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> str | Response:
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        error = None
        if "@" not in email or len(email) > 255:
            error = "Enter an email address."
        elif not name or len(name) > 80:
            error = "Enter a name of at most 80 characters."
        elif len(password) < 8:
            error = "Use a password of at least 8 characters."
        elif db.session.scalar(sa.select(User.id).where(User.email == email)) is not None:
            error = "That email address already has an account."
        if error is None:
            user = User(email=email, name=name)
            user.set_password(password)
            db.session.add(user)
            db.session.flush()
            notice_event(
                user.id,
                NoticeType.SYSTEM,
                subject=f"Welcome, {name}!",
                content="Follow people, join a group, and watch posts to hear about them.",
                url=url_for("example.index"),
                commit=False,
            )
            db.session.commit()
            login_user(user)
            return redirect(url_for("example.index"))
        flash(error, "error")
    return render_template("example/signup.html")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        user = db.session.scalar(sa.select(User).where(User.email == email))
        if user is not None and user.check_password(request.form.get("password", "")):
            login_user(user, remember=True)
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong email or password.", "error")
    return render_template("example/login.html")


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    logout_user()
    return redirect(url_for("auth.login"))
