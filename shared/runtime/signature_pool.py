"""Event signature checks in worker processes, verdicts in input order (ADR 0010).

An Ed25519 check costs tens of µs of pure CPU and holds the GIL, so a component that admits
events one by one is capped by one core's worth of checks. `SignaturePool` spreads a batch
over N processes and hands back one verdict per event, in input order, so the caller applies
every other rule (admission order, dedupe, cut policy) exactly as it would in process; only
*where* the signature was checked changes, never the verdict or its wording.

How it stays cheap and safe:
- A batch is sent as one chunk per worker (signer DID, signing bytes, signature: not the
  event), so IPC costs a few µs per event, not a round trip each; each worker keeps
  `shared.crypto`'s VerifyKey cache per DID across chunks.
- Workers are started with `forkserver` (a clean single-threaded server process forks them),
  never a plain fork of a process already running librdkafka's threads.
- Each worker has its own pipe; a sender thread writes requests so that a large request never
  blocks the caller while a worker waits to hand back an earlier result. Results are read by
  the caller, waiting on the pipe *and* the process sentinel: a worker that dies surfaces as
  `SignaturePoolError`, never a hang. A worker whose parent is gone sees its pipe close and
  exits (a `kill -9`'d sealer leaves no orphans behind).
- Requests may be abandoned (a sealer that lost its lease drops the batch in flight): their
  results are read and discarded before the next ones, so nothing is mixed up.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import signal
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Final, NamedTuple

from shared.crypto import SignatureError, verify_signature
from shared.envelope import ParsedEvent, signature_rejection, verify_event
from shared.errors import CareLedgerError

__all__ = [
    "SignatureFault",
    "SignatureInput",
    "SignaturePool",
    "SignaturePoolError",
    "Verdict",
    "VerdictCheck",
    "check_signatures",
    "signature_input",
]

log = logging.getLogger(__name__)

_START_METHOD: Final = "forkserver"
_STOP: Final = None  # the request that tells a worker to exit


class SignaturePoolError(CareLedgerError):
    """The pool cannot answer: a worker died, or the pool is closed. Not transient: the
    component stops and its supervisor restarts it (ADR 0006)."""


class SignatureInput(NamedTuple):
    """What one check needs, and nothing else of the event: the signer and the bytes."""

    signer: str
    signing_bytes: bytes
    signature: bytes


class SignatureFault(NamedTuple):
    """A failed check: the `SignatureError`'s message and evidence, which pickle as plain data."""

    message: str
    context: dict[str, Any]

    def error(self) -> SignatureError:
        """The `SignatureError` the check raised, rebuilt."""
        return SignatureError(self.message, **self.context)


#: None: the signature verifies; a fault otherwise.
Verdict = SignatureFault | None


def signature_input(event: ParsedEvent) -> SignatureInput:
    """The part of `event` a signature check reads."""
    return SignatureInput(event.signer, event.signing_bytes, event.signature)


def check_signatures(inputs: Sequence[SignatureInput]) -> list[Verdict]:
    """One verdict per input, in order: what each worker runs on its chunk (and what a pool of
    one would do in process)."""
    verdicts: list[Verdict] = []
    for signer, signing_bytes, signature in inputs:
        try:
            verify_signature(signer, signing_bytes, signature)
        except SignatureError as exc:
            verdicts.append(SignatureFault(exc.message, exc.context))
        else:
            verdicts.append(None)
    return verdicts


def _serve(connection: Connection) -> None:
    """A worker: answer chunks until told to stop or the parent's end of the pipe closes."""
    # Ctrl-C (or a signal to the whole process group) is the parent's to handle: it stops
    # the workers in order, and a worker outlives it by no more than its pipe does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if request is _STOP:
            return
        connection.send(check_signatures(request))


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    connection: Connection
    #: Requests sent and not yet answered, oldest first: the ticket each answer belongs to.
    waiting: deque[_Ticket] = field(default_factory=deque)


@dataclass(eq=False)
class _Ticket:
    """One submitted batch: which worker got which slice, and the answers so far."""

    slices: list[tuple[_Worker, int, int]]  # (worker, start, stop) in the batch
    answers: dict[int, list[Verdict]] = field(default_factory=dict)  # by slice number
    abandoned: bool = False


class PendingVerdicts:
    """The verdicts of one submitted batch, to `result()` when needed (or `abandon`)."""

    def __init__(self, pool: SignaturePool, ticket: _Ticket) -> None:
        self._pool = pool
        self._ticket = ticket

    def result(self) -> list[Verdict]:
        """Wait for every slice; raise `SignaturePoolError` if a worker died meanwhile."""
        return self._pool._collect(self._ticket)

    def abandon(self) -> None:
        """Never call `result`: the answers are read and dropped when they come."""
        self._ticket.abandoned = True


