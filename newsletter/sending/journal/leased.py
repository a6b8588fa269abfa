"""The send loop's side of a journal several senders share (PostgreSQL): batches claimed with a lease.

Every sender of a send (the process that started it, and each worker that joined
it: ``send --resume --worker``) takes its recipients with the same statement:
``SELECT ... FOR UPDATE SKIP LOCKED`` picks pending rows no other sender is taking at
that moment, and the same transaction marks them ``in_flight`` with the label of a
batch record of this sender (``worker``: its run's uid, and ``lease_until``). A claimed
batch whose request has not started is ``claimed``; it becomes ``in_flight`` in the
durable commit just before its request, as with one sender, and is settled once every
row it holds is settled or released. Rows are marked one by one here (one sender's
journal records a batch only): that mark is what keeps every other sender off them.

A sender that dies leaves only its own batches behind. Another sender (or the next
run) settles them as soon as it is sure their owner is gone, or once their lease has
run out:

- certainly gone: each sender holds a PostgreSQL advisory lock on its run's uid for as
  long as its session lives (``JournalDB.hold``); the server lets go of it when the
  process dies, kill -9 included, so a lock another session can take names a dead owner;
- a machine that vanished without closing its connection keeps its session (and its
  lock) until the server notices; its lease runs out instead (``LEASE_SECONDS``,
  renewed by the living sender as its loop goes).

Then, as with one sender: a ``claimed`` batch's rows go back to pending (no request
was made for them); an ``in_flight`` batch's rows become ``unknown`` (of a sequential
request, only the first unanswered one; the others go back to pending), for
``resolve`` to settle. A sender whose claim was settled that way learns it before its
request: ``mark_in_flight`` commits only a batch that is still its own.

A claim holds the pacing lock shared (``PACING_LOCK``), so a pacing decision, which
takes it alone, sees each claim wholly before or after it (``sending/pacing_run.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ...providers.base import Status
from .database import sender_lock_name
from .flight import SEQUENTIAL, InFlight, Outcomes, id_rows
from .runs import DIED

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .core import JournalCore, Row
    from .database import JournalDB

LEASE_SECONDS = 120.0  # a batch of a sender that stopped renewing it is settled by another after this
SWEEP_SECONDS = 5.0  # how often a sender looks for batches that dead senders left
PACING_LOCK = "newsletter pacing"  # one for the whole journal: the caps count every send in it
IN_PROGRESS = "('claimed', 'in_flight')"


class _ClaimLost(Exception):
    """Private: a batch was settled by another sender before its request (its lease had run out)."""


class LeasedFlight(InFlight):
    """This sender's claimed and in-flight batches of one send, in a journal shared with other senders."""

    def __init__(self, journal: JournalCore, *, clock: Callable[[], float] = time.time,
                 lease_seconds: float = LEASE_SECONDS):
        super().__init__(journal)
        self.clock = clock  # leases are times on this clock (tests move it instead of waiting)
        self.lease_seconds = lease_seconds
        self._claims: set[str] = set()  # labels of this sender's batches claimed, their request not started
        self._numbers = 0
        self._renew_at = 0.0
        self._sweep_at = 0.0
        self._drained = False  # found nothing to claim (and looked for dead senders' batches) since the last claim

    @property
    def worker(self) -> str:
        """This sender's name on its batches and its lock: its run's uid."""
        return self.journal.run_uid

    def announce(self) -> None:
        """This sender's run has begun: hold its lock for as long as its session lives (its sign of life)."""
        self.journal.db.hold(sender_lock_name(self.worker))

    def _label(self) -> str:
        self._numbers += 1
        return f"{self.journal.own_run}-c{self._numbers}"

    # -- taking recipients -----------------------------------------------------------------------

    def next_pending(self, limit: int, max_attempts: int, after: int = 0) -> list[Row]:
        """Claim up to ``limit`` pending recipients of the send, in order, after row ``after``: nobody else
        takes them while this sender holds them. Having found none from the start of the queue, it first
        settles what dead senders left (their claimed rows may be pending again) and looks once more."""
        rows = self._claim(limit, max_attempts, after)
        if rows:
            self._drained = False
        elif after == 0 and not self._drained:
            self._drained = True
            if self.sweep():
                rows = self._claim(limit, max_attempts, 0)
        return rows

    def _claim(self, limit: int, max_attempts: int, after: int) -> list[Row]:
        from .core import Row

        journal = self.journal
        label = self._label()
        now = self.clock()
        with journal.transaction(durable=False) as db:
            db.serialize(PACING_LOCK, shared=True)
            picked = db.execute(
                "WITH picked AS (SELECT id FROM deliveries WHERE id > ? AND send=? AND status='pending' AND run=? "
                "AND attempts < ? AND not_before <= ? ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) "
                "UPDATE deliveries AS d SET status='in_flight', batch=? FROM picked WHERE d.id = picked.id "
                "RETURNING d.id, d.key, d.email, d.name, d.fields, d.attempts",
                (after, journal.send, journal.run, max_attempts, time.time(), limit, label)).fetchall()
            if picked:
                picked.sort()
                db.execute("INSERT INTO batches (send, run, label, state, ids, size, started, worker, lease_until) "
                           "VALUES (?, ?, ?, 'claimed', ?, ?, ?, ?, ?)",
                           (journal.send, journal.own_run, label, json.dumps([row[0] for row in picked]), len(picked),
                            time.time(), self.worker, now + self.lease_seconds))
        if not picked:
            return []
        self._hold(label, [row[0] for row in picked])
        self._claims.add(label)
        return [Row(i, k, e, n, f or "", a) for i, k, e, n, f, a in picked]

    def _hold(self, label: str, ids: list[int]) -> None:
        flying = self._flying
        for i in ids:
            flying[i] = label
        self._carried[label] = self._carried.get(label, 0) + len(ids)

    def mark_in_flight(self, ids: list[int], batch: str) -> str:
        """Commit that a request for these claimed rows is about to be made, if they are still this sender's
        ("": their lease ran out and another sender settled them; the request must not go). Returns the label
        the request is journaled under: ``batch``, or the claim's own label when the request is the whole claim."""
        journal = self.journal
        labels = {self._flying.get(i) for i in ids}
        if None in labels or not labels <= self._claims:  # never a request for rows this sender does not hold
            return ""
        journal.commit_run()  # the run's first request: the run and its selection go on record first, durably
        claims = sorted(str(label) for label in labels)
        now, lease = time.time(), self.clock() + self.lease_seconds
        if len(claims) == 1 and self._carried[claims[0]] == len(ids) and not batch.endswith(SEQUENTIAL):
            # The usual case, a whole claim: its record becomes the request's, under its own label (the rows
            # keep it: no row is written). Still this sender's if no other has settled the claim meanwhile.
            with journal.transaction() as db:
                mine = db.execute("UPDATE batches SET state='in_flight', started=?, lease_until=? "
                                  "WHERE send=? AND label=? AND state='claimed' AND worker=?",
                                  (now, lease, journal.send, claims[0], self.worker)).rowcount == 1
            if not mine:
                self._forget(ids)
                return ""
            self._claims.discard(claims[0])
            return claims[0]
        emptied = [c for c in claims if self._carried[c] == sum(1 for i in ids if self._flying[i] == c)]
        try:  # part of a claim, or of several, or a sequential request (its label says so): a record of its own
            with journal.transaction() as db:
                db.execute("INSERT INTO batches (send, run, label, state, ids, size, started, worker, lease_until) "
                           "VALUES (?, ?, ?, 'in_flight', ?, ?, ?, ?, ?)",
                           (journal.send, journal.own_run, batch, json.dumps(ids), len(ids), now, self.worker, lease))
                self._close(db, emptied, now)
                moved = db.execute(f"UPDATE deliveries SET batch=? WHERE id IN {db.id_set} AND status='in_flight' "
                                   f"AND batch IN {db.text_set}", (batch, db.ids(ids), db.texts(claims))).rowcount
                if moved != len(ids):
                    raise _ClaimLost
        except _ClaimLost:
            self._forget(ids)
            return ""
        self._forget(ids)
        self._hold(batch, ids)
        return batch

    def _forget(self, ids: Iterable[int]) -> None:
        """These rows are no longer held under the label they had here (moved to a request, or lost)."""
        flying, carried = self._flying, self._carried
        for i in ids:
            label = flying.pop(i, None)
            if label is None:
                continue
            carried[label] -= 1
            if not carried[label]:
                del carried[label]
                self._claims.discard(label)

    # -- outcomes ----------------------------------------------------------------------------------

    def _close(self, db: JournalDB, labels: list[str], now: float) -> None:
        if labels:
            db.execute(f"UPDATE batches SET state='settled', settled=? WHERE send=? AND state IN {IN_PROGRESS} "
                       f"AND worker=? AND label IN {db.text_set}",
                       (now, self.journal.send, self.worker, db.texts(labels)))

    def settle_groups(self, groups: Outcomes) -> None:
        """``InFlight.settle_groups``, for rows this sender holds only: a row another sender settled meanwhile
        (its lease had run out) is not written over, unless it was made unknown in its place."""
        if not groups:
            return
        journal = self.journal
        now = time.time()
        by_batch, over = self._leaving(i for ids in groups.values() for i in ids)
        labels = [label for label in by_batch if label is not None]
        with journal.transaction(durable=False) as db:
            held = db.texts(labels)
            for (status, message_id, reason), ids in groups.items():
                if not ids:
                    continue
                rows, arguments = id_rows(db, ids)
                status = str(status)
                db.execute(
                    "UPDATE deliveries SET status=?, message_id=NULLIF(?, ''), reason=NULLIF(?, ''), updated=?, "
                    "fields=CASE WHEN ? IN ('sent', 'failed') THEN NULL ELSE fields END, settled_run=? "
                    f"WHERE {rows} AND status IN ('in_flight', 'unknown') AND batch IN {db.text_set}",
                    (status, message_id, reason, now, status, journal.own_run, *arguments, held))
            self._close(db, over, now)
        self._left(by_batch)

    def _some_may_wait(self) -> bool:
        """Any sender sharing the send may have put rows back to wait: always look."""
        return True

    def release(self, ids: list[int], reason: str, *, retry_at: float = 0.0, count_attempt: bool = True,
                keep: bool = False) -> None:
        """Put rows back to pending (nothing was delivered), stamped with the batch they leave; ``keep``:
        this sender sends them again at once (the halves of a refused batch), so they stay claimed by it."""
        journal = self.journal
        now = time.time()
        by_batch, over = self._leaving(ids)
        claim = self._label() if keep else None
        mine = [i for label, rows in by_batch.items() if label is not None for i in rows]
        with journal.transaction(durable=False) as db:
            if claim is not None and mine:
                db.execute("INSERT INTO batches (send, run, label, state, ids, size, started, worker, lease_until) "
                           "VALUES (?, ?, ?, 'claimed', ?, ?, ?, ?, ?)",
                           (journal.send, journal.own_run, claim, json.dumps(mine), len(mine), now, self.worker,
                            self.clock() + self.lease_seconds))
            for label, rows in by_batch.items():
                if label is None:
                    continue
                db.execute(
                    "UPDATE deliveries SET status=?, batch=?, reason=NULLIF(?, ''), not_before=?, "
                    f"attempts=attempts+?, updated=? WHERE id IN {db.id_set} AND status='in_flight' AND batch=?",
                    (Status.IN_FLIGHT if claim else Status.PENDING, claim or label, reason, retry_at,
                     1 if count_attempt else 0, now, db.ids(rows), label))
            self._close(db, over, now)
        self._left(by_batch)
        if claim is not None and mine:
            self._hold(claim, mine)
            self._claims.add(claim)

    def give_back(self) -> None:
        """The loop is over: rows claimed but never requested go back to pending for the other senders."""
        claims = sorted(self._claims)
        if not claims:
            return
        ids = [i for i, label in self._flying.items() if label in self._claims]
        now = time.time()
        with self.journal.transaction(durable=False) as db:
            db.execute(f"UPDATE deliveries SET status='pending', batch=NULL WHERE id IN {db.id_set} "
                       f"AND status='in_flight' AND batch IN {db.text_set}", (db.ids(ids), db.texts(claims)))
            self._close(db, claims, now)
        self._forget(ids)

    # -- leases, and senders that died -------------------------------------------------------------

    def renew(self) -> None:
        """Called by the send loop as it goes: renew this sender's lease on its batches now and then, and
        look for batches other senders left behind (dead, or silent past their lease)."""
        now = self.clock()
        if now >= self._renew_at:
            self._renew_at = now + self.lease_seconds / 3
            if self._carried:
                journal = self.journal
                with journal.transaction(durable=False) as db:
                    db.execute(f"UPDATE batches SET lease_until=? WHERE send=? AND worker=? AND state IN {IN_PROGRESS}",
                               (now + self.lease_seconds, journal.send, self.worker))
        if now >= self._sweep_at:
            self.sweep()

    def sweep(self) -> int:
        """Settle the batches of senders that died or went silent past their lease; how many rows it settled."""
        self._sweep_at = self.clock() + SWEEP_SECONDS
        with self.journal.transaction() as db:
            return self._recover_batches(db)

    def recover(self, db: JournalDB) -> None:
        """Inside the transaction that starts or joins a run: settle what dead senders left, and the rows an
        earlier version marked in flight one by one."""
        self._recover_batches(db)
        journal = self.journal
        now = time.time()
        live = f"SELECT b.label FROM batches b WHERE b.send=? AND b.state IN {IN_PROGRESS}"
        # As InFlight.recover: of a sequential request's rows, only the first can have been under way.
        db.execute(
            "UPDATE deliveries SET status='pending', batch=NULL, updated=? WHERE send=? AND status='in_flight' "
            f"AND batch LIKE '%{SEQUENTIAL}' AND batch NOT IN ({live}) AND id > (SELECT MIN(d.id) FROM deliveries d "
            "WHERE d.send=deliveries.send AND d.batch=deliveries.batch AND d.status='in_flight')",
            (now, journal.send, journal.send))
        db.execute(
            "UPDATE deliveries SET status=?, reason=?, updated=?, settled_run=run WHERE send=? AND status=? "
            f"AND (batch IS NULL OR batch NOT IN ({live}))",
            (str(Status.UNKNOWN), DIED, now, journal.send, str(Status.IN_FLIGHT), journal.send))

    def _recover_batches(self, db: JournalDB) -> int:
        journal = self.journal
        now = self.clock()
        alive: dict[str, bool] = {}
        dead = []
        for number, worker, lease_until in db.execute(
                f"SELECT id, worker, lease_until FROM batches WHERE send=? AND state IN {IN_PROGRESS}",
                (journal.send,)).fetchall():
            if worker is not None and worker == self.worker:
                continue
            if worker is None or lease_until is None or float(lease_until) < now:
                dead.append(int(number))  # recorded by a single sender (a copied journal), or its lease ran out
                continue
            if worker not in alive:
                alive[worker] = db.held_elsewhere(sender_lock_name(str(worker)))
            if not alive[worker]:
                dead.append(int(number))
        if not dead:
            return 0
        settled = 0
        wall = time.time()
        for number, label, state, worker, ids in db.execute(
                f"SELECT id, label, state, worker, ids FROM batches WHERE id IN {db.id_set} AND state IN {IN_PROGRESS} "
                "ORDER BY id FOR UPDATE", (db.ids(dead),)).fetchall():
            carried = db.ids(json.loads(ids or "[]"))
            if worker is None:  # one sender's record: its rows are pending, those not stamped with its label carried
                rows = [i for (i,) in db.execute(f"SELECT id FROM deliveries WHERE id IN {db.id_set} AND "
                                                 "status='pending' AND (batch IS NULL OR batch <> ?) ORDER BY id",
                                                 (carried, label)).fetchall()]
            else:
                rows = [i for (i,) in db.execute(f"SELECT id FROM deliveries WHERE id IN {db.id_set} AND "
                                                 "status='in_flight' AND batch=? ORDER BY id",
                                                 (carried, label)).fetchall()]
            if state == "claimed":  # no request was made for them
                unknown, back = [], rows
            elif str(label).endswith(SEQUENTIAL):  # only the first unanswered one can have been under way
                unknown, back = rows[:1], rows[1:]
            else:
                unknown, back = rows, []
            if unknown:
                db.execute("UPDATE deliveries SET status=?, reason=?, updated=?, settled_run=run, batch=? "
                           f"WHERE id IN {db.id_set}", (str(Status.UNKNOWN), DIED, wall, label, db.ids(unknown)))
            if back and worker is not None:
                db.execute(f"UPDATE deliveries SET status='pending', batch=NULL, updated=? WHERE id IN {db.id_set}",
                           (wall, db.ids(back)))
            db.execute("UPDATE batches SET state='settled', settled=? WHERE id=?", (wall, number))
            settled += len(rows)
        return settled
