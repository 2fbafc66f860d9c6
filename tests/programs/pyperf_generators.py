"""pyperformance's generators benchmark: a binary tree walked by recursive generators."""

from _pyperformance import load

bm = load("generators")
print("walked", list(bm.tree(range(15))))
