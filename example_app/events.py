"""Who hears about what: every action of the example turns into notices here.

Each function adds the notices to the caller's transaction (``commit=False``), so the
comment and the notices about it are committed together by the view, and nothing is
sent if the view rolls back. Deliveries go out after that commit.

Groups and watched posts are topics (``group:<id>``, ``post:<id>``): joining a group
or watching a post subscribes you, and one publish reaches every subscriber.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from flask import url_for

from notice import NoticeType, notice_event

from . import notices
from .models import Comment, Follow, Group, Membership, Post, User, db

# registered by notice's topics module; the example only names them
OWNER = NoticeType("Owner")
GROUP = NoticeType("Group")
WATCHING = NoticeType("Watching")


#: notice's limit on a subject (``notice.publish.MAX_SUBJECT``)
MAX_SUBJECT = 255


def _subject(text: str) -> str:
    """``text`` cut to the subject limit: an 80-character name and a 200-character
    title together can exceed it, and publishing refuses longer subjects."""
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1] + "…"


def group_topic(group: Group) -> str:
    return f"group:{group.id}"


def post_topic(post: Post) -> str:
    return f"post:{post.id}"


def _fan_out(
    user_ids: Iterable[int], notice_type: NoticeType, actor: User, **fields: Any
) -> list[int]:
    """One notice to each of ``user_ids`` except the actor, in one bulk insert."""
    recipients = sorted({u for u in user_ids if u != actor.id})
    if not recipients:
        return []
    ids: list[int] = notice_event(
        recipients, notice_type, sender_id=actor.id, actor=actor, commit=False, **fields
    )
    return ids


def _notify(user_id: int, notice_type: NoticeType, actor: User, **fields: Any) -> None:
    # actor=: the inbox names and links the actor through the reference resolver
    if user_id != actor.id:
        notice_event(
            user_id, notice_type, sender_id=actor.id, actor=actor, commit=False, **fields
        )


def _post_url(post: Post, anchor: str | None = None) -> str:
    return url_for("example.post", post_id=post.id, _anchor=anchor)


def post_created(post: Post) -> None:
    """OWNER to the author; POST to the author's followers; GROUP to the group's
    members (the author excluded) for a group post. Each follower gets one notice:
    members hear about a group post as GROUP, not also as POST."""
    author = post.author
    url = _post_url(post)
    notice_event(
        author.id,
        OWNER,
        subject=_subject(f"You published “{post.title}”"),
        content="You will hear about comments, likes and saves on it.",
        url=url,
        target=post,
        category="success",
        commit=False,
    )
    followers = set(db.session.scalars(
        sa.select(Follow.follower_id).where(Follow.followed_id == author.id)
    ))
    if post.group is not None:
        # one notice per event: a follower who is also a member hears it as GROUP only
        followers -= set(members(post.group))
    _fan_out(
        followers, NoticeType.POST, author,
        subject=_subject(f"{author.name} posted “{post.title}”"), content=post.body[:200], url=url,
        target=post,
    )
    if post.group is not None:
        notices.publish(
            group_topic(post.group),
            GROUP,
            subject=_subject(f"{author.name} posted in {post.group.name}: “{post.title}”"),
            content=post.body[:200],
            url=url,
            actor=author,
            target=post,
            exclude=author.id,
            commit=False,
        )


def comment_created(comment: Comment) -> None:
    """REPLY to the parent comment's author, COMMENT to the post's author, WATCHING to
    the post's watchers; each person hears once, the commenter never. Their
    emails wait EXAMPLE_COMMENT_EMAIL_DELAY and go only if still unread (the
    per-type policy set in ``create_app``; nothing to say here)."""
    actor, post = comment.author, comment.post
    url = _post_url(post, f"c{comment.id}")
    # "Reply" opens the reply form under the comment
    reply = [{"label": "Reply", "url": url_for(
        "example.post", post_id=post.id, reply=comment.id, _anchor=f"c{comment.id}"
    )}]
    told = {actor.id}
    if comment.parent is not None and comment.parent.author_id not in told:
        _notify(
            comment.parent.author_id, NoticeType.REPLY, actor,
            subject=f"{actor.name} replied to your comment", content=comment.body, url=url,
            target=post, action_object=comment, actions=reply,
        )
        told.add(comment.parent.author_id)
    if post.author_id not in told:
        _notify(
            post.author_id, NoticeType.COMMENT, actor,
            subject=_subject(f"{actor.name} commented on “{post.title}”"),
            content=comment.body, url=url, target=post, action_object=comment, actions=reply,
        )
        told.add(post.author_id)
    # not notices.publish: its exclude= takes one id, and people told above hear once
    watchers = watcher_ids(post)
    _fan_out(
        (u for u in watchers if u not in told), WATCHING, actor,
        subject=_subject(f"{actor.name} commented on “{post.title}”, which you watch"),
        content=comment.body, url=url, target=post, action_object=comment, actions=reply,
    )


def liked(post: Post, actor: User) -> None:
    """Likes of one post within the Like window (NOTICE_GROUP_WINDOWS, shortened for
    the demo) fold into one item: "Ana and 2 others liked …", emailed once when the
    window ends."""
    if post.author_id == actor.id:
        return
    notice_event(
        post.author_id, NoticeType.LIKE, sender_id=actor.id, commit=False,
        subject=_subject(f"{actor.name} liked “{post.title}”"), content="", url=_post_url(post),
        group_key=f"like:post:{post.id}", actor_name=actor.name, actor=actor, target=post,
        category="success",
    )


def saved(post: Post, actor: User) -> None:
    _notify(
        post.author_id, NoticeType.SAVE, actor,
        subject=_subject(f"{actor.name} saved “{post.title}”"), content="", url=_post_url(post),
        target=post, category="success",
    )


def followed(user: User, actor: User) -> None:
    """FOLLOW to the followed user, with "Follow back" (a POST action: the form carries
    the CSRF token the example's views check) unless they follow the actor already."""
    following = db.session.get(Follow, (user.id, actor.id)) is not None
    actions = [] if following else [{
        "label": "Follow back",
        "url": url_for("example.follow_back", user_id=actor.id),
        "method": "POST",
    }]
    _notify(
        user.id, NoticeType.FOLLOW, actor,
        subject=f"{actor.name} follows you", content="",
        url=url_for("example.user", user_id=actor.id), actions=actions,
    )


def group_created(group: Group) -> None:
    """Make the group's topic with the owner subscribed; OWNER to the owner."""
    notices.topics.create(group_topic(group), f"members of {group.name}", commit=False)
    notices.topics.subscribe(group_topic(group), user_id=group.owner_id, commit=False)
    notice_event(
        group.owner_id, OWNER,
        subject=f"You created the group {group.name}",
        content="Members hear about every post in it.",
        url=url_for("example.group", group_id=group.id),
        commit=False,
    )


def joined(group: Group, actor: User) -> None:
    """Subscribe the new member to the group's topic; GROUP to the others."""
    notices.topics.subscribe(group_topic(group), user_id=actor.id, commit=False)
    notices.publish(
        group_topic(group),
        GROUP,
        subject=f"{actor.name} joined {group.name}",
        url=url_for("example.group", group_id=group.id),
        actor=actor,
        exclude=actor.id,
        commit=False,
    )


def left(group: Group, actor: User) -> None:
    notices.topics.unsubscribe(group_topic(group), user_id=actor.id, commit=False)


def watch(post: Post, user: User, on: bool) -> None:
    """Start or stop watching a post: a subscription to its topic, made on first use."""
    name = post_topic(post)
    if on:
        if notices.topics.get(name) is None:
            notices.topics.create(name, f"comments on “{post.title[:100]}”", commit=False)
        notices.topics.subscribe(name, user_id=user.id, commit=False)
    elif notices.topics.get(name) is not None:
        notices.topics.unsubscribe(name, user_id=user.id, commit=False)


def watcher_ids(post: Post) -> list[int]:
    if notices.topics.get(post_topic(post)) is None:
        return []
    users, _devices = notices.topics.subscribers(post_topic(post))
    return [int(u) for u in users]


def members(group: Group) -> list[int]:
    return list(
        db.session.scalars(sa.select(Membership.user_id).where(Membership.group_id == group.id))
    )
