"""Phone numbers as providers take them: E.164 (`+420603123456`).

People type their numbers as they say them ("603 123 456", "00420 603 123 456"), and
the profile keeps the trait as typed. SMS and WhatsApp providers refuse anything but
a full international number, so each connector reads the trait here, with the
channel's default region for numbers written without their country code. A number
that cannot be valid fails the message before any request: the provider would only
refuse it, and charge for some refusals.
"""

from __future__ import annotations

import phonenumbers


def e164(raw: str, default_region: str) -> str | None:
    """`raw` in E.164, read as a number of `default_region` when it has no country
    code; None when it is not a valid number (too short, an unused range, not a number)."""
    try:
        number = phonenumbers.parse(raw, default_region.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
