"""The beer form: what a visitor submitted, checked and turned into a beer's fields.

Pure: no I/O. ``check`` never raises on bad input; it returns the fields it could read and a
message per field it could not, for the page to show beside the field. Whether the brewery
exists is the handler's to ask the database.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .data import slug

# A text field's longest length; a number field's lowest, highest, and whether it is whole.
TEXT_LIMITS = {"name": 120, "brewery_id": 200, "style": 120, "category": 120, "description": 2000}
NUMBER_LIMITS = {
    "abv": (0.0, 100.0, False),
    "ibu": (0.0, 1000.0, False),
    "srm": (0.0, 1000.0, False),
    "upc": (0.0, 999_999_999_999.0, True),
}
FIELDS = ("name", "brewery_id", "style", "category", "abv", "ibu", "srm", "upc", "description")
REQUIRED = ("name", "brewery_id")
LABELS = {
    "name": "Name",
    "brewery_id": "Brewery",
    "style": "Style",
    "category": "Category",
    "abv": "Alcohol (ABV, %)",
    "ibu": "Bitterness (IBU)",
    "srm": "Colour (SRM)",
    "upc": "Product code (UPC)",
    "description": "Description",
}
SHOWN = ("style", "category", "abv", "ibu", "srm", "upc", "description")  # on a beer's page


@dataclass
class BeerForm:
    """A form's values as the visitor typed them (to show again), and what is wrong."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _number(text: str, low: float, high: float, whole: bool) -> float | int | str:
    """The number ``text`` holds within [low, high], or a message saying what is wrong."""
    try:
        value = float(text)
    except ValueError:
        return "must be a number"
    if not math.isfinite(value) or not low <= value <= high:
        return f"must be between {low:g} and {high:g}"
    if whole:
        return int(value) if value.is_integer() else "must be a whole number"
    return int(value) if value.is_integer() and "." not in text else value


def check(submitted: Mapping[str, str]) -> BeerForm:
    """Read the beer fields of ``submitted`` (field name → the text typed)."""
    values = {name: submitted.get(name, "").strip() for name in FIELDS}
    form = BeerForm(values)
    for name, text in values.items():
        if "\x00" in text:
            form.errors[name] = "must not hold a NUL character"
        elif not text:
            if name in REQUIRED:
                form.errors[name] = "is required"
        elif name in TEXT_LIMITS:
            if len(text) > TEXT_LIMITS[name]:
                form.errors[name] = f"must be at most {TEXT_LIMITS[name]} characters"
            else:
                form.fields[name] = text
        else:
            number = _number(text, *NUMBER_LIMITS[name])
            if isinstance(number, str):
                form.errors[name] = number
            else:
                form.fields[name] = number
    return form


def new_beer_id(brewery_id: str, name: str) -> str:
    """A new beer's id, as the data set makes them: its brewery's id, then its name's slug
    (a name with no letter or digit of ASCII in it: a digest of it instead)."""
    return f"{brewery_id}-{slug(name) or hashlib.sha1(name.encode()).hexdigest()[:12]}"


def of_beer(beer: Mapping[str, Any]) -> BeerForm:
    """The form showing ``beer`` as it is, to edit it."""
    values = {name: "" if beer.get(name) is None else str(beer[name]) for name in FIELDS}
    return BeerForm(values)
