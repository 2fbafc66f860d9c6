"""A generator pipeline whose last stage raises: the traceback must start at this file."""


def parse(lines):
    for line in lines:
        yield int(line)


def total(values):
    return sum(values)


print(total(parse(["1", "2", "three"])))
