"""Each template renders its text and HTML body with the exact amounts, dates and lines."""

import pytest

from notifications import contexts
from notifications.emails import build_message, render_email
from notifications.tests.factories import (
    InvoiceFinalizedFactory,
    PaymentFailedFactory,
    PaymentSucceededFactory,
    SubscriptionCanceledFactory,
)

INVOICE_LINES_TEXT = """\
- Pro plan (February 1, 2026 to February 28, 2026)
  2 x 19.90 USD = 39.80 USD
- Priority support
  1 x 19.90 USD = 19.90 USD
"""


def render_invoice(**fields):
    return render_email("invoice_finalized", contexts.invoice_finalized_context(InvoiceFinalizedFactory(**fields)))


class TestInvoiceFinalizedEmail:
    def test_automatic_collection_text(self):
        email = render_invoice()

        assert email.subject == "Invoice INV-2026-0042 for 59.70 USD"
        assert email.body_text == (
            "Hello Ada Lovelace,\n"
            "\n"
            "Invoice INV-2026-0042 was issued on February 1, 2026.\n"
            "\n"
            + INVOICE_LINES_TEXT
            + "\n"
            "Subtotal: 59.70 USD\n"
            "Total: 59.70 USD\n"
            "Credit applied: 10.00 USD\n"
            "Amount due: 49.70 USD\n"
            "Due date: February 15, 2026\n"
            "\n"
            "49.70 USD will be charged to your card on file. You do not need to do anything.\n"
        )

    def test_send_invoice_text_says_how_to_pay(self):
        email = render_invoice(collection_method="send_invoice", credit_applied_minor=0, amount_due_minor=5970)

        assert email.body_text == (
            "Hello Ada Lovelace,\n"
            "\n"
            "Invoice INV-2026-0042 was issued on February 1, 2026.\n"
            "\n"
            + INVOICE_LINES_TEXT
            + "\n"
            "Subtotal: 59.70 USD\n"
            "Total: 59.70 USD\n"
            "Amount due: 59.70 USD\n"
            "Due date: February 15, 2026\n"
            "\n"
            "Please pay 59.70 USD by February 15, 2026. When you pay by bank transfer, quote "
            "INV-2026-0042 as the payment reference so that the payment is matched to this "
            "invoice. To pay another way, reply to this email.\n"
        )
        assert "card on file" not in email.body_text
        assert "card on file" not in email.body_html
        assert "Please pay 59.70 USD by February 15, 2026." in email.body_html

    def test_html_has_every_line_and_total(self):
        email = render_invoice()

        assert "<td>Pro plan<br><small>February 1, 2026 to February 28, 2026</small></td>" in email.body_html
        assert "<td>Priority support</td>" in email.body_html
        assert email.body_html.count('<td style="text-align:right;">19.90 USD</td>') == 3
        assert '<td style="text-align:right;">39.80 USD</td>' in email.body_html
        assert "Subtotal</td><td style=\"text-align:right;\">59.70 USD</td>" in email.body_html
        assert "Total</td><td style=\"text-align:right;\">59.70 USD</td>" in email.body_html
        assert "Credit applied</td><td style=\"text-align:right;\">10.00 USD</td>" in email.body_html
        assert "<strong>49.70 USD</strong>" in email.body_html
        assert "<p>Due date: February 15, 2026</p>" in email.body_html
        assert "<strong>INV-2026-0042</strong> was issued on February 1, 2026." in email.body_html
        assert "<p>49.70 USD will be charged to your card on file." in email.body_html

    def test_credit_covering_invoice_asks_nothing(self):
        email = render_invoice(credit_applied_minor=5970, amount_due_minor=0)

        assert "Credit applied: 59.70 USD\nAmount due: 0.00 USD\n" in email.body_text
        assert email.body_text.endswith(
            "Your account credit covers this invoice, so there is nothing to pay.\n"
        )
        assert "will be charged" not in email.body_text
        assert "<p>Your account credit covers this invoice, so there is nothing to pay.</p>" in email.body_html

    def test_zero_decimal_currency(self):
        email = render_invoice(
            currency="JPY",
            subtotal_minor=3000,
            credit_applied_minor=0,
            total_minor=3000,
            amount_due_minor=3000,
            lines=[{"description": "Seat", "quantity": 3, "unit_amount_minor": 1000, "amount_minor": 3000}],
        )

        assert email.subject == "Invoice INV-2026-0042 for 3000 JPY"
        assert "- Seat\n  3 x 1000 JPY = 3000 JPY\n" in email.body_text

    def test_html_escapes_customer_text(self):
        email = render_invoice(
            customer_name="Smith & <Sons>",
            lines=[{"description": "<b>Setup</b>", "quantity": 1, "unit_amount_minor": 5970, "amount_minor": 5970}],
        )

        assert "Hello Smith &amp; &lt;Sons&gt;," in email.body_html
        assert "&lt;b&gt;Setup&lt;/b&gt;" in email.body_html
        assert "<b>Setup</b>" not in email.body_html
        assert email.body_text.startswith("Hello Smith & <Sons>,\n")
        assert "- <b>Setup</b>\n" in email.body_text


