"""Mappings from a CSV layout to the import's fields.

A mapping names, for each import field, where its value comes from: a column,
a fixed value, a template built from other columns, or (for ``start_date``
only) a whole number of months before ``--as-of``. It may translate values
through a ``map`` (for enumerations), fall back to a ``default`` for blank
cells and change case. The default layout is a mapping whose every field
reads the column of the same name. The format is described in
billing/operations/README.md.
"""

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from billing.operations.errors import InvalidImportFile, InvalidMapping


@dataclass(frozen=True)
class ImportField:
    name: str
    required: bool
    description: str


# Import fields in resolution order: templates of later fields may use the
# resolved values of the fields in COMPUTED_PLACEHOLDERS, which come first.
IMPORT_FIELDS: tuple[ImportField, ...] = (
    ImportField("external_id", True, "the customer's id in the old system, unique in the file"),
    ImportField("currency", True, "ISO 4217 code of the customer and the plan, such as USD"),
    ImportField("amount", True, "price per period in major units, such as 29.85"),
    ImportField("interval", False, "billing interval: day, week, month or year (default month)"),
    ImportField("interval_count", False, "intervals per billing period (default 1)"),
    ImportField("name", False, "customer name (default: the external id)"),
    ImportField("email", True, "customer billing email"),
    ImportField("collection_method", False, "charge_automatically (default) or send_invoice"),
    ImportField("payment_terms_days", False, "days until a sent invoice is due (default 0)"),
    ImportField("plan_code", True, "code of the plan the subscription is on"),
    ImportField("plan_name", False, "plan name (default: the plan code)"),
    ImportField("plan_amount", False, "plan list price in major units (default: amount)"),
    ImportField("quantity", False, "units subscribed (default 1)"),
    ImportField("start_date", True, "date the subscription started, YYYY-MM-DD"),
    ImportField("payment_token", False, "gateway token of the payment method (default: none)"),
    ImportField("payment_kind", False, "card (default) or bank_debit"),
)
FIELD_NAMES = tuple(import_field.name for import_field in IMPORT_FIELDS)
REQUIRED_FIELDS = tuple(import_field.name for import_field in IMPORT_FIELDS if import_field.required)

# Values a template can insert with {@name}; each is resolved before any
# field that may use it.
COMPUTED_PLACEHOLDERS = ("external_id", "currency", "amount", "amount_minor", "interval", "interval_count")
_FIELDS_BEFORE_TEMPLATES = ("external_id", "currency", "amount", "interval", "interval_count")

DEFAULT_DATE_FORMAT = "%Y-%m-%d"
_SOURCE_KEYS = ("column", "value", "template", "months_before_as_of")
_SPEC_KEYS = (*_SOURCE_KEYS, "map", "default", "case", "date_format")
_TOP_LEVEL_KEYS = ("description", "fields")
_CASES = ("lower", "upper")
# Largest mapping file read; a mapping is a few kilobytes of rules.
MAX_MAPPING_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TemplatePart:
    """A piece of a template: literal text, a column, or a computed value (``@name``)."""

    text: str = ""
    column: str | None = None
    computed: str | None = None


@dataclass(frozen=True)
class FieldRule:
    """Rule for one import field: its source and how its text is translated."""

    field_name: str
    column: str | None = None
    value: str | None = None
    template: tuple[TemplatePart, ...] | None = None
    months_before_as_of: str | None = None
    value_map: dict[str, str] | None = None
    default: str | None = None
    case: str | None = None
    date_format: str = DEFAULT_DATE_FORMAT

    def columns(self) -> list[str]:
        """Return the CSV columns this rule reads."""
        names = [self.column, self.months_before_as_of]
        names += [part.column for part in self.template or ()]
        return [name for name in names if name]


@dataclass(frozen=True)
class ImportMapping:
    rules: dict[str, FieldRule]
    # The default layout lets optional columns be absent from the header.
    optional_columns_may_be_absent: bool = False
    description: str = ""
    source: str = "the default layout"


@dataclass(frozen=True)
class BoundMapping:
    """A mapping checked against one file's header: the rules that apply to it."""

    rules: dict[str, FieldRule] = field(default_factory=dict)


def default_mapping() -> ImportMapping:
    """Return the default layout: every field reads the column of the same name."""
    rules = {name: FieldRule(field_name=name, column=name) for name in FIELD_NAMES}
    return ImportMapping(rules=rules, optional_columns_may_be_absent=True)


