"""`python -m loopscope`: the same as the `loopscope` command."""

from loopscope.ui.start import command

command()
