"""`python -m services.sealer`: run the sealer service."""

from services.sealer.wiring import main

main()
