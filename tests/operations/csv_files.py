"""CSV and mapping files that the operations tests write for themselves."""

import json
from pathlib import Path

DEFAULT_HEADER = (
    "external_id,name,email,currency,collection_method,plan_code,plan_name,amount,"
    "interval,interval_count,quantity,start_date,payment_token,payment_kind"
)

# A few rows in the layout of the public "Telco Customer Churn" sample, with
# its extra columns, made up for the tests.
TELCO_HEADER = (
    "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,Contract,"
    "PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn"
)
TELCO_ROWS = [
    "1111-AAAAA,Female,0,Yes,No,1,No,Month-to-month,Yes,Electronic check,29.85,29.85,No",
    "2222-BBBBB,Male,0,No,No,34,Yes,One year,No,Mailed check,56.95,1889.50,No",
    "3333-CCCCC,Male,0,No,No,45,No,One year,No,Bank transfer (automatic),42.30,1840.75,No",
    "4444-DDDDD,Female,0,No,No,0,Yes,Two year,Yes,Credit card (automatic),70.7, ,No",
    "5555-EEEEE,Female,1,No,No,8,Yes,Month-to-month,Yes,Credit card (automatic),29.85,240.10,Yes",
]

TELCO_MAPPING = {
    "description": "Telco sample layout",
    "fields": {
        "external_id": "customerID",
        "name": {"template": "Customer {customerID}"},
        "email": {"template": "{customerID}@example.com", "case": "lower"},
        "currency": {"value": "USD"},
        "amount": "MonthlyCharges",
        "interval": {"value": "month"},
        "plan_code": {"template": "telco-monthly-{@amount_minor}"},
        "plan_name": {"template": "Telco monthly {@amount} USD"},
        "start_date": {"months_before_as_of": "tenure"},
        "collection_method": {
            "column": "PaymentMethod",
            "map": {
                "Bank transfer (automatic)": "charge_automatically",
                "Credit card (automatic)": "charge_automatically",
                "Electronic check": "send_invoice",
                "Mailed check": "send_invoice",
            },
        },
        "payment_terms_days": {
            "column": "PaymentMethod",
            "map": {
                "Bank transfer (automatic)": 0,
                "Credit card (automatic)": 0,
                "Electronic check": 14,
                "Mailed check": 14,
            },
        },
        "payment_token": {
            "column": "PaymentMethod",
            "map": {
                "Bank transfer (automatic)": "tok_success",
                "Credit card (automatic)": "tok_success",
                "Electronic check": "",
                "Mailed check": "",
            },
        },
        "payment_kind": {
            "column": "PaymentMethod",
            "map": {
                "Bank transfer (automatic)": "bank_debit",
                "Credit card (automatic)": "card",
                "Electronic check": "",
                "Mailed check": "",
            },
        },
    },
}


def default_row(
    external_id="C-1",
    *,
    name="Ada Lovelace",
    email="ada@example.com",
    currency="USD",
    collection_method="charge_automatically",
    plan_code="basic",
    plan_name="Basic",
    amount="29.85",
    interval="month",
    interval_count="1",
    quantity="1",
    start_date="2026-01-15",
    payment_token="tok_success",
    payment_kind="card",
) -> str:
    cells = [
        external_id, name, email, currency, collection_method, plan_code, plan_name, amount,
        interval, interval_count, quantity, start_date, payment_token, payment_kind,
    ]
    return ",".join(cells)


def write_text(folder: Path, name: str, text: str, *, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


def write_csv(folder: Path, header: str, rows: list[str], *, name: str = "import.csv", bom: bool = False) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    return write_text(folder, name, ("\ufeff" if bom else "") + text)


def write_mapping(folder: Path, document, *, name: str = "mapping.json") -> Path:
    text = document if isinstance(document, str) else json.dumps(document, indent=2)
    return write_text(folder, name, text)
