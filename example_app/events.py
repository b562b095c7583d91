"""Who hears about what: every action of the example turns into notices here.

Each function adds the notices to the caller's transaction (``commit=False``), so the
comment and the notices about it are committed together by the view, and nothing is
sent if the view rolls back. Deliveries go out after that commit.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from flask import url_for

from notice import NoticeType, notice_event

from .models import Comment, Follow, Group, Membership, Post, User, Watch, db


def _type(name: str) -> NoticeType:
    # the library may already know these kinds (topics issue); else the example adds them
    existing = getattr(NoticeType, name, None)
    return existing if isinstance(existing, NoticeType) else NoticeType.register(name)


OWNER = _type("OWNER")
GROUP = _type("GROUP")
WATCHING = _type("WATCHING")


def _fan_out(
    user_ids: Iterable[int], notice_type: NoticeType, actor: User, **fields: str
) -> list[int]:
    """One notice to each of ``user_ids`` except the actor, in one bulk insert."""
    recipients = sorted({u for u in user_ids if u != actor.id})
    if not recipients:
        return []
    ids: list[int] = notice_event(
        recipients, notice_type, sender_id=actor.id, commit=False, **fields
    )
    return ids


def _notify(user_id: int, notice_type: NoticeType, actor: User, **fields: str) -> None:
    if user_id != actor.id:
        notice_event(user_id, notice_type, sender_id=actor.id, commit=False, **fields)


def _post_url(post: Post, anchor: str | None = None) -> str:
    return url_for("example.post", post_id=post.id, _anchor=anchor)


def post_created(post: Post) -> None:
    """OWNER to the author; POST to the author's followers; GROUP to the group's
    members (the author excluded) for a group post."""
    author = post.author
    url = _post_url(post)
    notice_event(
        author.id,
        OWNER,
        subject=f"You published “{post.title}”",
        content="You will hear about comments, likes and saves on it.",
        url=url,
        commit=False,
    )
    followers = db.session.scalars(
        sa.select(Follow.follower_id).where(Follow.followed_id == author.id)
    )
    _fan_out(
        followers, NoticeType.POST, author,
        subject=f"{author.name} posted “{post.title}”", content=post.body[:200], url=url,
    )
    if post.group is not None:
        _fan_out(
            members(post.group),
            GROUP,
            author,
            subject=f"{author.name} posted in {post.group.name}: “{post.title}”",
            content=post.body[:200],
            url=url,
        )


def comment_created(comment: Comment) -> None:
    """REPLY to the parent comment's author, COMMENT to the post's author, WATCHING to
    the post's watchers; each person hears once, the commenter never."""
    actor, post = comment.author, comment.post
    url = _post_url(post, f"c{comment.id}")
    told = {actor.id}
    if comment.parent is not None and comment.parent.author_id not in told:
        _notify(
            comment.parent.author_id, NoticeType.REPLY, actor,
            subject=f"{actor.name} replied to your comment", content=comment.body, url=url,
        )
        told.add(comment.parent.author_id)
    if post.author_id not in told:
        _notify(
            post.author_id, NoticeType.COMMENT, actor,
            subject=f"{actor.name} commented on “{post.title}”", content=comment.body, url=url,
        )
        told.add(post.author_id)
    watchers = db.session.scalars(sa.select(Watch.user_id).where(Watch.post_id == post.id))
    _fan_out(
        (u for u in watchers if u not in told), WATCHING, actor,
        subject=f"{actor.name} commented on “{post.title}”, which you watch",
        content=comment.body, url=url,
    )


def liked(post: Post, actor: User) -> None:
    _notify(
        post.author_id, NoticeType.LIKE, actor,
        subject=f"{actor.name} liked “{post.title}”", content="", url=_post_url(post),
    )


def saved(post: Post, actor: User) -> None:
    _notify(
        post.author_id, NoticeType.SAVE, actor,
        subject=f"{actor.name} saved “{post.title}”", content="", url=_post_url(post),
    )


def followed(user: User, actor: User) -> None:
    _notify(
        user.id, NoticeType.FOLLOW, actor,
        subject=f"{actor.name} follows you", content="",
        url=url_for("example.user", user_id=actor.id),
    )


def group_created(group: Group) -> None:
    notice_event(
        group.owner_id, OWNER,
        subject=f"You created the group {group.name}",
        content="Members hear about every post in it.",
        url=url_for("example.group", group_id=group.id),
        commit=False,
    )


def joined(group: Group, actor: User) -> None:
    """GROUP to the other members: someone new is in."""
    _fan_out(
        members(group), GROUP, actor,
        subject=f"{actor.name} joined {group.name}", content="",
        url=url_for("example.group", group_id=group.id),
    )


def members(group: Group) -> list[int]:
    return list(
        db.session.scalars(sa.select(Membership.user_id).where(Membership.group_id == group.id))
    )