def mapping_load(path: Path) -> ImportMapping:
    """Read and check a JSON mapping file; raise ``InvalidMapping`` naming the key and the fix."""
    label = f"mapping file {str(path)!r}"
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MAPPING_BYTES + 1)
    except OSError as error:
        raise InvalidMapping(f"{label} cannot be read: {error.strerror}; check the path") from None
    if len(raw) > MAX_MAPPING_BYTES:
        raise InvalidMapping(f"{label} is larger than {MAX_MAPPING_BYTES} bytes; a mapping is a few kilobytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidMapping(f"{label} is not UTF-8; save it as UTF-8") from None
    try:
        document = json.loads(text, parse_float=_reject_float, parse_constant=_reject_float)
    except json.JSONDecodeError as error:
        raise InvalidMapping(
            f"{label} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except _FloatInMapping as error:
        raise InvalidMapping(
            f"{label} contains the number {error.literal}; write amounts as strings "
            f'such as "{error.literal}", because binary floats cannot hold every price exactly'
        ) from None
    return mapping_parse(document, source=label)


def mapping_parse(document: Any, *, source: str = "mapping") -> ImportMapping:
    """Check a decoded mapping document and return its rules; raise ``InvalidMapping``."""
    if not isinstance(document, dict):
        raise InvalidMapping(f'{source}: the top level must be an object such as {{"fields": {{...}}}}')
    _reject_unknown_keys(document, _TOP_LEVEL_KEYS, source, "")
    description = document.get("description", "")
    if not isinstance(description, str):
        raise InvalidMapping(f"{source}: description must be a string")

    fields = document.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise InvalidMapping(
            f'{source}: "fields" is missing or empty; map each import field to a source, '
            'for example "fields": {"external_id": "customerID"}'
        )
    _reject_unknown_keys(fields, FIELD_NAMES, source, "fields.")

    rules = {}
    for name, spec in fields.items():
        rules[name] = _rule_parse(name, spec, source)

    for name in REQUIRED_FIELDS:
        if name not in rules:
            raise InvalidMapping(
                f"{source}: fields.{name} is missing; every mapping needs "
                f"{', '.join(REQUIRED_FIELDS)} ({_describe(name)})"
            )
    return ImportMapping(rules=rules, description=description, source=source)


def mapping_bind(mapping: ImportMapping, header: list[str]) -> BoundMapping:
    """Check that the columns ``mapping`` reads are in ``header``; return the rules that apply.

    Raise ``InvalidImportFile`` naming the missing column. In the default
    layout an absent optional column leaves its field blank.
    """
    available = set(header)
    rules = {}
    for name, rule in mapping.rules.items():
        missing = [column for column in rule.columns() if column not in available]
        if not missing:
            rules[name] = rule
            continue
        if mapping.optional_columns_may_be_absent and name not in REQUIRED_FIELDS:
            continue
        close = difflib.get_close_matches(missing[0], header, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if mapping.optional_columns_may_be_absent:
            raise InvalidImportFile(
                f"column {missing[0]!r} is missing from the header{hint}; the default layout needs "
                f"{', '.join(REQUIRED_FIELDS)}, or pass --mapping for another layout"
            )
        raise InvalidImportFile(
            f"column {missing[0]!r}, which {mapping.source} reads for fields.{name}, is missing "
            f"from the header{hint}; fix the column name in the mapping"
        )
    return BoundMapping(rules=rules)


class _FloatInMapping(ValueError):
    def __init__(self, literal: str):
        super().__init__(literal)
        self.literal = literal


def _reject_float(literal: str):
    raise _FloatInMapping(literal)


def _reject_unknown_keys(document: dict, allowed: tuple[str, ...], source: str, prefix: str) -> None:
    for key in document:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidMapping(
            f"{source}: {prefix}{key} is not a known key; {hint}use one of {', '.join(allowed)}"
        )


def _describe(name: str) -> str:
    return next(f.description for f in IMPORT_FIELDS if f.name == name)


def _rule_parse(name: str, spec: Any, source: str) -> FieldRule:
    key = f"fields.{name}"
    if isinstance(spec, str):
        spec = {"column": spec}
    if not isinstance(spec, dict):
        raise InvalidMapping(
            f'{source}: {key} must be a column name or an object such as {{"column": "..."}}, '
            f"not {type(spec).__name__}"
        )
    _reject_unknown_keys(spec, _SPEC_KEYS, source, f"{key}.")

    sources = [source_key for source_key in _SOURCE_KEYS if source_key in spec]
    if len(sources) != 1:
        found = ", ".join(sources) or "none"
        raise InvalidMapping(
            f"{source}: {key} needs exactly one of column, value, template, months_before_as_of "
            f"(found {found})"
        )
    kind = sources[0]

    if kind == "months_before_as_of" and name != "start_date":
        raise InvalidMapping(
            f"{source}: {key}.months_before_as_of applies only to start_date; use column, value or template"
        )
    if "date_format" in spec and name != "start_date":
        raise InvalidMapping(f"{source}: {key}.date_format applies only to start_date; remove it")
    if "date_format" in spec and kind != "column":
        raise InvalidMapping(f"{source}: {key}.date_format applies only with column; remove it")

    column = _string_option(spec, "column", key, source)
    value = _scalar_option(spec, "value", key, source)
    months_column = _string_option(spec, "months_before_as_of", key, source)
    template = None
    if kind == "template":
        template = _template_parse(_string_option(spec, "template", key, source), name, key, source)
    for option in ("column", "months_before_as_of"):
        if option in spec and not spec[option].strip():
            raise InvalidMapping(f"{source}: {key}.{option} is blank; give the column name")

    value_map = None
    if "map" in spec:
        value_map = _value_map_parse(spec["map"], key, source)
        if kind not in ("column", "template"):
            raise InvalidMapping(f"{source}: {key}.map applies only with column or template; remove it")

    default = _scalar_option(spec, "default", key, source)
    case = spec.get("case")
    if case is not None and case not in _CASES:
        raise InvalidMapping(f"{source}: {key}.case is {case!r}; use \"lower\" or \"upper\"")

    date_format = spec.get("date_format", DEFAULT_DATE_FORMAT)
    if not isinstance(date_format, str) or "%" not in date_format:
        raise InvalidMapping(
            f"{source}: {key}.date_format is {date_format!r}; use a strftime format such as \"%d/%m/%Y\""
        )

    return FieldRule(
        field_name=name,
        column=column,
        value=value,
        template=template,
        months_before_as_of=months_column,
        value_map=value_map,
        default=default,
        case=case,
        date_format=date_format,
    )


def _string_option(spec: dict, option: str, key: str, source: str) -> str | None:
    if option not in spec:
        return None
    value = spec[option]
    if not isinstance(value, str):
        raise InvalidMapping(f"{source}: {key}.{option} must be a string, not {type(value).__name__}")
    return value


def _scalar_option(spec: dict, option: str, key: str, source: str) -> str | None:
    """Return a fixed value as text; whole numbers are accepted and written as text."""
    if option not in spec:
        return None
    value = spec[option]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidMapping(
            f'{source}: {key}.{option} must be a string such as "USD" or a whole number, '
            f"not {type(value).__name__}"
        )
    return str(value)


def _value_map_parse(value_map: Any, key: str, source: str) -> dict[str, str]:
    if not isinstance(value_map, dict) or not value_map:
        raise InvalidMapping(
            f'{source}: {key}.map must be a non-empty object of source text to value, '
            'such as {"Mailed check": "send_invoice"}'
        )
    result = {}
    for source_text, target in value_map.items():
        if isinstance(target, bool) or not isinstance(target, str | int):
            raise InvalidMapping(
                f"{source}: {key}.map[{source_text!r}] must be a string or a whole number, "
                f"not {type(target).__name__}"
            )
        result[source_text.strip()] = str(target)
    return result


def _template_parse(template: str, name: str, key: str, source: str) -> tuple[TemplatePart, ...]:
    """Split a template into literal text, ``{Column}`` and ``{@computed}`` parts.

    ``{{`` and ``}}`` stand for literal braces, read left to right as in
    Python's ``str.format``.
    """
    unmatched = InvalidMapping(
        f"{source}: {key}.template {template!r} has an unmatched brace; write {{{{ or }}}} for a literal brace"
    )
    parts: list[TemplatePart] = []
    literal: list[str] = []
    position = 0
    while position < len(template):
        character = template[position]
        pair = template[position : position + 2]
        if pair in ("{{", "}}"):
            literal.append(character)
            position += 2
            continue
        if character == "}":
            raise unmatched
        if character != "{":
            literal.append(character)
            position += 1
            continue

        closing = template.find("}", position + 1)
        placeholder = template[position + 1 : closing].strip() if closing != -1 else ""
        if closing == -1 or "{" in placeholder:
            raise unmatched
        if literal:
            parts.append(TemplatePart(text="".join(literal)))
            literal = []
        parts.append(_placeholder_part(placeholder, name, key, source))
        position = closing + 1

    if literal:
        parts.append(TemplatePart(text="".join(literal)))
    if not any(part.column or part.computed for part in parts):
        raise InvalidMapping(
            f"{source}: {key}.template {template!r} has no {{Column}}; use value for fixed text"
        )
    return tuple(parts)


def _placeholder_part(placeholder: str, name: str, key: str, source: str) -> TemplatePart:
    if not placeholder:
        raise InvalidMapping(f"{source}: {key}.template has an empty {{}}; put a column name inside")
    if not placeholder.startswith("@"):
        return TemplatePart(column=placeholder)

    computed = placeholder[1:]
    if computed not in COMPUTED_PLACEHOLDERS:
        raise InvalidMapping(
            f"{source}: {key}.template uses {{@{computed}}}, which is not a computed value; "
            f"use one of {', '.join('@' + item for item in COMPUTED_PLACEHOLDERS)}"
        )
    if name in _FIELDS_BEFORE_TEMPLATES:
        raise InvalidMapping(
            f"{source}: {key}.template cannot use {{@{computed}}}, because {name} is "
            "resolved before computed values exist; use columns only"
        )
    return TemplatePart(computed=computed)
