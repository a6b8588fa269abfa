"""The send loop's throttle on an injected clock: how long provider trouble makes a send wait, with the
default settings, and when it pauses (issue 20: timeouts, the probe, bursts of 5xx, the pause's message)."""

from __future__ import annotations

from newsletter.config import SendSettings
from newsletter.providers.base import Capabilities
from newsletter.sending.throttle import TIMEOUT_GROWTH, Throttle

SENDGRID = Capabilities(max_batch=1000, max_concurrency=10)


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, timeout: float = 30.0, **settings: float) -> Throttle:
    return Throttle(SendSettings(batch_size=500, **settings), SENDGRID, timeout, clock=clock,  # type: ignore[arg-type]
                    wall=lambda: 1_765_000_000.0)


def test_after_a_timeout_the_next_request_waits_longer_alone_once_a_probe_is_answered():
    clock = Clock()
    t = throttle(clock, timeout=1.0)
    t.answered(0.1)
    assert t.limit == 2
    t.timed_out("no answer within 1 s", 1.0)
    assert t.slots([]) == 0 and t.may_probe()  # nothing carrying mail until the provider answers
    assert t.probe_started() == 2.0  # the probe already waits longer
    t.probed("no answer within 2 s", None, 2.0)  # no answer at all
    clock.now = t.hold_until
    assert t.may_probe() and t.probe_started() == 4.0
    t.probed(None, None, 4.0)
    assert t.slots([]) == 1 and t.timeout == 4.0  # one request, with the grown timeout
    assert t.slots([(clock.now, 4.0)]) == 0  # ... and only one until it is answered
    t.answered(3.0)  # 3 s answers: the grown timeout stays
    assert t.timeout == 4.0 and t.limit == 2
    t.answered(0.2)
    t.answered(0.2)
    assert t.timeout == 1.0  # quick answers bring it back to the configured one


def test_the_timeout_grows_to_a_stated_ceiling():
    clock = Clock()
    t = throttle(clock, timeout=10.0)
    for _ in range(10):
        t.timed_out("no answer", t.timeout)
    assert t.timeout == TIMEOUT_GROWTH * 10.0
    small_outage = throttle(clock, timeout=10.0, outage_seconds=25.0)
    for _ in range(10):
        small_outage.timed_out("no answer", small_outage.timeout)
    assert small_outage.timeout == 25.0  # never longer than the outage that would pause the send


def test_any_http_answer_to_the_probe_counts_as_reachable():
    for status in (401, 404, 500):
        t = throttle(Clock())
        t.timed_out("no answer within 30 s", 30.0)
        t.probe_started()
        t.probed(f"SendGrid answered HTTP {status}", status, 60.0)
        assert not t.probing and t.slots([]) == 1, status


def test_a_burst_of_30_server_errors_is_retried_within_seconds_and_never_pauses():
    """With the default settings (before: a back-off growing to 60 s, 10 minutes and two pauses)."""
    clock = Clock()
    t = throttle(clock)
    waited = 0.0
    for _ in range(30):
        delay = t.failed("SendGrid had a server error (HTTP 500)", 500, None)
        assert 0 < delay <= 5.0
        assert t.slots([]) == 0
        clock.now = t.hold_until
        waited += delay
        assert t.slots([]) == 2  # retries are not one at a time: a 5xx delivered nothing
        assert not t.outage()
    assert waited <= 150.0
    t.answered(0.2)
    assert not t.trouble and t.limit == 3


def test_the_pause_comes_after_outage_seconds_and_says_what_was_seen():
    clock = Clock()
    t = throttle(clock)
    t.timed_out("no answer within 30 s", 30.0)
    t.probed(None, 404, 60.0)
    for _ in range(11):
        t.timed_out("no answer within 60 s", 60.0)
    t.probed("no answer within 120 s", None, 120.0)
    t.failed("SendGrid had a server error (HTTP 500): internal server error", 500, None)
    clock.now += 299.0
    assert not t.outage() and t.outage_at() == clock.now + 1.0
    clock.now += 1.0
    assert t.outage()
    assert t.pause_message() == (
        "no request was accepted for 300 s; seen since the last accepted one: 12 timeouts, "
        "1 probe without an answer, 1 answer HTTP 500; "
        "last at 05:46:40 UTC: SendGrid had a server error (HTTP 500): internal server error")


def test_no_trouble_no_pause():
    clock = Clock()
    t = throttle(clock)
    clock.now += 10_000
    assert not t.outage() and t.outage_at() is None
