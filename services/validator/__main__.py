"""`python -m services.validator`: run the validator service."""

from services.validator.wiring import main

main()
