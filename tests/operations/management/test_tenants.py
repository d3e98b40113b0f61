from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db(databases="__all__")


def run(*arguments: str) -> str:
    output = StringIO()
    call_command("tenants", *arguments, stdout=output)
    return output.getvalue()


class TestTenantsCommand:
    def test_create_then_list(self):
        created = run("create", "acme", "--name", "Acme Inc.")
        listed = run("list")

        assert created == "tenant acme (Acme Inc.) is ready\n"
        assert listed == "acme\n1 tenant(s)\n"

    def test_create_twice_keeps_one(self):
        run("create", "acme")
        run("create", "acme")

        assert run("list") == "acme\n1 tenant(s)\n"

    def test_invalid_id_is_rejected(self):
        with pytest.raises(CommandError) as raised:
            run("create", "Not Valid")

        assert "tenant id 'Not Valid' is invalid" in str(raised.value)
        assert run("list") == "0 tenant(s)\n"

    def test_create_needs_an_id(self):
        with pytest.raises(CommandError) as raised:
            run("create")

        assert str(raised.value) == "create needs a tenant id: manage.py tenants create acme --name 'Acme Inc.'"
