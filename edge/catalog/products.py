"""The product catalog's model and validation: pure, no I/O.

A product arrives from a JSON feed, a CSV feed or `PUT /v1/catalog/products`
as a loose dict; `validate_product` turns it into a `Product` or raises
`InputError` naming the field (`products[3].price`) and the reason, so a
feed's author can fix the row without reading our code.

Unknown fields are refused rather than dropped: a misspelt `sale-price` that
silently vanished would leave a price drop unannounced. Shop-specific values
belong under `attributes` (in CSV, `attr.<name>` columns).
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable

import msgspec

from edge.ingest.wire import INT_RANGE_REASON, LARGEST_INT, SMALLEST_INT, InputError

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 500
MAX_URL_LENGTH = 2048
MAX_BRAND_LENGTH = 200
MAX_CATEGORY_DEPTH = 10
MAX_CATEGORY_PART_LENGTH = 100
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_NAME_LENGTH = 100
MAX_ATTRIBUTE_STRING_LENGTH = 1000
# Prices travel through Lua (doubles printed with 14 significant digits) into
# stream events: below 1e12 a price keeps its cents exactly.
MAX_PRICE = 1e12
MAX_STOCK = 10**12

CATEGORY_SEPARATOR = " > "
CSV_ATTRIBUTE_PREFIX = "attr."

_CURRENCY = re.compile(r"[A-Z]{3}")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# A plain decimal as feeds write it in text ("89", "89.90"); no exponents, no signs but '-'
# (a negative price is then refused by the range check with a clearer reason).
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
_INTEGER = re.compile(r"-?\d+")

Scalar = str | int | float | bool | None


class Product(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    id: str
    price: float
    currency: str
    name: str = ""
    url: str = ""
    image: str = ""
    sale_price: float | None = None
    category: list[str] = []
    stock: int | None = None          # None: the feed does not track stock (counts as available)
    brand: str = ""
    attributes: dict[str, Scalar] = {}

    @property
    def effective_price(self) -> float:
        """What a customer pays now: the sale price while there is one."""
        return self.sale_price if self.sale_price is not None else self.price

    @property
    def category_path(self) -> str:
        """The category as one string, "A > B > C"; "" when uncategorised."""
        return CATEGORY_SEPARATOR.join(self.category)

    @property
    def available(self) -> bool:
        """In stock, or stock unknown: recommendations only leave out what is known sold out."""
        return self.stock is None or self.stock > 0

    def to_dict(self) -> dict[str, Any]:
        """The product as the API answers it, with the price a customer pays now."""
        body = msgspec.structs.asdict(self)
        body["effective_price"] = self.effective_price
        return body


FIELDS = frozenset(f for f in Product.__struct_fields__)


def validate_product(raw: Any, path: str = "") -> Product:
    """A feed row or API item → Product; InputError names `<path>.<field>` on the first problem."""
    where = (lambda name: f"{path}.{name}") if path else (lambda name: name)
    if not isinstance(raw, dict):
        raise InputError(path or "product", "expected an object")
    for name in raw:
        if name not in FIELDS:
            raise InputError(where(str(name)),
                             "unknown field; put shop-specific values under attributes")

    product_id = _id(raw.get("id"), where("id"))
    price = _price(raw.get("price"), where("price"), required=True)
    sale_price = _price(raw.get("sale_price"), where("sale_price"), required=False)
    assert price is not None
    if sale_price is not None and sale_price > price:
        raise InputError(where("sale_price"), "must not be more than price")
    return Product(
        id=product_id,
        price=price,
        sale_price=sale_price,
        currency=_currency(raw.get("currency"), where("currency")),
        name=_text(raw.get("name"), where("name"), MAX_NAME_LENGTH),
        url=_url(raw.get("url"), where("url")),
        image=_url(raw.get("image"), where("image")),
        category=_category(raw.get("category"), where("category")),
        stock=_stock(raw.get("stock"), where("stock")),
        brand=_text(raw.get("brand"), where("brand"), MAX_BRAND_LENGTH),
        attributes=_attributes(raw.get("attributes"), where("attributes")),
    )


def _id(value: Any, field: str) -> str:
    if value is None or value == "":
        raise InputError(field, "required")
    # Feeds often number their products; an integer id is kept as its text.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(field, "expected a string")
    text = str(value).strip()
    if not text:
        raise InputError(field, "must not be empty")
    if len(text) > MAX_ID_LENGTH:
        raise InputError(field, f"longer than {MAX_ID_LENGTH} characters")
    if _CONTROL_CHARACTERS.search(text):
        raise InputError(field, "contains control characters")
    return text


def _number(value: Any, field: str) -> float:
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(field, "must be a number ≥ 0")
    return float(value)


def _price(value: Any, field: str, required: bool) -> float | None:
    if value is None or value == "":
        if required:
            raise InputError(field, "required: a number ≥ 0")
        return None
    number = _number(value, field)
    if number < 0:
        raise InputError(field, "must be a number ≥ 0")
    if number >= MAX_PRICE:
        raise InputError(field, f"must be less than {MAX_PRICE:.0f}")
    return number


def _currency(value: Any, field: str) -> str:
    if value is None or value == "":
        raise InputError(field, "required: an ISO 4217 code such as EUR")
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise InputError(field, "expected an ISO 4217 code: three upper-case letters, e.g. EUR")
    return value


def _text(value: Any, field: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(field, "expected a string")
    if len(value) > limit:
        raise InputError(field, f"longer than {limit} characters")
    if _CONTROL_CHARACTERS.search(value.replace("\n", "").replace("\t", "")):
        raise InputError(field, "contains control characters")
    return value.strip()


def _url(value: Any, field: str) -> str:
    # Content renders these into pages: only web links and site-relative paths,
    # never javascript: or data: URLs.
    text = _text(value, field, MAX_URL_LENGTH)
    if text and not (text.startswith(("https://", "http://")) or
                     (text.startswith("/") and not text.startswith("//"))):
        raise InputError(field, "expected an http(s) URL or a path starting with /")
    if any(ch.isspace() for ch in text):
        raise InputError(field, "must not contain spaces")
    return text


def _category(value: Any, field: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parts = value.split(">")
    elif isinstance(value, list):
        parts = value
        for index, part in enumerate(parts):
            if not isinstance(part, str):
                raise InputError(f"{field}[{index}]", "expected a string")
            # The joined path names the category's index key: a '>' inside a part
            # would make two different paths the same key.
            if ">" in part:
                raise InputError(f"{field}[{index}]", "must not contain '>'")
    else:
        raise InputError(field, 'expected a list of strings or a path "A > B > C"')
    cleaned = [part.strip() for part in parts]
    if any(not part for part in cleaned):
        raise InputError(field, "has an empty level")
    if len(cleaned) > MAX_CATEGORY_DEPTH:
        raise InputError(field, f"deeper than {MAX_CATEGORY_DEPTH} levels")
    for part in cleaned:
        if len(part) > MAX_CATEGORY_PART_LENGTH:
            raise InputError(field, f"a level is longer than {MAX_CATEGORY_PART_LENGTH} characters")
        if _CONTROL_CHARACTERS.search(part):
            raise InputError(field, "contains control characters")
    return cleaned


def _stock(value: Any, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(field, "must be a whole number ≥ 0, or null when unknown")
    if not 0 <= value <= MAX_STOCK:
        raise InputError(field, "must be a whole number ≥ 0, or null when unknown")
    return value


def _attributes(value: Any, field: str) -> dict[str, Scalar]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(field, "expected an object of name: value")
    if len(value) > MAX_ATTRIBUTES:
        raise InputError(field, f"more than {MAX_ATTRIBUTES} attributes")
    attributes: dict[str, Scalar] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name or len(name) > MAX_ATTRIBUTE_NAME_LENGTH:
            raise InputError(field, f"attribute names are 1 to {MAX_ATTRIBUTE_NAME_LENGTH} characters")
        where = f"{field}.{name}"
        # Flat on purpose: conditions compare attributes to literals; nested
        # objects would need a query language of their own.
        if isinstance(item, (dict, list)):
            raise InputError(where, "expected a string, number, boolean or null")
        if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_STRING_LENGTH:
            raise InputError(where, f"longer than {MAX_ATTRIBUTE_STRING_LENGTH} characters")
        if isinstance(item, float) and not math.isfinite(item):
            raise InputError(where, "number is not finite")
        if isinstance(item, int) and not SMALLEST_INT <= item <= LARGEST_INT:
            raise InputError(where, INT_RANGE_REASON)
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise InputError(where, "expected a string, number, boolean or null")
        attributes[name] = item
    return attributes


# -- CSV ------------------------------------------------------------------------------------


def check_csv_columns(columns: Iterable[str] | None) -> None:
    """The header row: every column a product field or `attr.<name>`; `id` and `price` present."""
    if not columns:
        raise InputError("header", "the file has no header row")
    seen = [c.strip() for c in columns]
    for column in seen:
        if column.startswith(CSV_ATTRIBUTE_PREFIX):
            if len(column) == len(CSV_ATTRIBUTE_PREFIX):
                raise InputError("header", f"column {column!r}: name the attribute, attr.<name>")
        elif column not in FIELDS or column == "attributes":
            raise InputError("header", f"unknown column {column!r}; custom values go in "
                                       f"{CSV_ATTRIBUTE_PREFIX}<name> columns")
    for required in ("id", "price", "currency"):
        if required not in seen:
            raise InputError("header", f"missing column {required!r}")


def csv_row_to_raw(row: dict[str | None, Any]) -> dict[str, Any]:
    """One CSV row (all text) → the dict validate_product takes; empty cells count as absent.

    Attribute values stay text: a CSV cell does not say whether "007" is a number.
    """
    raw: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None:
            # csv.DictReader puts cells beyond the header under None
            raise InputError("row", "more cells than the header has columns")
        if cell is None or cell == "":
            continue
        column = column.strip()
        if column.startswith(CSV_ATTRIBUTE_PREFIX):
            attributes[column[len(CSV_ATTRIBUTE_PREFIX):]] = cell
        else:
            raw[column] = cell
    if attributes:
        raw["attributes"] = attributes
    return raw
