"""Worker-side load governor: an overloaded engine degrades (fewer steps, then dry) instead of crackling.

Runs in the worker thread only (Engine._run_processors calls ``observe`` after every processor call
and ``idle`` for every stride it plays dry); the callback never sees it. It judges in periods of
about half a second of strides, never on one call, so a single stall (the VM, a page fault) does
not cost the performer a step:

- a period is *overloaded* when a quarter or more of its calls ran past ``late`` of the stride
  budget, or their mean load passed ``high_load``: the step cap drops by one, and from one step the
  engine plays the dry line at the same latency (the model is not called at all). At one step only the
  late calls count: a model that fits its stride at a high mean load (two frames per call at 64% on a
  2-core guest, session 21) is still the model, and the dry line is no better for the performer;
- a period with dropouts at a mean load above ``busy_load`` also costs a step, but never the last
  one: a click now and then from the machine (the VM's timer, another process) is better than dry;
- the cap climbs back by one step after ``calm_periods`` periods with no late call whose mean load,
  scaled to one more step (load x (k + 1) / k, pessimistic: the frontend and stage cost the same at
  any step count), stays below ``low_load``;
- from dry it retries one step after ``retry_s`` of dry play, doubling up to ``max_retry_s`` each time
  the retry is overloaded again; a retry whose first call is late goes straight back to dry, so a
  hopeless model costs one late call (a few clicks) every ``max_retry_s`` at worst;
- a clear overload (a quarter of a period's calls late) is judged as soon as it is clear, not at the
  period's end, so 8 steps at 300% load lose their first step within about 0.1 s.

Worked example (8 ms stride, 62 calls a period): `--steps 8` measured at 150% load -> 7, 6, ... one
step per period (~0.5 s each) until the mean fits, e.g. 3 steps at 57% load; 57% x 4/3 = 76% > 55%,
so it stays at 3. The status line says "OVERLOAD: 2 of 8 steps" for as long as the cap holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GovernorConfig:
    """When to step down and when to step back up; loads are compute time / stride budget."""

    period_s: float = 0.5  # judge over this much audio, never on one call
    late: float = 0.9  # a call using more than this share of its stride is late
    late_share: float = 0.25  # this share of late calls in a period is an overload
    high_load: float = 0.7  # or a mean load above this
    busy_load: float = 0.5  # dropouts at a mean load above this: one step fewer (never to dry)
    low_load: float = 0.55  # step up only if one more step is predicted below this
    calm_periods: int = 4  # periods without a late call before stepping up (~2 s)
    retry_s: float = 2.0  # dry: try one step again after this long
    max_retry_s: float = 30.0  # retries back off up to this


class LoadGovernor:
    """Caps the sampler steps the engine asks of its processor; cap 0 means play dry."""

    def __init__(self, stride_s: float, steps: int, config: GovernorConfig | None = None) -> None:
        self.config = cfg = config or GovernorConfig()
        self.stride_s = stride_s
        self.period = max(8, round(cfg.period_s / stride_s))  # calls (or dry strides) per judgement
        self._enough_late = max(3, math.ceil(cfg.late_share * self.period))
        self.requested = max(1, int(steps))
        self.cap = self.requested
        self.changes = 0  # how many times the cap moved (for tests and the status)
        self._retry = cfg.retry_s
        self._fresh_retry = False  # the current cap came from a retry out of dry
        self._dropouts = 0
        self._reset_period()
        self._calm = 0

    def _reset_period(self) -> None:
        self._n = 0
        self._late = 0
        self._load_sum = 0.0

    def request(self, steps: int) -> int:
        """The user asked for ``steps``: cap at that (optimistic; the next periods correct it)."""
        steps = max(1, int(steps))
        if steps != self.requested:
            self.requested = steps
            self.cap = steps if self.cap > 0 else 0
            self._retry = self.config.retry_s
            self._reset_period()
            self._calm = 0
        return self.cap

    @property
    def degraded(self) -> str:
        """'' when running as asked, else what a status line should say."""
        if self.cap == self.requested:
            return ""
        if self.cap == 0:
            return "OVERLOAD: playing dry (model paused)"
        return f"OVERLOAD: {self.cap} of {self.requested} steps"

    def observe(self, seconds: float, dropouts: int = 0) -> int | None:
        """One processor call took ``seconds`` (``dropouts``: the engine's counter so far); returns the
        new cap when it changes, else None."""
        cfg = self.config
        load = seconds / self.stride_s
        self._n += 1
        self._late += load > cfg.late
        self._load_sum += min(load, 4.0)  # one 100 ms stall must not dominate the mean
        if self._fresh_retry and self._n == 1 and load > cfg.late:  # the retry's first call is late: dry again
            self._fresh_retry = False
            self._retry = min(2.0 * self._retry, cfg.max_retry_s)
            self._reset_period()
            return self._set(0)
        if self._n < self.period and self._late < self._enough_late:  # a clear overload is judged early
            return None
        late_share, mean = self._late / self._n, self._load_sum / self._n
        dropped, self._dropouts = dropouts > self._dropouts, dropouts
        self._reset_period()
        if dropped and mean > cfg.busy_load and self.cap > 1:
            self._calm = 0
            return self._set(self.cap - 1)
        # audit: governor-last-step-on-late-calls
        if late_share >= cfg.late_share or (mean > cfg.high_load and self.cap > 1):
            self._calm = 0
            if self._fresh_retry:  # the retry out of dry failed: wait longer next time
                self._retry = min(2.0 * self._retry, cfg.max_retry_s)
            self._fresh_retry = False
            return self._set(self.cap - 1)
        self._fresh_retry = False
        self._retry = cfg.retry_s if self.cap > 0 else self._retry
        self._calm = self._calm + 1 if late_share == 0 and not dropped else 0
        if (self.cap < self.requested and self._calm >= cfg.calm_periods
                and mean * (self.cap + 1) / self.cap < cfg.low_load):
            self._calm = 0
            return self._set(self.cap + 1)
        return None

    def idle(self) -> int | None:
        """One stride played dry (cap 0); returns 1 when it is time to retry the model."""
        self._n += 1
        if self._n * self.stride_s < self._retry:
            return None
        self._reset_period()
        self._fresh_retry = True
        return self._set(1)

    def _set(self, cap: int) -> int:
        self.cap = max(0, min(cap, self.requested))
        self.changes += 1
        return self.cap
