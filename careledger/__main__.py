"""`python -m careledger`: the same as the `careledger` command."""

from careledger.cli import main

main()
