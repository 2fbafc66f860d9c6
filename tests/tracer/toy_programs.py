"""Behaviours for the toy model: each function is a `main(recorder, lane)`."""

from __future__ import annotations

import os
import sys
import time

from tracer.events import Code
from tracer.recorder import Recorder


def main(recorder: Recorder, lane: int) -> None:
    print("hello from the toy")
    for _ in range(3):
        recorder.state(lane, Code.READY)
        recorder.state(lane, Code.RUNNING)
