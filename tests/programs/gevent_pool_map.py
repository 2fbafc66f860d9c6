"""A gevent Pool's map, imap and imap_unordered (as gevent's documentation uses them): the
greenlets that run the function are the ones named for it."""

import gevent
from gevent.pool import Pool


def square(n):
    gevent.sleep(0.001 * n)
    return n * n


pool = Pool(2)
print(pool.map(square, range(3)))
print(list(pool.imap(square, range(3))))
print(sorted(pool.imap_unordered(square, range(3))))
