"""Demo data for the first start: Ana (an admin) and Ben, a few posts, a group.

The data is made through the same event functions as the views, so the first
inboxes already hold a few notices.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from . import events
from .models import Follow, Group, Membership, Post, User, db

#: (email, password, name, is_admin); printed at start-up, for local use only
DEMO_USERS = [
    ("ana@example.org", "ana-demo-pw", "Ana", True),
    ("ben@example.org", "ben-demo-pw", "Ben", False),
]


def seed(app: Flask) -> bool:
    """Create the tables, and the demo data unless there are users; return True if
    it seeded."""
    with app.app_context(), app.test_request_context():
        db.create_all()
        if db.session.scalar(sa.select(sa.func.count()).select_from(User)):
            return False
        ana, ben = (
            User(email=email, name=name, is_admin=admin)
            for email, _password, name, admin in DEMO_USERS
        )
        for user, (_email, password, _name, _admin) in zip((ana, ben), DEMO_USERS, strict=True):
            user.set_password(password)
        db.session.add_all([ana, ben])
        db.session.flush()
        db.session.add(Follow(follower_id=ben.id, followed_id=ana.id))
        events.followed(ana, ben)
        hikers = Group(name="Hikers", owner=ana)
        db.session.add(hikers)
        db.session.flush()
        db.session.add(Membership(group_id=hikers.id, user_id=ana.id))
        events.group_created(hikers)
        db.session.add(Membership(group_id=hikers.id, user_id=ben.id))
        events.joined(hikers, ben)
        for author, title, body, group in [
            (ben, "Weekend photos", "Three days in the mountains, no signal at all.", None),
            (ana, "Release notes for 0.2", "Bells now ring in every tab.", None),
            (ana, "Saturday hike?", "Meet at the station at 8.", hikers),
        ]:
            post = Post(author=author, title=title, body=body, group=group)
            db.session.add(post)
            db.session.flush()
            events.post_created(post)
        db.session.commit()
        return True
