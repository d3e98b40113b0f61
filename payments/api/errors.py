"""HTTP statuses of the payments module's errors."""

from billing.api.errors import register_error_statuses
from payments.errors import GatewayError, PaymentNotFound, PaymentsError

ERROR_STATUSES = {
    PaymentsError: 400,
    PaymentNotFound: 404,
    # The gateway gave no outcome; the retry runner resumes the attempt later.
    GatewayError: 502,
}
register_error_statuses(ERROR_STATUSES)
