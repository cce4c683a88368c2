"""`python -m services.billing`: run the billing service."""

from services.billing.wiring import main

main()
