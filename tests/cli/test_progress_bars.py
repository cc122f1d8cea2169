"""The CLI's progress bars follow what the stages report, a total that grows as work is found included."""

import io

from rich.console import Console
from rich.progress import Progress

from cli.render import RichReporter


def test_a_stage_announced_again_takes_its_grown_total():
    bars = Progress(console=Console(file=io.StringIO()))
    reporter = RichReporter(bars)
    reporter.stage_started("mix: tokens", 3)  # the first file's batches
    reporter.shard_done("mix: tokens", "batch", 256, 256)
    reporter.stage_started("mix: tokens", 7)  # the second file's, added
    reporter.shard_done("mix: tokens", "batch", 100, 100)
    (task,) = bars.tasks
    assert (task.total, task.completed) == (7, 2)
    assert reporter.docs["mix: tokens"] == 356
