"""Stopping a training run cleanly: SIGTERM (how cloud and cluster schedulers preempt) and
Ctrl-C (SIGINT) are remembered, and the loop stops at the next step boundary after saving a
checkpoint there, so rerunning the same command resumes exactly where it stopped. A second
Ctrl-C stops at once (the last periodic checkpoint is then the resume point).

Under `--distributed` every process checks, after each step, whether any process was asked to
stop, so all of them save and stop at the same step.
"""

from __future__ import annotations

import signal
import threading

from sfm_jax.train.hosts import max_over_processes

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number


class Interrupted(Exception):  # noqa: N818 - it is an event, not an error
  """Training stopped on a signal after saving a checkpoint at `step`."""

  def __init__(self, signum: int, step: int, message: str):
    super().__init__(message)
    self.signum, self.step = signum, step

  @property
  def exit_status(self) -> int:
    return EXIT_STATUS.get(self.signum, 1)


class StopRequests:
  """A context that turns SIGTERM and the first SIGINT into a request (`requested`) instead of
  an exception; the previous handlers come back on exit. Outside the main thread (where
  signals cannot be caught) it does nothing."""

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, object] = {}

  def install(self) -> StopRequests:
    """Catches SIGTERM and SIGINT from now on (main thread only)."""
    if threading.current_thread() is threading.main_thread():
      for signum in EXIT_STATUS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def uninstall(self) -> None:
    """Gives the signals back to their previous handlers."""
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def __enter__(self) -> StopRequests:
    return self.install()

  def __exit__(self, *exc) -> None:
    self.uninstall()

  def _handle(self, signum, frame) -> None:
    if self.signum == signal.SIGINT and signum == signal.SIGINT:
      raise KeyboardInterrupt  # the second Ctrl-C: stop now
    self.signum = signum
    if signum == signal.SIGINT:
      print("\nstopping after this step (a checkpoint is saved; Ctrl-C again to stop now)",
            flush=True)

  def agreed(self) -> int | None:
    """The signal that stops every process at this step, or None: under several processes,
    any one's request stops them all (every process must call this at every step)."""
    return max_over_processes(self.signum or 0) or None
