"""`python -m services.identity`: run the identity service."""

from services.identity.wiring import main

main()