class SignaturePool:
    """N worker processes checking event signatures; `submit` a batch, verdicts in order.

    Used from one thread (the component's loop); `close` may come from another at shutdown.
    Workers start at the first `submit`.
    """

    def __init__(self, workers: int, *, join_timeout: float = 5.0) -> None:
        if workers < 1:
            raise ValueError(f"a pool needs at least one worker, not {workers}")
        self.size = workers
        self._join_timeout = join_timeout
        self._workers: list[_Worker] = []
        self._requests: queue.SimpleQueue[tuple[Connection, object] | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._closed = False
        self._broken: str | None = None  # why, once a worker died: no answer is trusted after
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the workers now (else the first `submit` does); idempotent."""
        with self._lock:
            if self._closed:
                raise SignaturePoolError("the signature pool is closed")
            if self._workers:
                return
            context = multiprocessing.get_context(_START_METHOD)
            # The fork server imports this module (and PyNaCl) once, so each worker it forks
            # starts warm. (Workers still re-import a caller's main *script*, as spawn does:
            # it must guard its start with `if __name__ == "__main__"`; `python -m` mains
            # of packages are not re-imported.)
            context.set_forkserver_preload([__name__])
            for number in range(self.size):
                ours, theirs = context.Pipe(duplex=True)
                process = context.Process(
                    target=_serve,
                    args=(theirs,),
                    name=f"careledger-verify-{number + 1}",
                    daemon=True,  # never outlives the component's process
                )
                process.start()
                theirs.close()
                self._workers.append(_Worker(process, ours))
            self._sender = threading.Thread(target=self._send, name="verify-pool", daemon=True)
            self._sender.start()
            log.info("signature pool started", extra={"workers": self.size})

    @property
    def worker_pids(self) -> list[int]:
        """The workers' process ids (empty before `start`)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def submit(self, inputs: Sequence[SignatureInput]) -> PendingVerdicts:
        """Send `inputs` to the workers, one contiguous slice each; returns at once."""
        self.start()
        if self._broken is not None:
            raise SignaturePoolError(self._broken)
        slices: list[tuple[_Worker, int, int]] = []
        count = min(len(inputs), len(self._workers))
        for number in range(count):
            start = number * len(inputs) // count
            stop = (number + 1) * len(inputs) // count
            slices.append((self._workers[number], start, stop))
        ticket = _Ticket(slices=slices)
        for worker, start, stop in slices:
            worker.waiting.append(ticket)
            # Plain tuples: a NamedTuple pickles by class, about ten times slower.
            chunk = [
                (signer, signed, signature) for signer, signed, signature in inputs[start:stop]
            ]
            self._requests.put((worker.connection, chunk))
        return PendingVerdicts(self, ticket)

    def _collect(self, ticket: _Ticket) -> list[Verdict]:
        for number, (worker, _, _) in enumerate(ticket.slices):
            while number not in ticket.answers:
                self._receive(worker)
        out: list[Verdict] = []
        for number in range(len(ticket.slices)):
            out.extend(ticket.answers[number])
        return out

    def _receive(self, worker: _Worker) -> None:
        """Read the worker's next answer into the ticket it belongs to (oldest first)."""
        if self._closed:
            raise SignaturePoolError("the signature pool is closed")
        if self._broken is not None:
            raise SignaturePoolError(self._broken)
        ready = wait([worker.connection, worker.process.sentinel])
        try:
            if worker.connection not in ready:
                raise EOFError
            answer: list[Verdict] = worker.connection.recv()
        except (EOFError, OSError) as exc:
            worker.process.join(timeout=1.0)  # its exit code, if it is ending
            code = worker.process.exitcode
            self._broken = f"signature worker {worker.process.name} died (exit code {code})"
            raise SignaturePoolError(self._broken) from exc
        ticket = worker.waiting.popleft()
        number = next(i for i, (w, _, _) in enumerate(ticket.slices) if w is worker)
        if not ticket.abandoned:
            ticket.answers[number] = answer

    def _send(self) -> None:
        """The sender thread: write requests in order; a dead worker is the reader's to see."""
        while (request := self._requests.get()) is not None:
            connection, payload = request
            # A worker gone (or its pipe closed at `close`: ValueError) is `_receive`'s to
            # see, by the worker's sentinel.
            with contextlib.suppress(OSError, ValueError):
                connection.send(payload)

    def close(self) -> None:
        """Stop the workers (politely, then by force) and the sender; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            self._requests.put((worker.connection, _STOP))
        self._requests.put(None)
        if self._sender is not None:
            self._sender.join(timeout=self._join_timeout)
        for worker in workers:
            worker.process.join(timeout=self._join_timeout)
            if worker.process.is_alive():
                log.warning(
                    "signature worker did not stop: killed", extra={"pid": worker.process.pid}
                )
                worker.process.kill()
                worker.process.join(timeout=self._join_timeout)
            worker.connection.close()
            worker.process.close()

    def __enter__(self) -> SignaturePool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class VerdictCheck:
    """A `SignatureCheck` (shared.admission) that answers from a verdict reached earlier.

    The caller announces each event and its verdict just before admitting it (`expect`);
    admission then asks about that event at most once. Any other event is verified here, in
    process, so nothing goes unchecked. A fault is raised exactly as `verify_event` would.
    """

    def __init__(self) -> None:
        self._event: ParsedEvent | None = None
        self._verdict: Verdict = None

    def expect(self, event: ParsedEvent, verdict: Verdict) -> None:
        self._event, self._verdict = event, verdict

    def __call__(self, event: ParsedEvent) -> None:
        if event is not self._event:
            verify_event(event)
            return
        verdict, self._event, self._verdict = self._verdict, None, None
        if verdict is not None:
            raise signature_rejection(event, verdict.error())
