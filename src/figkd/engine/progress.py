"""What a user sees while an epoch trains: a progress bar on a terminal, a line now and then elsewhere.

``progress`` (config): ``auto`` shows a tqdm bar when stderr is a terminal and, when output goes to a file
or a pipe (a batch job, ``figkd ... > log``, `figkd sweep`'s ``sweep.log``), a line at most every
:data:`LINE_EVERY_S` seconds - ``epoch 2/240: step 100/781 (13%), loss 2.3012, 1234 img/s, 41 s left``;
``on`` always the bar; ``off`` nothing but the line at each epoch's end. Only the main process shows
progress. Reading the loss synchronises with the device, so the bar reads it every :data:`SYNC_EVERY`
steps and the lines only when one is printed.
"""

from __future__ import annotations

import sys
import time

#: Steps between two reads of the loss sums while a progress bar is shown (each read synchronises).
SYNC_EVERY = 25
#: Seconds between two progress lines when output is not a terminal.
LINE_EVERY_S = 30.0


class Progress:
    """Progress of one epoch of ``steps`` steps of ``images_per_step`` images (see the module docstring);
    ``bar``: a tqdm bar, else lines through ``log``."""

    def __init__(self, steps: int, epoch: int, epochs: int, images_per_step: int, *, bar: bool, log=print):
        self.steps, self.epoch, self.epochs, self.images = steps, epoch, epochs, images_per_step
        self.log = log
        self.start = self.last = time.perf_counter()
        self.bar = None
        if bar:
            from tqdm import tqdm
            self.bar = tqdm(total=steps, desc=f"epoch {epoch}/{epochs}", leave=False, unit="step")

    @classmethod
    def open(cls, mode: str, main: bool, steps: int, epoch: int, epochs: int, images_per_step: int,
             log=print) -> Progress | None:
        """The progress of an epoch for the config's ``progress`` ``mode``, or None (off, or not the main
        process)."""
        if mode == "off" or not main:
            return None
        return cls(steps, epoch, epochs, images_per_step, bar=mode == "on" or sys.stderr.isatty(), log=log)

    def update(self, done: int, loss) -> bool:
        """``done`` steps of the epoch are done; ``loss()`` reads the current mean loss (it synchronises).
        Returns True when the loss was read (the moment to check it is finite)."""
        now = time.perf_counter()
        rate = done * self.images / max(now - self.start, 1e-9)
        if self.bar is not None:
            self.bar.update(1)
            if done % SYNC_EVERY:
                return False
            self.bar.set_postfix(loss=f"{loss():.4f}", img_s=f"{rate:.0f}")
            return True
        if now - self.last < LINE_EVERY_S or done == self.steps:
            return False
        self.last = now
        left = (self.steps - done) * (now - self.start) / done
        self.log(f"epoch {self.epoch}/{self.epochs}: step {done}/{self.steps} ({100 * done // self.steps}%), loss "
                 f"{loss():.4f}, {rate:.0f} img/s, {left:.0f} s left")
        return True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
