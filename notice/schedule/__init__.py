"""Scheduling: delayed deliveries and notices (``deliver_at``, ``delay``,
``visible_at``), escalation (``unless_read``), cancelling pending deliveries, and
users' quiet hours. The rows are the delivery engine's own; the sweeper sends what is
due (:mod:`notice.sweeper`)."""
