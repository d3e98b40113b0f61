import logging
from datetime import datetime

from django.db import transaction

from billing.tenancy.models import TENANT_ID_PATTERN
from billing.tenancy.selectors import tenant_exists
from payments.errors import InvalidPaymentMethod
from payments.models import PaymentMethod, PaymentMethodKind
from payments.services.validation import require_aware, require_text, require_uuid

logger = logging.getLogger(__name__)

ALIAS = "payments"
TOKEN_MAX_LENGTH = 255


def payment_method_upsert(
    *,
    tenant_id: str,
    customer_id: str,
    token: str,
    kind: str,
    make_default: bool = True,
    now: datetime,
) -> tuple[PaymentMethod, bool]:
    """Store ``token`` as a payment method of the customer, or update the stored one.

    Return the method and whether it was created. ``make_default`` makes it the
    method collections charge. Without it the default stays as it is, except
    that a customer with no default gets this method as the default.

    Raises ``InvalidPaymentMethod`` naming the bad field, before writing anything.
    """
    require_aware("now", now)
    customer_id, token = payment_method_validate(
        tenant_id=tenant_id, customer_id=customer_id, token=token, kind=kind
    )

    with transaction.atomic(using=ALIAS):
        # Locking the customer's methods serializes changes of the default.
        methods = list(
            PaymentMethod.objects.using(ALIAS).select_for_update().filter(customer_id=customer_id)
        )
        _check_customer_tenant(customer_id, tenant_id, methods)

        method = next((stored for stored in methods if stored.token == token), None)
        has_default = any(stored.is_default for stored in methods)
        becomes_default = make_default or not has_default or (method is not None and method.is_default)

        if becomes_default:
            # Clear the old default first: the one-default index is checked per statement.
            (
                PaymentMethod.objects.using(ALIAS)
                .filter(customer_id=customer_id, is_default=True)
                .exclude(token=token)
                .update(is_default=False, updated_at=now)
            )

        created = method is None
        if created:
            method = PaymentMethod.objects.using(ALIAS).create(
                tenant_id=tenant_id,
                customer_id=customer_id,
                token=token,
                kind=kind,
                is_default=becomes_default,
                created_at=now,
                updated_at=now,
            )
        elif method.kind != kind or method.is_default != becomes_default:
            method.kind = kind
            method.is_default = becomes_default
            method.updated_at = now
            method.save(using=ALIAS, update_fields=["kind", "is_default", "updated_at"])

    logger.info(
        "%s payment method %s of customer %s (default: %s)",
        "Added" if created else "Updated", method.id, customer_id, method.is_default,
        extra={"tenant_id": tenant_id, "customer_id": customer_id, "payment_method_id": str(method.id)},
    )
    return method, created


def payment_method_validate(*, tenant_id: str, customer_id: str, token: str, kind: str) -> tuple[str, str]:
    """Check a payment method's fields and return the canonical customer id and the token.

    Raises ``InvalidPaymentMethod`` naming the first bad field. Forms call this
    to show the error; ``payment_method_upsert`` checks again under its lock.
    """
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.match(tenant_id):
        raise InvalidPaymentMethod(
            f"tenant_id {tenant_id!r} is invalid; use 1 to 63 lower-case letters, digits and hyphens"
        )
    if not tenant_exists(tenant_id=tenant_id):
        raise InvalidPaymentMethod(f"tenant {tenant_id!r} does not exist; create it before adding payment methods")
    customer_id = require_uuid(InvalidPaymentMethod, "customer_id", customer_id)
    token = require_text(InvalidPaymentMethod, "token", token, max_length=TOKEN_MAX_LENGTH)
    if any(character.isspace() for character in token):
        raise InvalidPaymentMethod("token contains whitespace; pass the gateway's token exactly as issued")
    if kind not in PaymentMethodKind.values:
        raise InvalidPaymentMethod(
            f"kind {kind!r} is invalid; use one of {', '.join(PaymentMethodKind.values)}"
        )
    _check_customer_tenant(
        customer_id, tenant_id, PaymentMethod.objects.using(ALIAS).filter(customer_id=customer_id)[:1]
    )
    return customer_id, token


def _check_customer_tenant(customer_id: str, tenant_id: str, methods) -> None:
    foreign = next((stored for stored in methods if stored.tenant_id != tenant_id), None)
    if foreign is not None:
        raise InvalidPaymentMethod(
            f"customer {customer_id} belongs to tenant {foreign.tenant_id!r}, not {tenant_id!r}; "
            "pass the customer's own tenant"
        )
