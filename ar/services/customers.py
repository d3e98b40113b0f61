"""Create and update customers, and grant them credit."""

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from ar.errors import InvalidCredit, InvalidCustomer
from ar.models import CollectionMethod, CreditReason, Customer, CustomerCreditEntry
from ar.services.common import (
    ALIAS,
    canonical_uuid,
    check_currency,
    check_tenant_id,
    check_text,
    is_whole_number,
    lock_customer,
    require_aware,
)
from ar.totals import MAX_AMOUNT_MINOR
from billing.money import format_major

logger = logging.getLogger(__name__)

# Maximum payment terms in days. Net 365 is far beyond common terms (net 30,
# 60 or 90), so a larger value is most likely a typo.
MAX_PAYMENT_TERMS_DAYS = 365


def customer_validate(
    *,
    tenant_id: str,
    external_id: str,
    name: str,
    email: str,
    currency: str,
    collection_method: str,
    payment_terms_days: int,
) -> dict:
    """Check every customer field and return them cleaned (text stripped).

    Raise ``InvalidCustomer`` naming the first invalid value and how to fix it.
    """
    cleaned = {
        "tenant_id": check_tenant_id(tenant_id, InvalidCustomer),
        "external_id": check_text(external_id, "external id", 200, InvalidCustomer),
        "name": check_text(name, "customer name", 200, InvalidCustomer),
        "email": check_text(email, "customer email", 254, InvalidCustomer),
        "currency": check_currency(currency, InvalidCustomer),
    }
    try:
        validate_email(cleaned["email"])
    except ValidationError:
        raise InvalidCustomer(
            f"customer email {cleaned['email']!r} is not a valid email address; "
            "use a form such as 'billing@example.com'"
        ) from None

    if collection_method not in CollectionMethod.values:
        raise InvalidCustomer(
            f"collection method {collection_method!r} is invalid; use one of "
            f"{', '.join(repr(value) for value in CollectionMethod.values)}"
        )
    cleaned["collection_method"] = collection_method

    if not is_whole_number(payment_terms_days) or not 0 <= payment_terms_days <= MAX_PAYMENT_TERMS_DAYS:
        raise InvalidCustomer(
            f"payment terms of {payment_terms_days!r} days are invalid; use a whole number "
            f"of days from 0 to {MAX_PAYMENT_TERMS_DAYS}"
        )
    cleaned["payment_terms_days"] = payment_terms_days
    return cleaned


def customer_upsert(
    *,
    tenant_id: str,
    external_id: str,
    name: str,
    email: str,
    currency: str,
    collection_method: str = CollectionMethod.CHARGE_AUTOMATICALLY,
    payment_terms_days: int = 0,
    now: datetime,
) -> tuple[Customer, bool]:
    """Create the customer ``external_id`` of ``tenant_id``, or update it when it exists.

    Return the customer and whether it was created. Raise ``InvalidCustomer``,
    writing nothing, when a field is invalid.
    """
    require_aware(now)
    cleaned = customer_validate(
        tenant_id=tenant_id,
        external_id=external_id,
        name=name,
        email=email,
        currency=currency,
        collection_method=collection_method,
        payment_terms_days=payment_terms_days,
    )
    fields = {
        "name": cleaned["name"],
        "email": cleaned["email"],
        "currency": cleaned["currency"],
        "collection_method": cleaned["collection_method"],
        "payment_terms_days": cleaned["payment_terms_days"],
    }

    with transaction.atomic(using=ALIAS):
        # update_or_create locks an existing row and, when two callers create
        # the same customer at once, retries the loser as an update.
        customer, created = Customer.objects.using(ALIAS).update_or_create(
            tenant_id=cleaned["tenant_id"],
            external_id=cleaned["external_id"],
            defaults={**fields, "updated_at": now},
            create_defaults={**fields, "created_at": now, "updated_at": now},
        )

    logger.info(
        "%s customer %s",
        "Created" if created else "Updated",
        customer.external_id,
        extra={"tenant_id": customer.tenant_id, "customer_id": str(customer.id)},
    )
    return customer, created


def customer_credit_grant(
    *,
    customer_id: str,
    currency: str,
    amount_minor: int,
    note: str,
    now: datetime,
) -> CustomerCreditEntry:
    """Add ``amount_minor`` of credit to the customer's ledger; the next invoices consume it.

    Raise ``InvalidCredit`` for a bad amount, currency or note and
    ``CustomerNotFound`` for an unknown customer, writing nothing.
    """
    require_aware(now)
    customer_id = canonical_uuid(customer_id, "customer id", InvalidCredit)
    currency = check_currency(currency, InvalidCredit)
    if not is_whole_number(amount_minor) or not 0 < amount_minor <= MAX_AMOUNT_MINOR:
        raise InvalidCredit(
            f"credit amount {amount_minor!r} is invalid; use a positive whole number of minor units"
        )
    note = check_text(note, "credit note", 500, InvalidCredit)

    with transaction.atomic(using=ALIAS):
        customer = lock_customer(customer_id=customer_id)
        entry = CustomerCreditEntry.objects.using(ALIAS).create(
            customer=customer,
            currency=currency,
            amount_minor=amount_minor,
            reason=CreditReason.GRANTED,
            note=note,
            created_at=now,
        )

    logger.info(
        "Granted %s of credit",
        format_major(amount_minor, currency),
        extra={"tenant_id": customer.tenant_id, "customer_id": str(customer.id)},
    )
    return entry
