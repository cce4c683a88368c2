"""`python -m services.records`: run the records service."""

from services.records.wiring import main

main()
