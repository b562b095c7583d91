"""Web Push: the subscription table, the endpoint allow-list, VAPID keys.

- :mod:`~notice.push.models`: push subscription and topic tables
- :mod:`~notice.push.config`: the push service allow-list, checked before every POST
- :mod:`~notice.push.vapid`: loading and generating VAPID keys
- :mod:`~notice.push.subscriptions`: subscribe, unsubscribe and resubscribe a browser

The sender itself is :class:`notice.senders.webpush.WebPushSender`.
"""
