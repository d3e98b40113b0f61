from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.operations.seed import demo_seed


class Command(BaseCommand):
    help = "Create synthetic demo tenants, plans, customers, payment methods and subscriptions."

    def add_arguments(self, parser):
        add_seed_arguments(parser)
        parser.add_argument(
            "--as-of", metavar="DATE",
            help="Date YYYY-MM-DD the subscriptions start shortly before (default: today, UTC).",
        )

    def handle(self, *args, **options):
        now = timezone.now()
        as_of = now.date()
        if options["as_of"]:
            try:
                as_of = date.fromisoformat(options["as_of"])
            except ValueError:
                raise CommandError(f"--as-of {options['as_of']!r} is not a date; use YYYY-MM-DD") from None
        check_seed_arguments(options)

        summary = demo_seed(
            tenant_count=options["tenants"],
            customers_per_tenant=options["customers"],
            seed=options["seed"],
            as_of=as_of,
            now=now,
        )
        self.stdout.write(seed_summary_line(summary))


def add_seed_arguments(parser) -> None:
    parser.add_argument("--tenants", type=int, default=2, help="Number of demo tenants (default: 2).")
    parser.add_argument(
        "--customers", type=int, default=25, help="Customers per tenant, each with one subscription (default: 25)."
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="Seed of the random choices; the same seed gives the same data (default: 1)."
    )


def check_seed_arguments(options: dict) -> None:
    for option in ("tenants", "customers"):
        if options[option] < 1:
            raise CommandError(f"--{option} {options[option]} must be at least 1")


def seed_summary_line(summary) -> str:
    return (
        f"Seeded {summary.tenants} tenant(s) with {summary.plans} plan(s): "
        f"{summary.customers_created} customer(s) created, {summary.customers_updated} updated, "
        f"{summary.payment_methods} payment method(s), {summary.subscriptions_created} subscription(s) "
        f"created, {summary.subscriptions_kept} kept"
    )