class TestPaymentReceiptEmail:
    def test_text_and_html(self):
        context = contexts.payment_receipt_context(
            PaymentSucceededFactory(), customer_name="Grace Hopper", invoice_number="INV-2026-0042"
        )

        email = render_email("payment_receipt", context)

        assert email.subject == "Receipt for your payment of 49.70 USD"
        assert email.body_text == (
            "Hello Grace Hopper,\n"
            "\n"
            "Thank you for your payment. This is your receipt.\n"
            "\n"
            "Amount paid: 49.70 USD\n"
            "Invoice: INV-2026-0042\n"
            "Paid on: February 1, 2026\n"
            "Payment reference: ch_3PqR7s2eZvKYlo2C\n"
            "\n"
            "Keep the payment reference if you need to ask about this payment.\n"
        )
        assert "<tr><td>Amount paid</td><td><strong>49.70 USD</strong></td></tr>" in email.body_html
        assert "<tr><td>Invoice</td><td>INV-2026-0042</td></tr>" in email.body_html
        assert "<tr><td>Paid on</td><td>February 1, 2026</td></tr>" in email.body_html
        assert "<tr><td>Payment reference</td><td>ch_3PqR7s2eZvKYlo2C</td></tr>" in email.body_html

    def test_unknown_invoice_number_shows_invoice_id(self):
        payload = PaymentSucceededFactory(invoice_id="0b7f5a52-2d0c-4c43-9d7e-3f1f4b8a9c11")
        context = contexts.payment_receipt_context(payload, customer_name="Grace Hopper", invoice_number=None)

        email = render_email("payment_receipt", context)

        assert "Invoice: 0b7f5a52-2d0c-4c43-9d7e-3f1f4b8a9c11\n" in email.body_text


class TestPaymentFailedEmail:
    def test_retry_scheduled(self):
        context = contexts.payment_failed_context(
            PaymentFailedFactory(), customer_name="Grace Hopper", invoice_number="INV-2026-0042"
        )

        email = render_email("payment_failed", context)

        assert email.subject == "Payment of 49.70 USD failed"
        assert email.body_text == (
            "Hello Grace Hopper,\n"
            "\n"
            "The payment of 49.70 USD for invoice INV-2026-0042 failed on February 1, 2026.\n"
            "Reason: Your card was declined.\n"
            "\n"
            "We will try again on February 4, 2026. To make sure that the next attempt succeeds, "
            "please check or update your payment method before then.\n"
        )
        assert "We will try again on <strong>February 4, 2026</strong>." in email.body_html
        assert "final notice" not in email.body_html

    def test_final_attempt_is_final_notice(self):
        payload = PaymentFailedFactory(attempt_number=4, retryable=False, final=True, next_attempt_at=None)
        context = contexts.payment_failed_context(payload, customer_name="Grace Hopper", invoice_number="INV-2026-0042")

        email = render_email("payment_failed", context)

        assert email.subject == "Final notice: payment of 49.70 USD failed"
        assert email.body_text.endswith(
            "Reason: Your card was declined.\n"
            "\n"
            "This is a final notice: no further payment attempts will be made, and the invoice "
            "remains unpaid. Please update your payment method and contact us to settle the invoice.\n"
        )
        assert "try again" not in email.body_text
        assert "<strong>This is a final notice:</strong>" in email.body_html
        assert "<title>Final notice: payment failed</title>" in email.body_html

    def test_final_ignores_stray_retry_time(self):
        payload = PaymentFailedFactory(final=True)

        context = contexts.payment_failed_context(payload, customer_name="Grace Hopper", invoice_number=None)

        assert context["next_attempt_date"] == ""
        assert "try again" not in render_email("payment_failed", context).body_text

    def test_no_retry_and_not_final(self):
        payload = PaymentFailedFactory(retryable=False, next_attempt_at=None)
        context = contexts.payment_failed_context(payload, customer_name="Grace Hopper", invoice_number=None)

        email = render_email("payment_failed", context)

        assert email.body_text.endswith(
            "No further attempt is scheduled yet. Please update your payment method so that the "
            "invoice can be collected.\n"
        )


