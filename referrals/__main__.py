"""`python -m referrals`: the same command line as the installed `referrals` script."""

from referrals.cli import main

main()
