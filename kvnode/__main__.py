"""`python -m kvnode` is the `kvnode` command."""

from kvnode.cli import main

main()
