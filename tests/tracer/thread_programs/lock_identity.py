"""What a program may ask of threading.Lock: on 3.13+ it is a type, named in isinstance()."""

import threading

lock = threading.Lock()
facts: list[object] = []
if isinstance(threading.Lock, type):
    facts += [threading.Lock.__name__, isinstance(lock, threading.Lock),
              issubclass(type(lock), threading.Lock), isinstance(object(), threading.Lock)]
with lock:
    facts.append(lock.locked())
facts.append(lock.locked())
print(facts)
