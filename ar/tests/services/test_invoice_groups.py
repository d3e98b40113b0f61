"""Creating a group of invoices: lock order between groups, and a group that falls back to single messages."""

import threading
import uuid
from datetime import date

import pytest
from django.db import connections

from ar.models import CreditReason, CustomerCreditEntry, Invoice
from ar.services import invoices as invoice_services
from ar.services.invoices import (
    InvoiceLineInput,
    invoice_create_for_billing_periods,
    invoice_request_check,
)
from ar.tests.factories import NOW, CustomerFactory, InvoiceRequestedFactory
from ar.tests.support import envelope_for
from billing.tenancy.services import tenant_ensure
from eventbus.consumer import Disposition, Incoming, deliver_group
from eventbus.registry import get_module
from subscriptions.events import INVOICE_REQUESTED

LINE = InvoiceLineInput(
    description="Pro", quantity=1, unit_amount_minor=1000,
    period_start=date(2026, 3, 1), period_end=date(2026, 4, 1),
)


def request_for(customer):
    return invoice_request_check(
        tenant_id=customer.tenant_id, customer_id=str(customer.id), billing_period_id=str(uuid.uuid4()),
        subscription_id=str(uuid.uuid4()), currency="USD", lines=[LINE], now=NOW,
    )


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_opposite_tenant_orders_no_deadlock(monkeypatch):
    """Two groups naming tenants acme and beta in opposite orders, as two consumer workers may get them."""
    acme = [CustomerFactory(tenant_id="acme") for _ in range(2)]
    beta = [CustomerFactory(tenant_id="beta") for _ in range(2)]
    first_group = [request_for(acme[0]), request_for(beta[0])]
    second_group = [request_for(beta[1]), request_for(acme[1])]
    after_first_allocation = threading.Barrier(2)
    allocate = invoice_services.invoice_numbers_allocate
    calls = threading.local()

    def allocate_then_wait(**kwargs):
        numbers = allocate(**kwargs)
        if not getattr(calls, "waited", False):
            calls.waited = True
            try:
                after_first_allocation.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
        return numbers

    monkeypatch.setattr(invoice_services, "invoice_numbers_allocate", allocate_then_wait)
    errors = []

    def create(group):
        try:
            invoice_create_for_billing_periods(group)
        except Exception as error:  # noqa: BLE001 - reported by the assert below
            errors.append(repr(error))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(group,)) for group in (first_group, second_group)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert Invoice.objects.using("ar").count() == 4


@pytest.mark.django_db(databases="__all__")
def test_fallback_keeps_numbers_and_credit():
    """A group with one foreign-tenant customer falls back; numbers stay gapless and credit is spent once."""
    tenant_ensure(tenant_id="acme", now=NOW)
    tenant_ensure(tenant_id="beta", now=NOW)
    ada = CustomerFactory(tenant_id="acme")
    foreign = CustomerFactory(tenant_id="beta")
    CustomerCreditEntry.objects.using("ar").create(
        customer=ada, currency="USD", amount_minor=4000, reason=CreditReason.GRANTED, note="goodwill", created_at=NOW,
    )
    payloads = [
        InvoiceRequestedFactory(customer_id=str(ada.id)),
        InvoiceRequestedFactory(customer_id=str(foreign.id)),
        InvoiceRequestedFactory(customer_id=str(ada.id)),
        InvoiceRequestedFactory(customer_id=str(ada.id)),
    ]
    messages = []
    for payload in payloads:
        envelope = envelope_for(
            INVOICE_REQUESTED, payload, tenant_id="acme", aggregate_type="subscription",
            aggregate_id=payload.subscription_id,
        )
        messages.append(Incoming(subject=envelope.subject, body=envelope.to_json(), delivery=1))

    results = deliver_group(module=get_module("ar"), messages=messages)

    assert [result.disposition for result in results] == [
        Disposition.ACK, Disposition.RETRY, Disposition.ACK, Disposition.ACK,
    ]
    invoices = list(Invoice.objects.using("ar").order_by("number"))
    assert [invoice.number for invoice in invoices] == ["ACME-000001", "ACME-000002", "ACME-000003"]
    assert [invoice.credit_applied_minor for invoice in invoices] == [2985, 1015, 0]
    balance = sum(CustomerCreditEntry.objects.using("ar").filter(customer=ada).values_list("amount_minor", flat=True))
    assert balance == 0
