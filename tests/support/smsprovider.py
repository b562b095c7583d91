"""An SMS provider as an app would write one (the documented interface): it records
what it is given and answers what the test sets."""

from __future__ import annotations

from notice.senders.sms import SmsProvider, SmsReceipt

Recorded = tuple[str, str]


class RecordingProvider(SmsProvider):
    name = "recording"
    #: ``(to, body)`` of every send, across instances
    sent: list[Recorded] = []
    #: what :meth:`send` returns, or raises
    answer: SmsReceipt | Exception = SmsReceipt("m1", "queued")

    def send(self, to: str, body: str) -> SmsReceipt:
        RecordingProvider.sent.append((to, body))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer
