"""The sink the in-process benchmarks record into: each batch made into the pipe's frame as the
child makes it (the buffers it hands to one writev), keeping only the counts."""

from __future__ import annotations

from loopscope.tracer.events import Batch
from loopscope.tracer.stream import batch_parts


class EncodingSink:
    def __init__(self) -> None:
        self.bytes_written = 0
        self.events = 0

    def write_batch(self, batch: Batch) -> None:
        self.bytes_written += sum(memoryview(part).nbytes for part in batch_parts(*batch))
        self.events += len(batch.columns[0])
