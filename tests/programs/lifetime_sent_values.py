"""A value sent into a generator lives as long as the generator holds it, no longer: it is
freed when the program drops the generator."""

import weakref


class Amount:
    def __init__(self, amount):
        self.amount = amount


def summer():
    total = 0
    while True:
        value = yield total
        total += value.amount


def main():
    adding = summer()
    next(adding)
    amount = Amount(3)
    weakref.finalize(amount, print, "sent value finalized")
    adding.send(amount)
    del amount
    print("sent value dropped")
    del adding
    print("generator dropped")


main()
