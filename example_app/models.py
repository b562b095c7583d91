"""The example's own tables: users, posts, comments (replies are comments with a
parent), likes, follows, saves, and groups with members. Who watches a post, and who
hears about a group, live in notice's topics."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from notice.columns import UTCDateTime, utcnow

db = SQLAlchemy()


class User(UserMixin, db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    create_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Group(db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80), unique=True)
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    owner: Mapped[User] = relationship()


class Membership(db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "membership"

    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("group.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )


class Post(db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "post"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("group.id", ondelete="CASCADE"), nullable=True
    )
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    create_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User] = relationship()
    group: Mapped[Group | None] = relationship()
    comments: Mapped[list[Comment]] = relationship(
        back_populates="post", order_by="Comment.id", cascade="all, delete-orphan"
    )


class Comment(db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(sa.ForeignKey("post.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    #: set for a reply: the comment it answers
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("comment.id", ondelete="CASCADE"), nullable=True
    )
    body: Mapped[str] = mapped_column(sa.Text)
    create_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    post: Mapped[Post] = relationship(back_populates="comments")
    author: Mapped[User] = relationship()
    parent: Mapped[Comment | None] = relationship(remote_side=[id])


class Like(db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "post_like"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    post_id: Mapped[int] = mapped_column(
        sa.ForeignKey("post.id", ondelete="CASCADE"), primary_key=True
    )


class Save(db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "post_save"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    post_id: Mapped[int] = mapped_column(
        sa.ForeignKey("post.id", ondelete="CASCADE"), primary_key=True
    )


class Follow(db.Model):  # type: ignore[name-defined, misc]
    __tablename__ = "follow"

    follower_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    followed_id: Mapped[int] = mapped_column(
        sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
