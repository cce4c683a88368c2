"""The US National Provider Identifier check digit (CMS, "Requirements for Check Digit
Algorithm for the National Provider Identifier", 45 CFR 162.406): ISO/IEC 7812 Luhn over the
card-issuer prefix ``80840`` followed by the first nine digits."""

from __future__ import annotations

from typing import Final

from shared.credentials.failure import CredentialError, CredentialFailure

__all__ = ["NPI_PREFIX", "check_npi", "npi_check_digit"]

NPI_PREFIX: Final = "80840"
_NPI_DIGITS: Final = 10


def npi_check_digit(first_nine: str) -> str:
    """The Luhn check digit of ``80840`` + `first_nine` (nine ASCII digits)."""
    total = 0
    # Luhn doubles every second digit counting leftwards from the one before the check digit.
    for position, character in enumerate(reversed(NPI_PREFIX + first_nine)):
        digit = int(character)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str(-total % 10)


def check_npi(npi: object) -> None:
    """Raise `CredentialError` (``bad_npi``) unless `npi` is ten ASCII digits whose last is
    the Luhn check digit of the other nine."""
    if not isinstance(npi, str) or len(npi) != _NPI_DIGITS or not (npi.isascii() and npi.isdigit()):
        raise CredentialError(
            CredentialFailure.BAD_NPI,
            "an NPI is exactly ten digits",
            computed=str(npi)[:20],
        )
    expected = npi_check_digit(npi[:9])
    if npi[9] != expected:
        raise CredentialError(
            CredentialFailure.BAD_NPI,
            "the NPI check digit is wrong",
            expected=expected,
            computed=npi[9],
            npi=npi,
        )
