"""Native mobile push: the device table, registering devices, and the FCM/APNs settings.

- :mod:`~notice.mobile.models`: the ``notice_device`` table (one app install's token)
- :mod:`~notice.mobile.devices`: register, list and remove a user's devices
- :mod:`~notice.mobile.config`: the ``NOTICE_FCM_*``/``NOTICE_APNS_*`` checks

The senders are :class:`notice.senders.fcm.FCMSender` and
:class:`notice.senders.apns.APNsSender`; their queries are in :mod:`notice.store.devices`.
"""
