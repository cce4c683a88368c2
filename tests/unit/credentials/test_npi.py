"""NPI check digits: the CMS published example, and the CMS "add 24" formulation as an
independent reference for every nine-digit prefix Hypothesis tries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.credentials import CredentialError, CredentialFailure, check_npi
from shared.credentials.npi import npi_check_digit

# CMS, "Requirements for Check Digit Algorithm for the NPI": the worked example 123456789 -> 3.
CMS_EXAMPLE = "1234567893"


def cms_check_digit(first_nine: str) -> str:
    """The CMS worked form: double the alternate digits from the right of the nine, sum all
    digits of the products and the untouched digits, add 24 (the prefix 80840's share)."""
    total = 24
    for position, character in enumerate(reversed(first_nine)):
        digit = int(character)
        if position % 2 == 0:
            total += sum(int(d) for d in str(digit * 2))
        else:
            total += digit
    return str((10 - total % 10) % 10)


def test_the_cms_worked_example_is_valid() -> None:
    check_npi(CMS_EXAMPLE)
    assert cms_check_digit(CMS_EXAMPLE[:9]) == "3"


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_the_check_digit_agrees_with_the_cms_form(first_nine: str) -> None:
    digit = npi_check_digit(first_nine)
    assert digit == cms_check_digit(first_nine)
    check_npi(first_nine + digit)
    for wrong in set("0123456789") - {digit}:
        with pytest.raises(CredentialError) as caught:
            check_npi(first_nine + wrong)
        assert caught.value.reason is CredentialFailure.BAD_NPI
        assert caught.value.expected == digit


@pytest.mark.parametrize(
    "npi",
    [
        "1234567890",
        "123456789",
        "12345678931",
        "",
        "12345678a3",
        "١٢٣٤٥٦٧٨٩٣",
        " 1234567893",
        1234567893,
    ],
)
def test_anything_else_is_a_bad_npi(npi: object) -> None:
    with pytest.raises(CredentialError) as caught:
        check_npi(npi)
    assert caught.value.reason is CredentialFailure.BAD_NPI
