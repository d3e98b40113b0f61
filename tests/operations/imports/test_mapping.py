import pytest

from billing.operations.errors import InvalidImportFile, InvalidMapping
from billing.operations.imports.mapping import (
    TemplatePart,
    default_mapping,
    mapping_bind,
    mapping_load,
)
from tests.operations.csv_files import TELCO_HEADER, TELCO_MAPPING, write_mapping, write_text

MINIMAL = {
    "external_id": "id",
    "email": "mail",
    "currency": {"value": "USD"},
    "amount": "price",
    "plan_code": {"value": "basic"},
    "start_date": "since",
}


def mapping_error(tmp_path, document) -> str:
    path = write_mapping(tmp_path, document)
    with pytest.raises(InvalidMapping) as raised:
        mapping_load(path)
    assert raised.value.code == "invalid_mapping"
    return str(raised.value).removeprefix(f"mapping file {str(path)!r}: ")


class TestMappingLoad:
    def test_telco_mapping_is_parsed(self, tmp_path):
        mapping = mapping_load(write_mapping(tmp_path, TELCO_MAPPING))

        assert mapping.description == "Telco sample layout"
        assert mapping.rules["external_id"].column == "customerID"
        assert mapping.rules["currency"].value == "USD"
        assert mapping.rules["start_date"].months_before_as_of == "tenure"
        assert mapping.rules["email"].case == "lower"
        assert mapping.rules["email"].template == (
            TemplatePart(column="customerID"),
            TemplatePart(text="@example.com"),
        )
        assert mapping.rules["plan_code"].template == (
            TemplatePart(text="telco-monthly-"),
            TemplatePart(computed="amount_minor"),
        )
        assert mapping.rules["payment_terms_days"].value_map["Mailed check"] == "14"

    def test_literal_braces_in_template(self, tmp_path):
        document = {"fields": {**MINIMAL, "name": {"template": "{{{id}}}"}}}

        mapping = mapping_load(write_mapping(tmp_path, document))

        assert mapping.rules["name"].template == (
            TemplatePart(text="{"),
            TemplatePart(column="id"),
            TemplatePart(text="}"),
        )

    def test_not_json(self, tmp_path):
        path = write_mapping(tmp_path, '{"fields": {"external_id": "id",}}')

        with pytest.raises(InvalidMapping) as raised:
            mapping_load(path)

        assert str(raised.value) == (
            f"mapping file {str(path)!r} is not valid JSON: "
            "Expecting property name enclosed in double quotes at line 1 column 33"
        )

    def test_float_amount(self, tmp_path):
        path = write_mapping(tmp_path, '{"fields": {"amount": {"value": 29.85}}}')

        with pytest.raises(InvalidMapping) as raised:
            mapping_load(path)

        assert str(raised.value) == (
            f"mapping file {str(path)!r} contains the number 29.85; write amounts as strings "
            'such as "29.85", because binary floats cannot hold every price exactly'
        )

    def test_missing_file(self, tmp_path):
        path = tmp_path / "absent.json"

        with pytest.raises(InvalidMapping) as raised:
            mapping_load(path)

        assert str(raised.value) == (
            f"mapping file {str(path)!r} cannot be read: No such file or directory; check the path"
        )

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ([], 'the top level must be an object such as {"fields": {...}}'),
            ({"field": {}}, "field is not a known key; did you mean 'fields'? use one of description, fields"),
            (
                {"fields": {}},
                '"fields" is missing or empty; map each import field to a source, '
                'for example "fields": {"external_id": "customerID"}',
            ),
            (
                {"fields": {**MINIMAL, "emial": "mail"}},
                "fields.emial is not a known key; did you mean 'email'? use one of external_id, "
                "currency, amount, interval, interval_count, name, email, collection_method, "
                "payment_terms_days, plan_code, plan_name, plan_amount, quantity, start_date, "
                "payment_token, payment_kind",
            ),
            (
                {"fields": {key: value for key, value in MINIMAL.items() if key != "amount"}},
                "fields.amount is missing; every mapping needs external_id, currency, amount, email, "
                "plan_code, start_date (price per period in major units, such as 29.85)",
            ),
            (
                {"fields": {**MINIMAL, "amount": {"column": "price", "value": "1.00"}}},
                "fields.amount needs exactly one of column, value, template, months_before_as_of "
                "(found column, value)",
            ),
            (
                {"fields": {**MINIMAL, "amount": {"colum": "price"}}},
                "fields.amount.colum is not a known key; did you mean 'column'? use one of column, "
                "value, template, months_before_as_of, map, default, case, date_format",
            ),
            (
                {"fields": {**MINIMAL, "amount": 12}},
                'fields.amount must be a column name or an object such as {"column": "..."}, not int',
            ),
            (
                {"fields": {**MINIMAL, "currency": {"value": True}}},
                'fields.currency.value must be a string such as "USD" or a whole number, not bool',
            ),
            (
                {"fields": {**MINIMAL, "currency": {"value": "USD", "map": {"a": "b"}}}},
                "fields.currency.map applies only with column or template; remove it",
            ),
            (
                {"fields": {**MINIMAL, "interval": {"column": "Contract", "map": []}}},
                'fields.interval.map must be a non-empty object of source text to value, '
                'such as {"Mailed check": "send_invoice"}',
            ),
            (
                {"fields": {**MINIMAL, "interval": {"column": "Contract", "map": {"One year": None}}}},
                "fields.interval.map['One year'] must be a string or a whole number, not NoneType",
            ),
            (
                {"fields": {**MINIMAL, "email": {"template": "{id}@example.com", "case": "title"}}},
                'fields.email.case is \'title\'; use "lower" or "upper"',
            ),
            (
                {"fields": {**MINIMAL, "email": {"template": "{id@example.com"}}},
                "fields.email.template '{id@example.com' has an unmatched brace; "
                "write {{ or }} for a literal brace",
            ),
            (
                {"fields": {**MINIMAL, "email": {"template": "info@example.com"}}},
                "fields.email.template 'info@example.com' has no {Column}; use value for fixed text",
            ),
            (
                {"fields": {**MINIMAL, "plan_code": {"template": "p-{@price}"}}},
                "fields.plan_code.template uses {@price}, which is not a computed value; use one of "
                "@external_id, @currency, @amount, @amount_minor, @interval, @interval_count",
            ),
            (
                {"fields": {**MINIMAL, "amount": {"template": "{@amount_minor}"}}},
                "fields.amount.template cannot use {@amount_minor}, because amount is resolved "
                "before computed values exist; use columns only",
            ),
            (
                {"fields": {**MINIMAL, "quantity": {"months_before_as_of": "tenure"}}},
                "fields.quantity.months_before_as_of applies only to start_date; use column, value or template",
            ),
            (
                {"fields": {**MINIMAL, "start_date": {"column": "since", "date_format": "dd/mm/yyyy"}}},
                "fields.start_date.date_format is 'dd/mm/yyyy'; use a strftime format such as \"%d/%m/%Y\"",
            ),
            (
                {"fields": {**MINIMAL, "start_date": {"column": " "}}},
                "fields.start_date.column is blank; give the column name",
            ),
        ],
    )
    def test_invalid_mapping(self, tmp_path, document, message):
        assert mapping_error(tmp_path, document) == message


