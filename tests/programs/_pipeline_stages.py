"""Generator stages imported by asyncio_pipeline.py: a pipeline in a module of its own."""


def read_lines(text):
    for line in text.splitlines():  # noqa: UP028 - one yield per line, as people write it
        yield line


def numbers(lines):
    for line in lines:
        if line.strip():
            yield int(line)


def running_total():
    total = 0
    while True:
        value = yield total
        total += value
