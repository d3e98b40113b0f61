import io

from django.conf import settings
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser


class PayloadTooLarge(APIException):
    status_code = 413
    default_code = "payload_too_large"


class BoundedJSONParser(JSONParser):
    """A JSON parser that rejects a body above ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes.

    Django checks that limit only when ``request.body`` is read, and DRF
    reads the stream instead, so a chunked body without Content-Length
    would otherwise be read whole.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None:
            data = stream.read(limit + 1)
            if len(data) > limit:
                raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
            stream = io.BytesIO(data)
        return super().parse(stream, media_type, parser_context)

