"""``python -m example_app``: create the database, seed the demo users on first
start, and run the development server on 127.0.0.1 (port from ``PORT``, default 5000).
"""

from __future__ import annotations

import logging
import os
import threading

from notice.sweeper import run_worker

from . import create_app
from .seed import DEMO_USERS, seed


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    app = create_app()
    port = int(os.environ.get("PORT", "5000"))
    seeded = seed(app)
    with app.app_context():
        where = app.extensions["sqlalchemy"].engine.url.render_as_string(hide_password=True)
    print(f"Database: {where}" + (" (demo data created)" if seeded else ""), flush=True)
    print("Demo logins:", flush=True)
    for email, password, _name, admin in DEMO_USERS:
        print(f"  {email} / {password}" + ("  (admin)" if admin else ""), flush=True)
    print(f"Open http://127.0.0.1:{port}/", flush=True)
    # what waits for its time (a group of likes at its window's end, retries) is sent
    # by the sweeper; in production that is `flask notice worker`, here a thread
    stop = threading.Event()
    threading.Thread(target=run_worker, args=(app, 5.0, stop), daemon=True).start()
    try:
        # threaded: each live stream (SSE) holds a connection open
        app.run(host="127.0.0.1", port=port, threaded=True, use_reloader=False)
    finally:
        stop.set()


if __name__ == "__main__":
    main()
