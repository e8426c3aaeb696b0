"""One ordered, live display of sync jobs' progress on stderr (`sync`, `demo`).

Jobs of several tenants run on worker threads at once; their events arrive interleaved. Each event
goes through one lock, so what is printed is in the order things happened:
- a step's end (and, off a terminal, its start) is a permanent line: `[Org] invoices: success, 14,098 rows`;
- on a terminal, below those lines, a block of one line per job under way is redrawn in place:
  `[Org] 3/9 invoices  page 12: 1,180 invoices`, or `[Org] 8/9 journals [####....] 2,300 / ~27,700, about 4 min left`;
- elsewhere (a pipe, CI, a log file) no cursor tricks: the line of a step under way is printed at
  most every `every` seconds per tenant, so a long journals step still shows it is moving.
A job's end is one permanent line too (`[Org] done in 2 min 10 s`).
When Xero cannot be reached, its sentence (what to start, what to check) is printed once, before the
step that found out; every later mention of it, for any tenant, reads `Xero unreachable (see above)`.
"""
from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import Callable, Mapping, TextIO

from ..pipeline.progress import JOB_ENDED, ProgressEvent

ENDED = ("success", "partial", "failed", "skipped")
SAID_ABOVE = "Xero unreachable (see above)"


def duration(seconds: float | None) -> str:
    """`45 s`, `4 min`, `1 h 05 min`: how long, for a person."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m} min" + (f" {r:02d} s" if r and m < 5 else "")
    h, r = divmod(s, 3600)
    return f"{h} h {r // 60:02d} min"


def running_text(ev: ProgressEvent) -> str:
    """What a step under way is doing: count / total and the time left when they are known."""
    step = ev.step or ""
    count, total = ev.count, ev.total
    if count is not None and total:
        est = "~" if ev.estimated else ""
        text = f"{step}: {int(count):,} / {est}{int(total):,}"
        if ev.eta_seconds:
            text += f", about {duration(ev.eta_seconds)} left"
        return text
    msg = ev.message or f"{step}: working"
    return msg if not step or msg.startswith(step) else f"{step}: {msg}"


class LiveProgress:
    """The `echo` of a worker pool: call it with progress events; `close()` when the jobs ended."""

    def __init__(self, names: Mapping[str, str] | None = None, *, stream: TextIO | None = None, tty: bool | None = None,
                 quiet: bool = False, every: float = 5.0, now: Callable[[], float] = time.monotonic,
                 width: int | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = quiet
        self.names = names or {}
        self.every = every
        self.now = now
        self.width = width
        self.lock = threading.Lock()
        self.active: dict[str, str] = {}  # tenant -> its line in the live block (insertion order kept)
        self.started: dict[str, float] = {}
        self.last_plain: dict[str, tuple[float, str | None]] = {}  # tenant -> (when, step) of its last line off a terminal
        self.position: dict[str, tuple[str | None, int, int]] = {}  # tenant -> (step, its number, steps in the plan)
        self.drawn = 0  # lines of the live block on screen now
        self.said: set[str] = set()  # sentences printed once already (Xero unreachable)

    def label(self, tenant_id: str) -> str:
        name = self.names.get(tenant_id) or (tenant_id or "")[:8]
        return name if len(name) <= 24 else name[:23] + "…"

    # -- events ---------------------------------------------------------------------------------
    def __call__(self, ev: ProgressEvent) -> None:
        if self.quiet:
            return
        tenant = ev.tenant_id
        status = ev.status
        head = f"[{self.label(tenant)}]"
        with self.lock:
            self.started.setdefault(tenant, self.now())
            permanent: list[str] = []
            sentence = ev.unreachable
            if sentence and sentence not in self.said:
                self.said.add(sentence)
                permanent.append(sentence)
            if status in JOB_ENDED and ev.job_ended:
                took = duration(self.now() - self.started.pop(tenant, self.now()))
                why = f": {self.once(ev.message)}" if ev.message and status != "done" else ""
                permanent.append(f"{head} {status} in {took}{why}")
                self.active.pop(tenant, None)
                self.last_plain.pop(tenant, None)
                self.position.pop(tenant, None)
            elif status in ENDED:
                said = ev.message or f"{ev.step}: {status}"
                line = f"{head} {self._position(ev)}{said}"
                permanent.append(line)
                self.active[tenant] = line
                self.last_plain[tenant] = (self.now(), ev.step)
            else:  # running, waiting, a followed job's news
                line = f"{head} {self._position(ev)}{self._bar(ev)}{running_text(ev)}"
                self.active[tenant] = line
                when, step = self.last_plain.get(tenant, (-1e9, None))
                news = status == "waiting" or step != ev.step or (ev.message or "").endswith(": starting")
                if not self.tty and (news or self.now() - when >= self.every):
                    permanent.append(line)
                    self.last_plain[tenant] = (self.now(), ev.step)
            self._render(permanent)

    def once(self, text: str) -> str:
        """`text`, or a pointer to it when it was printed already."""
        return SAID_ABOVE if text in self.said else text

    def say(self, line: str) -> None:
        """A permanent line of the caller's own (joined a job, stopping), above the live block."""
        with self.lock:
            self._render([line])

    def close(self) -> None:
        """Take the live block off the screen (the summary follows it)."""
        with self.lock:
            self.active.clear()
            self._render([])

    # -- drawing --------------------------------------------------------------------------------
    def _position(self, ev: ProgressEvent) -> str:
        """`3/9 `: the step's place in the tenant's plan (start and end events carry it)."""
        tenant, step = ev.tenant_id, ev.step
        if ev.index and ev.steps:
            self.position[tenant] = (step, ev.index, ev.steps)
        known = self.position.get(tenant)
        return f"{known[1]}/{known[2]} " if known and known[0] == step else ""

    def _bar(self, ev: ProgressEvent) -> str:
        if not self.tty:
            return ""
        count, total = ev.count, ev.total
        frac = (count / total) if count is not None and total else None
        if frac is None:
            return ""
        n = int(max(0.0, min(1.0, frac)) * 16)
        return "[" + "#" * n + "." * (16 - n) + "] "

    def _fit(self, line: str) -> str:
        width = self.width or shutil.get_terminal_size((100, 20)).columns
        return line if len(line) < width else line[: max(width - 2, 10)] + "…"

    def _render(self, permanent: list[str]) -> None:
        out = []
        if self.tty:
            # Up over the block and clear to the end of the screen, then the new permanent lines,
            # then the block again: nothing is ever printed in the middle of a redrawn line.
            if self.drawn:
                out.append(f"\033[{self.drawn}F\033[J")
            out += [line + "\n" for line in permanent]
            block = [self._fit(line) for line in self.active.values()]
            out += [line + "\n" for line in block]
            self.drawn = len(block)
        else:
            out += [line + "\n" for line in permanent]
        if out:
            self.stream.write("".join(out))
            self.stream.flush()