class TestSubscriptionCanceledEmail:
    def test_at_period_end(self):
        context = contexts.subscription_canceled_context(SubscriptionCanceledFactory(), customer_name="Grace Hopper")

        email = render_email("subscription_canceled", context)

        assert email.subject == "Your Pro Monthly subscription is canceled"
        assert email.body_text == (
            "Hello Grace Hopper,\n"
            "\n"
            "Your Pro Monthly subscription was canceled on February 10, 2026.\n"
            "\n"
            "You keep access until the end of the current billing period: your service ends on "
            "March 1, 2026, and you will not be billed again.\n"
        )
        assert "<p>Your <strong>Pro Monthly</strong> subscription was canceled on February 10, 2026.</p>" in email.body_html
        assert "your service ends on <strong>March 1, 2026</strong>" in email.body_html

    def test_immediate(self):
        payload = SubscriptionCanceledFactory(at_period_end=False, ends_on="2026-02-10")

        email = render_email(
            "subscription_canceled", contexts.subscription_canceled_context(payload, customer_name="Grace Hopper")
        )

        assert email.body_text.endswith(
            "The cancellation took effect at once: your service ended on February 10, 2026, and "
            "you will not be billed again.\n"
        )
        assert "your service ended on <strong>February 10, 2026</strong>" in email.body_html


class TestRenderEmail:
    def test_subject_is_one_line(self):
        context = contexts.subscription_canceled_context(
            SubscriptionCanceledFactory(plan_name="Pro\nMonthly\r\nBcc: x@example.com"), customer_name="Grace"
        )

        email = render_email("subscription_canceled", context)

        assert email.subject == "Your Pro Monthly Bcc: x@example.com subscription is canceled"

    def test_missing_template_raises(self):
        from django.template import TemplateDoesNotExist

        with pytest.raises(TemplateDoesNotExist):
            render_email("no_such_template", {})


class TestBuildMessage:
    def test_multipart_with_stable_message_id(self, settings):
        settings.DEFAULT_FROM_EMAIL = "Billing <billing@example.com>"

        message = build_message(
            notification_id="5f0c7f0e-8d6b-4b8e-9a53-8f0f6e0c1a2b",
            recipient="grace@example.com",
            subject="Receipt",
            body_text="Hello\n",
            body_html="<p>Hello</p>",
        )

        assert message.to == ["grace@example.com"]
        assert message.from_email == "Billing <billing@example.com>"
        assert message.body == "Hello\n"
        assert message.alternatives[0][0] == "<p>Hello</p>"
        assert message.alternatives[0][1] == "text/html"
        rendered = message.message()
        assert rendered["Message-ID"] == "<notification-5f0c7f0e-8d6b-4b8e-9a53-8f0f6e0c1a2b@example.com>"
        assert rendered["X-Billing-Notification-Id"] == "5f0c7f0e-8d6b-4b8e-9a53-8f0f6e0c1a2b"