class TestMappingBind:
    def test_default_layout_allows_absent_optional_columns(self):
        header = ["external_id", "email", "currency", "plan_code", "amount", "start_date"]

        bound = mapping_bind(default_mapping(), header)

        assert sorted(bound.rules) == sorted(header)

    def test_default_layout_needs_required_columns(self):
        header = ["external_id", "email", "currency", "plan_code", "amuont", "start_date"]

        with pytest.raises(InvalidImportFile) as raised:
            mapping_bind(default_mapping(), header)

        assert str(raised.value) == (
            "column 'amount' is missing from the header (did you mean 'amuont'?); the default layout "
            "needs external_id, currency, amount, email, plan_code, start_date, or pass --mapping "
            "for another layout"
        )

    def test_mapping_column_missing_from_header(self, tmp_path):
        mapping = mapping_load(write_mapping(tmp_path, TELCO_MAPPING))
        header = TELCO_HEADER.replace("MonthlyCharges", "MonthlyCharge").split(",")

        with pytest.raises(InvalidImportFile) as raised:
            mapping_bind(mapping, header)

        assert str(raised.value) == (
            f"column 'MonthlyCharges', which mapping file {str(tmp_path / 'mapping.json')!r} reads for "
            "fields.amount, is missing from the header (did you mean 'MonthlyCharge'?); fix the column name "
            "in the mapping"
        )

    def test_not_utf8_mapping(self, tmp_path):
        path = write_text(tmp_path, "mapping.json", '{"description": "Zoë"}', encoding="cp1252")

        with pytest.raises(InvalidMapping) as raised:
            mapping_load(path)

        assert str(raised.value) == f"mapping file {str(path)!r} is not UTF-8; save it as UTF-8"
