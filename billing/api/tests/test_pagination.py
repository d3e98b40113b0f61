import pytest

from billing.api.tests.support import api_client

pytestmark = pytest.mark.django_db(databases="__all__")

# One list endpoint per pagination class.
LIST_PATHS = ["/api/v1/customers", "/api/v1/bill-runs", "/api/v1/events/ar/dead-letters"]


class TestPageSize:
    @pytest.mark.parametrize("path", LIST_PATHS)
    @pytest.mark.parametrize("page_size", ["0", "abc", "100000", "-1", "1.5", ""])
    def test_invalid_page_size_is_rejected(self, path, page_size):
        response = api_client(is_staff=True).get(path, {"page_size": page_size})

        assert response.status_code == 400
        assert response.json() == {
            "error": {
                "code": "invalid_request",
                "message": "the request has invalid fields: page_size",
                "fields": {
                    "page_size": [
                        f"{page_size!r} is not a valid page size; use a whole number from 1 to 200"
                    ]
                },
            }
        }

    @pytest.mark.parametrize("page_size", ["1", "200"])
    def test_page_size_in_range_is_accepted(self, page_size):
        response = api_client().get("/api/v1/customers", {"page_size": page_size})

        assert response.status_code == 200


class TestCursor:
    @pytest.mark.parametrize("path", LIST_PATHS)
    def test_bad_cursor_is_rejected(self, path):
        response = api_client(is_staff=True).get(path, {"cursor": "not-a-cursor"})

        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {
            "cursor": ["the cursor is invalid; pass the next or previous link of an earlier page unchanged"]
        }
