"""`python -m loopscope`: the same as the `loopscope` command."""

from loopscope.ui.cli import command

command()
